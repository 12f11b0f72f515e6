/**
 * Crops of real photographs: the split of each source region into a training part and a test
 * part (disjoint source pixels), and the resampling of a square window of a part into a crop of
 * the output size, with a scale jitter and a flip or 90-degree rotation. No Node APIs.
 */
import type { RgbImage } from '../image';
import { type RandomSource, intBelow, uniformIn } from '../random';

/** A rectangle of a source image, in whole pixels. */
export interface PhotoRegion {
  x: number;
  y: number;
  width: number;
  height: number;
}

/**
 * Orientations a crop may take: `any` (the 8 flips and 90-degree rotations), `flips` (as is,
 * mirrored left-right, upside down, both), `mirror` (as is or mirrored left-right: for scenes
 * with an up, such as trees), `none`.
 */
export type PhotoOrientations = 'any' | 'flips' | 'mirror' | 'none';

/** The photograph of one class and where its surface is. */
export interface PhotoClassSource {
  /** Class name: the folder name in the written dataset. */
  name: string;
  /** The photograph (or a part of it), float RGB. */
  image: RgbImage;
  /** Rectangles of `image` that show the class's surface; default the whole image. */
  regions?: readonly PhotoRegion[];
  /** Source pixels per output pixel (before the scale jitter); default 1. */
  scale?: number;
  /** Orientations a crop may take; default `any`. */
  orientations?: PhotoOrientations;
}

/** Where a crop came from. */
export interface PhotoCrop {
  /** Index of the region in the class's `regions`. */
  region: number;
  /** The part of that region the crop lies in (the training or the test part). */
  part: PhotoRegion;
  /** The window's top-left corner and side, in source pixels (fractional). */
  x: number;
  y: number;
  side: number;
  /** 0-7: bits 0-1 the number of quarter turns, bit 2 a left-right mirror (applied first). */
  orientation: number;
  /**
   * The source pixels the crop reads, the window grown by the resampling filter's reach: inside
   * `part`, hence disjoint from every crop of the other split.
   */
  footprint: PhotoRegion;
}

/** The scale jitter: the window's side is `imageSize * scale * f`, f uniform in this range. */
export const PHOTO_SCALE_JITTER: readonly [number, number] = [0.9, 1.1];

const ORIENTATIONS: Record<PhotoOrientations, readonly number[]> = {
  any: [0, 1, 2, 3, 4, 5, 6, 7],
  flips: [0, 2, 4, 6],
  mirror: [0, 4],
  none: [0],
};

/** Reach of the resampling filter beyond the window, in source pixels, for `side / imageSize = s`. */
function filterMargin(s: number): number {
  return Math.ceil(2 * Math.max(1, s)) + 2;
}

/** The training and test parts of a class's regions, with the crop geometry they must hold. */
export interface PhotoSplit {
  train: PhotoRegion[];
  test: PhotoRegion[];
  /** Region index of each part. */
  trainRegion: number[];
  testRegion: number[];
  /** Largest window side plus twice the filter margin: the least width and height of a usable part. */
  minPart: number;
}

/**
 * The band layouts tried, in order: how many bands, and how long each must be as a multiple of
 * the least part size. Five or three bands let both splits see every part of a region; roomy
 * bands (1.5 times the least size) leave a window room to move, so crops vary.
 */
const BAND_LAYOUTS: ReadonlyArray<readonly [number, number]> = [
  [5, 1.5],
  [3, 1.5],
  [2, 1.5],
  [3, 1],
  [2, 1],
];

/**
 * Cut a length into alternating training and test bands (training first and last): the first
 * layout of {@link BAND_LAYOUTS} whose bands all fit. The training bands together take
 * `trainFraction` of the length. Undefined when not even two bands fit.
 */
function bands(length: number, trainFraction: number, minBand: number): Array<{ start: number; end: number; train: boolean }> | undefined {
  for (const [n, room] of BAND_LAYOUTS) {
    const trainBands = Math.ceil(n / 2);
    const testBands = Math.floor(n / 2);
    const out: Array<{ start: number; end: number; train: boolean }> = [];
    let at = 0;
    let exact = 0;
    for (let k = 0; k < n; k++) {
      const train = k % 2 === 0;
      exact += length * (train ? trainFraction / trainBands : (1 - trainFraction) / testBands);
      const end = k === n - 1 ? length : Math.round(exact);
      out.push({ start: at, end, train });
      at = end;
    }
    if (out.every((b) => b.end - b.start >= minBand * room)) return out;
  }
  return undefined;
}

