/**
 * NSA-style anomalies (Schlüter et al., "Natural Synthetic Anomalies for Self-supervised Anomaly
 * Detection and Localization", ECCV 2022), as One-for-More uses them: patches cut from another
 * normal image of the same class, rescaled, rotated, and blended into the target with soft edges.
 * (The reference uses Poisson blending; a feathered alpha keeps this dependency-free and fast.)
 */
import type { RgbImage } from '../image';
import {
  type AnomalyOptions,
  type SyntheticAnomaly,
  checkImage,
  drawRect,
  forEachInRect,
  generateWithin,
  resolveAnomalyOptions,
  sampleBilinear,
} from './common';

/** Options of {@link nsaAnomaly}. */
export interface NsaOptions extends AnomalyOptions {
  /** Most patches per image: the first always, each further one with probability 0.5; default 3. */
  maxPatches?: number;
  /** Range of the patch's rescaling factor; default [0.7, 1.3]. */
  scaleRange?: readonly [number, number];
  /** Largest rotation of a patch, in radians; default π/6. */
  maxRotation?: number;
  /** Width of the soft edge, as a share of the patch's smaller half-size; default 0.3. */
  feather?: number;
}

/**
 * Blend patches of `source` (another normal image of the same class; any size) into `image`.
 * The mask area (all patches together) lies in `areaRange`.
 */
export function nsaAnomaly(image: RgbImage, source: RgbImage, options: NsaOptions): SyntheticAnomaly {
  const o = resolveAnomalyOptions(image, options, 'nsaAnomaly');
  checkImage(source, 'nsaAnomaly (source)');
  const maxPatches = Math.max(1, Math.floor(options.maxPatches ?? 3));
  const [sMin, sMax] = options.scaleRange ?? [0.7, 1.3];
  const maxRotation = options.maxRotation ?? Math.PI / 6;
  const feather = options.feather ?? 0.3;
  const { width: w, height: h } = image;
  const pixel = new Float32Array(3);

  return generateWithin(image, o, (targetPixels) => {
    const out = Float32Array.from(image.data);
    let patches = 1;
    while (patches < maxPatches && o.rng.uniform() < 0.5) patches++;
    const shares = Array.from({ length: patches }, () => 0.5 + o.rng.uniform());
    const total = shares.reduce((a, b) => a + b, 0);
    for (const share of shares) {
      const rect = drawRect(o.rng, w, h, (targetPixels * share) / total, [0.5, 2], maxRotation);
      const scale = sMin + o.rng.uniform() * (sMax - sMin);
      // The source window: the same rectangle, rescaled, somewhere inside the source image.
      const reachX = rect.halfWidth * scale;
      const reachY = rect.halfHeight * scale;
      const sx = reachX + o.rng.uniform() * Math.max(0, source.width - 2 * reachX);
      const sy = reachY + o.rng.uniform() * Math.max(0, source.height - 2 * reachY);
      const edge = Math.max(0.5, feather * Math.min(rect.halfWidth, rect.halfHeight));
      forEachInRect(rect, w, h, 0, (i, u, v) => {
        const ax = Math.min(1, (rect.halfWidth - Math.abs(u)) / edge);
        const ay = Math.min(1, (rect.halfHeight - Math.abs(v)) / edge);
        if (ax <= 0 || ay <= 0) return;
        const alpha = ax * ay;
        sampleBilinear(source, sx + u * scale, sy + v * scale, pixel);
        for (let c = 0; c < 3; c++) out[3 * i + c] = out[3 * i + c]! * (1 - alpha) + pixel[c]! * alpha;
      });
    }
    return out;
  });
}
