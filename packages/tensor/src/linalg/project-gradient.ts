/**
 * Gradient projection on tfjs tensors (GPM): remove from a weight gradient its component in the
 * span of an orthonormal basis of earlier tasks' layer inputs.
 */
import { tf } from '../tf';

/**
 * G - U (Uᵀ G) for a gradient g stored like one-for-more weights: dense `[in, out]` or conv
 * `[kh, kw, in, out]` (treated as `[kh*kw*in, out]`, the im2col row order), and a basis U of shape
 * `[in_dim, k]` with orthonormal columns (in_dim = product of all but the last dimension of g).
 * Returns a new tensor of g's shape; intermediates are disposed.
 */
export function projectGradient(g: tf.Tensor, u: tf.Tensor2D): tf.Tensor {
  if (g.rank < 2) {
    throw new RangeError(`projectGradient: gradient must have rank >= 2 ([in, out] or [kh, kw, in, out]), got shape [${g.shape}]`);
  }
  const out = g.shape[g.rank - 1]!;
  const inDim = g.size / Math.max(out, 1);
  if (u.rank !== 2 || u.shape[0] !== inDim) {
    throw new RangeError(
      `projectGradient: basis shape [${u.shape}] does not fit gradient shape [${g.shape}]: ` +
        `the basis must be [${inDim}, k] (in_dim = product of all but the last gradient dimension)`,
    );
  }
  return tf.tidy(() => {
    if (u.shape[1] === 0) return g.clone();
    const g2 = g.reshape([inDim, out]);
    const coeff = tf.matMul(u, g2, true, false);
    return g2.sub(tf.matMul(u, coeff)).reshape(g.shape);
  });
}
