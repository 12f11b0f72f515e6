/**
 * Scores comparable across tasks. One model serves every class learned, with no task id at test
 * time, but the raw score (the maximum of a map) has a different scale on each class. Each learned
 * class keeps a few numbers: a prototype of image descriptors (diagonal Gaussian) and the mean and
 * spread of image scores and map values on its held-out *normal validation* images. At detection an
 * image is routed to the nearest prototype and its score and map are standardised by that class's
 * statistics. No image is kept; the memory is a few hundred floats per class.
 */
import { tf } from '@ofm/tensor';

/** Grid side of the colour layout part of the descriptor. */
const GRID = 4;

/**
 * Image descriptors `[N, D]` for routing: a 4x4 average-pooled colour layout, plus the mean
 * gradient magnitude and colour spread (texture strength). Images `[N, H, W, 3]` in [0, 1].
 */
export function describeImages(images: tf.Tensor4D): Float32Array[] {
  const [n, h, w] = images.shape;
  const data = tf.tidy(() => {
    // Resample to a fixed 32x32 first so any image size pools to the same 4x4 layout.
    const fixed = tf.image.resizeBilinear(images, [GRID * 8, GRID * 8]);
    const pooled = tf.avgPool(fixed, [8, 8], [8, 8], 'valid');
    const layout = pooled.reshape([n, GRID * GRID * 3]);
    const luma = tf.sum(tf.mul(images, tf.tensor1d([0.299, 0.587, 0.114])), 3, true) as tf.Tensor4D;
    const dx = tf.sub(tf.slice(luma, [0, 0, 1, 0], [n, h, w - 1, 1]), tf.slice(luma, [0, 0, 0, 0], [n, h, w - 1, 1]));
    const dy = tf.sub(tf.slice(luma, [0, 1, 0, 0], [n, h - 1, w, 1]), tf.slice(luma, [0, 0, 0, 0], [n, h - 1, w, 1]));
    const gradient = tf.add(tf.mean(tf.abs(dx), [1, 2, 3]), tf.mean(tf.abs(dy), [1, 2, 3])).reshape([n, 1]);
    const { variance } = tf.moments(images, [1, 2]);
    const spread = tf.sqrt(tf.add(variance, 1e-12)).reshape([n, 3]);
    return tf.concat([layout, tf.mul(gradient, 4), spread], 1).arraySync() as number[][];
  });
  return data.map((row) => Float32Array.from(row));
}

/** What one learned class keeps for calibration. Plain JSON (goes into the checkpoint manifest). */
export interface ClassCalibration {
  className: string;
  /** Per-dimension mean and standard deviation of the training images' descriptors. */
  descriptorMean: number[];
  descriptorStd: number[];
  /** Image-score mean and standard deviation on normal validation images. */
  scoreMean: number;
  scoreStd: number;
  /** Map-value mean and standard deviation on normal validation images. */
  pixelMean: number;
  pixelStd: number;
}

function meanStd(values: ArrayLike<number>): { mean: number; std: number } {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]!;
  const mean = values.length ? sum / values.length : 0;
  let sq = 0;
  for (let i = 0; i < values.length; i++) sq += (values[i]! - mean) ** 2;
  return { mean, std: Math.sqrt(sq / Math.max(1, values.length - 1)) };
}

/** Fit one class's calibration from its descriptors and its normal validation scores/maps. */
export function fitClassCalibration(
  className: string,
  descriptors: Float32Array[],
  validationScores: ArrayLike<number>,
  validationMapValues: ArrayLike<number>,
): ClassCalibration {
  if (descriptors.length === 0) throw new Error(`calibration for '${className}' needs at least one image`);
  if (validationScores.length === 0) throw new Error(`calibration for '${className}' needs validation scores`);
  const d = descriptors[0]!.length;
  const mean = new Array<number>(d).fill(0);
  const std = new Array<number>(d).fill(0);
  for (const v of descriptors) for (let i = 0; i < d; i++) mean[i]! += v[i]! / descriptors.length;
  for (const v of descriptors) for (let i = 0; i < d; i++) std[i]! += (v[i]! - mean[i]!) ** 2 / Math.max(1, descriptors.length - 1);
  const score = meanStd(validationScores);
  const pixel = meanStd(validationMapValues);
  // Floors keep a degenerate (constant) validation set from producing infinite z-scores.
  return {
    className,
    descriptorMean: mean,
    descriptorStd: std.map((s) => Math.max(Math.sqrt(s), 1e-3)),
    scoreMean: score.mean,
    scoreStd: Math.max(score.std, 1e-6 + 1e-3 * Math.abs(score.mean)),
    pixelMean: pixel.mean,
    pixelStd: Math.max(pixel.std, 1e-6 + 1e-3 * Math.abs(pixel.mean)),
  };
}

/** Index of the class whose descriptor distribution is nearest (diagonal Mahalanobis distance). */
export function routeToClass(descriptor: Float32Array, classes: readonly ClassCalibration[]): number {
  let best = -1;
  let bestDist = Number.POSITIVE_INFINITY;
  classes.forEach((c, k) => {
    let dist = 0;
    for (let i = 0; i < descriptor.length; i++) {
      const z = (descriptor[i]! - c.descriptorMean[i]!) / c.descriptorStd[i]!;
      dist += z * z;
    }
    // Log-determinant term: a broad class must not swallow images of a tight one.
    for (const s of c.descriptorStd) dist += 2 * Math.log(s);
    if (dist < bestDist) {
      bestDist = dist;
      best = k;
    }
  });
  return best;
}
