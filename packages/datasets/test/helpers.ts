/** Fixture helpers: real image files written with sharp into temporary folders. */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import sharp from 'sharp';

export async function tempDir(prefix = 'ofm-datasets-'): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

/** RGB bytes of a w x h image whose pixel (x, y) is f(x, y). */
export function rgbPixels(w: number, h: number, f: (x: number, y: number) => [number, number, number]): Uint8Array {
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out.set(f(x, y), (y * w + x) * 3);
  return out;
}

/** A gradient test image, varied by `seed`. */
export function gradient(w: number, h: number, seed = 0): Uint8Array {
  return rgbPixels(w, h, (x, y) => [(x * 9 + seed * 31) % 256, (y * 7 + seed * 17) % 256, (x * y + seed) % 256]);
}

export async function writeImage(
  path: string,
  pixels: Uint8Array,
  w: number,
  h: number,
  format: 'png' | 'jpeg' = 'png',
  channels: 1 | 3 | 4 = 3,
): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const img = sharp(pixels, { raw: { width: w, height: h, channels } });
  await (format === 'png' ? img.png() : img.jpeg({ quality: 95 })).toFile(path);
}

/** A grey mask file: `on` pixels get `value` (255 for MVTec, a small defect id for VisA). */
export async function writeMask(path: string, w: number, h: number, on: (x: number, y: number) => boolean, value = 255): Promise<void> {
  const px = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) px[y * w + x] = on(x, y) ? value : 0;
  await writeImage(path, px, w, h, 'png', 1);
}

export async function writeText(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, text);
}

export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/** Every file under `root`, as sorted paths relative to it. */
export async function listFiles(root: string): Promise<string[]> {
  const files: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(join(d, e.name));
      else files.push(relative(root, join(d, e.name)));
    }
  };
  await walk(root);
  return files.sort();
}
