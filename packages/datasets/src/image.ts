/**
 * Pixel containers and conversions shared by the Node and browser decoders: both hand over 8-bit
 * pixels, and everything from there on (float conversion, mask binarisation) is the same code.
 */

/** An RGB image: HWC float32 data in [0, 1], row-major (index = (y * width + x) * 3 + c). */
export interface RgbImage {
  data: Float32Array;
  width: number;
  height: number;
  channels: 3;
}

/** A binary mask: one byte per pixel, 0 or 1, row-major. */
export interface BinaryMask {
  data: Uint8Array;
  width: number;
  height: number;
}

/** A target size: one number for a square, or width and height. */
export type SizeOption = number | { width: number; height: number };

/** Resolve a {@link SizeOption}; `undefined` keeps the source size. */
export function resolveSize(
  size: SizeOption | undefined,
  sourceWidth: number,
  sourceHeight: number,
): { width: number; height: number } {
  if (size === undefined) return { width: sourceWidth, height: sourceHeight };
  const s = typeof size === 'number' ? { width: size, height: size } : size;
  if (!Number.isInteger(s.width) || !Number.isInteger(s.height) || s.width < 1 || s.height < 1) {
    throw new RangeError(`size must be a positive integer or {width, height} of positive integers, got ${JSON.stringify(size)}`);
  }
  return s;
}

/** 8-bit pixels with 1 to 4 interleaved channels (grey, grey+alpha, RGB, RGBA) to an {@link RgbImage}. */
export function rgbFromBytes(
  bytes: ArrayLike<number>,
  width: number,
  height: number,
  channels: number,
): RgbImage {
  const n = width * height;
  if (bytes.length !== n * channels) {
    throw new RangeError(`rgbFromBytes: ${bytes.length} bytes do not hold ${width} x ${height} x ${channels}`);
  }
  const data = new Float32Array(n * 3);
  const scale = 1 / 255;
  if (channels >= 3) {
    for (let i = 0; i < n; i++) {
      data[3 * i] = bytes[i * channels]! * scale;
      data[3 * i + 1] = bytes[i * channels + 1]! * scale;
      data[3 * i + 2] = bytes[i * channels + 2]! * scale;
    }
  } else {
    for (let i = 0; i < n; i++) {
      const v = bytes[i * channels]! * scale;
      data[3 * i] = v;
      data[3 * i + 1] = v;
      data[3 * i + 2] = v;
    }
  }
  return { data, width, height, channels: 3 };
}

/** An {@link RgbImage} to 8-bit RGB bytes (rounded, clamped). */
export function rgbToBytes(image: RgbImage): Uint8Array {
  const out = new Uint8Array(image.data.length);
  for (let i = 0; i < out.length; i++) {
    const v = Math.round(image.data[i]! * 255);
    out[i] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
  return out;
}

/**
 * Binarise 8-bit mask pixels: a pixel is defective (1) when any colour channel exceeds
 * `threshold` (alpha ignored). MVTec-style 0/255 masks use 127; VisA masks, which store defect ids
 * 1, 2, ..., use 0.
 */
export function binariseMask(
  bytes: ArrayLike<number>,
  width: number,
  height: number,
  channels: number,
  threshold = 127,
): Uint8Array {
  const n = width * height;
  if (bytes.length !== n * channels) {
    throw new RangeError(`binariseMask: ${bytes.length} bytes do not hold ${width} x ${height} x ${channels}`);
  }
  const colour = channels === 2 || channels === 4 ? channels - 1 : channels;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    let on = 0;
    for (let c = 0; c < colour; c++) if (bytes[i * channels + c]! > threshold) on = 1;
    out[i] = on;
  }
  return out;
}

/** Count of non-zero mask pixels. */
export function maskArea(mask: ArrayLike<number>): number {
  let area = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i]) area++;
  return area;
}
