/**
 * Shared parts of the synthetic anomalies. Every generator works on float RGB images (HWC,
 * [0, 1]), never modifies its input, and returns the corrupted copy with its exact mask: the
 * pixels that changed by more than a tolerance. Changes at or below the tolerance are undone,
 * so the mask is exactly the set of pixels where output and input differ.
 */
import type { RgbImage } from '../image';
import type { RandomSource } from '../random';

/** Options every synthetic anomaly takes. */
export interface AnomalyOptions {
  /** Seeded randomness, e.g. `new Rng(seed)` from @ofm/tensor or `createRandom(seed)`. */
  rng: RandomSource;
  /**
   * Probability of returning the image unchanged (with an empty mask); default 0. One-for-More
   * corrupts half of the MVTec samples (0.5) and two thirds of the VisA ones (1/3).
   */
  cleanProbability?: number;
  /** Range of the mask's area as a fraction of the image area; default [0.01, 0.15]. */
  areaRange?: readonly [number, number];
  /** A pixel counts as changed when a channel moved by more than this; default 1/255. */
  tolerance?: number;
  /** Draws tried before giving up and returning the image clean; default 10. */
  maxAttempts?: number;
}

/** A corrupted image and where it was corrupted. */
export interface SyntheticAnomaly {
  /** The corrupted image (a new array), HWC float RGB. */
  image: Float32Array;
  /** 1 exactly where {@link image} differs from the input. */
  mask: Uint8Array;
  /** Number of mask pixels. */
  area: number;
  /**
   * True when the image was left unchanged: by the clean probability, or because no draw within
   * `maxAttempts` changed an area inside the range (e.g. the patch source equals the image).
   */
  clean: boolean;
}

/** Resolved options with their defaults. */
export interface ResolvedAnomalyOptions {
  rng: RandomSource;
  cleanProbability: number;
  minPixels: number;
  maxPixels: number;
  minArea: number;
  maxArea: number;
  tolerance: number;
  maxAttempts: number;
}

export function resolveAnomalyOptions(image: RgbImage, options: AnomalyOptions, where: string): ResolvedAnomalyOptions {
  checkImage(image, where);
  const [minArea, maxArea] = options.areaRange ?? [0.01, 0.15];
  if (!(minArea > 0 && minArea <= maxArea && maxArea <= 1)) {
    throw new RangeError(`${where}: areaRange must satisfy 0 < min <= max <= 1, got [${minArea}, ${maxArea}]`);
  }
  const cleanProbability = options.cleanProbability ?? 0;
  if (!(cleanProbability >= 0 && cleanProbability <= 1)) {
    throw new RangeError(`${where}: cleanProbability must be in [0, 1], got ${cleanProbability}`);
  }
  const pixels = image.width * image.height;
  return {
    rng: options.rng,
    cleanProbability,
    minArea,
    maxArea,
    minPixels: Math.max(1, Math.ceil(minArea * pixels)),
    maxPixels: Math.floor(maxArea * pixels),
    tolerance: options.tolerance ?? 1 / 255,
    maxAttempts: options.maxAttempts ?? 10,
  };
}

export function checkImage(image: RgbImage, where: string): void {
  if (image.data.length !== image.width * image.height * 3) {
    throw new RangeError(`${where}: image data has ${image.data.length} values, expected ${image.width} x ${image.height} x 3 (HWC RGB)`);
  }
}

/** The unchanged result. */
export function cleanResult(image: RgbImage): SyntheticAnomaly {
  return { image: Float32Array.from(image.data), mask: new Uint8Array(image.width * image.height), area: 0, clean: true };
}

/**
 * Compare `corrupted` with `original`: pixels whose largest channel change exceeds `tolerance`
 * form the mask; the others are restored to the original values. Modifies `corrupted`.
 */
export function finalizeChange(original: Float32Array, corrupted: Float32Array, tolerance: number): { mask: Uint8Array; area: number } {
  const n = original.length / 3;
  const mask = new Uint8Array(n);
  let area = 0;
  for (let i = 0; i < n; i++) {
    const k = 3 * i;
    const d = Math.max(
      Math.abs(corrupted[k]! - original[k]!),
      Math.abs(corrupted[k + 1]! - original[k + 1]!),
      Math.abs(corrupted[k + 2]! - original[k + 2]!),
    );
    if (d > tolerance) {
      mask[i] = 1;
      area++;
    } else {
      corrupted[k] = original[k]!;
      corrupted[k + 1] = original[k + 1]!;
      corrupted[k + 2] = original[k + 2]!;
    }
  }
  return { mask, area };
}

/**
 * Run `attempt` until its change has an area in range (or attempts run out), honouring the
 * clean probability first. `attempt` returns a corrupted copy of the image.
 */
