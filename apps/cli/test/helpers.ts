/** Running the built `ofm` binary in a subprocess, as a user does. Build first: `pnpm --filter @ofm/cli... build`. */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DEFAULT_DETECTOR_CONFIG, TINY_DETECTOR_CONFIG } from '@ofm/detector';
import { expect } from 'vitest';

export const bin = fileURLToPath(new URL('../dist/bin.js', import.meta.url));
const exec = promisify(execFile);

export interface OfmResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Run `ofm ...args`; never throws on a non-zero exit (the code is returned). */
export async function ofm(args: string[], env: Record<string, string | undefined> = {}, timeout = 300_000): Promise<OfmResult> {
  if (!existsSync(bin)) throw new Error(`${bin} does not exist: build the CLI first with \`pnpm --filter @ofm/cli... build\``);
  const childEnv: Record<string, string | undefined> = { ...process.env, ...env };
  for (const key of Object.keys(childEnv)) if (childEnv[key] === undefined) delete childEnv[key];
  try {
    const { stdout, stderr } = await exec(process.execPath, [bin, ...args], { env: childEnv as NodeJS.ProcessEnv, timeout, maxBuffer: 64 * 1024 * 1024 });
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; code?: number };
    if (typeof e.code !== 'number') throw err;
    return { stdout: e.stdout ?? '', stderr: e.stderr ?? '', code: e.code };
  }
}

/**
 * A tiny detector config for end-to-end tests (24 px images, a few steps): pass it with --config.
 * The detector's tiny config with 5 steps at the default learning rate.
 */
export const TINY_CONFIG = {
  ...TINY_DETECTOR_CONFIG,
  training: { ...TINY_DETECTOR_CONFIG.training, steps: 5, lr: DEFAULT_DETECTOR_CONFIG.training.lr },
};

/** A refusal of bad input: exit code 2, one `ofm: error:` line matching `pattern`, no stack trace or raw system error. */
export function expectRefused(r: OfmResult, pattern: RegExp, what = ''): void {
  expect(r.code, `${what}: ${r.stderr}`).toBe(2);
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('ofm: error:'));
  expect(errors, r.stderr).toHaveLength(1);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr).not.toMatch(/^error:/m);
  expect(r.stderr).not.toContain('    at ');
  expect(r.stderr).not.toMatch(/ENOTDIR|ENOENT|EISDIR/);
}

/**
 * In `dir`: the synthetic classes tiles, washer and chip (24 px, `data/`), the tiny config
 * (`tiny.json`) and, unless `train` is false, a checkpoint of tiles | washer (`model/`).
 */
export async function tinyFixture(dir: string, train = true): Promise<{ data: string; config: string; ckpt: string }> {
  const data = join(dir, 'data');
  const config = join(dir, 'tiny.json');
  const ckpt = join(dir, 'model');
  await writeFile(config, JSON.stringify(TINY_CONFIG));
  const s = await ofm(['synth', '--out', data, '--classes', 'tiles,washer,chip', '--size', '24', '--n-train', '10', '--n-test-good', '3', '--n-test-bad', '3']);
  expect(s.code, s.stderr).toBe(0);
  if (train) {
    const t = await ofm(['train', '--data', data, '--tasks', 'tiles|washer', '--out', ckpt, '--config', config, '--backend', 'wasm', '--quiet']);
    expect(t.code, t.stderr).toBe(0);
  }
  return { data, config, ckpt };
}
