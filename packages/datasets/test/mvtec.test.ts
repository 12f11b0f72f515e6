import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatasetError, loadMvtec, rgbToBytes } from '../src/index';
import { collect, gradient, tempDir, writeImage, writeMask } from './helpers';

const W = 12;
const H = 10;
let dir: { path: string; cleanup: () => Promise<void> };
let root: string;

/** Two classes in the exact MVTec AD layout. */
async function buildTree(root: string): Promise<void> {
  for (const [c, cls] of ['bottle', 'screw'].entries()) {
    for (let i = 0; i < 3; i++) await writeImage(join(root, cls, 'train', 'good', `00${i}.png`), gradient(W, H, 10 * c + i), W, H);
    for (let i = 0; i < 2; i++) await writeImage(join(root, cls, 'test', 'good', `00${i}.png`), gradient(W, H, 50 + i), W, H);
    for (const defect of ['crack', 'scratch']) {
      for (let i = 0; i < 2; i++) {
        await writeImage(join(root, cls, 'test', defect, `00${i}.png`), gradient(W, H, 70 + i), W, H);
        await writeMask(join(root, cls, 'ground_truth', defect, `00${i}_mask.png`), W, H, (x, y) => x < 3 + i && y < 2);
      }
    }
  }
  await writeFile(join(root, 'license.txt'), 'not a class');
}

beforeAll(async () => {
  dir = await tempDir();
  root = join(dir.path, 'mvtec');
  await buildTree(root);
});
afterAll(() => dir.cleanup());

describe('loadMvtec', () => {
  it('finds the classes and lists the splits', async () => {
    const ds = await loadMvtec(root);
    expect(ds.classes).toEqual(['bottle', 'screw']);
    expect(ds.format).toBe('mvtec');
    const train = await ds.trainFiles('screw');
    expect(train.map((r) => r.path.slice(root.length))).toEqual(['/screw/train/good/000.png', '/screw/train/good/001.png', '/screw/train/good/002.png']);
    const test = await ds.testFiles('bottle');
    expect(test.map((r) => `${r.defect}:${r.label}`)).toEqual(['crack:1', 'crack:1', 'good:0', 'good:0', 'scratch:1', 'scratch:1']);
    expect(test[0]!.maskPath).toBe(join(root, 'bottle', 'ground_truth', 'crack', '000_mask.png'));
  });

  it('streams decoded samples with their masks', async () => {
    const ds = await loadMvtec(root);
    const train = await collect(ds.train('screw'));
    expect(train).toHaveLength(3);
    expect(Array.from(rgbToBytes({ data: train[1]!.image, width: W, height: H, channels: 3 }))).toEqual(Array.from(gradient(W, H, 11)));
    expect(train.every((s) => s.label === 0 && s.mask.every((m) => m === 0) && s.className === 'screw')).toBe(true);

    const test = await collect(ds.test('bottle'));
    const crack1 = test.find((s) => s.defect === 'crack' && s.path.endsWith('001.png'))!;
    expect(crack1.label).toBe(1);
    const expected = Array.from({ length: W * H }, (_, p) => (p % W < 4 && Math.floor(p / W) < 2 ? 1 : 0));
    expect(Array.from(crack1.mask)).toEqual(expected);
    expect([crack1.width, crack1.height]).toEqual([W, H]);
  });

  it('resizes to the model size', async () => {
    const ds = await loadMvtec(root, { size: 4 });
    const [s] = await collect(ds.test('bottle', { limit: 1 }));
    expect([s!.width, s!.height, s!.image.length, s!.mask.length]).toEqual([4, 4, 48, 16]);
  });

  it('shuffles deterministically by seed, and limits', async () => {
    const ds = await loadMvtec(root);
    const order = async (seed: number) => (await collect(ds.test('bottle', { shuffle: true, seed }))).map((s) => s.path);
    const a = await order(1);
    expect(await order(1)).toEqual(a);
    const orders = await Promise.all([2, 3, 4, 5].map(order));
    expect(orders.some((o) => o.join() !== a.join())).toBe(true);
    expect([...a].sort()).toEqual((await ds.testFiles('bottle')).map((r) => r.path).sort());
    expect(await collect(ds.train('bottle', { limit: 2 }))).toHaveLength(2);
  });

  it('keeps only the requested classes', async () => {
    const ds = await loadMvtec(root, { classes: ['screw'] });
    expect(ds.classes).toEqual(['screw']);
    await expect(ds.trainFiles('bottle')).rejects.toThrow(/no class "bottle" in this mvtec dataset; its classes are: screw/);
  });
});

