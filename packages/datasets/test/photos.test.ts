import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DatasetError,
  PHOTO_DEFECT_AREA,
  PHOTO_DEFECT_KINDS,
  PHOTO_MASK_TOLERANCE,
  type PhotoClassSource,
  type PhotoDatasetSummary,
  type PhotoRegion,
  type RgbImage,
  createRandom,
  drawPhotoDefect,
  loadMvtec,
  photoSplit,
  proceduralTexture,
  renderPhotoImage,
  writePhotoDataset,
} from '../src/index';
import { collect, listFiles, tempDir } from './helpers';

const SIZE = 32;

/**
 * A textured "photograph" whose blue channel marks the split: 0 on the training parts, 1 on
 * the test parts, 0.5 elsewhere. A crop's blue channel then tells which source pixels it read.
 */
function markedSource(name: string, seed: number, width: number, height: number, regions?: PhotoRegion[]): PhotoClassSource {
  const texture = proceduralTexture(createRandom(seed), width, height);
  const source: PhotoClassSource = { name, image: texture, regions, orientations: 'any' };
  const split = photoSplit(source, { imageSize: SIZE });
  const data = Float32Array.from(texture.data);
  for (let i = 0; i < width * height; i++) data[3 * i + 2] = 0.5;
  const paint = (parts: PhotoRegion[], value: number) => {
    for (const p of parts) {
      for (let y = p.y; y < p.y + p.height; y++) for (let x = p.x; x < p.x + p.width; x++) data[3 * (y * width + x) + 2] = value;
    }
  };
  paint(split.train, 0);
  paint(split.test, 1);
  return { ...source, image: { data, width, height, channels: 3 } };
}

const sources: PhotoClassSource[] = [
  markedSource('weave', 1, 64, 260),
  // Two regions, and the rest of the image (never cropped) in between.
  markedSource('stone', 2, 300, 150, [
    { x: 0, y: 0, width: 240, height: 60 },
    { x: 20, y: 80, width: 250, height: 70 },
  ]),
];

const options = { imageSize: SIZE, trainCount: 6, testGood: 4, testDefect: 8, seed: 3 };
let dir: { path: string; cleanup: () => Promise<void> };
let out: string;
let summary: PhotoDatasetSummary;

