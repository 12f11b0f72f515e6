/**
 * The product end to end through the built binary, each command in its own process: train two
 * tasks, inspect, detect, resume a third task from the checkpoint, evaluate; bad input.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rewriteManifest } from '@ofm/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TINY_CONFIG, ofm } from './helpers';

let dir: string;
let data: string;
let config: string;
const ckpt = () => join(dir, 'model');

function weightsDigest(path: string): string {
  const h = createHash('sha256');
  for (const f of readdirSync(path).filter((f) => f.endsWith('.bin')).sort()) h.update(readFileSync(join(path, f)));
  return h.digest('hex');
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ofm-cli-train-'));
  data = join(dir, 'data');
  config = join(dir, 'tiny.json');
  await writeFile(config, JSON.stringify(TINY_CONFIG));
  const s = await ofm(['synth', '--out', data, '--classes', 'tiles,washer,chip', '--size', '24', '--n-train', '10', '--n-test-good', '3', '--n-test-bad', '3']);
  expect(s.code).toBe(0);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('ofm train / inspect / detect / eval', () => {
  let digestAfterTwo = '';

  it('trains two tasks and writes checkpoint, results and report', async () => {
    const r = await ofm(['train', '--data', data, '--tasks', 'tiles|washer', '--out', ckpt(), '--config', config, '--backend', 'wasm', '--json']);
    expect(r.stderr).not.toContain('    at ');
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary).toMatchObject({ checkpoint: ckpt(), tasks_learned: 2, classes: ['tiles', 'washer'] });
    for (const key of ['avg_image_auroc', 'avg_pixel_auroc', 'image_auroc_forgetting', 'pooled_image_auroc_calibrated']) {
      expect(typeof summary[key]).toBe('number');
    }
    expect(existsSync(join(ckpt(), 'report', 'report.md'))).toBe(true);
    expect(existsSync(join(ckpt(), 'report', 'figures', 'matrix_image_auroc.png'))).toBe(true);
    digestAfterTwo = weightsDigest(ckpt());
  });

  it('inspect shows tasks, classes and the per-task weights (no bases needed)', async () => {
    const r = await ofm(['inspect', ckpt(), '--json']);
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(info.tasks.map((t: { classes: string[] }) => t.classes)).toEqual([['tiles'], ['washer']]);
    expect(info.weights_mode).toBe('per-task');
    // The first task's copy of every parameter; the second task's weights are the model's own.
    expect(info.task_weight_bytes).toBe(4 * info.parameters);
    expect(info.basis_total_rank).toBe(0);
    const text = await ofm(['inspect', ckpt()]);
    expect(text.stdout).toMatch(/per-task weights \(2 task\(s\)/);
    expect(text.stdout).toContain('GPM bases: none (per-task weights need no projection)');
  });

  it('detect writes overlays and scores for good and defective images', async () => {
    const good = join(data, 'tiles', 'test', 'good', '000.png');
    const bad = join(data, 'tiles', 'test', readdirSync(join(data, 'tiles', 'test')).find((d) => d !== 'good')!, '000.png');
    const out = join(dir, 'detect');
    const r = await ofm(['detect', good, bad, '--ckpt', ckpt(), '--out', out, '--json']);
    expect(r.code).toBe(0);
    const res = JSON.parse(r.stdout);
    expect(res.images).toHaveLength(2);
    for (const img of res.images) {
      expect(existsSync(img.overlay)).toBe(true);
      expect(typeof img.score).toBe('number');
      expect(typeof img.anomalous).toBe('boolean');
    }
    expect(JSON.parse(readFileSync(join(out, 'scores.json'), 'utf8')).images).toHaveLength(2);
    // A file that is not an image: one clear error, nothing written.
    const junk = join(dir, 'junk.png');
    await writeFile(junk, 'not a png');
    const out2 = join(dir, 'detect2');
    const bad2 = await ofm(['detect', good, junk, '--ckpt', ckpt(), '--out', out2]);
    expect(bad2.code).toBe(2);
    expect(bad2.stderr).toContain('junk.png');
    expect(existsSync(out2)).toBe(false);
  });

  it('resumes a third task in a new process, keeping the first two bit-exact until then', async () => {
    const r = await ofm(['train', '--data', data, '--tasks', 'tiles|washer|chip', '--resume', ckpt(), '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ tasks_learned: 3, classes: ['tiles', 'washer', 'chip'] });
    expect(weightsDigest(ckpt())).not.toBe(digestAfterTwo);
    const ev = await ofm(['eval', '--ckpt', ckpt(), '--data', data, '--classes', 'tiles', '--json']);
    expect(ev.code).toBe(0);
    expect(Object.keys(JSON.parse(ev.stdout).classes)).toEqual(['tiles']);
  });

  it('bad input gives one clear line and exit code 2', async () => {
    const cases: [string[], RegExp][] = [
      [['train', '--data', data, '--format', 'nope', '--tasks', 'tiles', '--out', join(dir, 'x')], /--format 'nope' is not a dataset format/],
      [['train', '--data', join(dir, 'missing'), '--tasks', 'tiles', '--out', join(dir, 'x')], /does not exist/],
      [['train', '--data', data, '--tasks', 'tiles|nope', '--out', join(dir, 'x'), '--config', config], /nope/],
      [['train', '--data', data, '--tasks', 'tiles', '--out', join(dir, 'x'), '--steps', 'many'], /--steps must be an integer/],
      [['detect', join(data, 'tiles', 'test', 'good', '000.png'), '--ckpt', join(dir, 'missing'), '--out', join(dir, 'y')], /missing/],
      [['inspect', data], /manifest/],
    ];
    for (const [args, pattern] of cases) {
      const r = await ofm(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(pattern);
      expect(r.stderr.trim().split('\n').filter((l) => l.startsWith('ofm: error')).length).toBe(1);
      expect(r.stderr).not.toContain('    at ');
    }
    // A checkpoint of another format version.
    const manifestPath = join(ckpt(), 'manifest.json');
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
    const other = join(dir, 'other-version');
    await rm(other, { recursive: true, force: true });
    const { cp } = await import('node:fs/promises');
    await cp(ckpt(), other, { recursive: true });
    manifest.meta.version = 99;
    await rewriteManifest(other, manifest); // as a newer release would write it (sealed)
    const r = await ofm(['inspect', other]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/format version 99/);
  });
});
