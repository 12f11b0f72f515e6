/**
 * Step time of the benchmark UNet (the PyTorch twin's spec) with the real training step of this
 * package: epsilon-prediction MSE, AdamW (lr from the spec, weight decay 0.01), linear schedule,
 * one fixed batch of U(-1, 1) "images" — the same work as `torch_unet.py --mode train`.
 *
 *   pnpm tsx bench/train-step.ts [--spec FILE] [--steps 3] [--warmup 1] [--batch N] [--micro-batch M]
 *                                [--backend wasm|cpu|auto] [--forward] [--json FILE]
 *
 * `--micro-batch M` runs each step's forward/backward in slices of M samples (the same step, less
 * memory). Since @ofm/tensor's fused group norm and copy-free Identity, the spec's batch of 8 at
 * 64 px fits the 4 GiB wasm heap in one pass (about 1.6 GiB); slices are no longer needed there.
 * `ofm bench perf` (apps/cli) measures the same step side by side with the PyTorch twin.
 *
 * Prints the per-block parameter count, the analytic forward GFLOP (the twin's method: 2·MACs of
 * every conv/dense layer, counted from layer taps, plus the two attention matmuls), and per-step
 * timings. `--forward` also times one forward pass of the batch (no gradient).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { ParamStore, Rng, initBackend, tf } from '@ofm/tensor';
import { DiffusionTrainer, NoiseSchedule, UNet, forwardGflopPerImage, parseUNetConfig } from '../src/index';

const { values: args } = parseArgs({
  options: {
    spec: { type: 'string', default: new URL('../test/fixtures/unet_spec.json', import.meta.url).pathname },
    steps: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    batch: { type: 'string' },
    'micro-batch': { type: 'string' },
    backend: { type: 'string', default: 'wasm' },
    forward: { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});

const report = await initBackend({ backend: args.backend as 'wasm' | 'cpu' | 'auto', strict: true });
console.log(`backend ${report.backend} (custom kernels: ${report.customKernels.join(', ') || 'none'})`);

const raw = JSON.parse(readFileSync(args.spec!, 'utf8')) as Record<string, unknown>;
const spec = parseUNetConfig(raw, args.spec);
const batch = Number(args.batch ?? raw.batch_size ?? 8);
const lr = Number(raw.lr ?? 1e-4);
const steps = Number(args.steps);
const warmup = Number(args.warmup);
const microBatch = args['micro-batch'] !== undefined ? Number(args['micro-batch']) : undefined;

const store = new ParamStore(0);
const unet = new UNet(store, spec).init();
console.log(`UNet ${unet.paramCount().toLocaleString('en-US')} parameters in ${unet.paramNames().length} tensors`);
for (const [block, n] of Object.entries(unet.paramBreakdown())) console.log(`  ${block.padEnd(18)} ${n.toLocaleString('en-US').padStart(10)}`);

// Counted like the twin: conv/dense 2·MACs from taps, attention matmuls analytically.
const gflopImage = forwardGflopPerImage(unet);
const gflopStep = 3 * gflopImage * batch;
console.log(`forward ${gflopImage.toFixed(3)} GFLOP/image; training step (3x forward, batch ${batch}) ${gflopStep.toFixed(1)} GFLOP`);

const trainer = new DiffusionTrainer({
  unet,
  schedule: new NoiseSchedule({ kind: 'linear' }),
  optimizer: { lr, weightDecay: 0.01 },
  microBatch,
});
console.log(`batch ${batch}${microBatch ? ` in slices of ${microBatch}` : ''}, lr ${lr}, backend ${tf.getBackend()}`);
const x0 = new Rng(1).rand([batch, spec.image_size, spec.image_size, spec.in_channels], -1, 1) as tf.Tensor4D;
const loadStart = loadavg();
const losses: number[] = [];
const timings: { gradientsMs: number; updateMs: number; totalMs: number }[] = [];
for (let i = 0; i < warmup + steps; i++) {
  const r = trainer.step(x0);
  losses.push(r.loss);
  const label = i < warmup ? 'warm-up' : 'step';
  console.log(
    `${label} ${i}: loss ${r.loss.toFixed(4)}  ${(r.timings.totalMs / 1000).toFixed(2)} s ` +
      `(forward+backward ${(r.timings.gradientsMs / 1000).toFixed(2)} s, update ${((r.timings.updateMs + r.timings.gradientHookMs) / 1000).toFixed(2)} s)`,
  );
  if (i >= warmup) timings.push({ gradientsMs: r.timings.gradientsMs, updateMs: r.timings.updateMs + r.timings.gradientHookMs, totalMs: r.timings.totalMs });
}
const totals = timings.map((t) => t.totalMs / 1000).sort((a, b) => a - b);
const median = totals[Math.floor((totals.length - 1) / 2)]!;
console.log(
  `train: median ${median.toFixed(2)} s/step (min ${totals[0]!.toFixed(2)}, max ${totals[totals.length - 1]!.toFixed(2)}), ` +
    `${(batch / median).toFixed(2)} img/s, ${(gflopStep / median).toFixed(1)} GFLOP/s`,
);

let forwardSeconds: number | undefined;
if (args.forward) {
  const start = performance.now();
  tf.tidy(() => {
    unet.forward(x0, new Array<number>(batch).fill(500)).dataSync();
  });
  forwardSeconds = (performance.now() - start) / 1000;
  console.log(`forward (batch ${batch}, no gradient): ${forwardSeconds.toFixed(2)} s, ${((gflopImage * batch) / forwardSeconds).toFixed(1)} GFLOP/s`);
}

if (args.json) {
  const result = {
    framework: 'tfjs',
    tfjs_version: tf.version_core,
    backend: tf.getBackend(),
    node: process.version,
    loadavg_start: loadStart,
    loadavg_end: loadavg(),
    spec: { ...spec, batch_size: batch, lr },
    micro_batch: microBatch ?? batch,
    param_count: unet.paramCount(),
    param_breakdown: unet.paramBreakdown(),
    forward_gflop_per_image: gflopImage,
    gflop_per_step: gflopStep,
    warmup_steps: warmup,
    timed_steps: steps,
    timings,
    sec_per_step_median: median,
    achieved_gflops: gflopStep / median,
    forward_seconds: forwardSeconds,
    losses,
  };
  writeFileSync(args.json, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`wrote ${args.json}`);
}
trainer.dispose();
x0.dispose();
store.dispose();
