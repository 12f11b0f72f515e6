/**
 * An interrupted `ofm train` as a new user meets it (issue 19): Ctrl-C acts within seconds, the
 * command it prints continues the run when pasted into a shell, and the summary counts the tasks
 * this run learned.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shellQuote } from '../src/invocation';
import { TINY_CONFIG, bin, ofm, tinyFixture } from './helpers';

const exec = promisify(execFile);
let dir: string;
let data: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ofm-cli-interrupt-'));
  ({ data } = await tinyFixture(dir, false));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Spawn `ofm args`, collecting stderr. */
function start(args: string[]): { proc: ChildProcess; stderr: () => string; exited: Promise<number | null> } {
  const proc = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d) => {
    stderr += String(d);
  });
  return { proc, stderr: () => stderr, exited: new Promise((done) => proc.on('exit', (code) => done(code))) };
}

describe('an interrupted ofm train', () => {
  it('acts on Ctrl-C within seconds and prints a command that continues it as pasted (items 7, 8); a resume counts its own tasks (item 9)', async () => {
    const out = join(dir, 'my model');
    const config = join(dir, 'forty-steps.json');
    await writeFile(config, JSON.stringify({ ...TINY_CONFIG, training: { ...TINY_CONFIG.training, steps: 40 } }));
    const run = start(['train', '--data', data, '--tasks', 'tiles|washer', '--out', out, '--config', config, '--backend', 'wasm', '--snapshot-every', '1']);
    for (let waited = 0; !/task 1\/2 training/.test(run.stderr()); waited += 20) {
      expect(waited, run.stderr()).toBeLessThan(60_000);
      await new Promise((r) => setTimeout(r, 20));
    }
    const signalled = Date.now();
    run.proc.kill('SIGINT');
    const code = await run.exited;
    expect(Date.now() - signalled).toBeLessThan(10_000);
    expect(code, run.stderr()).toBe(130);
    const lines = run.stderr().split('\n');
    const at = lines.findIndex((l) => l.startsWith('ofm: error: interrupted; ') && l.endsWith('continue with:'));
    expect(at, run.stderr()).toBeGreaterThanOrEqual(0);
    const command = lines[at + 1]!.trim();
    expect(shellQuote(out)).toBe(`'${out}'`);
    expect(command).toBe(`ofm train --resume '${out}' --data ${shellQuote(data)} --tasks 'tiles|washer' --backend wasm`);
    // Pasted into a shell in another directory (ofm being the built binary), it finishes the run.
    const pasted = await exec('sh', ['-c', command.replace(/^ofm /, `${shellQuote(process.execPath)} ${shellQuote(bin)} `)], { cwd: tmpdir() });
    expect(pasted.stdout).toMatch(/^learned 2 task\(s\) in /m);

    // A resume that learns one more task says so, and how many the checkpoint holds.
    const more = await ofm(['train', '--data', data, '--tasks', 'tiles|washer|chip', '--resume', out]);
    expect(more.code, more.stderr).toBe(0);
    expect(more.stdout).toMatch(/^learned 1 task\(s\) in [\d.]+ min \(the checkpoint now holds 3\); checkpoint /m);
  });

  it('--json counts the tasks of this run as tasks_learned_now (item 9)', async () => {
    const out = join(dir, 'json model');
    const config = join(dir, 'tiny.json');
    const first = await ofm(['train', '--data', data, '--tasks', 'tiles', '--out', out, '--config', config, '--no-eval', '--json']);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ tasks_learned: 1, tasks_learned_now: 1 });
    const second = await ofm(['train', '--data', data, '--tasks', 'tiles|washer', '--resume', out, '--no-eval', '--json']);
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ tasks_learned: 2, tasks_learned_now: 1 });
  });
});