/**
 * Split every region of `source` across its longer side into alternating training and test bands
 * (training, test, training, test, training; or 3 bands, or training then test, where the region
 * is too short for more), so that both splits see most of the region while no source pixel is
 * shared: the training bands together take `trainFraction` of the side. A band must hold the
 * largest window with the resampling margin; a region too small for two such bands is left out.
 * @throws {RangeError} when a region lies outside the image, or no usable training or test part is left.
 */
export function splitPhotoRegions(source: PhotoClassSource, imageSize: number, trainFraction: number): PhotoSplit {
  const { image, name } = source;
  const scale = source.scale ?? 1;
  if (!(scale > 0)) throw new RangeError(`photo class "${name}": scale must be > 0, got ${scale}`);
  if (!(trainFraction > 0 && trainFraction < 1)) throw new RangeError(`trainFraction must be in (0, 1), got ${trainFraction}`);
  const regions = source.regions ?? [{ x: 0, y: 0, width: image.width, height: image.height }];
  if (regions.length === 0) throw new RangeError(`photo class "${name}": give at least one region`);
  const maxSide = imageSize * scale * PHOTO_SCALE_JITTER[1];
  const minPart = Math.ceil(maxSide) + 2 * filterMargin(maxSide / imageSize);
  const split: PhotoSplit = { train: [], test: [], trainRegion: [], testRegion: [], minPart };
  regions.forEach((r, index) => {
    const ok = [r.x, r.y, r.width, r.height].every(Number.isInteger) && r.x >= 0 && r.y >= 0 && r.width > 0 && r.height > 0;
    if (!ok || r.x + r.width > image.width || r.y + r.height > image.height) {
      throw new RangeError(
        `photo class "${name}": region ${JSON.stringify(r)} is not a rectangle of whole pixels inside the ${image.width} x ${image.height} image`,
      );
    }
    if (Math.min(r.width, r.height) < minPart) return;
    const across = r.width >= r.height;
    const cut = bands(across ? r.width : r.height, trainFraction, minPart);
    if (!cut) return;
    for (const b of cut) {
      const part = across
        ? { x: r.x + b.start, y: r.y, width: b.end - b.start, height: r.height }
        : { x: r.x, y: r.y + b.start, width: r.width, height: b.end - b.start };
      split[b.train ? 'train' : 'test'].push(part);
      split[b.train ? 'trainRegion' : 'testRegion'].push(index);
    }
  });
  for (const which of ['train', 'test'] as const) {
    if (split[which].length === 0) {
      throw new RangeError(
        `photo class "${name}": no region holds both a training and a test band for a crop of ${imageSize} px at scale ${scale} ` +
          `(each band must be at least ${minPart} x ${minPart} source pixels, and a region is cut ${Math.round(trainFraction * 100)}/` +
          `${Math.round((1 - trainFraction) * 100)} across its longer side): give larger regions or a smaller scale`,
      );
    }
  }
  return split;
}

/** Draw a crop window inside one of `parts` (chosen by the room each offers). */
export function drawCropWindow(
  rng: RandomSource,
  parts: readonly PhotoRegion[],
  regionOf: readonly number[],
  imageSize: number,
  scale: number,
  orientations: PhotoOrientations,
): PhotoCrop {
  const side = imageSize * scale * uniformIn(rng, PHOTO_SCALE_JITTER[0], PHOTO_SCALE_JITTER[1]);
  const margin = filterMargin(side / imageSize);
  const room = parts.map((p) => Math.max(0, p.width - side - 2 * margin) + 1) as number[];
  const weights = parts.map((p, k) => room[k]! * (Math.max(0, p.height - side - 2 * margin) + 1));
  const total = weights.reduce((a, b) => a + b, 0);
  let pick = rng.uniform() * total;
  let k = 0;
  while (k < parts.length - 1 && pick >= weights[k]!) pick -= weights[k++]!;
  const part = parts[k]!;
  const x = part.x + margin + rng.uniform() * Math.max(0, part.width - side - 2 * margin);
  const y = part.y + margin + rng.uniform() * Math.max(0, part.height - side - 2 * margin);
  const choices = ORIENTATIONS[orientations];
  const orientation = choices[intBelow(rng, choices.length)]!;
  const x0 = Math.max(part.x, Math.floor(x - margin));
  const y0 = Math.max(part.y, Math.floor(y - margin));
  const footprint = {
    x: x0,
    y: y0,
    width: Math.min(part.x + part.width, Math.ceil(x + side + margin)) - x0,
    height: Math.min(part.y + part.height, Math.ceil(y + side + margin)) - y0,
  };
  return { region: regionOf[k]!, part, x, y, side, orientation, footprint };
}

