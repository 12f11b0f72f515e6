import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatasetError, loadVisa, parseCsv } from '../src/index';
import { collect, gradient, tempDir, writeImage, writeMask, writeText } from './helpers';

const W = 16;
const H = 12;
let dir: { path: string; cleanup: () => Promise<void> };
let root: string;

const HEADER = 'object,split,label,image,mask';

beforeAll(async () => {
  dir = await tempDir();
  root = join(dir.path, 'visa');
  const rows = [HEADER];
  for (const cls of ['candle', 'pcb1']) {
    for (let i = 0; i < 3; i++) {
      const image = `${cls}/Data/Images/Normal/000${i}.JPG`;
      await writeImage(join(root, image), gradient(W, H, i), W, H, 'jpeg');
      rows.push(`${cls},${i < 2 ? 'train' : 'test'},normal,${image},`);
    }
    const image = `${cls}/Data/Images/Anomaly/000.JPG`;
    const mask = `${cls}/Data/Masks/Anomaly/000.png`;
    await writeImage(join(root, image), gradient(W, H, 9), W, H, 'jpeg');
    // VisA masks store defect ids (here 1 and 2), not 255.
    await writeMask(join(root, mask), W, H, (x, y) => x >= 8 && y >= 6, defectId(cls));
    rows.push(`${cls},test,anomaly,${image},${mask}`);
  }
  await writeText(join(root, 'split_csv', '1cls.csv'), `${rows.join('\r\n')}\r\n`);
});
afterAll(() => dir.cleanup());

function defectId(cls: string): number {
  return cls === 'candle' ? 1 : 2;
}

describe('parseCsv', () => {
  it('handles quotes, doubled quotes, commas in fields and CRLF', () => {
    expect(parseCsv('a,b\r\n"x, y","say ""hi"""\n\nlast,\n')).toEqual([
      ['a', 'b'],
      ['x, y', 'say "hi"'],
      ['last', ''],
    ]);
  });
});

describe('loadVisa', () => {
  it('reads the split file and streams JPG images with binarised id masks', async () => {
    const ds = await loadVisa(root);
    expect(ds.classes).toEqual(['candle', 'pcb1']);
    expect((await ds.trainFiles('pcb1')).map((r) => r.path.slice(root.length))).toEqual([
      '/pcb1/Data/Images/Normal/0000.JPG',
      '/pcb1/Data/Images/Normal/0001.JPG',
    ]);
    const test = await collect(ds.test('candle'));
    expect(test.map((s) => [s.label, s.defect])).toEqual([
      [0, 'good'],
      [1, 'anomaly'],
    ]);
    const mask = test[1]!.mask;
    const expected = Array.from({ length: W * H }, (_, p) => (p % W >= 8 && Math.floor(p / W) >= 6 ? 1 : 0));
    expect(Array.from(mask)).toEqual(expected);
    expect(test[0]!.mask.every((m) => m === 0)).toBe(true);
    expect(test[0]!.image.length).toBe(W * H * 3);
  });

  it('resizes to the model size', async () => {
    const ds = await loadVisa(root, { size: 8 });
    const [s] = await collect(ds.train('candle', { limit: 1 }));
    expect([s!.width, s!.height]).toEqual([8, 8]);
  });
});

describe('loadVisa bad input', () => {
  it('names a missing split file', async () => {
    const r = join(dir.path, 'no-csv');
    await writeText(join(r, 'readme.txt'), '');
    await expect(loadVisa(r)).rejects.toThrow(`${join(r, 'split_csv', '1cls.csv')}: split file not found; expected a CSV with the columns object,split,label,image,mask`);
  });

  it('names missing columns', async () => {
    const r = join(dir.path, 'bad-columns');
    await writeText(join(r, 'split_csv', '1cls.csv'), 'object,split,image\ncandle,train,a.JPG\n');
    const err = await loadVisa(r).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetError);
    expect((err as Error).message).toMatch(/missing columns label, mask; expected a header with object,split,label,image,mask \(found: object,split,image\)/);
  });

  it('names bad split and label values with their line', async () => {
    const r = join(dir.path, 'bad-values');
    await writeText(join(r, 'split_csv', '1cls.csv'), `${HEADER}\ncandle,validation,normal,a.JPG,\n`);
    await expect(loadVisa(r)).rejects.toThrow(/line 2: split is "validation"; expected train or test/);
    await writeText(join(r, 'split_csv', '1cls.csv'), `${HEADER}\ncandle,test,broken,a.JPG,\n`);
    await expect(loadVisa(r)).rejects.toThrow(/line 2: label is "broken"; expected normal or anomaly/);
    await writeText(join(r, 'split_csv', '1cls.csv'), `${HEADER}\ncandle,test,anomaly,a.JPG,\n`);
    await expect(loadVisa(r)).rejects.toThrow(/line 2: an anomaly row needs a mask path/);
  });

  it('names a listed image that is missing on disk', async () => {
    const r = join(dir.path, 'missing-image');
    await writeText(join(r, 'split_csv', '1cls.csv'), `${HEADER}\ncandle,train,normal,gone.JPG,\n`);
    const ds = await loadVisa(r);
    await expect(collect(ds.train('candle'))).rejects.toThrow(`${join(r, 'gone.JPG')}: cannot read the image (no such file)`);
  });
});
