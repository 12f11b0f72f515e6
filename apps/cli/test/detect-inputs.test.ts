/**
 * `ofm detect` as a new user calls it (issue 19): folders searched recursively, globs, scores
 * without `--out`, output names that say which image they belong to, and clear refusals.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expandImageArgs, globToRegExp, outputStems, overlaySize } from '../src/images';
import { expectRefused, ofm, tinyFixture } from './helpers';

let dir: string;
let data: string;
let config: string;
let ckpt: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ofm-cli-detect-'));
  ({ data, config, ckpt } = await tinyFixture(dir));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('ofm detect', () => {
  it('scores a folder recursively without --out (--json), and says which overlay is which image with --out (item 11)', async () => {
    const test = join(data, 'tiles', 'test');
    const r = await ofm(['detect', test, '--ckpt', ckpt, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.images).toHaveLength(6);
    expect(result.images.every((i: { overlay: unknown; score: unknown }) => i.overlay === null && typeof i.score === 'number')).toBe(true);

    const out = join(dir, 'detections');
    const text = await ofm(['detect', test, '--glob', '*/000.png', '--ckpt', ckpt, '--out', out]);
    expect(text.code, text.stderr).toBe(0);
    const folders = readdirSync(test).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
    const lines = text.stdout.trim().split('\n');
    expect(lines).toHaveLength(folders.length + 1);
    expect(lines[folders.indexOf('good')]).toMatch(/tiles\/test\/good\/000\.png {2}-> {2}good\/000_overlay\.png$/);
    expect(lines.at(-1)).toMatch(new RegExp(`^wrote ${folders.length} overlay\\(s\\) and scores\\.json \\(which overlay is which image\\)`));
    const scores = JSON.parse(readFileSync(join(out, 'scores.json'), 'utf8'));
    expect(scores.images.map((i: { path: string; overlay: string }) => [i.path, i.overlay])).toEqual(
      folders.map((f) => [join(test, f, '000.png'), join(out, f, '000_overlay.png')]),
    );
    for (const i of scores.images) expect(existsSync(i.overlay)).toBe(true);

    // Without --out and --json: the scores, and how to get overlays.
    const plain = await ofm(['detect', join(test, 'good', '000.png'), '--ckpt', ckpt]);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toMatch(/^1 image\(s\) scored; --out DIR also writes a heatmap overlay of each and scores\.json$/m);

    // A quoted glob, as a shell passes it when it matches nothing itself.
    const glob = await ofm(['detect', join(data, '*', 'test', 'good', '00[01].png'), '--ckpt', ckpt, '--json']);
    expect(glob.code, glob.stderr).toBe(0);
    expect(JSON.parse(glob.stdout).images).toHaveLength(6);
  });

  it('draws an overlay at the image\'s own aspect ratio, with the decision and a colour legend (item 16)', async () => {
    const sharp = (await import('sharp')).default;
    const { OVERLAY_LEGEND_HEIGHT } = await import('@ofm/detector');
    const wide = join(dir, 'wide', 'shot.png');
    await mkdir(join(dir, 'wide'), { recursive: true });
    // A 120 x 60 crop of a test image: the model sees it squeezed to its square size.
    await sharp(join(data, 'tiles', 'test', 'good', '000.png')).resize(120, 60, { fit: 'fill' }).png().toFile(wide);
    const out = join(dir, 'wide-out');
    const r = await ofm(['detect', wide, '--ckpt', ckpt, '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const meta = await sharp(join(out, 'shot_overlay.png')).metadata();
    expect(overlaySize({ width: 120, height: 60 })).toEqual({ width: 256, height: 128 });
    expect(meta.height! - OVERLAY_LEGEND_HEIGHT).toBe(128);
    expect(meta.width).toBeGreaterThanOrEqual(256); // at least the image; wider where the legend needs it
    expect(overlaySize({ width: 4000, height: 1000 })).toEqual({ width: 1024, height: 256 });
  });

  it('refuses an empty folder or a pattern matching nothing, saying where it looked (item 11)', async () => {
    const empty = join(dir, 'empty');
    await mkdir(empty);
    expectRefused(await ofm(['detect', empty, '--ckpt', ckpt]), /folder '.*empty' holds no images \(looked for \.png, \.jpg/);
    expectRefused(
      await ofm(['detect', data, '--glob', '*.png', '--ckpt', ckpt]),
      /holds no images matching '\*\.png' .*'\*\*\/\*\.png' matches at any depth/,
    );
    expectRefused(await ofm(['detect', join(dir, 'nowhere', '*.png'), '--ckpt', ckpt]), /folder '.*nowhere' does not exist/);
    expectRefused(await ofm(['detect', join(dir, 'nowhere.png'), '--ckpt', ckpt]), /image '.*nowhere\.png' does not exist/);
  });

  it('a file as --out or --ckpt, a browser export as --ckpt: a clear line, exit 2, nothing written (items 5, 6)', async () => {
    const image = join(data, 'tiles', 'test', 'good', '000.png');
    expectRefused(await ofm(['detect', image, '--ckpt', ckpt, '--out', config]), /--out '.*tiny\.json' is a file; give a folder/, '--out FILE');
    expectRefused(await ofm(['detect', image, '--ckpt', config]), /--ckpt '.*tiny\.json' is a file, not a folder/, '--ckpt FILE');
    const web = join(dir, 'web');
    expect((await ofm(['export', ckpt, '--out', web])).code).toBe(0);
    const r = await ofm(['detect', image, '--ckpt', web, '--out', join(dir, 'never')]);
    expectRefused(r, /--ckpt '.*web' is a browser export \(written by ofm export\), not a training checkpoint: use the checkpoint it was exported from/);
    expect(r.stderr).toContain(`pnpm demo --model ${web}`);
    expect(existsSync(join(dir, 'never'))).toBe(false);
  });

  it('globs, and output names that tell images apart', () => {
    const re = globToRegExp('**/test/{good,crack}/0?[0-9].png');
    expect(re.test('tiles/test/good/001.png')).toBe(true);
    expect(re.test('test/crack/010.png')).toBe(true);
    expect(re.test('tiles/test/hole/001.png')).toBe(false);
    expect(re.test('tiles/test/good/sub/001.png')).toBe(false);
    expect(globToRegExp('*.png').test('a/b.png')).toBe(false);
    expect(globToRegExp('[!a]*.png').test('b1.png')).toBe(true);
    expect(globToRegExp('[!a]*.png').test('a1.png')).toBe(false);
    expect(
      outputStems([
        { path: '/d/tiles/test/good/000.png', depth: 1 },
        { path: '/d/tiles/test/crack/000.png', depth: 1 },
        { path: '/x/good/000.png' },
        { path: '/x/good/000.jpg' },
        { path: '/y/a.png' },
        { path: '/y/a.png' },
      ]),
    ).toEqual(['test/good/000', 'crack/000', 'x/good/000_png', 'x/good/000_jpg', 'a', 'a_2']);
    expect(expandImageArgs([join(data, 'chip', 'test')], 'good/*').map((i) => i.depth)).toEqual([1, 1, 1]);
  });
});
