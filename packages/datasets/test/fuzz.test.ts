/**
 * Fuzzing the image loaders with a fixed seed: random bytes, truncated and bit-flipped PNG and
 * JPEG, empty files, huge declared sizes, and every pixel layout a camera or an editor writes
 * (grey, grey + alpha, RGBA, 16-bit, palette, CMYK), all under file names with spaces and
 * non-ASCII characters. Every input must either decode to finite RGB in [0, 1] at the asked size,
 * or be refused with one DatasetError naming the file; nothing else may escape, and the loaders
 * must name the bad file among good ones.
 */
import { deflateSync } from 'node:zlib';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatasetError, loadFolder, loadMvtec, readImage } from '../src/index';
import { createRandom } from '../src/random';
import { gradient, tempDir } from './helpers';

let dir: { path: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  dir = await tempDir('ofm-fuzz-');
});
afterAll(() => dir.cleanup());

const SIZE = 24;

/** CRC-32 of PNG chunks. */
function crc32(bytes: Uint8Array): number {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function pngChunk(type: string, data: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE(crc32(body), 8 + data.length);
  return out;
}

/** A well-formed PNG that declares `w` x `h` RGB pixels but holds almost no image data. */
function declaredPng(w: number, h: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const signature = Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]);
  return Buffer.concat([signature, pngChunk('IHDR', ihdr), pngChunk('IDAT', deflateSync(Buffer.alloc(64))), pngChunk('IEND', new Uint8Array(0))]);
}

/** Valid images in every layout the loaders must accept, with the colour each must decode to. */
async function validImages(): Promise<{ name: string; bytes: Buffer; rgb?: [number, number, number] }[]> {
  const raw = (w: number, h: number, channels: 1 | 2 | 3 | 4, value: number[]) =>
    sharp(Buffer.from(Array.from({ length: w * h }, () => value).flat()), { raw: { width: w, height: h, channels } });
  return [
    { name: 'rgb.png', bytes: await raw(40, 30, 3, [10, 120, 240]).png().toBuffer(), rgb: [10, 120, 240] },
    { name: 'rgb.jpg', bytes: await sharp(Buffer.from(gradient(64, 48, 1)), { raw: { width: 64, height: 48, channels: 3 } }).jpeg().toBuffer() },
    { name: 'grey.png', bytes: await raw(32, 32, 1, [77]).png().toBuffer(), rgb: [77, 77, 77] },
    { name: 'grey alpha.png', bytes: await raw(32, 32, 2, [77, 128]).png().toBuffer(), rgb: [77, 77, 77] },
    // Translucent pixels keep their colour (alpha is dropped, not multiplied in).
    { name: 'rgba translucent.png', bytes: await raw(48, 48, 4, [50, 100, 150, 50]).png().toBuffer(), rgb: [50, 100, 150] },
    { name: 'rgb 16-bit.png', bytes: await raw(32, 32, 3, [200, 100, 50]).toColourspace('rgb16').png().toBuffer(), rgb: [200, 100, 50] },
    { name: 'grey 16-bit.png', bytes: await raw(32, 32, 1, [90]).toColourspace('grey16').png().toBuffer(), rgb: [90, 90, 90] },
    { name: 'palette.png', bytes: await raw(32, 32, 3, [0, 255, 0]).png({ palette: true }).toBuffer(), rgb: [0, 255, 0] },
    { name: 'cmyk.jpg', bytes: await raw(32, 32, 3, [30, 60, 90]).toColourspace('cmyk').jpeg().toBuffer() },
    { name: 'one pixel.png', bytes: await raw(1, 1, 3, [5, 6, 7]).png().toBuffer(), rgb: [5, 6, 7] },
    { name: 'strip 1x2000.png', bytes: await raw(1, 2000, 3, [9, 9, 9]).png().toBuffer(), rgb: [9, 9, 9] },
  ];
}

/** Seeded broken inputs: random bytes, truncations and bit flips of valid files, empty and huge. */
function brokenImages(valid: { name: string; bytes: Buffer }[], seed: number): { name: string; bytes: Buffer }[] {
  const rng = createRandom(seed);
  const int = (n: number) => Math.floor(rng.uniform() * n);
  const png = valid.find((v) => v.name === 'rgb.png')!.bytes;
  const jpg = valid.find((v) => v.name === 'rgb.jpg')!.bytes;
  const out: { name: string; bytes: Buffer }[] = [
    { name: 'empty.png', bytes: Buffer.alloc(0) },
    { name: 'declares 10000x10000.png', bytes: declaredPng(10000, 10000) },
    { name: 'declares 40000x40000.png', bytes: declaredPng(40000, 40000) },
    { name: 'declares 0x0.png', bytes: declaredPng(0, 0) },
    { name: 'signature only.png', bytes: png.subarray(0, 8) },
  ];
  for (let i = 0; i < 12; i++) {
    out.push({ name: `random ${i}.png`, bytes: Buffer.from(Array.from({ length: int(3000) }, () => int(256))) });
  }
  for (let i = 0; i < 8; i++) {
    // A real header followed by garbage.
    const head = (i % 2 ? jpg : png).subarray(0, 40);
    out.push({ name: `header then garbage ${i}.${i % 2 ? 'jpg' : 'png'}`, bytes: Buffer.concat([head, Buffer.from(Array.from({ length: 500 }, () => int(256)))]) });
  }
  for (let i = 0; i < 12; i++) {
    const src = i % 2 ? jpg : png;
    out.push({ name: `truncated ${i}.${i % 2 ? 'jpg' : 'png'}`, bytes: src.subarray(0, 1 + int(src.length - 1)) });
  }
  for (let i = 0; i < 12; i++) {
    const src = Buffer.from(i % 2 ? jpg : png);
    for (let k = 0; k < 1 + int(4); k++) src[int(src.length)] ^= 1 << int(8);
    out.push({ name: `flipped ${i}.${i % 2 ? 'jpg' : 'png'}`, bytes: src });
  }
  return out;
}