export function generateWithin(
  image: RgbImage,
  o: ResolvedAnomalyOptions,
  attempt: (targetPixels: number) => Float32Array,
): SyntheticAnomaly {
  if (o.rng.uniform() < o.cleanProbability) return cleanResult(image);
  for (let a = 0; a < o.maxAttempts; a++) {
    const target = o.minPixels + o.rng.uniform() * (o.maxPixels - o.minPixels);
    const corrupted = attempt(target);
    const { mask, area } = finalizeChange(image.data, corrupted, o.tolerance);
    if (area >= o.minPixels && area <= o.maxPixels) return { image: corrupted, mask, area, clean: false };
  }
  return cleanResult(image);
}

/** Bilinear sample of channel c at continuous pixel coordinates (x, y), clamped at the borders. */
export function sampleBilinear(image: RgbImage, x: number, y: number, out: Float32Array): void {
  const { width: w, height: h, data } = image;
  const fx = Math.min(Math.max(x - 0.5, 0), w - 1);
  const fy = Math.min(Math.max(y - 0.5, 0), h - 1);
  const x0 = Math.floor(fx);
  const y0 = Math.floor(fy);
  const x1 = Math.min(x0 + 1, w - 1);
  const y1 = Math.min(y0 + 1, h - 1);
  const tx = fx - x0;
  const ty = fy - y0;
  for (let c = 0; c < 3; c++) {
    const a = data[(y0 * w + x0) * 3 + c]!;
    const b = data[(y0 * w + x1) * 3 + c]!;
    const d = data[(y1 * w + x0) * 3 + c]!;
    const e = data[(y1 * w + x1) * 3 + c]!;
    out[c] = (a * (1 - tx) + b * tx) * (1 - ty) + (d * (1 - tx) + e * tx) * ty;
  }
}

/** A rotated rectangle: centre, half-sizes, angle. */
export interface RotatedRect {
  cx: number;
  cy: number;
  halfWidth: number;
  halfHeight: number;
  angle: number;
}

/** Draw a rectangle of `area` pixels with an aspect ratio in `aspect` (width / height), placed inside the image. */
export function drawRect(
  rng: RandomSource,
  width: number,
  height: number,
  area: number,
  aspect: readonly [number, number],
  maxAngle: number,
): RotatedRect {
  const ratio = Math.exp(Math.log(aspect[0]) + rng.uniform() * (Math.log(aspect[1]) - Math.log(aspect[0])));
  let halfWidth = Math.sqrt(area * ratio) / 2;
  let halfHeight = Math.sqrt(area / ratio) / 2;
  // Keep the rectangle within the image; give the lost length back to the other side.
  if (halfWidth > width / 2 - 1) {
    halfHeight *= halfWidth / (width / 2 - 1);
    halfWidth = width / 2 - 1;
  }
  if (halfHeight > height / 2 - 1) {
    halfHeight = height / 2 - 1;
  }
  const angle = (rng.uniform() * 2 - 1) * maxAngle;
  const reachX = Math.abs(halfWidth * Math.cos(angle)) + Math.abs(halfHeight * Math.sin(angle));
  const reachY = Math.abs(halfWidth * Math.sin(angle)) + Math.abs(halfHeight * Math.cos(angle));
  const cx = Math.min(Math.max(reachX, 0), width / 2) + rng.uniform() * Math.max(0, width - 2 * reachX);
  const cy = Math.min(Math.max(reachY, 0), height / 2) + rng.uniform() * Math.max(0, height - 2 * reachY);
  return { cx, cy, halfWidth, halfHeight, angle };
}

/**
 * Visit every pixel near a rotated rectangle with its coordinates in the rectangle's frame
 * (origin at the centre, axes along its sides).
 */
export function forEachInRect(
  rect: RotatedRect,
  width: number,
  height: number,
  margin: number,
  visit: (index: number, u: number, v: number) => void,
): void {
  const cos = Math.cos(rect.angle);
  const sin = Math.sin(rect.angle);
  const reachX = Math.abs(rect.halfWidth * cos) + Math.abs(rect.halfHeight * sin) + margin;
  const reachY = Math.abs(rect.halfWidth * sin) + Math.abs(rect.halfHeight * cos) + margin;
  const x0 = Math.max(0, Math.floor(rect.cx - reachX));
  const x1 = Math.min(width - 1, Math.ceil(rect.cx + reachX));
  const y0 = Math.max(0, Math.floor(rect.cy - reachY));
  const y1 = Math.min(height - 1, Math.ceil(rect.cy + reachY));
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const dx = x + 0.5 - rect.cx;
      const dy = y + 0.5 - rect.cy;
      visit(y * width + x, dx * cos + dy * sin, -dx * sin + dy * cos);
    }
  }
}
