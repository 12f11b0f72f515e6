/**
 * Fault injection through the built `ofm` binary, as a user meets faults:
 *
 * - kill `ofm train` at seeded random moments (SIGKILL, SIGINT, SIGTERM) and check that what is on
 *   disk is never corrupt, that `--resume` finishes the run, and that the result is bit for bit
 *   the one of an uninterrupted run (mid-task snapshots continue training exactly);
 * - damage each file of a checkpoint in turn (truncate, flip a byte, delete) and check that the
 *   damage is detected and the file named;
 * - feed `ofm detect` odd and broken images under hostile file names: handled, or refused with one
 *   line naming the file and nothing written.
 *
 * The tallies are printed at the end (kills survived / tried, corruptions detected / tried, fuzz
 * inputs / crashes).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { cp, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { CheckpointError, type CheckpointManifest, Rng, loadCheckpointArrays, readManifest, verifyCheckpoint } from '@ofm/tensor';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TINY_CONFIG, bin, ofm } from './helpers';

let dir: string;
let data: string;
let config: string;
let reference: string;
let referenceSeconds = 0;
const TASKS = 'tiles|washer';
const tally = { kills: 0, survived: 0, staleLocksTakenOver: 0, corruptions: 0, detected: 0, fuzzInputs: 0, fuzzCrashes: 0 };
const states: string[] = [];

/** SHA-256 over a checkpoint's binary files (the weights and bases), in name order. */
function weightsDigest(path: string): string {
  const h = createHash('sha256');
  for (const f of readdirSync(path).filter((f) => f.endsWith('.bin')).sort()) h.update(readFileSync(join(path, f)));
  return h.digest('hex');
}

const trainArgs = (out: string) => ['train', '--data', data, '--tasks', TASKS, '--backend', 'wasm', '--json', '--out', out];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ofm-faults-'));
  data = join(dir, 'data');
  config = join(dir, 'tiny.json');
  await writeFile(config, JSON.stringify({ ...TINY_CONFIG, training: { ...TINY_CONFIG.training, steps: 9 } }));
  const s = await ofm(['synth', '--out', data, '--classes', 'tiles,washer', '--size', '24', '--n-train', '10', '--n-test-good', '3', '--n-test-bad', '3']);
  expect(s.code).toBe(0);
  reference = join(dir, 'reference');
  const started = Date.now();
  const r = await ofm([...trainArgs(reference), '--config', config, '--no-snapshots']);
  referenceSeconds = (Date.now() - started) / 1000;
  expect(r.code, r.stderr).toBe(0);
});

it('never overwrites a checkpoint by accident', async () => {
  const again = await ofm([...trainArgs(reference), '--config', config]);
  expect(again.code).toBe(2);
  expect(again.stderr).toMatch(/--out '.*reference' already holds a checkpoint with 2 task\(s\); continue it with --resume/);
});
afterAll(async () => {
  console.info(
    `fault injection: kills survived ${tally.survived}/${tally.kills} (stale locks taken over: ${tally.staleLocksTakenOver}; ` +
      `states found: ${states.join('; ')}), corruptions detected ${tally.detected}/${tally.corruptions}, ` +
      `ofm detect fuzz ${tally.fuzzInputs} inputs / ${tally.fuzzCrashes} crashes`,
  );
  await rm(dir, { recursive: true, force: true });
});

/** Spawn `ofm args`, collecting output; `exited` resolves with the exit code and signal. */
function start(args: string[]): { proc: ChildProcess; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> } {
  const proc = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d) => {
    stderr += String(d);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) =>
    proc.on('exit', (code, signal) => resolve({ code, signal, stderr })),
  );
  return { proc, exited };
}

/** What a killed run left: the consolidated checkpoint and the snapshot, each verified in full. */
async function inspectLeftovers(out: string): Promise<string> {
  const parts: string[] = [];
  let manifest: CheckpointManifest<{ tasks: unknown[] }> | null = null;
  try {
    manifest = await readManifest(out);
  } catch (e) {
    expect((e as CheckpointError).code, (e as Error).message).toMatch(/^missing/);
  }
  if (manifest) {
    await verifyCheckpoint(out); // every file's size and SHA-256
    parts.push(`checkpoint of ${manifest.meta.tasks.length} task(s)`);
  }
  const snapshot = join(out, 'snapshot');
  if (existsSync(join(snapshot, 'manifest.json'))) {
    const m = await verifyCheckpoint<{ task: number; step: number }>(snapshot);
    parts.push(`snapshot of task ${m.meta.task + 1} at step ${m.meta.step}`);
  }
  return parts.length ? parts.join(' + ') : 'nothing written';
}

