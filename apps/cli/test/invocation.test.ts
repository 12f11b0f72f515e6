/**
 * How a user starts ofm from a clone (issue 19, items 1 and 2): through the root script
 * (`pnpm -s ofm`, paths from the caller's directory, stdout clean for --json), or the package's
 * `ofm` bin (`pnpm exec ofm`, `npx ofm`).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bin } from './helpers';

const exec = promisify(execFile);
const repo = fileURLToPath(new URL('../../..', import.meta.url));
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ofm-cli-invocation-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const synthArgs = (out: string) => ['synth', '--out', out, '--classes', 'tiles', '--size', '16', '--n-train', '2', '--n-test-good', '1', '--n-test-bad', '1'];

describe('starting ofm', () => {
  it('under the root script, relative paths are the caller\'s (INIT_CWD), not the repository root', async () => {
    const caller = join(dir, 'caller');
    await mkdir(caller);
    // As pnpm starts the root script `ofm`: in the repository root, the caller's directory in INIT_CWD.
    const r = await exec(process.execPath, [bin, ...synthArgs('rel')], { cwd: repo, env: { ...process.env, npm_lifecycle_event: 'ofm', INIT_CWD: caller } });
    expect(r.stdout).toContain(join(caller, 'rel'));
    expect(existsSync(join(caller, 'rel', 'synth.json'))).toBe(true);
    expect(existsSync(join(repo, 'rel'))).toBe(false);
    // Another script's INIT_CWD (vitest under pnpm test, say) is not ours to follow.
    await exec(process.execPath, [bin, ...synthArgs('here')], { cwd: dir, env: { ...process.env, npm_lifecycle_event: 'test', INIT_CWD: caller } });
    expect(existsSync(join(dir, 'here', 'synth.json'))).toBe(true);
    expect(existsSync(join(caller, 'here'))).toBe(false);
  });

  it('pnpm -s ofm from another directory: the caller\'s paths, and stdout of --json is JSON alone', async () => {
    const caller = join(dir, 'with pnpm');
    await mkdir(caller);
    const r = await exec('pnpm', ['-s', '-C', repo, 'ofm', ...synthArgs('data'), '--json'], { cwd: caller });
    expect(JSON.parse(r.stdout).out).toBe(join(caller, 'data'));
    expect(existsSync(join(caller, 'data', 'synth.json'))).toBe(true);
  });

  it('the ofm bin: pnpm exec ofm and npx ofm in the repository', async () => {
    expect(existsSync(join(repo, 'node_modules', '.bin', 'ofm'))).toBe(true);
    const viaExec = await exec('pnpm', ['exec', 'ofm', '--version'], { cwd: repo });
    expect(viaExec.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    const viaNpx = await exec('npx', ['--no-install', 'ofm', ...synthArgs(join(dir, 'npx')), '--json'], { cwd: repo });
    expect(JSON.parse(viaNpx.stdout).out).toBe(join(dir, 'npx'));
  });
});
