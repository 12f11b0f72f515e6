/**
 * A save killed with SIGKILL part-way must leave the previous checkpoint loadable. A child process
 * saves over an existing checkpoint and halts at a chosen point of the save (it prints
 * `PAUSED <phase>` from the save's progress callback, which never returns); the test then kills it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type NamedArrays, loadCheckpointArrays, saveCheckpoint } from '../src/checkpoint';
import { Rng } from '../src/rng';

const here = dirname(fileURLToPath(import.meta.url));
const child = join(here, 'fixtures', 'checkpoint-child.ts');

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'ofm-crash-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function oldArrays(): NamedArrays {
  const rng = new Rng(77);
  return { w: { data: rng.normalArray(1000), shape: [10, 100] }, step: { data: Int32Array.of(41), shape: [] } };
}

/** Run the child until it reports `PAUSED <phase>`, then SIGKILL it and wait for it to die. */
async function saveAndKill(dir: string, phase: string): Promise<void> {
  const proc: ChildProcess = spawn(process.execPath, ['--import', 'tsx', child, dir, phase, '5'], {
    cwd: join(here, '..'),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stderr!.on('data', (d) => {
    err += String(d);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on('exit', (code, signal) => resolve({ code, signal })),
  );
  await new Promise<void>((resolve, reject) => {
    proc.stdout!.on('data', (d) => {
      out += String(d);
      if (out.includes(`PAUSED ${phase}`)) resolve();
    });
    exited.then(({ code }) => reject(new Error(`child exited (${code}) before pausing: ${out} ${err}`)));
  });
  proc.kill('SIGKILL');
  const { signal } = await exited;
  expect(signal).toBe('SIGKILL');
}

async function expectOld(dir: string): Promise<void> {
  const loaded = await loadCheckpointArrays(dir);
  expect(loaded.meta).toEqual({ writer: 'parent' });
  const old = oldArrays();
  expect(Array.from(loaded.arrays.w!.data)).toEqual(Array.from(old.w!.data));
  expect(Array.from(loaded.arrays.step!.data)).toEqual([41]);
}

describe('checkpoint saves killed part-way', () => {
  it('keeps the old checkpoint when killed after the first shard of the new one', async () => {
    const dir = join(root, 'a');
    await saveCheckpoint(dir, oldArrays(), { writer: 'parent' });
    await saveAndKill(dir, 'shard-written');
    // The half-written save is visible as a temporary directory beside the checkpoint.
    expect((await readdir(root)).some((n) => n.startsWith(`.${basename(dir)}.ofm-tmp-`))).toBe(true);
    await expectOld(dir);
    // The next save removes the dead writer's leftovers.
    await saveCheckpoint(dir, oldArrays(), { writer: 'parent' });
    expect((await readdir(root)).filter((n) => n.startsWith(`.${basename(dir)}.`))).toEqual([]);
    await expectOld(dir);
  });

  it('keeps the old checkpoint when killed inside the swap, between the two renames', async () => {
    const dir = join(root, 'b');
    await saveCheckpoint(dir, oldArrays(), { writer: 'parent' });
    await saveAndKill(dir, 'swapping');
    // Only the backup is left where the checkpoint was; loading falls back to it.
    expect((await readdir(root)).includes('b')).toBe(false);
    await expectOld(dir);
    await saveCheckpoint(dir, oldArrays(), { writer: 'parent' });
    expect((await readdir(root)).filter((n) => n.startsWith('.b.'))).toEqual([]);
    await expectOld(dir);
  });

  it('completes when not killed (the child itself works)', async () => {
    const dir = join(root, 'c');
    await saveCheckpoint(dir, oldArrays(), { writer: 'parent' });
    const proc = spawn(process.execPath, ['--import', 'tsx', child, dir, 'never', '5'], { cwd: join(here, '..') });
    let out = '';
    proc.stdout.on('data', (d) => {
      out += String(d);
    });
    const code = await new Promise<number | null>((r) => proc.on('exit', r));
    expect(code).toBe(0);
    expect(out).toContain('DONE');
    const loaded = await loadCheckpointArrays(dir);
    expect(loaded.meta).toEqual({ writer: 'child' });
    expect(loaded.arrays.big!.shape).toEqual([600, 1000]);
  });
});
