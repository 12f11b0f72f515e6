import { readFile, readdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEFECT_KINDS,
  DatasetError,
  MASK_TOLERANCE,
  SYNTH_CLASSES,
  type SynthSummary,
  loadMvtec,
  renderSynthImage,
  synth,
} from '../src/index';
import { collect, listFiles, tempDir } from './helpers';

let dir: { path: string; cleanup: () => Promise<void> };
const SIZE = 32;
const options = { classes: ['tiles', 'chip'], size: SIZE, nTrain: 3, nTestGood: 2, nTestBad: 4, seed: 5 };
let out: string;
let summary: SynthSummary;

async function rawPixels(path: string): Promise<{ data: Buffer; channels: number }> {
  const { data, info } = await sharp(path).raw().toBuffer({ resolveWithObject: true });
  return { data, channels: info.channels };
}

beforeAll(async () => {
  dir = await tempDir();
  out = join(dir.path, 'synth');
  summary = await synth({ out, ...options });
});
afterAll(() => dir.cleanup());

describe('the synthetic classes', () => {
  it('has at least 3 textures, 3 objects and 4 defect kinds, each used', () => {
    expect(SYNTH_CLASSES.filter((c) => c.kind === 'texture').length).toBeGreaterThanOrEqual(3);
    expect(SYNTH_CLASSES.filter((c) => c.kind === 'object').length).toBeGreaterThanOrEqual(3);
    const used = new Set(SYNTH_CLASSES.flatMap((c) => c.defects));
    expect(used.size).toBeGreaterThanOrEqual(4);
    expect([...used].every((d) => DEFECT_KINDS.includes(d))).toBe(true);
  });

  it('draws every defect of every class visibly, and only there', () => {
    for (const cls of SYNTH_CLASSES) {
      for (const defect of cls.defects) {
        for (let index = 0; index < 3; index++) {
          const s = renderSynthImage({ className: cls.name, split: 'test', defect, index, size: 64 });
          const area = s.mask.reduce((a, v) => a + v, 0);
          expect(area, `${cls.name}/${defect}`).toBeGreaterThanOrEqual(16);
          expect(area, `${cls.name}/${defect}`).toBeLessThan(0.25 * 64 * 64);
          let wrong = 0;
          for (let i = 0; i < s.mask.length; i++) {
            let d = 0;
            for (let c = 0; c < 3; c++) d = Math.max(d, Math.abs(s.image[3 * i + c]! - s.good[3 * i + c]!));
            if (s.mask[i] ? d <= MASK_TOLERANCE : d !== 0) wrong++;
          }
          expect(wrong, `${cls.name}/${defect}: pixels where mask and change disagree`).toBe(0);
        }
      }
    }
  });

  it('varies between images of a class (position, rotation, lighting, noise)', () => {
    for (const cls of SYNTH_CLASSES) {
      const a = renderSynthImage({ className: cls.name, split: 'train', index: 0 }).image;
      const b = renderSynthImage({ className: cls.name, split: 'train', index: 1 }).image;
      let diff = 0;
      for (let i = 0; i < a.length; i++) diff += Math.abs(a[i]! - b[i]!);
      expect(diff / a.length, cls.name).toBeGreaterThan(3);
    }
  });

  it('rejects unknown classes and defects', () => {
    expect(() => renderSynthImage({ className: 'bottle', split: 'train', index: 0 })).toThrow(/unknown synthetic class "bottle"; the classes are: weave/);
    expect(() => renderSynthImage({ className: 'chip', split: 'test', defect: 'crack', index: 0 })).toThrow(/class "chip" has no "crack" defect/);
  });
});

