/**
 * GFLOP/s of conv2d forward, input gradient and filter gradient on the wasm backend, for the conv
 * shapes of the benchmark UNet (or any given list), one kernel call at a time.
 *
 *   cd packages/tensor && pnpm exec tsx bench/conv-spec-shapes.ts [--batch 2] [--iters 3] [--filter 64x64]
 */
import { parseArgs } from 'node:util';
import { initBackend } from '../src/backend';
import { Rng } from '../src/rng';
import { tf } from '../src/tf';

const { values: args } = parseArgs({
  options: {
    batch: { type: 'string', default: '2' },
    iters: { type: 'string', default: '3' },
    filter: { type: 'string' },
    ops: { type: 'string', default: 'fwd,dx,dw' },
  },
});
const batch = Number(args.batch);
const iters = Number(args.iters);
const ops = args.ops!.split(',');
// [size, cin, cout, k, stride] of the spec UNet (64 px, 64/128/256).
const shapes: Array<[number, number, number, number, number]> = [
  [64, 3, 64, 3, 1],
  [64, 64, 64, 3, 1],
  [64, 64, 64, 3, 2],
  [32, 64, 128, 3, 1],
  [32, 128, 128, 3, 1],
  [32, 64, 128, 1, 1],
  [32, 128, 128, 3, 2],
  [16, 128, 256, 3, 1],
  [16, 256, 256, 3, 1],
  [16, 128, 256, 1, 1],
  [16, 512, 256, 3, 1],
  [32, 256, 256, 3, 1],
  [32, 384, 128, 3, 1],
  [64, 128, 128, 3, 1],
  [64, 192, 64, 3, 1],
  [64, 128, 64, 3, 1],
  [64, 64, 3, 3, 1],
];

function time(f: () => tf.Tensor): number {
  f().dispose();
  const ms: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    const out = f();
    out.dataSync();
    ms.push(performance.now() - t0);
    out.dispose();
  }
  return ms.sort((a, b) => a - b)[Math.floor((ms.length - 1) / 2)]!;
}

await initBackend({ backend: 'wasm', strict: true });
const rng = new Rng(1);
for (const [size, ci, co, k, s] of shapes) {
  const label = `${size}x${size}x${ci}->${co} k${k} s${s}`;
  if (args.filter && !label.includes(args.filter)) continue;
  const xShape: [number, number, number, number] = [batch, size, size, ci];
  const wShape: [number, number, number, number] = [k, k, ci, co];
  const x = tf.tensor4d(rng.normalArray(xShape.reduce((a, b) => a * b)), xShape);
  const w = tf.tensor4d(rng.normalArray(wShape.reduce((a, b) => a * b)), wShape);
  const pad = k === 1 ? 'valid' : ([[0, 0], [1, 1], [1, 1], [0, 0]] as tf.backend_util.ExplicitPadding);
  const y = tf.conv2d(x, w, s, pad);
  const dy = tf.tensor4d(rng.normalArray(y.size), y.shape);
  const gflop = (2 * y.size * k * k * ci) / 1e9;
  const attrs = { strides: s, pad, dataFormat: 'NHWC', dimRoundingMode: undefined };
  const parts: string[] = [];
  if (ops.includes('fwd')) parts.push(`fwd ${(gflop / (time(() => tf.conv2d(x, w, s, pad)) / 1000)).toFixed(1)}`);
  if (ops.includes('dx'))
    parts.push(`dx ${(gflop / (time(() => tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: w }, { ...attrs, inputShape: xShape }) as tf.Tensor) / 1000)).toFixed(1)}`);
  if (ops.includes('dw'))
    parts.push(`dw ${(gflop / (time(() => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { ...attrs, filterShape: wShape }) as tf.Tensor) / 1000)).toFixed(1)}`);
  console.log(`${label.padEnd(26)} ${gflop.toFixed(3)} GFLOP  ${parts.join('  ')} GFLOP/s`);
  tf.dispose([x, w, y, dy]);
}
