/**
 * Image IO for Node: decoding (PNG, JPEG, WebP, TIFF) and resizing with sharp, PNG encoding.
 * Node-only (fs, sharp): the browser entry point leaves this module out.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import sharp from 'sharp';
import { DataError } from '@ofm/errors';
import { DatasetError } from '../errors';
import { type BinaryMask, type RgbImage, type SizeOption, binariseMask, resolveSize, rgbFromBytes } from '../image';

/** Options for decoding images. */
export interface ReadImageOptions {
  /** Resize to this size (one number: square). Default: keep the file's size. */
  size?: SizeOption;
}

/** Options for decoding masks. */
export interface ReadMaskOptions extends ReadImageOptions {
  /** A pixel is defective when a colour channel exceeds this 8-bit value; default 127. */
  threshold?: number;
}

/** A decoded image with the size it had in the file (before any resize). */
export interface DecodedImage extends RgbImage {
  sourceWidth: number;
  sourceHeight: number;
}

/** A decoded mask with the size it had in the file. */
export interface DecodedMask extends BinaryMask {
  sourceWidth: number;
  sourceHeight: number;
}

/** Largest image decoded, in pixels (sharp's default limit): about 16384 x 16384. */
const MAX_IMAGE_PIXELS = 0x3fff * 0x3fff;

async function decodeRaw(
  bytes: Uint8Array,
  source: string,
  size: SizeOption | undefined,
  kernel: 'lanczos3' | 'nearest',
): Promise<{ pixels: Buffer; width: number; height: number; channels: number; sourceWidth: number; sourceHeight: number }> {
  try {
    // The header first, read without a size limit, so a too large image gets a clear error.
    const meta = await sharp(bytes, { limitInputPixels: false }).metadata();
    if (!meta.width || !meta.height) throw new DataError('no image size in the header');
    if (meta.width * meta.height > MAX_IMAGE_PIXELS) {
      throw new DatasetError(
        `the image is ${meta.width} x ${meta.height} (${Math.round((meta.width * meta.height) / 1e6)} Mpx), more than the ` +
          `${Math.round(MAX_IMAGE_PIXELS / 1e6)} Mpx this loader decodes; downscale it first`,
        source,
      );
    }
    let pipeline = sharp(bytes, { limitInputPixels: MAX_IMAGE_PIXELS }).rotate(); // apply EXIF orientation, as browsers do
    const turned = (meta.orientation ?? 1) >= 5;
    const sourceWidth = turned ? meta.height : meta.width;
    const sourceHeight = turned ? meta.width : meta.height;
    const target = resolveSize(size, sourceWidth, sourceHeight);
    const resize = target.width !== sourceWidth || target.height !== sourceHeight;
    if (resize && meta.hasAlpha) {
      // sharp resizes premultiplied by alpha, which shifts the colour of translucent pixels: drop
      // the alpha channel in a pass of its own first, so only the colour is resampled.
      const rgb = await pipeline.removeAlpha().toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
      pipeline = sharp(rgb.data, { raw: { width: rgb.info.width, height: rgb.info.height, channels: rgb.info.channels } });
    }
    let p = pipeline.removeAlpha().toColourspace('srgb');
    if (resize) p = p.resize(target.width, target.height, { fit: 'fill', kernel });
    const { data, info } = await p.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    return { pixels: data, width: info.width, height: info.height, channels: info.channels, sourceWidth, sourceHeight };
  } catch (err) {
    if (err instanceof DatasetError) throw err;
    if (err instanceof RangeError) throw err;
    // libvips reports several lines (one per failing stage): keep one line.
    const reason = (err instanceof Error ? err.message : String(err)).replace(/\s+/g, ' ').trim();
    throw new DatasetError(`cannot decode the image (${reason}); expected a readable PNG or JPEG file`, source);
  }
}

/**
 * Decode image bytes to float RGB in [0, 1] (grey images are expanded to RGB, alpha dropped),
 * resized with a Lanczos filter when `size` is given. `source` names the data in errors.
 */
export async function decodeImage(bytes: Uint8Array, options: ReadImageOptions & { source?: string } = {}): Promise<DecodedImage> {
  const raw = await decodeRaw(bytes, options.source ?? '<image bytes>', options.size, 'lanczos3');
  return {
    ...rgbFromBytes(raw.pixels, raw.width, raw.height, raw.channels),
    sourceWidth: raw.sourceWidth,
    sourceHeight: raw.sourceHeight,
  };
}

/** Decode mask bytes to 0/1, resized with nearest-neighbour sampling when `size` is given. */
export async function decodeMask(bytes: Uint8Array, options: ReadMaskOptions & { source?: string } = {}): Promise<DecodedMask> {
  const raw = await decodeRaw(bytes, options.source ?? '<mask bytes>', options.size, 'nearest');
  return {
    data: binariseMask(raw.pixels, raw.width, raw.height, raw.channels, options.threshold ?? 127),
    width: raw.width,
    height: raw.height,
    sourceWidth: raw.sourceWidth,
    sourceHeight: raw.sourceHeight,
  };
}

async function readBytes(path: string, what: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a folder' : String((err as Error).message);
    throw new DatasetError(`cannot read the ${what} (${reason}); expected a PNG or JPEG file`, path);
  }
}

/** Read an image file as float RGB in [0, 1], optionally resized. @throws {DatasetError} */
export async function readImage(path: string, options: ReadImageOptions = {}): Promise<DecodedImage> {
  return decodeImage(await readBytes(path, 'image'), { ...options, source: path });
}

/** Read a mask file with its shape. @throws {DatasetError} */
export async function readMaskFile(path: string, options: ReadMaskOptions = {}): Promise<DecodedMask> {
  return decodeMask(await readBytes(path, 'mask'), { ...options, source: path });
}

/** Read a mask file as 0/1 bytes, optionally resized (nearest neighbour). @throws {DatasetError} */
export async function readMask(path: string, options: ReadMaskOptions = {}): Promise<Uint8Array> {
  return (await readMaskFile(path, options)).data;
}

/** Pixels to encode: float RGB in [0, 1], or 8-bit data with 1 (grey) or 3 (RGB) channels. */
export type EncodablePixels = RgbImage | { data: Uint8Array; width: number; height: number; channels: 1 | 3 };

/** Encode pixels as PNG bytes (deterministic: same pixels, same bytes). */
export async function encodePng(pixels: EncodablePixels): Promise<Uint8Array> {
  const bytes =
    pixels.data instanceof Float32Array
      ? Uint8Array.from(pixels.data, (v) => Math.max(0, Math.min(255, Math.round(v * 255))))
      : pixels.data;
  const buffer = await sharp(bytes, { raw: { width: pixels.width, height: pixels.height, channels: pixels.channels } })
    .png({ compressionLevel: 6, adaptiveFiltering: false })
    .toBuffer();
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

/** Encode pixels as PNG and write them, creating the parent folder. */
export async function writePng(path: string, pixels: EncodablePixels): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, await encodePng(pixels));
}
