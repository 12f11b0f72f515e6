import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DatasetError,
  binariseMask,
  decodeImage,
  encodePng,
  readImage,
  readMask,
  readMaskFile,
  rgbFromBytes,
  rgbToBytes,
} from '../src/index';
import { gradient, rgbPixels, tempDir, writeImage, writeMask } from './helpers';

let dir: { path: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  dir = await tempDir();
});
afterAll(() => dir.cleanup());

describe('pixel helpers', () => {
  it('expands grey to RGB, drops alpha, and scales to [0, 1]', () => {
    expect(Array.from(rgbFromBytes(Uint8Array.of(0, 255), 2, 1, 1).data)).toEqual([0, 0, 0, 1, 1, 1]);
    const rgba = rgbFromBytes(Uint8Array.of(255, 0, 51, 7), 1, 1, 4);
    expect(Array.from(rgba.data)).toEqual([1, 0, 0.2].map(Math.fround));
    expect(Array.from(rgbToBytes(rgba))).toEqual([255, 0, 51]);
  });

  it('binarises masks by any colour channel above the threshold', () => {
    expect(Array.from(binariseMask(Uint8Array.of(0, 1, 127, 128, 255), 5, 1, 1))).toEqual([0, 0, 0, 1, 1]);
    expect(Array.from(binariseMask(Uint8Array.of(0, 1, 2), 3, 1, 1, 0))).toEqual([0, 1, 1]);
    // RGBA: the alpha channel does not count.
    expect(Array.from(binariseMask(Uint8Array.of(0, 0, 0, 255, 0, 200, 0, 0), 2, 1, 4))).toEqual([0, 1]);
  });
});

describe('Node image IO', () => {
  it('reads a PNG exactly, as HWC RGB floats', async () => {
    const path = join(dir.path, 'exact.png');
    const px = gradient(5, 4, 1);
    await writeImage(path, px, 5, 4);
    const img = await readImage(path);
    expect([img.width, img.height, img.channels, img.sourceWidth]).toEqual([5, 4, 3, 5]);
    expect(Array.from(rgbToBytes(img))).toEqual(Array.from(px));
  });

  it('reads grey PNGs as RGB and JPEGs approximately', async () => {
    const grey = join(dir.path, 'grey.png');
    await writeImage(grey, Uint8Array.of(10, 200, 30, 40), 2, 2, 'png', 1);
    const g = await readImage(grey);
    expect(Array.from(rgbToBytes(g))).toEqual([10, 10, 10, 200, 200, 200, 30, 30, 30, 40, 40, 40]);

    const jpg = join(dir.path, 'flat.jpg');
    await writeImage(jpg, rgbPixels(16, 16, () => [200, 100, 50]), 16, 16, 'jpeg');
    const j = await readImage(jpg);
    const bytes = rgbToBytes(j);
    for (let i = 0; i < bytes.length; i += 3) {
      expect(Math.abs(bytes[i]! - 200)).toBeLessThanOrEqual(3);
      expect(Math.abs(bytes[i + 1]! - 100)).toBeLessThanOrEqual(3);
      expect(Math.abs(bytes[i + 2]! - 50)).toBeLessThanOrEqual(3);
    }
  });

  it('resizes images and masks to the requested size', async () => {
    const path = join(dir.path, 'big.png');
    await writeImage(path, rgbPixels(40, 20, (x) => (x < 20 ? [0, 0, 0] : [255, 255, 255])), 40, 20);
    const img = await readImage(path, { size: 8 });
    expect([img.width, img.height, img.data.length, img.sourceWidth, img.sourceHeight]).toEqual([8, 8, 192, 40, 20]);
    expect(img.data[0]).toBeLessThan(0.05);
    expect(img.data[3 * 7]).toBeGreaterThan(0.95);

    const maskPath = join(dir.path, 'big_mask.png');
    await writeMask(maskPath, 40, 20, (x, y) => x >= 20 && y >= 10);
    const mask = await readMaskFile(maskPath, { size: { width: 4, height: 2 } });
    expect([mask.width, mask.height]).toEqual([4, 2]);
    expect(Array.from(mask.data)).toEqual([0, 0, 0, 0, 0, 0, 1, 1]);
    expect(Array.from(await readMask(maskPath, { size: 2 }))).toEqual([0, 0, 0, 1]);
  });

  it('round-trips through encodePng', async () => {
    const px = gradient(6, 3, 2);
    const decoded = await decodeImage(await encodePng({ data: px, width: 6, height: 3, channels: 3 }));
    expect(Array.from(rgbToBytes(decoded))).toEqual(Array.from(px));
  });

  it('reports missing, corrupt and truncated files as DatasetError naming the path', async () => {
    const missing = join(dir.path, 'nope.png');
    await expect(readImage(missing)).rejects.toThrow(DatasetError);
    await expect(readImage(missing)).rejects.toThrow(`${missing}: cannot read the image (no such file)`);

    const corrupt = join(dir.path, 'corrupt.png');
    await writeFile(corrupt, 'this is not an image');
    const err = await readImage(corrupt).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetError);
    expect((err as DatasetError).path).toBe(corrupt);
    expect((err as Error).message).toMatch(/cannot decode the image .*expected a readable PNG or JPEG/);

    const good = await encodePng({ data: gradient(32, 32), width: 32, height: 32, channels: 3 });
    const truncated = join(dir.path, 'truncated.png');
    await writeFile(truncated, good.subarray(0, Math.floor(good.length / 2)));
    await expect(readImage(truncated)).rejects.toThrow(DatasetError);
  });
});
