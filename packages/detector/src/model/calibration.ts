/**
 * Routing and calibration. With no task id at test time, each image is routed to a learned class
 * (whose start timestep, weights and calibration it then uses), and the raw score (a different
 * scale on each class) is standardised by that class's statistics. Each learned class keeps: the
 * descriptors of up to {@link MAX_ROUTING_KEYS} of its training images (routing keys: colour layout
 * and multi-scale texture statistics, 67 numbers each, not images), a diagonal Gaussian prototype
 * of them, and the mean and spread of image scores and map values on its held-out *normal
 * validation* images. An image goes to the class of its nearest routing key (distance scaled by the
 * pooled within-class spread): on real texture photographs this routed 0.99 of test images right
 * where the nearest Gaussian prototype routed 0.86 (a broad class swallowed images of a tight one
 * whose test crops came from another part of the photograph; packages/detector/README.md).
 */
import { type Reads, readSync, tf } from '@ofm/tensor';

/** Grid side of the colour layout part of the descriptor. */
const GRID = 4;
/** Routing keys kept per class (training images' descriptors; evenly subsampled beyond this). */
export const MAX_ROUTING_KEYS = 64;
/** Dyadic scales of the texture statistics (1, 1/2, 1/4, 1/8 of the image size). */
const TEXTURE_SCALES = 4;

/**
 * Image descriptors `[N, 67]` for routing: a 4x4 average-pooled colour layout (48), the mean
 * gradient magnitude and colour spread (4; the descriptor of checkpoints before routing keys, which
 * read only these first 52 numbers), then the mean colour (3) and, at four dyadic scales, the mean
 * horizontal and vertical luma gradient and the luma spread (12). Images
 * `[N, H, W, 3]` in [0, 1], any size of at least 8 pixels.
 */
export function describeImages(images: tf.Tensor4D): Float32Array[] {
  return readSync(describeImagesReads(images));
}

/** {@link describeImages} as a {@link Reads} computation (for asynchronous reads). */
export function* describeImagesReads(images: tf.Tensor4D): Reads<Float32Array[]> {
  const [n, h, w] = images.shape;
  const descriptors = tf.tidy(() => {
    // Resample to a fixed 32x32 first so any image size pools to the same 4x4 layout.
    const fixed = tf.image.resizeBilinear(images, [GRID * 8, GRID * 8]);
    const pooled = tf.avgPool(fixed, [8, 8], [8, 8], 'valid');
    const layout = pooled.reshape([n, GRID * GRID * 3]);
    const luma = tf.sum(tf.mul(images, tf.tensor1d([0.299, 0.587, 0.114])), 3, true) as tf.Tensor4D;
    const dx = tf.sub(tf.slice(luma, [0, 0, 1, 0], [n, h, w - 1, 1]), tf.slice(luma, [0, 0, 0, 0], [n, h, w - 1, 1]));
    const dy = tf.sub(tf.slice(luma, [0, 1, 0, 0], [n, h - 1, w, 1]), tf.slice(luma, [0, 0, 0, 0], [n, h - 1, w, 1]));
    const gradient = tf.add(tf.mean(tf.abs(dx), [1, 2, 3]), tf.mean(tf.abs(dy), [1, 2, 3])).reshape([n, 1]);
    const { mean, variance } = tf.moments(images, [1, 2]);
    const spread = tf.sqrt(tf.add(variance, 1e-12)).reshape([n, 3]);
    const texture: tf.Tensor[] = [mean.reshape([n, 3])];
    let level: tf.Tensor4D = luma;
    for (let s = 0; s < TEXTURE_SCALES; s++) {
      const [, lh, lw] = level.shape;
      if (lh < 2 || lw < 2) {
        texture.push(tf.zeros([n, 3]));
        continue;
      }
      const gx = tf.sub(tf.slice(level, [0, 0, 1, 0], [n, lh, lw - 1, 1]), tf.slice(level, [0, 0, 0, 0], [n, lh, lw - 1, 1]));
      const gy = tf.sub(tf.slice(level, [0, 1, 0, 0], [n, lh - 1, lw, 1]), tf.slice(level, [0, 0, 0, 0], [n, lh - 1, lw, 1]));
      const lumaSpread = tf.sqrt(tf.add(tf.moments(level, [1, 2, 3]).variance, 1e-12));
      texture.push(tf.stack([tf.mean(tf.abs(gx), [1, 2, 3]), tf.mean(tf.abs(gy), [1, 2, 3]), lumaSpread], 1));
      if (lh >= 4 && lw >= 4) level = tf.avgPool(level, 2, 2, 'valid');
    }
    return tf.concat([layout, tf.mul(gradient, 4), spread, ...texture], 1) as tf.Tensor2D;
  });
  let values: Float32Array;
  try {
    values = (yield descriptors) as Float32Array;
  } finally {
    descriptors.dispose();
  }
  const d = descriptors.shape[1];
  return Array.from({ length: n }, (_, i) => values.slice(i * d, (i + 1) * d));
}

