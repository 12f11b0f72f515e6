import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatasetError, loadFolder } from '../src/index';
import { collect, gradient, tempDir, writeImage, writeMask } from './helpers';

const S = 8;
let dir: { path: string; cleanup: () => Promise<void> };

beforeAll(async () => {
  dir = await tempDir();
  for (let i = 0; i < 10; i++) await writeImage(join(dir.path, 'normal', `n${i}.png`), gradient(S, S, i), S, S);
  for (let i = 0; i < 3; i++) {
    await writeImage(join(dir.path, 'broken', `b${i}.jpg`), gradient(S, S, 20 + i), S, S, 'jpeg');
    await writeMask(join(dir.path, 'masks', i === 2 ? `b${i}_mask.png` : `b${i}.png`), S, S, (x) => x < i + 1);
  }
});
afterAll(() => dir.cleanup());

describe('loadFolder', () => {
  it('holds out a seeded share of normal images and matches masks by name', async () => {
    const ds = await loadFolder({ root: dir.path, normalDir: 'normal', abnormalDir: 'broken', maskDir: 'masks', seed: 3 });
    expect(ds.classes).toEqual(['folder']);
    expect(ds.hasMasks).toBe(true);
    const train = await ds.trainFiles('folder');
    const test = await ds.testFiles('folder');
    expect(train).toHaveLength(8);
    expect(test.filter((r) => r.label === 0)).toHaveLength(2);
    expect(new Set([...train, ...test].filter((r) => r.label === 0).map((r) => r.path)).size).toBe(10);
    const again = await loadFolder({ root: dir.path, normalDir: 'normal', abnormalDir: 'broken', maskDir: 'masks', seed: 3 });
    expect((await again.trainFiles('folder')).map((r) => r.path)).toEqual(train.map((r) => r.path));

    const anomalies = (await collect(ds.test('folder'))).filter((s) => s.label === 1);
    expect(anomalies.map((s) => s.defect)).toEqual(['broken', 'broken', 'broken']);
    anomalies.forEach((s, i) => {
      expect(Array.from(s.mask)).toEqual(Array.from({ length: S * S }, (_, p) => (p % S < i + 1 ? 1 : 0)));
    });
  });

  it('uses a normal test folder when given, and works without masks', async () => {
    const ds = await loadFolder({ root: dir.path, normalDir: 'normal', normalTestDir: 'normal', abnormalDir: 'broken', className: 'widget' });
    expect(ds.classes).toEqual(['widget']);
    expect(ds.hasMasks).toBe(false);
    expect(await ds.trainFiles('widget')).toHaveLength(10);
    expect(await ds.testFiles('widget')).toHaveLength(13);
  });

  it('names missing folders, empty folders and missing masks', async () => {
    await expect(loadFolder({ root: dir.path, normalDir: 'absent' })).rejects.toThrow(`${join(dir.path, 'absent')}: folder not found; expected the normal images`);
    await expect(loadFolder({ root: dir.path, normalDir: 'normal', abnormalDir: 'masks', maskDir: 'normal' })).rejects.toThrow(DatasetError);
    const err = await loadFolder({ root: dir.path, normalDir: 'normal', abnormalDir: 'normal', maskDir: 'masks' }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/n0.png: no mask for this image; expected .*masks\/n0.png or n0_mask.png/);
  });
});
