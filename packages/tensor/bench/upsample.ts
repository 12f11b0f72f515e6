/**
 * Nearest-neighbour 2x upsampling on wasm, forward and gradient: the broadcast formulation of
 * nn.ts against tf.image.resizeNearestNeighbor (milliseconds, median of --iters).
 *
 *   cd packages/tensor && pnpm exec tsx bench/upsample.ts [--iters 5]
 */
import { initBackend } from '../src/backend';
import { upsampleNearest } from '../src/nn';
import { Rng } from '../src/rng';
import { tf } from '../src/tf';

const iters = Number(process.argv[process.argv.indexOf('--iters') + 1]) || 5;
await initBackend({ backend: 'wasm', strict: true });
const rng = new Rng(1);
function ms(f: () => tf.Tensor | tf.Tensor[]): number {
  tf.dispose(f());
  const t: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    const out = f();
    for (const o of Array.isArray(out) ? out : [out]) o.dataSync();
    t.push(performance.now() - t0);
    tf.dispose(out);
  }
  return t.sort((a, b) => a - b)[Math.floor(iters / 2)]!;
}
for (const shape of [[4, 32, 32, 128], [4, 16, 16, 256]] as Array<[number, number, number, number]>) {
  const x = rng.randn(shape) as tf.Tensor4D;
  const dy = rng.randn([shape[0], shape[1] * 2, shape[2] * 2, shape[3]]);
  const resize = (t: tf.Tensor4D) => tf.image.resizeNearestNeighbor(t, [shape[1] * 2, shape[2] * 2]);
  const grad = (f: (t: tf.Tensor4D) => tf.Tensor) => () => tf.grad((t: tf.Tensor) => f(t as tf.Tensor4D).mul(dy).sum())(x);
  console.log(
    `[${shape}] broadcast fwd ${ms(() => upsampleNearest(x)).toFixed(1)} ms, fwd+grad ${ms(grad(upsampleNearest)).toFixed(1)} ms; ` +
      `resize fwd ${ms(() => resize(x)).toFixed(1)} ms, fwd+grad ${ms(grad(resize)).toFixed(1)} ms`,
  );
  tf.dispose([x, dy]);
}
