/**
 * `ofm export` through the built binary: the size line, `--json`, and one clear line with exit
 * code 2 for bad input. (What an export holds, and that it detects as the checkpoint does, is
 * tested in @ofm/detector; the browser path in the web demo's end-to-end test.)
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContinualDetector, saveDetector } from '@ofm/detector';
import { initBackend } from '@ofm/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ofm } from './helpers';

let dir: string;
const ckpt = () => join(dir, 'checkpoint');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ofm-cli-export-'));
  await initBackend({ backend: 'wasm' });
  // A checkpoint as `ofm train` writes it (an untrained model is enough to export).
  const detector = new ContinualDetector({ imageSize: 16, unet: { model_channels: 8, channel_mult: [1, 2], attention_resolutions: [], groupnorm_groups: 4 } });
  await saveDetector(detector, ckpt());
  detector.dispose();
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('ofm export', () => {
  it('exports a checkpoint and prints its size; --json for scripts', async () => {
    const text = await ofm(['export', ckpt(), '--out', join(dir, 'model')]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^exported .*checkpoint to .*model: [\d.]+ (KiB|MiB) \(weights [\d.]+ (KiB|MiB) in 1 shard, no report\)$/m);
    expect(text.stdout).toMatch(/pnpm demo --model /);
    const r = await ofm(['export', ckpt(), '--out', join(dir, 'model'), '--json']);
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(info).toMatchObject({ format_version: 1, weight_files: 1, report: null, image_size: 16, classes: [], tasks: [] });
    expect(info.weight_bytes).toBe(4 * info.parameters);
    expect(info.bytes).toBeGreaterThan(info.weight_bytes);
    expect(existsSync(join(dir, 'model', 'manifest.json'))).toBe(true);
  });

  it('bad input: one clear line, exit code 2', async () => {
    const cases: [string[], RegExp][] = [
      [['export', join(dir, 'missing'), '--out', join(dir, 'x')], /missing.*does not exist/],
      [['export', join(dir, 'model'), '--out', join(dir, 'x')], /is already an exported model/],
      [['export', ckpt(), '--out', ckpt()], /refusing to replace it/],
      [['export', ckpt()], /required option '--out <dir>'/],
    ];
    for (const [args, pattern] of cases) {
      const r = await ofm(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(pattern);
      expect(r.stderr).not.toContain('    at ');
    }
  });
});
