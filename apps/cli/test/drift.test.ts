/**
 * Shared weights, checkpoints kept per task and the drift diagnosis through the built binary:
 * `ofm train --shared-weights --keep-tasks`, then `ofm inspect <ckpt> --drift <ckpt>.task1`;
 * the segmenter on and off; presets and their bad input.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TINY_CONFIG, ofm } from './helpers';

let dir: string;
let data: string;
let config: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ofm-cli-drift-'));
  data = join(dir, 'data');
  config = join(dir, 'tiny.json');
  await writeFile(config, JSON.stringify(TINY_CONFIG));
  const s = await ofm(['synth', '--out', data, '--classes', 'tiles,washer', '--size', '24', '--n-train', '10', '--n-test-good', '3', '--n-test-bad', '3']);
  expect(s.code).toBe(0);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('ofm inspect --drift', () => {
  it('measures what the second task of a shared-weights run changed for the first class', async () => {
    const model = join(dir, 'shared');
    const t = await ofm(['train', '--data', data, '--tasks', 'tiles|washer', '--config', config, '--out', model, '--shared-weights', '--keep-tasks', '--json', '--quiet']);
    expect(t.code, t.stderr).toBe(0);
    expect(existsSync(join(`${model}.task1`, 'manifest.json'))).toBe(true);
    expect(existsSync(join(`${model}.task2`, 'manifest.json'))).toBe(true);

    const r = await ofm(['inspect', model, '--drift', `${model}.task1`, '--data', data, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const drift = JSON.parse(r.stdout);
    expect(drift).toMatchObject({ weights: 'shared', before: { tasks: 1, classes: ['tiles'] }, after: { tasks: 2, classes: ['tiles', 'washer'] } });
    const tiles = drift.classes[0];
    expect(tiles.className).toBe('tiles');
    expect(tiles.reconstructionChange).toBeGreaterThan(0);
    expect(drift.parameters.tiles.some((g: { protection: string; relativeChange: number }) => g.protection === 'projected' && g.relativeChange > 0)).toBe(true);
    expect(drift.coverage.tiles.length).toBeGreaterThan(0);

    const text = await ofm(['inspect', model, '--drift', `${model}.task1`, '--data', data]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('recon change');
    expect(text.stdout).toContain('protected layers by input energy outside the earlier basis');
  });

  it('trains a segmenter per task by default, none with --no-segmenter or --shared-weights (ofm inspect --json)', async () => {
    // Each task's segmenter loss, null for a task without a segmenter (its seconds are null alike).
    const segmenterLoss = async (model: string) => {
      const r = await ofm(['inspect', model, '--json']);
      expect(r.code, r.stderr).toBe(0);
      const tasks: { segmenter_seconds: number | null; segmenter_loss: number | null }[] = JSON.parse(r.stdout).tasks;
      for (const t of tasks) expect(t.segmenter_seconds === null).toBe(t.segmenter_loss === null);
      return tasks.map((t) => t.segmenter_loss);
    };
    const withSeg = join(dir, 'with-segmenter');
    const t = await ofm(['train', '--data', data, '--tasks', 'tiles', '--config', config, '--out', withSeg, '--no-eval', '--quiet']);
    expect(t.code, t.stderr).toBe(0);
    expect((await segmenterLoss(withSeg))[0]).toBeGreaterThan(0);
    const without = join(dir, 'no-segmenter');
    const n = await ofm(['train', '--data', data, '--tasks', 'tiles', '--config', config, '--out', without, '--no-eval', '--quiet', '--no-segmenter']);
    expect(n.code, n.stderr).toBe(0);
    expect(await segmenterLoss(without)).toEqual([null]);
    expect(await segmenterLoss(join(dir, 'shared'))).toEqual([null, null]);
    const resumed = await ofm(['train', '--data', data, '--tasks', 'tiles|washer', '--resume', withSeg, '--no-segmenter']);
    expect(resumed.code).toBe(2);
    expect(resumed.stderr).toContain('--no-segmenter cannot change it');
  });

  it('refuses a drift without --data, and checkpoints in the wrong order', async () => {
    const model = join(dir, 'shared');
    const noData = await ofm(['inspect', model, '--drift', `${model}.task1`]);
    expect(noData.code).toBe(2);
    expect(noData.stderr).toContain('--drift needs --data');
    const swapped = await ofm(['inspect', `${model}.task1`, '--drift', model, '--data', data]);
    expect(swapped.code).toBe(2);
    expect(swapped.stderr).toContain('has not learned washer');
  });
});

describe('ofm train --preset', () => {
  it('names an unknown preset and lists the presets, before anything is written', async () => {
    const out = join(dir, 'preset');
    const r = await ofm(['train', '--data', data, '--tasks', 'tiles', '--preset', 'fast', '--out', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown preset 'fast'; presets: quick, texture, gpu-128, gpu-256");
    expect(existsSync(out)).toBe(false);
  });
});
