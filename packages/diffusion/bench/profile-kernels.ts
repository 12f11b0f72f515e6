/**
 * Where a training step (or a forward pass) of the benchmark UNet spends its time, per tfjs
 * kernel, measured with `tf.profile` (wall time of each kernel call on the wasm backend).
 *
 *   pnpm tsx bench/profile-kernels.ts [--spec FILE] [--batch 2] [--mode train|forward] [--top 25]
 *
 * A measurement for choosing what to optimise, not a benchmark: profiling adds per-call overhead.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ParamStore, Rng, initBackend, tf } from '@ofm/tensor';
import { DiffusionTrainer, NoiseSchedule, UNet, parseUNetConfig } from '../src/index';

const { values: args } = parseArgs({
  options: {
    spec: { type: 'string', default: new URL('../test/fixtures/unet_spec.json', import.meta.url).pathname },
    batch: { type: 'string', default: '2' },
    mode: { type: 'string', default: 'train' },
    top: { type: 'string', default: '25' },
    shapes: { type: 'boolean', default: false },
  },
});

await initBackend({ backend: 'wasm', strict: true });
const spec = parseUNetConfig(JSON.parse(readFileSync(args.spec!, 'utf8')), args.spec);
const batch = Number(args.batch);
const store = new ParamStore(0);
const unet = new UNet(store, spec).init();
const trainer = new DiffusionTrainer({ unet, schedule: new NoiseSchedule({ kind: 'linear' }), optimizer: { lr: 1e-4, weightDecay: 0.01 } });
const x0 = new Rng(1).rand([batch, spec.image_size, spec.image_size, spec.in_channels], -1, 1) as tf.Tensor4D;

const run = () =>
  args.mode === 'forward'
    ? tf.tidy(() => {
        unet.forward(x0, new Array<number>(batch).fill(500)).dataSync();
      })
    : trainer.step(x0);
run(); // warm-up (operator creation, tier-up)
const t0 = performance.now();
const c0 = process.cpuUsage();
const info = await tf.profile(() => {
  run();
});
const wall = performance.now() - t0;
const cpu = process.cpuUsage(c0);
const byKey = new Map<string, { ms: number; calls: number }>();
let total = 0;
for (const k of info.kernels) {
  // Composite ops recorded around their kernels (customGrad wrappers) would count twice.
  if (k.name.endsWith('__op')) continue;
  const ms = Number(k.kernelTimeMs) || 0;
  total += ms;
  const key = args.shapes ? `${k.name} ${JSON.stringify(k.inputShapes)}` : k.name;
  const e = byKey.get(key) ?? { ms: 0, calls: 0 };
  e.ms += ms;
  e.calls++;
  byKey.set(key, e);
}
console.log(`${args.mode} batch ${batch}: wall ${(wall / 1000).toFixed(2)} s, cpu ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s, kernel time ${(total / 1000).toFixed(2)} s, ${info.kernels.length} kernel calls`);
for (const [k, e] of [...byKey].sort((a, b) => b[1].ms - a[1].ms).slice(0, Number(args.top))) {
  console.log(`${(e.ms / 1000).toFixed(3).padStart(8)} s ${((100 * e.ms) / total).toFixed(1).padStart(5)}%  ${String(e.calls).padStart(5)}x  ${k}`);
}