describe('loadMvtec bad input', () => {
  it('names a missing root folder', async () => {
    const missing = join(dir.path, 'absent');
    await expect(loadMvtec(missing)).rejects.toThrow(`${missing}: folder not found; expected an MVTec AD folder`);
  });

  it('names a root without class folders', async () => {
    const empty = join(dir.path, 'empty-root');
    await mkdir(join(empty, 'notes'), { recursive: true });
    await expect(loadMvtec(empty)).rejects.toThrow(/no MVTec AD class folders; expected <root>\/<class>\/train\/good/);
  });

  it('names an unknown class asked for', async () => {
    await expect(loadMvtec(root, { classes: ['bottle', 'zipper'] })).rejects.toThrow(/no class folder for zipper; the classes here are: bottle, screw/);
  });

  it('names an empty class', async () => {
    const r = join(dir.path, 'empty-class');
    await mkdir(join(r, 'pill', 'train', 'good'), { recursive: true });
    const ds = await loadMvtec(r);
    const err = await ds.trainFiles('pill').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetError);
    expect((err as DatasetError).path).toBe(join(r, 'pill', 'train', 'good'));
    expect((err as Error).message).toMatch(/no images .* class "pill" needs normal training images here/);
    await expect(ds.testFiles('pill')).rejects.toThrow(/pill\/test: folder not found/);
  });

  it('names a defect image without its mask', async () => {
    const r = join(dir.path, 'no-mask');
    await writeImage(join(r, 'cable', 'train', 'good', '000.png'), gradient(W, H), W, H);
    await writeImage(join(r, 'cable', 'test', 'bent', '000.png'), gradient(W, H), W, H);
    const ds = await loadMvtec(r);
    await expect(ds.testFiles('cable')).rejects.toThrow(
      `${join(r, 'cable', 'test', 'bent', '000.png')}: no ground-truth mask for this anomalous image; expected ${join(r, 'cable', 'ground_truth', 'bent', '000_mask.png')}`,
    );
  });

  it('names a mask whose size differs from its image', async () => {
    const r = join(dir.path, 'bad-mask');
    await writeImage(join(r, 'cable', 'train', 'good', '000.png'), gradient(W, H), W, H);
    await writeImage(join(r, 'cable', 'test', 'bent', '000.png'), gradient(W, H), W, H);
    await writeMask(join(r, 'cable', 'ground_truth', 'bent', '000_mask.png'), W + 1, H, () => true);
    const ds = await loadMvtec(r, { size: 8 });
    const err = await collect(ds.test('cable')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetError);
    expect((err as DatasetError).path).toBe(join(r, 'cable', 'ground_truth', 'bent', '000_mask.png'));
    expect((err as Error).message).toMatch(/mask is 13 x 10 but its image .* is 12 x 10; expected the same size/);
  });

  it('names a corrupt image when the stream reaches it', async () => {
    const r = join(dir.path, 'corrupt');
    await writeImage(join(r, 'cable', 'train', 'good', '000.png'), gradient(W, H), W, H);
    await writeFile(join(r, 'cable', 'train', 'good', '001.png'), 'garbage');
    const ds = await loadMvtec(r);
    await expect(collect(ds.train('cable'))).rejects.toThrow(`${join(r, 'cable', 'train', 'good', '001.png')}: cannot decode the image`);
  });
});
