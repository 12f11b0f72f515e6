/**
 * Feature extractors compare an input with its reconstruction. A user plugs in a backbone by
 * implementing {@link FeatureExtractor}; the built-ins are the smoothed pixel difference (the
 * default: it scored best with our CPU-scale model, see the package README), a weight-free filter
 * bank, and {@link TfjsModelExtractor}, which taps named layers of any tfjs layers or graph model on
 * disk.
 */
import { ConfigError, tf } from '@ofm/tensor';

/**
 * Maps a batch of RGB images `[N, H, W, 3]` with values in [0, 1] to one or more feature maps
 * `[N, h, w, C]` (any spatial size; the anomaly map upsamples each to the image size).
 * Called inside `tf.tidy`: return new tensors, keep nothing.
 */
export interface FeatureExtractor {
  /** A short identifier of the extractor (e.g. `filterbank`, `pixel`), used in error messages. */
  readonly name: string;
  /** The feature maps `[N, h, w, C]` of images `[N, H, W, 3]` in [0, 1]; new tensors, one or more. */
  extract(images: tf.Tensor4D): tf.Tensor4D[];
  /** Release what the extractor holds (e.g. a loaded model); the detector calls it from its own `dispose`. */
  dispose?(): void;
}

/** Normalised 1-D Gaussian taps, truncated at `radius` (3 sigma, or less for tiny images). */
function gaussianTaps(sigma: number, radius: number): number[] {
  const taps: number[] = [];
  for (let i = -radius; i <= radius; i++) taps.push(Math.exp(-(i * i) / (2 * sigma * sigma)));
  const sum = taps.reduce((a, b) => a + b, 0);
  return taps.map((v) => v / sum);
}

/** Gaussian blur of `[N, H, W, C]` with reflect padding, so borders are not darkened. */
export function gaussianBlur(x: tf.Tensor4D, sigma: number): tf.Tensor4D {
  if (sigma <= 0) return tf.clone(x);
  return tf.tidy(() => {
    const [, h, w, c] = x.shape;
    const full = Math.max(1, Math.ceil(3 * sigma));
    // Reflect padding needs radius < size; tiny images get a truncated (renormalised) kernel.
    const rh = Math.min(full, h - 1);
    const rw = Math.min(full, w - 1);
    const depthwise = (taps: number[], horizontal: boolean) => {
      const values = taps.flatMap((v) => new Array<number>(c).fill(v));
      return tf.tensor4d(values, horizontal ? [1, taps.length, c, 1] : [taps.length, 1, c, 1]);
    };
    let y: tf.Tensor4D = x;
    if (rw > 0) {
      const padded = tf.mirrorPad(y, [[0, 0], [0, 0], [rw, rw], [0, 0]], 'reflect');
      y = tf.depthwiseConv2d(padded, depthwise(gaussianTaps(sigma, rw), true), 1, 'valid');
    }
    if (rh > 0) {
      const padded = tf.mirrorPad(y, [[0, 0], [rh, rh], [0, 0], [0, 0]], 'reflect');
      y = tf.depthwiseConv2d(padded, depthwise(gaussianTaps(sigma, rh), false), 1, 'valid');
    }
    return y === x ? tf.clone(x) : y;
  });
}

const SOBEL_X = [-1, 0, 1, -2, 0, 2, -1, 0, 1];
const SOBEL_Y = [-1, -2, -1, 0, 0, 0, 1, 2, 1];
const LAPLACE = [0, 1, 0, 1, -4, 1, 0, 1, 0];

function stencil(x: tf.Tensor4D, taps: number[]): tf.Tensor4D {
  const padded = tf.mirrorPad(x, [
    [0, 0],
    [1, 1],
    [1, 1],
    [0, 0],
  ], 'reflect');
  return tf.conv2d(padded, tf.tensor4d(taps, [3, 3, 1, 1]), 1, 'valid');
}

/** Options of {@link FilterBankExtractor}. */
export interface FilterBankOptions {
  /** Gaussian scales (pixels at the model's image size; default [1, 2, 4]). */
  sigmas?: number[];
}

/**
 * Weight-free multi-scale features: at each scale, the blurred colour, the gradient magnitude and
 * the Laplacian of the blurred luminance. One feature map per scale.
 */
export class FilterBankExtractor implements FeatureExtractor {
  readonly name = 'filterbank';
  readonly sigmas: number[];

  constructor(opts: FilterBankOptions = {}) {
    this.sigmas = opts.sigmas ?? [1, 2, 4];
    if (this.sigmas.length === 0 || this.sigmas.some((s) => !(s > 0))) {
      throw new ConfigError(`FilterBankExtractor: sigmas must be positive numbers, got [${this.sigmas}]`);
    }
  }

  /**
   * One map `[N, H, W, 5]` per sigma, in `sigmas` order: blurred RGB, gradient magnitude and
   * Laplacian of the blurred luminance, the last two scaled by sigma/4 and sigma².
   */
  extract(images: tf.Tensor4D): tf.Tensor4D[] {
    return this.sigmas.map((sigma) =>
      tf.tidy(() => {
        const colour = gaussianBlur(images, sigma);
        const luma = tf.sum(tf.mul(colour, tf.tensor1d([0.299, 0.587, 0.114])), 3, true) as tf.Tensor4D;
        const gx = stencil(luma, SOBEL_X);
        const gy = stencil(luma, SOBEL_Y);
        // Scale-normalised (sigma-weighted) derivatives keep the scales comparable.
        const grad = tf.mul(tf.sqrt(tf.add(tf.add(tf.square(gx), tf.square(gy)), 1e-12)), sigma / 4);
        const log = tf.mul(stencil(luma, LAPLACE), sigma * sigma);
        return tf.concat([colour, grad, log], 3) as tf.Tensor4D;
      }),
    );
  }
}

/** The raw pixels as the only feature map (plain pixel L2 distance). */
export class PixelExtractor implements FeatureExtractor {
  readonly name = 'pixel';
  /** A single map: a copy of the images, `[N, H, W, 3]`. */
  extract(images: tf.Tensor4D): tf.Tensor4D[] {
    return [tf.clone(images)];
  }
}
