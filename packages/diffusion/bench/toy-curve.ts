/**
 * The training loss curve of the tiny two-pattern model of the training test (test/toy.ts):
 * mean loss per block of steps, then DDIM samples' distance to the patterns.
 *
 *   pnpm tsx bench/toy-curve.ts [--steps 300] [--every 20] [--backend wasm|cpu]
 */
import { parseArgs } from 'node:util';
import { Rng, initBackend, tf } from '@ofm/tensor';
import { sample } from '../src/index';
import { TOY_SIZE, mean, nearestPattern, trainToy } from '../test/toy';

const { values: args } = parseArgs({
  options: {
    steps: { type: 'string', default: '300' },
    every: { type: 'string', default: '20' },
    backend: { type: 'string', default: 'wasm' },
  },
});
await initBackend({ backend: args.backend as 'wasm' | 'cpu' | 'auto', strict: true });

const steps = Number(args.steps);
const every = Number(args.every);
const window: number[] = [];
const run = trainToy(steps, (i, loss) => {
  window.push(loss);
  if ((i + 1) % every === 0) {
    console.log(`steps ${String(i + 2 - every).padStart(4)}-${String(i + 1).padEnd(4)} mean loss ${mean(window).toFixed(4)}`);
    window.length = 0;
  }
});
console.log(`${steps} steps in ${run.seconds.toFixed(1)} s (${((run.seconds / steps) * 1000).toFixed(0)} ms/step, backend ${tf.getBackend()})`);
const shape: [number, number, number, number] = [16, TOY_SIZE, TOY_SIZE, 1];
const samples = sample(run.unet, run.schedule, shape, { steps: 20, seed: 3, clipDenoised: true });
const noise = new Rng(4).randn(shape) as tf.Tensor4D;
const s = nearestPattern(samples);
console.log(
  `16 DDIM samples (20 steps): mean RMS distance to the nearest pattern ${mean(s.map((r) => r.dist)).toFixed(3)}, ` +
    `pure noise ${mean(nearestPattern(noise).map((r) => r.dist)).toFixed(3)}; per pattern ${[0, 1].map((k) => s.filter((r) => r.pattern === k).length).join('/')}`,
);
tf.dispose([samples, noise]);
run.trainer.dispose();
run.store.dispose();