/** Names with spaces and non-ASCII characters (accents, CJK, emoji) around every input. */
function hostile(name: string, i: number): string {
  const prefixes = ['défaut ', '图像 ', 'ünïcode ✓ ', 'space  twice ', '🙂 '];
  return `${prefixes[i % prefixes.length]}${name}`;
}

type Outcome = { kind: 'ok'; data: Float32Array } | { kind: 'refused'; message: string } | { kind: 'crash'; error: unknown };

async function outcome(path: string): Promise<Outcome> {
  try {
    const img = await readImage(path, { size: SIZE });
    return { kind: 'ok', data: img.data };
  } catch (error) {
    return error instanceof DatasetError ? { kind: 'refused', message: error.message } : { kind: 'crash', error };
  }
}

describe('image loaders under fuzzing', () => {
  it('decode every valid layout to its colour, and refuse every broken input with one error naming the file', async () => {
    const folder = join(dir.path, 'inputs ünïcode');
    await mkdir(folder, { recursive: true });
    const valid = await validImages();
    const broken = brokenImages(valid, 2024);
    const tally = { inputs: 0, decoded: 0, refused: 0, crashes: 0 };
    for (const [i, input] of [...valid, ...broken].entries()) {
      const path = join(folder, hostile(input.name, i));
      await writeFile(path, input.bytes);
      const r = await outcome(path);
      tally.inputs += 1;
      if (r.kind === 'crash') {
        tally.crashes += 1;
        expect.fail(`${input.name}: ${String((r.error as Error)?.stack ?? r.error)}`);
      }
      if (r.kind === 'refused') {
        tally.refused += 1;
        expect(r.message.startsWith(`${path}: `), r.message).toBe(true);
        expect(r.message.split('\n')).toHaveLength(1);
        continue;
      }
      tally.decoded += 1;
      expect(r.data).toHaveLength(SIZE * SIZE * 3);
      expect(r.data.every((v) => v >= 0 && v <= 1)).toBe(true);
      const want = valid.find((v) => v.name === input.name)?.rgb;
      if (want) for (let c = 0; c < 3; c++) expect(Math.abs(r.data[c]! * 255 - want[c]!), `${input.name} channel ${c}`).toBeLessThanOrEqual(1);
    }
    // Every valid input decodes; the empty, random, header-only and huge ones are refused.
    for (const v of valid) expect((await outcome(join(folder, hostile(v.name, valid.indexOf(v))))).kind, v.name).toBe('ok');
    for (const name of ['empty.png', 'declares 10000x10000.png', 'declares 40000x40000.png', 'signature only.png', 'random 0.png']) {
      const i = valid.length + broken.findIndex((b) => b.name === name);
      expect((await outcome(join(folder, hostile(name, i)))).kind, name).toBe('refused');
    }
    const huge = await outcome(join(folder, hostile('declares 40000x40000.png', valid.length + 2)));
    expect(huge.kind === 'refused' && huge.message).toMatch(/40000 x 40000 \(1600 Mpx\), more than the 268 Mpx this loader decodes; downscale it/);
    expect(tally.crashes).toBe(0);
    console.info(`fuzz (readImage, seed 2024): ${tally.inputs} inputs, ${tally.decoded} decoded, ${tally.refused} refused, ${tally.crashes} crashes`);
  });

  it('loadFolder and loadMvtec name the one bad file among good ones, under non-ASCII paths with spaces', async () => {
    const good = await sharp(Buffer.from(gradient(32, 32, 3)), { raw: { width: 32, height: 32, channels: 3 } }).png().toBuffer();
    const folderRoot = join(dir.path, 'folder data é');
    await mkdir(join(folderRoot, 'normal imgs'), { recursive: true });
    for (let i = 0; i < 4; i++) await writeFile(join(folderRoot, 'normal imgs', `好 ${i}.png`), good);
    const bad = join(folderRoot, 'normal imgs', '好 2.png');
    await writeFile(bad, good.subarray(0, good.length / 2));
    const folder = await loadFolder({ root: folderRoot, normalDir: 'normal imgs', size: SIZE, normalSplitRatio: 0 });
    const seen: string[] = [];
    const err = await (async () => {
      for await (const s of folder.train('folder')) seen.push(s.path);
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetError);
    expect((err as DatasetError).path).toBe(bad);
    expect(seen).toHaveLength(2); // the files before it loaded

    const mvtecRoot = join(dir.path, 'mvtec ü');
    const train = join(mvtecRoot, 'çlass one', 'train', 'good');
    const test = join(mvtecRoot, 'çlass one', 'test', 'good');
    await mkdir(train, { recursive: true });
    await mkdir(test, { recursive: true });
    for (let i = 0; i < 3; i++) await writeFile(join(train, `${i} ✓.png`), good);
    await writeFile(join(test, '0.png'), good);
    await writeFile(join(train, '1 ✓.png'), Buffer.alloc(0));
    const mvtec = await loadMvtec(mvtecRoot, { size: SIZE });
    expect(mvtec.classes).toEqual(['çlass one']);
    const err2 = await (async () => {
      for await (const _ of mvtec.train('çlass one'));
    })().catch((e: unknown) => e);
    expect(err2).toBeInstanceOf(DatasetError);
    expect((err2 as Error).message).toMatch(new RegExp(`^${join(train, '1 ✓.png').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: cannot decode the image`));
  });
});
