/**
 * `ofm train --backend webgpu` in CI: on this machine (no GPU) the WebGPU backend runs on Mesa's
 * llvmpipe software adapter through Dawn. The same tiny run (16 px, two tasks of three steps,
 * per-task weights) on wasm and on webgpu; the summaries must agree within 1e-4 and the detection
 * scores of `ofm detect --backend webgpu` within 1e-4 (the JSON's precision) of wasm's.
 *
 * When the adapter cannot be had (Mesa, `webgpu` or `@tensorflow/tfjs-backend-webgpu` missing),
 * `ofm train --backend webgpu` refuses with the reason and this test fails, showing it.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TINY_CONFIG, ofm } from './helpers';

const TOL = 1e-4;
let dir: string;
let data: string;
let config: string;
const runs: Record<string, { summary: Record<string, unknown>; scores: number[]; seconds: number }> = {};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ofm-cli-webgpu-'));
  data = join(dir, 'data');
  config = join(dir, 'tiny.json');
  await writeFile(config, JSON.stringify({ ...TINY_CONFIG, imageSize: 16, unet: { ...TINY_CONFIG.unet, attention_resolutions: [8] }, training: { ...TINY_CONFIG.training, steps: 3 } }));
  const s = await ofm(['synth', '--out', data, '--classes', 'tiles,washer', '--size', '16', '--n-train', '4', '--n-test-good', '2', '--n-test-bad', '2']);
  expect(s.code, s.stderr).toBe(0);
  for (const backend of ['wasm', 'webgpu']) {
    const started = Date.now();
    const model = join(dir, `model-${backend}`);
    const t = await ofm(['train', '--data', data, '--tasks', 'tiles|washer', '--out', model, '--config', config, '--backend', backend, '--json']);
    if (t.code !== 0) throw new Error(`ofm train --backend ${backend} failed (exit ${t.code}):\n${t.stderr.split('\n').filter((l) => l.startsWith('ofm:')).join('\n')}`);
    const images = ['tiles/test/good/000.png', 'washer/test/good/000.png', 'washer/test/good/001.png'].map((p) => join(data, p));
    const d = await ofm(['detect', ...images, '--ckpt', model, '--backend', backend, '--json']);
    expect(d.code, d.stderr).toBe(0);
    runs[backend] = {
      summary: JSON.parse(t.stdout),
      scores: (JSON.parse(d.stdout) as { images: Array<{ score: number }> }).images.map((i) => i.score),
      seconds: (Date.now() - started) / 1000,
    };
  }
}, 300_000);

afterAll(() => rm(dir, { recursive: true, force: true }));

describe('ofm train --backend webgpu (software adapter here)', () => {
  it('trains two tasks on webgpu and writes a checkpoint', () => {
    expect(runs.webgpu!.summary).toMatchObject({ backend: 'webgpu', tasks_learned: 2, classes: ['tiles', 'washer'] });
    expect(existsSync(join(dir, 'model-webgpu', 'manifest.json'))).toBe(true);
  });

  it(`the summary's metrics agree with wasm within ${TOL}`, () => {
    const a = runs.wasm!.summary;
    const b = runs.webgpu!.summary;
    const keys = Object.keys(a).filter((k) => typeof a[k] === 'number' && k !== 'seconds');
    expect(keys).toContain('avg_pixel_auroc');
    for (const k of keys) expect(Math.abs((a[k] as number) - (b[k] as number)), k).toBeLessThanOrEqual(TOL);
  });

  it('inspect --drift reads synchronously: --backend webgpu is refused with the reason, not run elsewhere', async () => {
    const r = await ofm(['inspect', join(dir, 'model-webgpu'), '--drift', join(dir, 'model-wasm'), '--data', data, '--backend', 'webgpu']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /^ofm: error: --backend webgpu: the WebGPU backend cannot run this command here: in Node\.js it reads GPU data only asynchronously/m,
    );
    expect(r.stderr).not.toContain('    at ');
    expect(r.stdout).toBe('');
  });

  it(`ofm detect --backend webgpu: scores within ${TOL} of wasm's`, () => {
    const a = runs.wasm!.scores;
    const b = runs.webgpu!.scores;
    expect(b).toHaveLength(a.length);
    for (const [i, v] of a.entries()) expect(Math.abs(v - b[i]!), `image ${i}`).toBeLessThanOrEqual(TOL + 1e-12);
  });
});
