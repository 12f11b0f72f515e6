/**
 * Bad input as a new user gives it (issue 19), through the built binary: every error in one style,
 * exit code 2 with a line that says what is wrong and what to do, and nothing written.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { TINY_CONFIG, bin, expectRefused, ofm, tinyFixture } from './helpers';

let dir: string;
let data: string;
let config: string;
let ckpt: string;
const exported = () => join(dir, 'web');

/** Every file under `d`, relative, sorted. */
function listing(d: string): string[] {
  return readdirSync(d, { recursive: true, encoding: 'utf8' }).sort();
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ofm-cli-usage-'));
  ({ data, config, ckpt } = await tinyFixture(dir));
  const e = await ofm(['export', ckpt, '--out', exported()]);
  expect(e.code, e.stderr).toBe(0);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('errors', () => {
  it('usage errors carry the same "ofm: error:" prefix as every other error (item 13)', async () => {
    expectRefused(await ofm(['nope']), /^ofm: error: unknown command 'nope'/m, 'unknown command');
    expectRefused(await ofm(['inspect', ckpt, '--bogus']), /^ofm: error: unknown option '--bogus'/m, 'unknown option');
    expectRefused(await ofm(['detect', 'x.png']), /^ofm: error: required option '--ckpt <dir>' not specified/m, 'missing option');
  });

  it('an unknown --setting is named as a setting, with the list of settings (item 4)', async () => {
    const r = await ofm(['train', '--data', data, '--setting', 'mvtec-99', '--out', join(dir, 'never')]);
    expectRefused(r, /--setting 'mvtec-99' is not a continual setting; the settings are: mvtec-14-1, mvtec-10-5, mvtec-3x5/);
    expect(r.stderr).not.toMatch(/unknown class/);
    expect(existsSync(join(dir, 'never'))).toBe(false);
  });

  it('a file where a checkpoint folder is expected: a clear line, not a raw ENOTDIR (item 5)', async () => {
    expectRefused(await ofm(['inspect', config]), /'.*tiny\.json' is a file, not a folder/, 'inspect FILE');
    expectRefused(await ofm(['inspect', join(dir, 'missing')]), /'.*missing' does not exist/, 'inspect missing');
    expectRefused(await ofm(['eval', '--ckpt', config, '--data', data]), /--ckpt '.*tiny\.json' is a file, not a folder/, 'eval --ckpt FILE');
    expect(readFileSync(config, 'utf8')).toBe(JSON.stringify(TINY_CONFIG));
  });

  it('a browser export where a training checkpoint is needed: says so, and what to use (item 6)', async () => {
    for (const args of [
      ['eval', '--ckpt', exported(), '--data', data],
      ['inspect', exported()],
      ['train', '--data', data, '--tasks', 'tiles|washer|chip', '--resume', exported()],
    ]) {
      const r = await ofm(args);
      expectRefused(r, /is a browser export \(written by ofm export\), not a training checkpoint: use the checkpoint it was exported from/, args[0]);
      expect(r.stderr).toContain(`pnpm demo --model ${exported()}`);
    }
  });
});

describe('output into a pipe that closes early', () => {
  it('`ofm serve --help | head -1` ends quietly with exit 0, no EPIPE stack trace', async () => {
    const child = spawn(process.execPath, [bin, 'serve', '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += String(d);
    });
    // Read one chunk, then close our end, as `head` does.
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(stderr).not.toMatch(/EPIPE|Unhandled/);
    expect(code).toBe(0);
  });
});

describe('ofm train checks its output folder and data before training (item 3)', () => {
  it('a folder of other files, or a file: exit 2 at once, nothing written there or beside it', async () => {
    const foreign = join(dir, 'holiday photos');
    await mkdir(foreign);
    await writeFile(join(foreign, 'notes.txt'), 'mine');
    const before = listing(dir);
    const r = await ofm(['train', '--data', data, '--tasks', 'tiles', '--out', foreign, '--config', config]);
    expectRefused(r, /--out '.*holiday photos' holds other files \(notes\.txt\) and no checkpoint; give a new or empty folder/);
    expect(r.stderr).not.toMatch(/training|learning/);
    expect(listing(dir)).toEqual(before);
    const file = await ofm(['train', '--data', data, '--tasks', 'tiles', '--out', config, '--config', config]);
    expectRefused(file, /--out '.*tiny\.json' is a file; give a new or empty folder/);
    expect(listing(dir)).toEqual(before);
  });

  it('a class without test/, or with too few training images: exit 2 before training, nothing written', async () => {
    const broken = join(dir, 'broken-data');
    await cp(data, broken, { recursive: true });
    await rm(join(broken, 'washer', 'test'), { recursive: true });
    for (const f of readdirSync(join(broken, 'chip', 'train', 'good')).slice(3)) await rm(join(broken, 'chip', 'train', 'good', f));
    const out = join(dir, 'new', 'model');
    const noTest = await ofm(['train', '--data', broken, '--tasks', 'tiles|washer', '--out', out, '--config', config]);
    expectRefused(noTest, /washer\/test: folder not found; .*--no-eval skips that/);
    expect(noTest.stderr).not.toMatch(/training/);
    // Without evaluation the test split is not needed.
    const few = await ofm(['train', '--data', broken, '--tasks', 'tiles|washer|chip', '--out', out, '--config', config, '--no-eval']);
    expectRefused(few, /class 'chip' has 3 training image\(s\); at least 4 are needed/);
    expect(existsSync(join(dir, 'new'))).toBe(false);
    expectRefused(await ofm(['train', '--data', data, '--tasks', 'tiles', '--resume', join(dir, 'missing')]), /--resume '.*missing' does not exist/);
  });
});

describe('ofm train refuses a config file with nonsense (item 15)', () => {
  it('every problem by field, naming the file, exit 2 before anything is written', async () => {
    const bad = join(dir, 'bad config.json');
    await writeFile(
      bad,
      JSON.stringify({ ...TINY_CONFIG, training: { ...TINY_CONFIG.training, stpes: 10, clipGradNorm: -1 }, map: { sigmas: 'x', topFraction: 7 }, continual: { collectImages: 0 } }),
    );
    const before = listing(dir);
    const r = await ofm(['train', '--data', data, '--tasks', 'tiles', '--out', join(dir, 'never'), '--config', bad]);
    expectRefused(r, /^ofm: error: --config '.*bad config\.json': 5 problems:$/m);
    for (const field of ['training.stpes: unknown field', 'training.clipGradNorm', 'map.sigmas', 'map.topFraction', 'continual.collectImages']) {
      expect(r.stderr).toContain(`  - ${field}`);
    }
    expect(listing(dir)).toEqual(before);
  });
});

describe('ofm inspect checks file sizes without --verify (item 12)', () => {
  it('a truncated weights file: exit 2 naming it; a byte changed in place: only --verify finds it, and plain inspect says so', async () => {
    const copy = join(dir, 'damaged');
    await cp(ckpt, copy, { recursive: true });
    const manifest = JSON.parse(await readFile(join(copy, 'manifest.json'), 'utf8'));
    const shard = manifest.files[0].path as string;
    await truncate(join(copy, shard), manifest.files[0].bytes - 8);
    expectRefused(await ofm(['inspect', copy]), new RegExp(`${shard} is \\d+ bytes but the manifest says ${manifest.files[0].bytes}: the file is damaged`));
    await cp(join(ckpt, shard), join(copy, shard));
    const bytes = await readFile(join(copy, shard));
    bytes[100] = bytes[100]! ^ 0xff;
    await writeFile(join(copy, shard), bytes);
    const plain = await ofm(['inspect', copy]);
    expect(plain.code).toBe(0);
    expect(plain.stdout).toMatch(/checked: every file has the size the manifest gives; contents \(SHA-256\) only with --verify/);
    expectRefused(await ofm(['inspect', copy, '--verify']), /fails its SHA-256 check/);
  });
});
