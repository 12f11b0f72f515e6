/**
 * `ofm synth` through the built binary, in a subprocess (as a user runs it). Build first:
 * `pnpm --filter @ofm/cli... build`.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SYNTH_CLASSES, loadMvtec } from '@ofm/datasets';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bin, ofm } from './helpers';


let dir: string;
beforeAll(async () => {
  if (!existsSync(bin)) {
    throw new Error(`${bin} does not exist: build the CLI first with \`pnpm --filter @ofm/cli... build\``);
  }
  dir = await mkdtemp(join(tmpdir(), 'ofm-cli-synth-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const small = ['--classes', 'tiles,chip', '--size', '24', '--n-train', '3', '--n-test-good', '2', '--n-test-bad', '3', '--seed', '4'];

describe('ofm synth', () => {
  it('--json writes a dataset the MVTec loader reads, with progress on stderr', async () => {
    const out = join(dir, 'json');
    const { stdout, stderr, code } = await ofm(['synth', '--out', out, ...small, '--json']);
    expect(code).toBe(0);
    const summary = JSON.parse(stdout);
    expect(summary).toMatchObject({ out, size: 24, seed: 4, images: 16 });
    expect(summary.classes.map((c: { name: string }) => c.name)).toEqual(['tiles', 'chip']);
    expect(summary.seconds).toBeGreaterThan(0);
    expect(stderr).toContain(`synth: generating 16 images into ${out}`);
    expect(stderr).toMatch(/synth: 16\/16 images \(chip\)/);

    const ds = await loadMvtec(out);
    expect(ds.classes).toEqual(['chip', 'tiles']);
    expect(await ds.trainFiles('tiles')).toHaveLength(3);
    const test = await ds.testFiles('chip');
    expect(test.filter((r) => r.label === 1).map((r) => r.defect)).toEqual(['misplaced', 'missing', 'scratch']);
  });

  it('prints a table by default, and documents the classes in --help', async () => {
    const out = join(dir, 'table');
    const { stdout, code } = await ofm(['synth', '--out', out, ...small]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^wrote 16 images \(24 x 24, seed 4\) to /);
    expect(stdout).toMatch(/chip\s+object\s+3\s+2\s+3 \(missing 1, misplaced 1, scratch 1\)/);
    const help = await ofm(['synth', '--help']);
    for (const c of SYNTH_CLASSES) expect(help.stdout).toContain(c.name);
    expect(help.stdout).toContain('ground_truth/<defect>/000_mask.png');
  });

  it('gives one clear line and exit code 2 for bad input', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--size', 'abc'], /^ofm: error: --size must be an integer in \[8, 4096\], got "abc"\n$/],
      [['--n-train', '-1'], /^ofm: error: --n-train must be an integer >= 1, got "-1"\n$/],
      [['--classes', 'tiles,bottle'], /^ofm: error: --classes: unknown class "bottle"; choose from weave, tiles, grain, washer, chip, tablet\n$/],
    ];
    const [noOut, ...results] = await Promise.all([
      ofm(['synth']),
      ...cases.map(([args]) => ofm(['synth', '--out', join(dir, 'bad'), ...args])),
    ]);
    results.forEach((r, i) => {
      const [args, message] = cases[i]!;
      expect(r!.code, args.join(' ')).toBe(2);
      expect(r!.stderr).toMatch(message);
    });
    expect(existsSync(join(dir, 'bad'))).toBe(false);
    expect(noOut!.code).toBe(2);
    expect(noOut!.stderr).toMatch(/required option '--out <dir>' not specified/);
  });

  it('refuses to write into a non-empty folder unless --overwrite', async () => {
    const out = join(dir, 'busy');
    await mkdir(out);
    await writeFile(join(out, 'keep.txt'), 'mine');
    const r = await ofm(['synth', '--out', out, ...small]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`ofm: error: ${out}: already exists and is not empty; choose another folder or overwrite it\n`);
    expect(await readdir(out)).toEqual(['keep.txt']);
    expect((await ofm(['synth', '--out', out, ...small, '--overwrite'])).code).toBe(0);
    expect((await readdir(out)).sort()).toEqual(['chip', 'synth.json', 'tiles']);
  });

  it('leaves nothing behind when interrupted (Ctrl-C), exit code 130', async () => {
    const out = join(dir, 'interrupted');
    const child = spawn(process.execPath, [bin, 'synth', '--out', out, '--size', '96', '--n-train', '3000'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    const started = new Promise<void>((resolve) => {
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (stderr.includes('synth: generating')) resolve();
      });
    });
    await started;
    await new Promise((r) => setTimeout(r, 300));
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(130);
    expect(stderr).toContain('ofm: error: interrupted; nothing was written');
    expect(existsSync(out)).toBe(false);
    expect((await readdir(dir)).filter((n) => n.includes('interrupted'))).toEqual([]);
  });
});
