/** A tiny conv net over 6 x 6 x 3 images and seeded regression tasks for the GPM tests. */
import { type Ctx, ParamStore, Rng, conv2d, context, dense, silu, tf } from '@ofm/tensor';

export const SIZE = 6;
export const FILTERS = Number(process.env.FILTERS ?? 8);

/** conv 3x3 (3 -> 8), SiLU, conv 3x3 stride 2 (8 -> 8), SiLU, flatten, dense (72 -> 1). */
export function tinyNet(ctx: Ctx, x: tf.Tensor4D): tf.Tensor2D {
  const h1 = silu(conv2d(ctx, 'c1', x, { filters: FILTERS }));
  const h2 = silu(conv2d(ctx, 'c2', h1, { filters: FILTERS, stride: 2 }));
  return dense(ctx, 'head', h2.reshape([x.shape[0], -1]), { units: 1 }) as tf.Tensor2D;
}

export interface Task {
  x: tf.Tensor4D;
  y: tf.Tensor2D;
}

/**
 * A regression task on images `x = p ⊗ colour`: grey patterns p from a task-specific family of
 * `modes` random 6 x 6 basis patterns (random coefficients), painted in one colour. The target is
 * `tanh(Σ p ⊙ mask)` for a task-specific spatial mask, plus label noise (so the loss has a floor
 * and relative changes of it mean something). Each task's inputs, and so its layer
 * representations, concentrate in a low-dimensional subspace, as real activations do; tasks with
 * orthogonal colours have orthogonal first-layer inputs.
 */
export function makeTask(seed: number, colour: readonly number[], count = 128, options: { noise?: number; modes?: number } = {}): Task {
  const noise = options.noise ?? 0.1;
  const modes = options.modes ?? 4;
  const rng = new Rng(seed);
  const pixels = SIZE * SIZE;
  const mask = rng.normalArray(pixels, 0, 1 / SIZE);
  const family = rng.normalArray(modes * pixels, 0, 1);
  const xs = new Float32Array(count * pixels * 3);
  const ys = new Float32Array(count);
  const p = new Float64Array(pixels);
  for (let n = 0; n < count; n++) {
    p.fill(0);
    for (let m = 0; m < modes; m++) {
      const a = rng.normal() / Math.sqrt(modes);
      for (let q = 0; q < pixels; q++) p[q] += a * family[m * pixels + q]!;
    }
    let s = 0;
    for (let q = 0; q < pixels; q++) {
      s += p[q]! * mask[q]!;
      for (let c = 0; c < 3; c++) xs[(n * pixels + q) * 3 + c] = p[q]! * colour[c]!;
    }
    ys[n] = Math.tanh(s) + noise * rng.normal();
  }
  return { x: tf.tensor4d(xs, [count, SIZE, SIZE, 3]), y: tf.tensor2d(ys, [count, 1]) };
}

/** A store with the tiny net's parameters created. */
export function tinyStore(seed = 1): ParamStore {
  const params = new ParamStore(seed);
  tf.tidy(() => {
    tinyNet(context(params), tf.zeros([1, SIZE, SIZE, 3]) as tf.Tensor4D);
  });
  return params;
}

export function mse(params: ParamStore, task: Task): tf.Scalar {
  return tf.losses.meanSquaredError(task.y, tinyNet(context(params), task.x)) as tf.Scalar;
}

export function lossValue(params: ParamStore, task: Task): number {
  return tf.tidy(() => mse(params, task).dataSync()[0]!);
}
