/**
 * Nearest-neighbour 2x upsampling on wasm, forward and gradient, in milliseconds (median of
 * --iters, kernel time only): nn.upsampleNearest (the block-copy kernel), the broadcast
 * formulation it replaced (two Tile kernels), and tf.image.resizeNearestNeighbor.
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

/** Median milliseconds of `f`, its outputs disposed (not read back: a read copies the heap). */
function ms(f: () => tf.Tensor | tf.Tensor[]): number {
  tf.dispose(f());
  const t: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    const out = f();
    t.push(performance.now() - t0);
    tf.dispose(out);
  }
  return t.sort((a, b) => a - b)[Math.floor(iters / 2)]!;
}

function broadcast(x: tf.Tensor4D): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const wide = tf.broadcastTo(x.reshape([n * h, w, 1, c]), [n * h, w, 2, c]);
  return tf.broadcastTo(wide.reshape([n * h, 1, w * 2 * c]), [n * h, 2, w * 2 * c]).reshape([n, h * 2, w * 2, c]) as tf.Tensor4D;
}

for (const shape of [
  [8, 32, 32, 128],
  [8, 16, 16, 256],
] as Array<[number, number, number, number]>) {
  const x = rng.randn(shape) as tf.Tensor4D;
  const dy = rng.randn([shape[0], shape[1] * 2, shape[2] * 2, shape[3]]);
  const resize = (t: tf.Tensor4D) => tf.image.resizeNearestNeighbor(t, [shape[1] * 2, shape[2] * 2]);
  const row = (name: string, f: (t: tf.Tensor4D) => tf.Tensor) =>
    `${name} ${ms(() => f(x)).toFixed(1)} / ${ms(() => tf.grad((t: tf.Tensor) => f(t as tf.Tensor4D).mul(dy).sum())(x)).toFixed(1)}`;
  console.log(
    `[${shape}] forward / forward+gradient ms: ${row('kernel', (t) => upsampleNearest(t))}; ${row('broadcast', broadcast)}; ${row('resize', resize)}`,
  );
  tf.dispose([x, dy]);
}
