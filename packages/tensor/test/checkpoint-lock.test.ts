/**
 * The one-writer lock of a checkpoint directory, with real processes: a live holder refuses others
 * and is named; a killed holder's lock is stale and taken over with a notice; exiting drops it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError, acquireCheckpointLock, loadCheckpointArrays, saveCheckpoint } from '../src/checkpoint';

const here = dirname(fileURLToPath(import.meta.url));
const child = join(here, 'fixtures', 'lock-child.ts');

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'ofm-lock-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Start a child that takes the lock of `dir`; resolves once it holds it. */
async function lockInChild(dir: string, mode: 'hold' | 'exit'): Promise<{ proc: ChildProcess; exited: Promise<number | null> }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', child, dir, mode], { cwd: join(here, '..'), stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  let out = '';
  let err = '';
  proc.stderr!.on('data', (d) => {
    err += String(d);
  });
  await new Promise<void>((resolve, reject) => {
    proc.stdout!.on('data', (d) => {
      out += String(d);
      if (out.includes('LOCKED')) resolve();
    });
    exited.then((code) => (out.includes('LOCKED') ? resolve() : reject(new Error(`lock child exited (${code}): ${err}`))));
  });
  return { proc, exited };
}

async function refusal(dir: string): Promise<CheckpointError> {
  const err = await acquireCheckpointLock(dir).then(
    () => {
      throw new Error('expected the lock to be refused');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CheckpointError);
  expect((err as CheckpointError).code).toBe('locked');
  return err as CheckpointError;
}

describe('checkpoint lock', () => {
  it('refuses a second process, naming the holder; takes over the lock of a killed one with a notice', async () => {
    const dir = join(root, 'a');
    const { proc, exited } = await lockInChild(dir, 'hold');
    const err = await refusal(dir);
    expect(err.message).toContain(`process ${proc.pid} on ${hostname()} (lock-child, since `);
    expect(err.message).toMatch(/two writers would corrupt it/);

    proc.kill('SIGKILL');
    await exited;
    const notices: string[] = [];
    const lock = await acquireCheckpointLock(dir, { onNotice: (m) => notices.push(m) });
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatch(new RegExp(`took over the stale lock of process ${proc.pid} .*no longer running`));
    expect(JSON.parse(await readFile(lock.file, 'utf8'))).toMatchObject({ pid: process.pid, host: hostname() });
    await lock.release();
    expect(existsSync(lock.file)).toBe(false);
  });

  it('is counted within a process, and the lock file goes with the last release', async () => {
    const dir = join(root, 'b');
    const first = await acquireCheckpointLock(dir);
    const second = await acquireCheckpointLock(dir);
    await second.release();
    await second.release(); // twice is harmless
    expect(existsSync(first.file)).toBe(true);
    await first.release();
    expect(existsSync(first.file)).toBe(false);
  });

  it('is dropped when the holding process exits without releasing', async () => {
    const dir = join(root, 'c');
    const { exited } = await lockInChild(dir, 'exit');
    expect(await exited).toBe(0);
    const lock = await acquireCheckpointLock(dir, { onNotice: () => expect.unreachable('no stale lock expected') });
    await lock.release();
  });

  it('never takes over a lock from another host, and says how to clear it', async () => {
    const dir = join(root, 'd');
    const file = join(root, '.d.ofm-lock');
    await writeFile(file, JSON.stringify({ pid: 1, host: 'elsewhere.example', purpose: 'ofm train', since: 'then', token: 'x' }));
    const err = await refusal(dir);
    expect(err.message).toContain('process 1 on elsewhere.example (ofm train, since then)');
    expect(err.message).toContain(`delete ${file}`);
    await writeFile(file, 'garbage');
    expect((await refusal(dir)).message).toMatch(/is not a lock record/);
    await rm(file);
  });

  it('repairs an interrupted swap when taken', async () => {
    const dir = join(root, 'e');
    await saveCheckpoint(dir, { x: { data: Int32Array.of(7), shape: [1] } }, { v: 1 });
    const { rename } = await import('node:fs/promises');
    await rename(dir, join(root, '.e.ofm-old')); // what a kill between the two renames leaves
    const lock = await acquireCheckpointLock(dir);
    expect(existsSync(join(dir, 'manifest.json'))).toBe(true);
    expect((await loadCheckpointArrays(dir)).meta).toEqual({ v: 1 });
    await lock.release();
  });
});
