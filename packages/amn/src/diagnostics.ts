/**
 * Measurements of hint features that tell whether the condition branch still carries information:
 * the spread of features across images (which a collapsed, input-independent encoder loses) and
 * feature distances normalised by that spread.
 */
import { tf } from '@ofm/tensor';

/** Spread of a batch of feature maps `[N, h, w, C]`, as root-mean-square deviations. */
export interface FeatureSpread {
  /** RMS deviation of each (position, channel) from its mean over the images. */
  acrossImages: number;
  /** RMS deviation of every value from its channel's mean over images and positions. */
  overall: number;
  /**
   * `acrossImages / overall`, in [0, 1]: the share of the features' variation that depends on the
   * input image. 0 for an input-independent encoder (including an all-constant one).
   */
  ratio: number;
}

/**
 * How much hint features differ across images, relative to how much they vary at all. An encoder
 * that ignores its input gives the same map for every image: `acrossImages` 0, `ratio` 0.
 */
export function featureSpread(features: tf.Tensor4D): FeatureSpread {
  if (features.rank !== 4 || features.shape[0]! < 2) {
    throw new Error(`featureSpread: need feature maps [N >= 2, h, w, C], got [${features.shape.join(', ')}]`);
  }
  const [across, overall] = tf.tidy(() => {
    const perPosition = tf.mean(tf.squaredDifference(features, tf.mean(features, 0, true)));
    const perChannel = tf.mean(tf.squaredDifference(features, tf.mean(features, [0, 1, 2], true)));
    return [Math.sqrt(perPosition.dataSync()[0]!), Math.sqrt(perChannel.dataSync()[0]!)];
  });
  return { acrossImages: across, overall, ratio: overall > 0 ? across / overall : 0 };
}

/**
 * Root-mean-square difference between two feature batches `[N, h, w, C]`, over all values or only
 * over the tokens where `tokenWeights` (`[N, h, w]`, 0/1) is 1.
 */
export function featureDistance(a: tf.Tensor4D, b: tf.Tensor4D, tokenWeights?: tf.Tensor3D): number {
  if (a.shape.some((d, i) => d !== b.shape[i])) {
    throw new Error(`featureDistance: shapes differ, [${a.shape.join(', ')}] vs [${b.shape.join(', ')}]`);
  }
  return tf.tidy(() => {
    const perToken = tf.mean(tf.squaredDifference(a, b), 3) as tf.Tensor3D;
    if (!tokenWeights) return Math.sqrt(tf.mean(perToken).dataSync()[0]!);
    const total = tf.sum(tokenWeights).dataSync()[0]!;
    if (total <= 0) throw new Error('featureDistance: tokenWeights selects no token');
    return Math.sqrt(tf.sum(tf.mul(perToken, tokenWeights)).dataSync()[0]! / total);
  });
}

/**
 * Which tokens a pixel mask touches: `[N, H, W]` (nonzero = changed pixel) to `[N, H/s, W/s]`
 * 0/1, a token being 1 when any pixel of its `s x s` cell is set.
 */
export function pixelMaskToTokens(mask: tf.Tensor3D, stride: number): tf.Tensor3D {
  const [n, h, w] = mask.shape;
  if (h % stride !== 0 || w % stride !== 0) {
    throw new Error(`pixelMaskToTokens: mask ${h}x${w} is not divisible by stride ${stride}`);
  }
  return tf.tidy(() => {
    const cells = tf.maxPool(tf.cast(tf.notEqual(mask, 0), 'float32').reshape([n, h, w, 1]) as tf.Tensor4D, stride, stride, 'valid');
    return cells.reshape([n, h / stride, w / stride]) as tf.Tensor3D;
  });
}