/**
 * The calibrated score above which an image is called anomalous by default: 3 standard deviations
 * above the mean score of its class's held-out normal images (`ofm detect --threshold`, the report).
 */
export const DEFAULT_SCORE_THRESHOLD = 3;

/** What one learned class keeps for calibration. Plain JSON (goes into the checkpoint manifest). */
export interface ClassCalibration {
  className: string;
  /** Per-dimension mean and standard deviation of the training images' descriptors. */
  descriptorMean: number[];
  descriptorStd: number[];
  /**
   * Descriptors of up to {@link MAX_ROUTING_KEYS} training images (absent in checkpoints written
   * before routing keys, which route by the nearest prototype instead).
   */
  routingKeys?: number[][];
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
  const every = Math.max(1, descriptors.length / MAX_ROUTING_KEYS);
  const keys: number[][] = [];
  for (let k = 0; Math.floor(k * every) < descriptors.length && keys.length < MAX_ROUTING_KEYS; k++) keys.push(Array.from(descriptors[Math.floor(k * every)]!));
  // Floors keep a degenerate (constant) validation set from producing infinite z-scores.
  return {
    className,
    descriptorMean: mean,
    descriptorStd: std.map((s) => Math.max(Math.sqrt(s), 1e-3)),
    routingKeys: keys,
    scoreMean: score.mean,
    scoreStd: Math.max(score.std, 1e-6 + 1e-3 * Math.abs(score.mean)),
    pixelMean: pixel.mean,
    pixelStd: Math.max(pixel.std, 1e-6 + 1e-3 * Math.abs(pixel.mean)),
  };
}

/**
 * The index of the learned class each descriptor is routed to: the class of the nearest routing key
 * (squared distance per dimension divided by the pooled within-class variance of the keys). When
 * a class has no routing keys (an older checkpoint), every image goes to the nearest prototype
 * instead ({@link routeToClass}).
 */
export function routeImages(descriptors: readonly Float32Array[], classes: readonly ClassCalibration[]): number[] {
  if (classes.length === 0) throw new Error('routing needs at least one learned class');
  const keyed = classes.every((c) => c.routingKeys && c.routingKeys.length > 0 && c.routingKeys[0]!.length === descriptors[0]?.length);
  if (!keyed) return descriptors.map((d) => routeToClass(d, classes));
  const dim = classes[0]!.routingKeys![0]!.length;
  // Pooled within-class variance of the keys, floored so a constant dimension does not dominate.
  const pooled = new Float64Array(dim);
  for (const c of classes) {
    const spread = meanStdPerDim(c.routingKeys!);
    for (let i = 0; i < dim; i++) pooled[i]! += spread[i]! ** 2 / classes.length;
  }
  const inverse = Array.from(pooled, (v) => 1 / Math.max(v, 1e-6));
  return descriptors.map((d) => {
    let best = 0;
    let bestDist = Number.POSITIVE_INFINITY;
    classes.forEach((c, k) => {
      for (const key of c.routingKeys!) {
        let dist = 0;
        for (let i = 0; i < dim && dist < bestDist; i++) dist += (d[i]! - key[i]!) ** 2 * inverse[i]!;
        if (dist < bestDist) {
          bestDist = dist;
          best = k;
        }
      }
    });
    return best;
  });
}

function meanStdPerDim(rows: readonly number[][]): number[] {
  const dim = rows[0]!.length;
  return Array.from({ length: dim }, (_, i) => meanStd(rows.map((r) => r[i]!)).std);
}

/**
 * Index of the class whose descriptor prototype is nearest (diagonal Mahalanobis distance plus the
 * log-determinant), over the prototype's dimensions (the first 52 for older checkpoints).
 */
export function routeToClass(descriptor: Float32Array, classes: readonly ClassCalibration[]): number {
  let best = -1;
  let bestDist = Number.POSITIVE_INFINITY;
  classes.forEach((c, k) => {
    let dist = 0;
    for (let i = 0; i < c.descriptorMean.length; i++) {
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