describe('ofm train killed at random moments', () => {
  const plan: { seed: number; signal: NodeJS.Signals }[] = [
    { seed: 1, signal: 'SIGKILL' },
    { seed: 2, signal: 'SIGINT' },
    { seed: 3, signal: 'SIGKILL' },
    { seed: 4, signal: 'SIGTERM' },
  ];
  it.each(plan)('seed $seed, $signal: nothing corrupt, --resume finishes, same bits as an uninterrupted run', async ({ seed, signal }) => {
    const out = join(dir, `killed-${seed}`);
    // A moment anywhere from start-up to the end of the run (the reference run's time).
    const delay = 1000 * new Rng(seed).range(0.5, 0.95 * referenceSeconds);
    const first = start([...trainArgs(out), '--config', config, '--snapshot-every', '2']);
    if (seed === 1) {
      // A second writer while the first holds the lock: refused, naming the first.
      const lock = join(dir, `.${basename(out)}.ofm-lock`);
      for (let waited = 0; !existsSync(lock); waited += 50) {
        expect(waited, 'the first ofm train never took the lock').toBeLessThan(60_000);
        await new Promise((r) => setTimeout(r, 50));
      }
      const second = await ofm(['train', '--data', data, '--tasks', TASKS, '--backend', 'wasm', '--resume', out]);
      expect(second.code).toBe(2);
      expect(second.stderr).toMatch(new RegExp(`ofm: error: .*${out} is being written by process ${first.proc.pid} on .*\\(ofm train, since`));
    }
    const timer = setTimeout(() => first.proc.kill(signal), delay);
    const ended = await first.exited;
    clearTimeout(timer);
    if (ended.code === 0) return; // finished before the signal: nothing to survive
    tally.kills += 1;
    if (signal === 'SIGKILL') expect(ended.signal).toBe('SIGKILL');
    else if (ended.stderr.includes('stopping after the current step')) {
      // The handler ran: the exit code says which signal, and the message says what was kept.
      expect(ended.code).toBe(signal === 'SIGINT' ? 130 : 143);
      expect(ended.stderr).toMatch(/ofm: error: interrupted; /);
    }
    const state = await inspectLeftovers(out);
    states.push(`${signal} at ${(delay / 1000).toFixed(1)} s: ${state}`);

    // Progress on stderr (no --json) says whether the task in training continued from its snapshot.
    const again = ['train', '--data', data, '--tasks', TASKS, '--backend', 'wasm'];
    const resumed = await ofm(state === 'nothing written' ? [...again, '--out', out, '--config', config] : [...again, '--resume', out]);
    expect(resumed.code, resumed.stderr).toBe(0);
    if (/took over the stale lock/.test(resumed.stderr)) tally.staleLocksTakenOver += 1;
    if (/snapshot of task (\d+) at step (\d+)/.test(state)) expect(resumed.stderr).toMatch(/continuing training from its snapshot at step/);
    expect(weightsDigest(out)).toBe(weightsDigest(reference));
    expect(readdirSync(out)).not.toContain('snapshot');
    expect(readdirSync(dirname(out)).filter((n) => n.startsWith(`.${basename(out)}.`))).toEqual([]);
    tally.survived += 1;
  });
});

/** Damage `file` of checkpoint `ckpt` in one of three ways. */
async function damage(ckpt: string, file: string, how: 'truncate' | 'flip' | 'delete', rng: Rng): Promise<void> {
  const path = join(ckpt, file);
  if (how === 'delete') return rm(path);
  const bytes = await readFile(path);
  if (how === 'truncate') return truncate(path, rng.int(bytes.length));
  bytes[rng.int(bytes.length)] ^= 0xff;
  await writeFile(path, bytes);
}

describe('a damaged checkpoint', () => {
  it('is detected for every file and every kind of damage, naming the file', async () => {
    const manifest = await readManifest(reference);
    const files = ['manifest.json', ...manifest.files.map((f) => f.path), ...(manifest.attachments ?? []).map((f) => f.path)];
    expect(files.length).toBeGreaterThan(5);
    const rng = new Rng(11);
    for (const file of files) {
      for (const how of ['truncate', 'flip', 'delete'] as const) {
        const copy = join(dir, 'damaged');
        await rm(copy, { recursive: true, force: true });
        await cp(reference, copy, { recursive: true });
        await damage(copy, file, how, rng);
        tally.corruptions += 1;
        const err = await verifyCheckpoint(copy).then(
          () => null,
          (e: unknown) => e,
        );
        expect(err, `${how} ${file}`).toBeInstanceOf(CheckpointError);
        expect((err as Error).message, `${how} ${file}`).toContain(file);
        // What a loader reads (manifest and weights) is refused by loading as well.
        if (!manifest.attachments?.some((a) => a.path === file)) {
          await expect(loadCheckpointArrays(copy), `${how} ${file}`).rejects.toThrow(file);
        }
        tally.detected += 1;
      }
    }
    // Through the CLI: detection refuses a damaged shard; inspect --verify names a damaged report file.
    const copy = join(dir, 'damaged');
    await rm(copy, { recursive: true, force: true });
    await cp(reference, copy, { recursive: true });
    await damage(copy, manifest.files[0]!.path, 'flip', rng);
    const attachment = manifest.attachments![0]!.path;
    await damage(copy, attachment, 'truncate', rng);
    const image = join(data, 'tiles', 'test', 'good', '000.png');
    const detect = await ofm(['detect', image, '--ckpt', copy, '--out', join(dir, 'never')]);
    expect(detect.code).toBe(2);
    expect(detect.stderr).toMatch(new RegExp(`ofm: error: .*${manifest.files[0]!.path} fails its SHA-256 check`));
    expect(existsSync(join(dir, 'never'))).toBe(false);
    await cp(join(reference, manifest.files[0]!.path), join(copy, manifest.files[0]!.path));
    const inspect = await ofm(['inspect', copy, '--verify']);
    expect(inspect.code).toBe(2);
    expect(inspect.stderr).toMatch(new RegExp(`ofm: error: .*${attachment.replace(/[.]/g, '\\.')} has \\d+ bytes but the manifest lists`));
    expect((await ofm(['inspect', reference, '--verify'])).stdout).toContain('verified: every file matches');
  });
});

