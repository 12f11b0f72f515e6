/**
 * Turning a user's file into the model's input without ever holding more pixels than needed. The
 * dimensions are read from the file header first (PNG, JPEG, GIF, WebP, BMP), so a file that is not
 * an image, or an image too large to decode safely, is refused with a clear message before any
 * decoding; everything else is decoded once, straight to a preview of at most
 * {@link PREVIEW_MAX} px (the browser's decoder does the downscaling), and resized from there to
 * the model's square input.
 */
import { rgbFromBytes } from '@ofm/datasets/browser';

/** Largest image decoded, in pixels (about 400 MB of RGBA while decoding). */
export const MAX_PIXELS = 100_000_000;
/** Largest file read, in bytes. */
export const MAX_FILE_BYTES = 200 * 1024 * 1024;
/** Side of the square preview shown on the page (smaller images keep their own size). */
export const PREVIEW_MAX = 512;

/** An image ready for the model: its square input, a preview, and what was done to it. */
export interface PreparedImage {
  name: string;
  /** Size of the original image. */
  width: number;
  height: number;
  /** The model's input: HWC RGB in [0, 1], `size` x `size`. */
  input: Float32Array;
  size: number;
  /** The square preview (stretched like the model's input), for display. */
  preview: ImageBitmap;
  /** Ground-truth defect mask at model size (1 = defect), for bundled samples. */
  mask?: Uint8Array;
  /** What happened on the way, e.g. the resize; shown to the user. */
  notice?: string;
}

/** A file the page refuses, with the reason shown to the user. */
export class ImageInputError extends Error {
  override readonly name = 'ImageInputError';
}

type ImageFormat = 'PNG' | 'JPEG' | 'GIF' | 'WebP' | 'BMP';

/** The format and dimensions in an image file's header, or null when it is none of the supported formats. */
export function readImageHeader(bytes: Uint8Array): { format: ImageFormat; width: number; height: number } | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const ascii = (at: number, text: string) =>
    bytes.length >= at + text.length && [...text].every((ch, i) => bytes[at + i] === ch.charCodeAt(0));
  if (bytes.length >= 24 && bytes[0] === 0x89 && ascii(1, 'PNG') && ascii(12, 'IHDR')) {
    return { format: 'PNG', width: view.getUint32(16), height: view.getUint32(20) };
  }
  if (bytes.length >= 10 && (ascii(0, 'GIF87a') || ascii(0, 'GIF89a'))) {
    return { format: 'GIF', width: view.getUint16(6, true), height: view.getUint16(8, true) };
  }
  if (bytes.length >= 26 && ascii(0, 'BM')) {
    return { format: 'BMP', width: Math.abs(view.getInt32(18, true)), height: Math.abs(view.getInt32(22, true)) };
  }
  if (bytes.length >= 30 && ascii(0, 'RIFF') && ascii(8, 'WEBP')) {
    if (ascii(12, 'VP8 ')) return { format: 'WebP', width: view.getUint16(26, true) & 0x3fff, height: view.getUint16(28, true) & 0x3fff };
    if (ascii(12, 'VP8L')) {
      const bits = view.getUint32(21, true);
      return { format: 'WebP', width: (bits & 0x3fff) + 1, height: ((bits >> 14) & 0x3fff) + 1 };
    }
    if (ascii(12, 'VP8X')) {
      const u24 = (at: number) => bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16);
      return { format: 'WebP', width: u24(24) + 1, height: u24(27) + 1 };
    }
    return null;
  }
  if (bytes.length >= 4 && bytes[0] === 0xff && bytes[1] === 0xd8) {
    // Walk the marker segments to the first start-of-frame (SOF0-SOF15 except DHT, JPG, DAC).
    let at = 2;
    while (at + 9 <= bytes.length) {
      if (bytes[at] !== 0xff) return null;
      const marker = bytes[at + 1]!;
      if (marker === 0xff) {
        at += 1;
        continue;
      }
      if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
        return { format: 'JPEG', width: view.getUint16(at + 7), height: view.getUint16(at + 5) };
      }
      at += 2 + view.getUint16(at + 2);
    }
    return null;
  }
  return null;
}

/** Header bytes read to find the dimensions (JPEG metadata can come before the frame header). */
const HEADER_BYTES = 1024 * 1024;

/**
 * Read a user's image file and prepare it for a model of input size `size`.
 * @throws ImageInputError for a non-image, an empty, corrupt or oversized file.
 */
export async function prepareImageFile(file: File, size: number): Promise<PreparedImage> {
  if (file.size === 0) throw new ImageInputError(`${file.name} is empty.`);
  if (file.size > MAX_FILE_BYTES) {
    throw new ImageInputError(`${file.name} is ${(file.size / 2 ** 20).toFixed(0)} MB; this page reads images up to ${MAX_FILE_BYTES / 2 ** 20} MB.`);
  }
  const header = readImageHeader(new Uint8Array(await file.slice(0, HEADER_BYTES).arrayBuffer()));
  if (header === null) {
    throw new ImageInputError(`${file.name} is not an image this page can read: choose a PNG, JPEG, WebP, GIF or BMP file.`);
  }
  const { width, height } = header;
  if (width === 0 || height === 0) throw new ImageInputError(`${file.name}: its ${header.format} header says ${width}×${height} pixels; the file is damaged.`);
  if (width * height > MAX_PIXELS) {
    throw new ImageInputError(
      `${file.name} is ${width}×${height} (${((width * height) / 1e6).toFixed(0)} megapixels); this page decodes images up to ${MAX_PIXELS / 1e6} megapixels. Downscale it first.`,
    );
  }
  const side = Math.min(PREVIEW_MAX, Math.max(width, height, size));
  let preview: ImageBitmap;
  try {
    preview = await createImageBitmap(file, {
      resizeWidth: side,
      resizeHeight: side,
      resizeQuality: 'high',
      premultiplyAlpha: 'none',
      colorSpaceConversion: 'none',
    });
  } catch {
    throw new ImageInputError(`${file.name} looks like a ${header.format} image but cannot be decoded; the file is damaged or truncated.`);
  }
  const input = await modelInput(preview, size);
  const resized = width !== size || height !== size;
  return {
    name: file.name,
    width,
    height,
    input,
    size,
    preview,
    notice: resized ? `Resized from ${width}×${height} to ${size}×${size}, the model's input size.` : undefined,
  };
}

/** The model's input (HWC RGB in [0, 1]) from a bitmap, resized to `size` x `size` when needed. */
export async function modelInput(bitmap: ImageBitmap, size: number): Promise<Float32Array> {
  const scaled =
    bitmap.width === size && bitmap.height === size
      ? bitmap
      : await createImageBitmap(bitmap, { resizeWidth: size, resizeHeight: size, resizeQuality: 'high' });
  const context = new OffscreenCanvas(size, size).getContext('2d');
  if (!context) throw new Error('no 2-D canvas context: this browser cannot prepare images');
  context.drawImage(scaled, 0, 0);
  if (scaled !== bitmap) scaled.close();
  return rgbFromBytes(context.getImageData(0, 0, size, size).data, size, size, 4).data;
}
