/**
 * Multi-head self-attention with a positional embedding on queries and keys only (values and the
 * residual stream stay free of it, as in DETR-style encoders: the AMN must output hint features,
 * which carry no positional term), an additive mask, and an optional hook that sees the softmax
 * weights. `@ofm/tensor`'s `multiHeadAttention` embeds one fused `qkv` projection of the same input,
 * so it can take neither a query/key-only embedding nor expose its weights; this one is written on
 * the same `dense` layers, so taps still report every projection's input.
 */
import { ConfigError, type Ctx, dense, dropout, scope, tf } from '@ofm/tensor';

/** Options of {@link maskedSelfAttention}. */
export interface MaskedAttentionOptions {
  /** Number of heads; must divide the channel count C. */
  heads: number;
  /** `[T, C]` positional embedding added to the input of the query/key projection. */
  pos?: tf.Tensor2D;
  /** Additive `[T, T]` mask shared by all heads and samples. */
  mask?: tf.Tensor2D;
  /** Dropout on the attention weights (training only). */
  dropout?: number;
  /**
   * Receives the softmax weights `[N, heads, T, T]` (before dropout). They are an intermediate of
   * the forward pass (freed when the enclosing `tf.tidy` ends): copy what you need inside the
   * callback (`dataSync()`, or `tf.keep(tf.clone(w))`).
   */
  onWeights?: (weights: tf.Tensor4D) => void;
}

/**
 * Self-attention over tokens `[N, T, C]`: `qk` dense (`C -> 2C`, on `x + pos`), `v` dense
 * (`C -> C`, on `x`), scaled dot products per head plus the mask, softmax, and `proj` dense.
 * Head `h` owns channels `[h*d, (h+1)*d)` of q, k and v (`d = C / heads`). Returns `[N, T, C]`.
 */
export function maskedSelfAttention(
  ctx: Ctx,
  name: string,
  x: tf.Tensor3D,
  opts: MaskedAttentionOptions,
): tf.Tensor3D {
  const [n, t, c] = x.shape;
  const heads = opts.heads;
  if (c % heads !== 0) throw new ConfigError(`attention '${name}': ${c} channels do not split into ${heads} heads`);
  const d = c / heads;
  const s = scope(ctx, name);
  const qkInput = opts.pos ? tf.add(x, opts.pos) : x;
  const qk = dense(s, 'qk', qkInput, { units: 2 * c });
  const v = dense(s, 'v', x, { units: c });
  const split = (source: tf.Tensor, offset: number) =>
    tf.transpose(tf.slice(source, [0, 0, offset], [n, t, c]).reshape([n, t, heads, d]), [0, 2, 1, 3]) as tf.Tensor4D;
  let logits = tf.mul(tf.matMul(split(qk, 0), split(qk, c), false, true), 1 / Math.sqrt(d));
  if (opts.mask) logits = tf.add(logits, opts.mask);
  let weights = tf.softmax(logits) as tf.Tensor4D;
  opts.onWeights?.(weights);
  if (opts.dropout) weights = dropout(ctx, weights, opts.dropout);
  const attended = tf.transpose(tf.matMul(weights, split(v, 0)), [0, 2, 1, 3]).reshape([n, t, c]);
  return dense(s, 'proj', attended, { units: c }) as tf.Tensor3D;
}
