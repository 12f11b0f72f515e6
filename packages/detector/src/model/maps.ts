/**
 * Anomaly maps: where an input and its "normal" reconstruction differ, measured in the space of a
 * {@link FeatureExtractor}, per layer, upsampled to the image size, aggregated, smoothed.
 */
import { type Reads, readSync, tf } from '@ofm/tensor';
import { type FeatureExtractor, gaussianBlur } from './features';

/** Options of {@link anomalyMap}. */
export interface AnomalyMapOptions {
  /** How per-layer distance maps combine (default 'mean'; the reference multiplies them, mean is steadier). */
  aggregate?: 'mean' | 'sum' | 'product';
  /** Gaussian smoothing of the final map, in pixels at the image size (default 2; 0 = none). */
  blurSigma?: number;
}

/**
 * Per-pixel anomaly map `[N, H, W]` between `images` and `reconstructions` (`[N, H, W, 3]` in
 * [0, 1]): Euclidean distance over channels for each feature layer, bilinear upsampling, aggregation
 * and Gaussian smoothing.
 */
export function anomalyMap(
  extractor: FeatureExtractor,
  images: tf.Tensor4D,
  reconstructions: tf.Tensor4D,
  opts: AnomalyMapOptions = {},
): tf.Tensor3D {
  const [n, h, w] = images.shape;
  return tf.tidy(() => {
    const both = tf.concat([images, reconstructions], 0) as tf.Tensor4D;
    const layers = extractor.extract(both);
    if (layers.length === 0) throw new Error(`feature extractor '${extractor.name}' returned no feature maps`);
    const maps = layers.map((f) => {
      const a = tf.slice(f, [0, 0, 0, 0], [n, -1, -1, -1]);
      const b = tf.slice(f, [n, 0, 0, 0], [n, -1, -1, -1]);
      const dist = tf.sqrt(tf.add(tf.sum(tf.square(tf.sub(a, b)), 3, true), 1e-12)) as tf.Tensor4D;
      return dist.shape[1] === h && dist.shape[2] === w ? dist : tf.image.resizeBilinear(dist, [h, w]);
    });
    const aggregate = opts.aggregate ?? 'mean';
    let combined: tf.Tensor4D;
    if (aggregate === 'product') combined = maps.reduce((acc, m) => tf.mul(acc, m)) as tf.Tensor4D;
    else {
      combined = maps.reduce((acc, m) => tf.add(acc, m)) as tf.Tensor4D;
      if (aggregate === 'mean') combined = tf.div(combined, maps.length);
    }
    const sigma = opts.blurSigma ?? 2;
    const smoothed = sigma > 0 ? gaussianBlur(combined, sigma) : combined;
    return smoothed.reshape([n, h, w]) as tf.Tensor3D;
  });
}

/**
 * How a map becomes an image score:
 * - `max`: the map's peak;
 * - `topk-mean`: the mean of its top `fraction` of pixels;
 * - `max-minus-mean`: the peak above the map's own mean. The image's overall reconstruction error
 *   (its baseline) cancels, so a model whose reconstructions of an earlier class grow uniformly
 *   noisier after later tasks keeps that class's scores where they were: the score measures a
 *   local defect, not the global error level.
 */
export type ScoreReduction = { kind: 'max' } | { kind: 'topk-mean'; fraction: number } | { kind: 'max-minus-mean' };

/** The score reduction a detector config's `map` group names. */
export function scoreReduction(map: { score: ScoreReduction['kind']; topFraction: number }): ScoreReduction {
  return map.score === 'topk-mean' ? { kind: 'topk-mean', fraction: map.topFraction } : { kind: map.score };
}

/** Image scores `[N]` from maps `[N, H, W]` (see {@link ScoreReduction}). */
export function imageScores(maps: tf.Tensor3D, reduction: ScoreReduction = { kind: 'max' }): Float32Array {
  return readSync(imageScoresReads(maps, reduction));
}

/** {@link imageScores} as a {@link Reads} computation (for asynchronous reads). */
export function* imageScoresReads(maps: tf.Tensor3D, reduction: ScoreReduction = { kind: 'max' }): Reads<Float32Array> {
  const scores = tf.tidy(() => {
    const [n, h, w] = maps.shape;
    const flat = maps.reshape([n, h * w]) as tf.Tensor2D;
    switch (reduction.kind) {
      case 'max':
        return tf.max(flat, 1);
      case 'max-minus-mean':
        return tf.sub(tf.max(flat, 1), tf.mean(flat, 1));
      case 'topk-mean': {
        const k = Math.max(1, Math.round(reduction.fraction * h * w));
        return tf.mean(tf.topk(flat, k).values, 1);
      }
    }
  });
  try {
    return (yield scores) as Float32Array;
  } finally {
    scores.dispose();
  }
}
