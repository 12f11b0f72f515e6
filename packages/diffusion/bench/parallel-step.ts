/**
 * Does a second core help? Data-parallel training-step throughput of the benchmark UNet with one
 * worker thread against two, each with its own tfjs wasm backend (tfjs's wasm backend has no
 * threads under Node.js, so worker threads are the only way to a second core).
 *
 *   pnpm tsx bench/parallel-step.ts [--spec FILE] [--batch 4] [--steps 2] [--rounds 2] [--json FILE]
 *
 * One round: one worker runs `steps` forward+backward passes on the whole batch; then two workers
 * run the same passes on half the batch each, at the same time. Only the gradient computation is
 * timed (what a data-parallel trainer would split); exchanging gradients would add to the two-
 * worker time, so the speed-up printed is an upper bound. The load average is printed with every
 * round: on a shared machine a second worker competes with other jobs, not only with the first.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

interface Job {
  spec: string;
  batch: number;
  steps: number;
}

if (isMainThread) {
  const { values: args } = parseArgs({
    options: {
      spec: { type: 'string', default: new URL('../test/fixtures/unet_spec.json', import.meta.url).pathname },
      batch: { type: 'string', default: '4' },
      steps: { type: 'string', default: '2' },
      rounds: { type: 'string', default: '2' },
      json: { type: 'string' },
    },
  });
  const batch = Number(args.batch);
  if (batch % 2 !== 0) throw new Error('--batch must be even (it is split over two workers)');
  const steps = Number(args.steps);

  /** Start `count` workers with `batch` each, wait until all are ready, run them together. */
  async function run(count: number, perWorker: number): Promise<{ seconds: number }> {
    const workers = Array.from(
      { length: count },
      () =>
        // The worker runs this TypeScript file too: register tsx's loader in it first.
        new Worker(
          `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(import.meta.url)}); });`,
          { eval: true, workerData: { spec: args.spec!, batch: perWorker, steps } satisfies Job },
        ),
    );
    const ready = workers.map((w) => new Promise<void>((resolve) => w.once('message', () => resolve())));
    await Promise.all(ready);
    const t0 = performance.now();
    const done = workers.map(
      (w) => new Promise<void>((resolve, reject) => {
        w.once('message', () => resolve());
        w.once('error', reject);
      }),
    );
    for (const w of workers) w.postMessage('go');
    await Promise.all(done);
    const seconds = (performance.now() - t0) / 1000;
    await Promise.all(workers.map((w) => w.terminate()));
    return { seconds };
  }

  const rounds: Array<Record<string, unknown>> = [];
  for (let r = 0; r < Number(args.rounds); r++) {
    const l0 = loadavg()[0]!;
    const one = await run(1, batch);
    const l1 = loadavg()[0]!;
    const two = await run(2, batch / 2);
    const l2 = loadavg()[0]!;
    const speedup = one.seconds / two.seconds;
    console.log(
      `round ${r}: 1 worker x batch ${batch}: ${one.seconds.toFixed(2)} s (load ${l0.toFixed(2)}); ` +
        `2 workers x batch ${batch / 2}: ${two.seconds.toFixed(2)} s (load ${l1.toFixed(2)}-${l2.toFixed(2)}); ` +
        `throughput ${speedup.toFixed(2)}x`,
    );
    rounds.push({ one, two, speedup, loadavg: [l0, l1, l2] });
  }
  if (args.json) writeFileSync(args.json, `${JSON.stringify({ batch, steps, rounds }, null, 2)}\n`);
} else {
  const job = workerData as Job;
  const { ParamStore, Rng, initBackend, tf } = await import('@ofm/tensor');
  const { DiffusionTrainer, NoiseSchedule, UNet, parseUNetConfig } = await import('../src/index');
  await initBackend({ backend: 'wasm', strict: true });
  const spec = parseUNetConfig(JSON.parse(readFileSync(job.spec, 'utf8')), job.spec);
  const unet = new UNet(new ParamStore(0), spec).init();
  const trainer = new DiffusionTrainer({ unet, schedule: new NoiseSchedule({ kind: 'linear' }) });
  const x0 = new Rng(1).rand([job.batch, spec.image_size, spec.image_size, spec.in_channels], -1, 1) as import('@ofm/tensor').Tensor4D;
  const pass = () => {
    const g = trainer.computeGradients(x0);
    tf.dispose(Object.values(g.grads));
  };
  pass(); // warm-up: operators, tier-up, heap growth
  parentPort!.postMessage('ready');
  parentPort!.once('message', () => {
    for (let i = 0; i < job.steps; i++) pass();
    parentPort!.postMessage('done');
  });
}