async function raw(path: string): Promise<{ data: Buffer; width: number; height: number; channels: number }> {
  const { data, info } = await sharp(path).raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

function intersects(a: PhotoRegion, b: PhotoRegion): boolean {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}

function inside(a: PhotoRegion, b: PhotoRegion): boolean {
  return a.x >= b.x && a.y >= b.y && a.x + a.width <= b.x + b.width && a.y + a.height <= b.y + b.height;
}

beforeAll(async () => {
  dir = await tempDir('ofm-photos-');
  out = join(dir.path, 'set');
  summary = await writePhotoDataset(sources, { out, ...options });
});
afterAll(() => dir.cleanup());

describe('writePhotoDataset', () => {
  it('writes the MVTec AD layout with the requested counts', async () => {
    const files = await listFiles(out);
    const expected = ['photos.json'];
    const n = (i: number) => String(i).padStart(3, '0');
    for (const c of ['weave', 'stone']) {
      for (let i = 0; i < 6; i++) expected.push(`${c}/train/good/${n(i)}.png`);
      for (let i = 0; i < 4; i++) expected.push(`${c}/test/good/${n(i)}.png`);
      for (const d of PHOTO_DEFECT_KINDS) {
        for (let i = 0; i < 2; i++) expected.push(`${c}/test/${d}/${n(i)}.png`, `${c}/ground_truth/${d}/${n(i)}_mask.png`);
      }
    }
    expect(files).toEqual(expected.sort());
    expect(summary.images).toBe(2 * (6 + 4 + 8));
    expect(summary.classes.map((c) => [c.name, c.train, c.testGood, c.testDefect])).toEqual([
      ['weave', 6, 4, { scratch: 2, stain: 2, patch: 2, hole: 2 }],
      ['stone', 6, 4, { scratch: 2, stain: 2, patch: 2, hole: 2 }],
    ]);
    const json = JSON.parse(await readFile(join(out, 'photos.json'), 'utf8'));
    expect(json.classes[1].trainParts).toEqual(photoSplit(sources[1]!, { imageSize: SIZE }).train);
    expect(json.maskTolerance).toBe(PHOTO_MASK_TOLERANCE);
  });

  it('writes 0/255 masks of the image size, non-empty exactly for defective images', async () => {
    const ds = await loadMvtec(out);
    expect(ds.classes).toEqual(['stone', 'weave']);
    for (const c of ds.classes) {
      expect((await collect(ds.train(c))).every((s) => s.label === 0 && s.width === SIZE)).toBe(true);
      const test = await collect(ds.test(c));
      expect(test.length).toBe(12);
      for (const s of test) {
        const area = s.mask.reduce((a, v) => a + v, 0);
        if (s.defect === 'good') expect(area).toBe(0);
        else expect(area).toBeGreaterThan(0);
      }
    }
    for (const d of PHOTO_DEFECT_KINDS) {
      // (encodePng stores one-channel masks as grey RGB PNGs)
      const m = await raw(join(out, 'weave', 'ground_truth', d, '001_mask.png'));
      expect([m.width, m.height]).toEqual([SIZE, SIZE]);
      expect([...new Set(m.data)].sort((a, b) => a - b)).toEqual([0, 255]);
    }
  });

  it('writes the rendered images, whose masks mark exactly the pixels that differ from the clean crop', async () => {
    for (const s of sources) {
      for (const defect of PHOTO_DEFECT_KINDS) {
        for (let index = 0; index < 2; index++) {
          const r = renderPhotoImage(sources, { ...options, className: s.name, split: 'test', defect, index });
          const file = await raw(join(out, s.name, 'test', defect, `${String(index).padStart(3, '0')}.png`));
          expect(Buffer.from(r.image).equals(file.data)).toBe(true);
          const mask = await raw(join(out, s.name, 'ground_truth', defect, `${String(index).padStart(3, '0')}_mask.png`));
          expect(Array.from(r.mask, (_, i) => (mask.data[i * mask.channels] ? 1 : 0))).toEqual(Array.from(r.mask));
          for (let i = 0; i < SIZE * SIZE; i++) {
            let change = 0;
            for (let c = 0; c < 3; c++) change = Math.max(change, Math.abs(r.image[3 * i + c]! - r.good[3 * i + c]!));
            // Changed by more than the tolerance on the mask; untouched elsewhere.
            if (r.mask[i]) expect(change).toBeGreaterThan(PHOTO_MASK_TOLERANCE);
            else expect(change).toBe(0);
          }
          if (defect === 'patch') expect(r.patchFrom).toBe(s.name === 'weave' ? 'stone' : 'weave');
        }
      }
    }
  });

  it('gives the same bytes for the same seed, and other images for another seed', async () => {
    const again = join(dir.path, 'again');
    const other = join(dir.path, 'other');
    await writePhotoDataset(sources, { out: again, ...options });
    await writePhotoDataset(sources, { out: other, ...options, seed: 4 });
    const files = await listFiles(out);
    let differing = 0;
    // photos.json too: it does not name the target folder.
    for (const f of files) {
      const a = await readFile(join(out, f));
      expect((await readFile(join(again, f))).equals(a), f).toBe(true);
      if (f.endsWith('.png') && !(await readFile(join(other, f))).equals(a)) differing++;
    }
    expect(differing).toBe(files.length - 1);
  });

  it('refuses a non-empty target and regions too small for a crop', async () => {
    const err = await writePhotoDataset(sources, { out, ...options }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetError);
    expect((err as Error).message).toContain('already exists and is not empty');
    const small = { name: 'small', image: sources[0]!.image, regions: [{ x: 0, y: 0, width: 64, height: 60 }] };
    await expect(writePhotoDataset([small], { out: join(dir.path, 'small'), ...options })).rejects.toThrow(/no region holds both a training and a test band/);
    expect(await readdir(dir.path)).not.toContain('small');
  });
});

describe('photo crops', () => {
  it('cut training and test crops from disjoint source pixels', () => {
    for (const s of sources) {
      const split = photoSplit(s, { imageSize: SIZE });
      expect(split.train.length).toBeGreaterThan(0);
      expect(split.test.length).toBeGreaterThan(0);
      for (const a of split.train) for (const b of split.test) expect(intersects(a, b)).toBe(false);
      for (const which of ['train', 'test'] as const) {
        const seen = new Set<string>();
        for (let index = 0; index < 40; index++) {
          const r = renderPhotoImage(sources, { ...options, className: s.name, split: which, index });
          expect(split[which].some((p) => inside(r.crop.footprint, p))).toBe(true);
          for (const p of split[which === 'train' ? 'test' : 'train']) expect(intersects(r.crop.footprint, p)).toBe(false);
          // The blue marker: every pixel read from this split's parts only.
          const blue = new Set<number>();
          for (let i = 0; i < SIZE * SIZE; i++) blue.add(r.image[3 * i + 2]!);
          expect([...blue]).toEqual([which === 'train' ? 0 : 255]);
          seen.add(Buffer.from(r.image).toString('base64'));
        }
        expect(seen.size).toBe(40);
      }
      // The clean twin of a defective test image is a test crop too.
      const d = renderPhotoImage(sources, { ...options, className: s.name, split: 'test', defect: 'hole', index: 7 });
      for (let i = 0; i < SIZE * SIZE; i++) expect(d.good[3 * i + 2]).toBe(255);
    }
  });

  it('keeps every defect kind within its area range at 128 px, also with a single class', () => {
    const photo: PhotoClassSource = { name: 'only', image: proceduralTexture(createRandom(9), 400, 400) };
    for (const defect of PHOTO_DEFECT_KINDS) {
      const [lo, hi] = PHOTO_DEFECT_AREA[defect];
      for (let index = 0; index < 4; index++) {
        const r = renderPhotoImage([photo], { className: 'only', split: 'test', defect, index, imageSize: 128 });
        const area = r.mask.reduce((a, v) => a + v, 0);
        expect(area).toBeGreaterThanOrEqual(Math.ceil(lo * 128 * 128));
        expect(area).toBeLessThanOrEqual(Math.floor(hi * 128 * 128));
      }
    }
  });

  it('draws defects on a flat surface too (every mask pixel changed)', () => {
    const flat: RgbImage = { data: new Float32Array(64 * 64 * 3).fill(0), width: 64, height: 64, channels: 3 };
    for (const defect of PHOTO_DEFECT_KINDS) {
      const r = drawPhotoDefect(flat, defect, { rng: createRandom(1) });
      expect(r.clean).toBe(false);
      for (let i = 0; i < 64 * 64; i++) {
        const change = Math.max(r.image[3 * i]!, r.image[3 * i + 1]!, r.image[3 * i + 2]!) * 255;
        if (r.mask[i]) expect(change).toBeGreaterThan(PHOTO_MASK_TOLERANCE);
        else expect(change).toBe(0);
      }
    }
  });
});
