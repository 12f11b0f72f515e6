/**
 * CutPaste anomalies (Li et al., "CutPaste: Self-Supervised Learning for Anomaly Detection and
 * Localization", CVPR 2021): a rectangle cut from the image itself, colour-jittered, optionally
 * rotated, and pasted elsewhere with hard edges.
 */
import type { RgbImage } from '../image';
import {
  type AnomalyOptions,
  type SyntheticAnomaly,
  drawRect,
  forEachInRect,
  generateWithin,
  resolveAnomalyOptions,
  sampleBilinear,
} from './common';

/** Options of {@link cutPasteAnomaly}. */
export interface CutPasteOptions extends AnomalyOptions {
  /** Range of the patch's width / height; default [0.3, 3.3] (CutPaste's). */
  aspectRange?: readonly [number, number];
  /** Largest rotation of the pasted patch, in radians; default 0 (CutPaste's "patch" variant). */
  maxRotation?: number;
  /** Largest brightness and contrast change of the patch (each ±); default 0.1. */
  jitter?: number;
}

/** Cut a patch from `image` and paste it elsewhere; the mask area lies in `areaRange`. */
export function cutPasteAnomaly(image: RgbImage, options: CutPasteOptions): SyntheticAnomaly {
  const o = resolveAnomalyOptions(image, options, 'cutPasteAnomaly');
  const aspect = options.aspectRange ?? [0.3, 3.3];
  const maxRotation = options.maxRotation ?? 0;
  const jitter = options.jitter ?? 0.1;
  const { width: w, height: h } = image;
  const pixel = new Float32Array(3);

  return generateWithin(image, o, (targetPixels) => {
    const out = Float32Array.from(image.data);
    const target = drawRect(o.rng, w, h, targetPixels, aspect, maxRotation);
    // The cut: an axis-aligned window of the same size elsewhere in the image.
    const sx = target.halfWidth + o.rng.uniform() * Math.max(0, w - 2 * target.halfWidth);
    const sy = target.halfHeight + o.rng.uniform() * Math.max(0, h - 2 * target.halfHeight);
    const brightness = (o.rng.uniform() * 2 - 1) * jitter;
    const contrast = 1 + (o.rng.uniform() * 2 - 1) * jitter;
    forEachInRect(target, w, h, 0, (i, u, v) => {
      if (Math.abs(u) > target.halfWidth || Math.abs(v) > target.halfHeight) return;
      sampleBilinear(image, sx + u, sy + v, pixel);
      for (let c = 0; c < 3; c++) {
        const value = (pixel[c]! - 0.5) * contrast + 0.5 + brightness;
        out[3 * i + c] = Math.min(1, Math.max(0, value));
      }
    });
    return out;
  });
}