describe('synth on disk', () => {
  it('writes the MVTec AD layout with 0/255 masks and a summary', async () => {
    const files = await listFiles(out);
    expect(files).toContain('synth.json');
    expect(files).toContain('chip/train/good/002.png');
    expect(files).toContain('chip/test/good/001.png');
    // 4 defective images over chip's 3 kinds: missing x2, misplaced, scratch.
    expect(files.filter((f) => f.startsWith('chip/test/missing/'))).toEqual(['chip/test/missing/000.png', 'chip/test/missing/001.png']);
    expect(files).toContain('chip/ground_truth/missing/001_mask.png');
    expect(files).toContain('tiles/ground_truth/crack/000_mask.png');
    expect(files.filter((f) => f.endsWith('.png'))).toHaveLength(2 * (3 + 2 + 4 + 4));
    expect(summary.classes.find((c) => c.name === 'chip')!.testBad).toEqual({ missing: 2, misplaced: 1, scratch: 1 });
    expect(JSON.parse(await readFile(join(out, 'synth.json'), 'utf8'))).toEqual(summary);

    const mask = await rawPixels(join(out, 'tiles', 'ground_truth', 'crack', '000_mask.png'));
    expect(new Set(mask.data)).toEqual(new Set([0, 255]));
    expect((await sharp(join(out, 'tiles', 'test', 'crack', '000.png')).metadata()).width).toBe(SIZE);
  });

  it('writes masks that exactly cover the pixels that differ from the defect-free image', async () => {
    for (const [cls, defect, index] of [['tiles', 'crack', 0], ['tiles', 'hole', 0], ['chip', 'missing', 1], ['chip', 'misplaced', 0]] as const) {
      const image = await rawPixels(join(out, cls, 'test', defect, `00${index}.png`));
      const mask = await rawPixels(join(out, cls, 'ground_truth', defect, `00${index}_mask.png`));
      const twin = renderSynthImage({ className: cls, split: 'test', defect, index, seed: options.seed, size: SIZE });
      let area = 0;
      let wrong = 0;
      for (let i = 0; i < SIZE * SIZE; i++) {
        const differs = [0, 1, 2].some((c) => image.data[3 * i + c] !== twin.good[3 * i + c]);
        if ((differs ? 255 : 0) !== mask.data[i * mask.channels]) wrong++;
        if (differs) area++;
      }
      expect(wrong, `${cls}/${defect}/${index}: pixels where mask and change disagree`).toBe(0);
      expect(area).toBeGreaterThan(0);
    }
  });

  it('loads through the MVTec loader', async () => {
    const ds = await loadMvtec(out);
    expect(ds.classes).toEqual(['chip', 'tiles']);
    const train = await collect(ds.train('tiles'));
    expect(train).toHaveLength(3);
    const test = await collect(ds.test('chip'));
    expect(test.filter((s) => s.label === 1)).toHaveLength(4);
    expect(test.filter((s) => s.label === 0)).toHaveLength(2);
    for (const s of test) expect(s.mask.some((m) => m === 1)).toBe(s.label === 1);
  });

  it('gives the same bytes for the same seed and other bytes for another seed', async () => {
    const again = join(dir.path, 'again');
    await synth({ out: again, ...options });
    const other = join(dir.path, 'other');
    await synth({ out: other, ...options, seed: 6 });
    const files = (await listFiles(out)).filter((f) => f.endsWith('.png'));
    expect(await listFiles(again)).toEqual(await listFiles(out));
    let differing = 0;
    for (const f of files) {
      const a = await readFile(join(out, f));
      expect(a.equals(await readFile(join(again, f))), f).toBe(true);
      if (!a.equals(await readFile(join(other, f)))) differing++;
    }
    expect(differing).toBeGreaterThan(files.length / 2);
  });

  it('refuses a non-empty target, replaces it with overwrite, and leaves nothing half-written', async () => {
    const target = join(dir.path, 'target');
    await synth({ out: target, classes: ['weave'], size: 16, nTrain: 1, nTestGood: 0, nTestBad: 0 });
    const err = await synth({ out: target, classes: ['weave'], size: 16, nTrain: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetError);
    expect((err as Error).message).toBe(`${target}: already exists and is not empty; choose another folder or overwrite it`);
    await synth({ out: target, classes: ['grain'], size: 16, nTrain: 1, nTestGood: 0, nTestBad: 0, overwrite: true });
    expect(await readdir(target)).toEqual(['grain', 'synth.json']);
    expect((await readdir(dirname(target))).filter((n) => n.includes('partial'))).toEqual([]);
  });

  it('removes its temporary folder when aborted, creating nothing', async () => {
    const target = join(dir.path, 'aborted');
    const controller = new AbortController();
    const err = await synth({
      out: target,
      classes: ['washer'],
      size: 16,
      nTrain: 20,
      onProgress: (p) => {
        if (p.done === 5) controller.abort(new Error('stop here'));
      },
      signal: controller.signal,
    }).catch((e: unknown) => e);
    expect((err as Error).message).toBe('stop here');
    await expect(stat(target)).rejects.toThrow();
    expect((await readdir(dir.path)).filter((n) => n.includes('aborted'))).toEqual([]);
  });

  it('validates its options', async () => {
    await expect(synth({ out: join(dir.path, 'x'), classes: ['nope'] })).rejects.toThrow(/unknown synthetic class "nope"/);
    await expect(synth({ out: join(dir.path, 'x'), nTrain: 0 })).rejects.toThrow(/nTrain must be an integer >= 1, got 0/);
    await expect(synth({ out: join(dir.path, 'x'), size: 4 })).rejects.toThrow(/size must be an integer >= 8/);
  });
});
