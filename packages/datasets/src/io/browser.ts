/**
 * Image decoding in the browser (and in workers): createImageBitmap does the decoding and the
 * resizing, an OffscreenCanvas (or a DOM canvas) hands back the pixels, and the shared code in
 * `../image` turns them into the same float RGB images and 0/1 masks as the Node decoder.
 * No Node APIs here.
 */
import { DataError } from '@ofm/errors';
import { type BinaryMask, type RgbImage, type SizeOption, binariseMask, resolveSize, rgbFromBytes } from '../image';

/** Encoded image data: a Blob (e.g. a File from an <input>), or the raw bytes. */
export type EncodedImage = Blob | ArrayBuffer | Uint8Array;

function toBlob(source: EncodedImage): Blob {
  if (source instanceof Blob) return source;
  const bytes = source instanceof Uint8Array ? source : new Uint8Array(source);
  return new Blob([bytes as Uint8Array<ArrayBuffer>]);
}

async function decodePixels(
  source: EncodedImage,
  size: SizeOption | undefined,
  quality: 'high' | 'pixelated',
): Promise<{ rgba: Uint8ClampedArray; width: number; height: number }> {
  if (typeof createImageBitmap !== 'function') {
    throw new Error('decodeImageInBrowser needs createImageBitmap (a browser or a worker); in Node use readImage');
  }
  const blob = toBlob(source);
  const probe = await createImageBitmap(blob);
  const target = resolveSize(size, probe.width, probe.height);
  probe.close();
  const bitmap = await createImageBitmap(blob, {
    resizeWidth: target.width,
    resizeHeight: target.height,
    resizeQuality: quality,
    premultiplyAlpha: 'none',
    colorSpaceConversion: 'none',
  });
  const { width, height } = target;
  let context: OffscreenCanvasRenderingContext2D | CanvasRenderingContext2D | null;
  if (typeof OffscreenCanvas === 'function') {
    context = new OffscreenCanvas(width, height).getContext('2d');
  } else {
    const canvas = document.createElement('canvas');
    canvas.width = width;
    canvas.height = height;
    context = canvas.getContext('2d');
  }
  if (!context) throw new Error('decodeImageInBrowser: no 2-D canvas context available');
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  return { rgba: context.getImageData(0, 0, width, height).data, width, height };
}

/** Decode an image to float RGB in [0, 1], resized (high-quality filter) when `size` is given. */
export async function decodeImageInBrowser(source: EncodedImage, options: { size?: SizeOption } = {}): Promise<RgbImage> {
  const { rgba, width, height } = await decodePixels(source, options.size, 'high');
  return rgbFromBytes(rgba, width, height, 4);
}

/** Decode a mask to 0/1, resized without smoothing when `size` is given. */
export async function decodeMaskInBrowser(
  source: EncodedImage,
  options: { size?: SizeOption; threshold?: number } = {},
): Promise<BinaryMask> {
  const { rgba, width, height } = await decodePixels(source, options.size, 'pixelated');
  return { data: binariseMask(rgba, width, height, 4, options.threshold ?? 127), width, height };
}

/** Fetch and decode an image from a URL. */
export async function fetchImage(url: string, options: { size?: SizeOption } = {}): Promise<RgbImage> {
  const response = await fetch(url);
  if (!response.ok) throw new DataError(`fetchImage: ${url} answered ${response.status} ${response.statusText}`);
  return decodeImageInBrowser(await response.blob(), options);
}