describe('ofm detect on odd and broken images', () => {
  it('handles every pixel layout under hostile names, and refuses broken files with one line, writing nothing', async () => {
    const odd = join(dir, 'odd imägés 图');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(odd, { recursive: true });
    const px = (w: number, h: number, channels: 1 | 2 | 3 | 4, v: number) =>
      sharp(Buffer.alloc(w * h * channels, v), { raw: { width: w, height: h, channels } });
    const valid: Record<string, Buffer> = {
      'grey scale.png': await px(40, 40, 1, 90).png().toBuffer(),
      'rgba ✓.png': await px(40, 40, 4, 120).png().toBuffer(),
      'sixteen bit é.png': await px(30, 50, 3, 60).toColourspace('rgb16').png().toBuffer(),
      '写真 one.jpg': await px(64, 64, 3, 140).jpeg().toBuffer(),
    };
    const paths = Object.keys(valid).map((name) => join(odd, name));
    await Promise.all(paths.map((p) => writeFile(p, valid[basename(p)]!)));
    const out = join(dir, 'detect out é');
    const r = await ofm(['detect', ...paths, '--ckpt', reference, '--out', out, '--json']);
    tally.fuzzInputs += paths.length;
    if (r.code !== 0) tally.fuzzCrashes += paths.length;
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.images.map((i: { path: string }) => i.path)).toEqual(paths);
    for (const i of result.images) {
      expect(existsSync(i.overlay)).toBe(true);
      expect(Number.isFinite(i.score)).toBe(true);
    }

    const good = join(data, 'tiles', 'test', 'good', '000.png');
    const png = await readFile(good);
    const rng = new Rng(5);
    const broken: Record<string, Buffer | 'folder'> = {
      'empty file.png': Buffer.alloc(0),
      'truncated ✂.png': png.subarray(0, rng.int(png.length)),
      'random bytes.jpg': Buffer.from(Array.from({ length: 2048 }, () => rng.int(256))),
      'a folder.png': 'folder',
    };
    for (const [name, bytes] of Object.entries(broken)) {
      const path = join(odd, name);
      if (bytes === 'folder') await mkdir(path);
      else await writeFile(path, bytes);
      const target = join(dir, `refused ${name}`);
      const bad = await ofm(['detect', good, path, '--ckpt', reference, '--out', target]);
      tally.fuzzInputs += 1;
      const clean = bad.code === 2 && !bad.stderr.includes('    at ');
      if (!clean) tally.fuzzCrashes += 1;
      expect(bad.code, bad.stderr).toBe(2);
      const errors = bad.stderr.split('\n').filter((l) => l.startsWith('ofm: error'));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toContain(path);
      expect(bad.stderr).not.toContain('    at ');
      expect(existsSync(target)).toBe(false);
      expect(readdirSync(dir).filter((n) => n.includes('.tmp-'))).toEqual([]);
    }
    expect(tally.fuzzCrashes).toBe(0);
  });
});

describe('ofm detect stopped while it writes', () => {
  it('removes its half-written outputs on Ctrl-C and exits 130', async () => {
    // Many copies of one image: the overlays take long enough to write that the signal lands then.
    const image = join(data, 'tiles', 'test', 'good', '000.png');
    const parent = join(dir, 'interrupted detect');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(parent);
    const out = join(parent, 'out');
    const proc = spawn(process.execPath, [bin, 'detect', ...Array<string>(400).fill(image), '--ckpt', reference, '--out', out], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    proc.stderr!.on('data', (chunk) => {
      stderr += String(chunk);
    });
    const exited = new Promise<number | null>((done) => proc.on('exit', (code) => done(code)));
    // Signal as soon as the temporary output folder exists (the outputs are being written).
    let signalled = false;
    const deadline = Date.now() + 120_000;
    while (!signalled && proc.exitCode === null && Date.now() < deadline) {
      if (readdirSync(parent).some((n) => n.includes('.tmp-'))) {
        proc.kill('SIGINT');
        signalled = true;
      } else await new Promise((r) => setTimeout(r, 2));
    }
    const code = await exited;
    expect(signalled, `detect ended before its outputs were written: ${stderr}`).toBe(true);
    expect(code, stderr).toBe(130);
    expect(readdirSync(parent)).toEqual([]);
  });
});