/** Keys' cubic convolution kernel (a = -0.5, Catmull-Rom). */
function cubic(t: number): number {
  const a = Math.abs(t);
  if (a < 1) return 1.5 * a * a * a - 2.5 * a * a + 1;
  if (a < 2) return -0.5 * a * a * a + 2.5 * a * a - 4 * a + 2;
  return 0;
}

/** Taps of a 1-D resampling of `[start, start + side)` to `n` samples, the filter widened when downscaling. */
function taps(start: number, side: number, n: number, limit: number): { index: Int32Array; weight: Float32Array; count: number } {
  const s = side / n;
  const stretch = Math.max(1, s);
  const reach = 2 * stretch;
  const count = Math.ceil(2 * reach) + 1;
  const index = new Int32Array(n * count);
  const weight = new Float32Array(n * count);
  for (let i = 0; i < n; i++) {
    const centre = start + (i + 0.5) * s;
    const first = Math.floor(centre - reach - 0.5) + 1;
    let sum = 0;
    for (let k = 0; k < count; k++) {
      const j = first + k;
      const w = cubic((j + 0.5 - centre) / stretch);
      index[i * count + k] = Math.min(limit - 1, Math.max(0, j));
      weight[i * count + k] = w;
      sum += w;
    }
    for (let k = 0; k < count; k++) weight[i * count + k]! /= sum;
  }
  return { index, weight, count };
}

/**
 * Resample the window of `crop` to `size` x `size` (separable cubic filter, widened when
 * downscaling; values clamped to [0, 1]) and apply its orientation.
 */
export function renderCrop(image: RgbImage, crop: PhotoCrop, size: number): RgbImage {
  const { width: w, data } = image;
  const tx = taps(crop.x, crop.side, size, image.width);
  const ty = taps(crop.y, crop.side, size, image.height);
  // Rows the vertical pass needs.
  let rowMin = Number.POSITIVE_INFINITY;
  let rowMax = 0;
  for (const j of ty.index) {
    rowMin = Math.min(rowMin, j);
    rowMax = Math.max(rowMax, j);
  }
  const rows = rowMax - rowMin + 1;
  const horizontal = new Float32Array(rows * size * 3);
  for (let r = 0; r < rows; r++) {
    const src = (rowMin + r) * w;
    for (let i = 0; i < size; i++) {
      let a = 0;
      let b = 0;
      let c = 0;
      for (let k = 0; k < tx.count; k++) {
        const p = (src + tx.index[i * tx.count + k]!) * 3;
        const wt = tx.weight[i * tx.count + k]!;
        a += data[p]! * wt;
        b += data[p + 1]! * wt;
        c += data[p + 2]! * wt;
      }
      const q = (r * size + i) * 3;
      horizontal[q] = a;
      horizontal[q + 1] = b;
      horizontal[q + 2] = c;
    }
  }
  const out = new Float32Array(size * size * 3);
  const turns = crop.orientation & 3;
  const mirror = (crop.orientation & 4) !== 0;
  const last = size - 1;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let a = 0;
      let b = 0;
      let c = 0;
      for (let k = 0; k < ty.count; k++) {
        const q = ((ty.index[y * ty.count + k]! - rowMin) * size + x) * 3;
        const wt = ty.weight[y * ty.count + k]!;
        a += horizontal[q]! * wt;
        b += horizontal[q + 1]! * wt;
        c += horizontal[q + 2]! * wt;
      }
      // Window pixel (x, y) goes to output (ox, oy): mirror first, then quarter turns clockwise.
      let ox = mirror ? last - x : x;
      let oy = y;
      for (let t = 0; t < turns; t++) {
        const nx = last - oy;
        oy = ox;
        ox = nx;
      }
      const o = (oy * size + ox) * 3;
      out[o] = a < 0 ? 0 : a > 1 ? 1 : a;
      out[o + 1] = b < 0 ? 0 : b > 1 ? 1 : b;
      out[o + 2] = c < 0 ? 0 : c > 1 ? 1 : c;
    }
  }
  return { data: out, width: size, height: size, channels: 3 };
}
