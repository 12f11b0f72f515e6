/**
 * `ofm bench perf` through the built binary, on a tiny UNet spec: the JSON it writes, the
 * "PyTorch missing" path (a python that does not exist), the parameter-count check that refuses
 * to time two different models, and, where python3-torch is installed, a real side-by-side run.
 * Build first: `pnpm --filter @ofm/cli... build`. (Round ratios and the load check are tested in
 * packages/detector/test/experiments.test.ts, the conv shapes of the spec in
 * packages/diffusion/test/cost.test.ts.)
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ParamStore, initBackend } from '@ofm/tensor';
import { UNet, parseUNetConfig, specConvShapes } from '@ofm/diffusion';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PerfJson, formatPerfTable } from '@ofm/detector/experiments';
import { resolveSpecPath } from '../src/commands/bench';

const bin = fileURLToPath(new URL('../dist/bin.js', import.meta.url));
const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
const twin = join(repoRoot, '..', 'shared', 'peers', 'torch_unet.py');
const python = '/usr/bin/python3';
const exec = promisify(execFile);

function torchAvailable(): boolean {
  if (!existsSync(twin)) return false;
  try {
    execFileSync(python, ['-c', 'import torch'], { stdio: 'ignore', timeout: 60_000 });
    return true;
  } catch {
    return false;
  }
}
const hasTorch = torchAvailable();

const TINY = {
  image_size: 16,
  in_channels: 3,
  out_channels: 3,
  model_channels: 8,
  channel_mult: [1, 2],
  num_res_blocks: 1,
  attention_resolutions: [8],
  num_heads: 2,
  groupnorm_groups: 4,
  time_embed_dim: 16,
  batch_size: 2,
  ddim_steps: 2,
  optimizer: 'adamw',
  lr: 1e-4,
};

let dir: string;
let specPath: string;

async function ofm(args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [bin, ...args], { timeout: 120_000, cwd: dir });
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; code?: number };
    if (typeof e.code !== 'number') throw err;
    return { stdout: e.stdout ?? '', stderr: e.stderr ?? '', code: e.code };
  }
}

beforeAll(() => {
  if (!existsSync(bin)) throw new Error(`${bin} does not exist: build the CLI first with \`pnpm --filter @ofm/cli... build\``);
  dir = mkdtempSync(join(tmpdir(), 'ofm-bench-test-'));
  specPath = join(dir, 'tiny_spec.json');
  writeFileSync(specPath, JSON.stringify(TINY));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('the benchmark spec', () => {
  it('is found inside the repository from any directory (a fresh clone has no ../shared)', async () => {
    await initBackend({ backend: 'wasm' });
    for (const cwd of [process.cwd(), tmpdir()]) {
      const path = resolveSpecPath(undefined, cwd);
      expect(path.endsWith(join('bench', 'unet_spec.json'))).toBe(true);
      expect(existsSync(path)).toBe(true);
    }
    const spec = JSON.parse(readFileSync(resolveSpecPath(undefined), 'utf8'));
    const store = new ParamStore(0);
    // The model the README's table and the PyTorch twin measure: 10,917,827 parameters.
    expect(new UNet(store, parseUNetConfig(spec)).init().paramCount()).toBe(10_917_827);
    store.dispose();
  });
});

describe('ofm bench perf', () => {
  it('without PyTorch: skips the peer with the reason, times ours, writes the JSON it prints', async () => {
    const out = join(dir, 'no-peer.json');
    const missing = join(dir, 'no-such-python');
    const r = await ofm(['bench', 'perf', '--spec', specPath, '--python', missing, '--steps', '1', '--warmup', '0', '--ddim-reps', '1', '--conv-reps', '1', '--rounds', '2', '--max-load', '1000', '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`PyTorch peer skipped: python ${missing} was not found`);
    const json = JSON.parse(r.stdout) as PerfJson;
    expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual(json);

    expect(json.tool).toBe('ofm bench perf');
    expect(json.peer).toMatchObject({ status: 'skipped', python: missing });
    expect(json.peer.reason).toMatch(/apt-get install -y python3-torch/);
    expect(json.param_count).toEqual({ ours: json.param_count.ours, peer: null, match: null });
    expect(json.param_count.ours).toBeGreaterThan(1000);
    expect(json.ours.backend).toBe('wasm');
    expect(json.loadavg_start).toHaveLength(3);
    expect(json.loadavg_end).toHaveLength(3);

    const train = json.train!;
    expect(train.batch).toBe(2);
    // Two interleaved rounds of one timed step each (the warm-up only before the first).
    expect(train.ours.n).toBe(2);
    expect(train.rounds.map((x) => x.seconds.length)).toEqual([1, 1]);
    expect(train.ours.median).toBeGreaterThan(0);
    expect(train.ours.images_per_s).toBeCloseTo(2 / train.ours.median, 6);
    expect(train.ours.losses).toHaveLength(2);
    expect(train.peer).toBeNull();
    expect(train.speed_ratio).toBeNull();
    expect(train.speed_ratio_rounds).toEqual([null, null]);
    expect(json.load_check).toMatchObject({ limit: 1000, ok: true });
    expect(json.load_check.max_loadavg_1m).toBeGreaterThanOrEqual(0);

    const ddim = json.ddim!;
    expect(ddim.ddim_steps).toBe(2);
    expect(ddim.timesteps).toEqual([500, 0]); // the twin's rule: t_start = 1000 - 1000/2, linspace down to 0
    expect(ddim.ours.sec_per_image).toBeCloseTo(ddim.ours.median / 2, 9);
    expect(ddim.rounds).toHaveLength(2);

    const conv = json.conv!;
    expect(conv.rows.length).toBe(3 * specConvShapes(new UNet(new ParamStore(0), parseUNetConfig(TINY)).plan, TINY).length);
    for (const row of conv.rows) {
      expect(row.ours_gflops).toBeGreaterThan(0);
      expect(row.peer_gflops).toBeNull();
    }
    const table = formatPerfTable(json);
    expect(table).toContain('| training step, batch 2 (s/step) |');
    expect(table).toContain('PyTorch peer skipped');
  });

  it('flags a run whose load average is over --max-load, in the JSON, the table and on stderr (item 18)', async () => {
    const out = join(dir, 'busy.json');
    const r = await ofm(['bench', 'perf', '--spec', specPath, '--skip-peer', '--only', 'ddim', '--rounds', '1', '--max-load', '0.0001', '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout) as PerfJson;
    // A machine running this test has a load above 0.0001.
    expect(json.load_check.ok).toBe(false);
    expect(json.load_check.limit).toBe(0.0001);
    expect(json.notes.join('\n')).toMatch(/too busy to compare: the 1-minute load average reached [\d.]+ on \d+ CPUs \(limit 0\.0001, --max-load\)/);
    expect(r.stderr).toMatch(/warning: too busy to compare/);
    expect(formatPerfTable(json)).toMatch(/OVER the limit 0\.0001/);
    const bad = await ofm(['bench', 'perf', '--spec', specPath, '--skip-peer', '--max-load', 'x']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--max-load must be a positive number, got "x"/);
  });

  it('--backend webgpu (Mesa llvmpipe here): every workload runs, labelled software', async () => {
    const out = join(dir, 'webgpu.json');
    const missing = join(dir, 'no-such-python');
    const r = await ofm(['bench', 'perf', '--backend', 'webgpu', '--spec', specPath, '--python', missing, '--steps', '1', '--warmup', '0', '--ddim-reps', '1', '--conv-reps', '1', '--rounds', '1', '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout) as PerfJson;
    expect(json.ours).toMatchObject({ backend: 'webgpu', software_adapter: true });
    expect(json.ours.device).toMatch(/^software adapter: /);
    expect(json.train!.ours.losses).toHaveLength(1);
    expect(Number.isFinite(json.train!.ours.losses[0])).toBe(true);
    expect(json.notes.join('\n')).toMatch(/software adapter .*not GPU speed/);
    expect(json.ddim!.ours.median).toBeGreaterThan(0);
    for (const row of json.conv!.rows) expect(row.ours_gflops).toBeGreaterThan(0);
    expect(formatPerfTable(json)).toMatch(/^ofm bench perf: webgpu \(on a software adapter: .+: not GPU speed\)/);
  });

  it('rejects a missing spec and an unknown workload with exit code 2', async () => {
    const noSpec = await ofm(['bench', 'perf', '--spec', join(dir, 'nope.json')]);
    expect(noSpec.code).toBe(2);
    expect(noSpec.stderr).toMatch(/--spec .*nope\.json: no such file/);
    const badOnly = await ofm(['bench', 'perf', '--spec', specPath, '--only', 'train,fly']);
    expect(badOnly.code).toBe(2);
    expect(badOnly.stderr).toMatch(/--only train,fly: use a comma-separated subset of train, ddim, conv/);
  });

  it.skipIf(!hasTorch)('refuses to time models whose parameter counts differ', async () => {
    // The twin ignores control_channels; ours adds a control branch: different models.
    const withControl = join(dir, 'control_spec.json');
    writeFileSync(withControl, JSON.stringify({ ...TINY, control_channels: 4 }));
    const out = join(dir, 'mismatch.json');
    const r = await ofm(['bench', 'perf', '--spec', withControl, '--peer-script', twin, '--python', python, '--out', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/parameter counts differ \(ours \d+, PyTorch \d+\).*no timing is reported.*control: ours 40, PyTorch 0/);
    expect(r.stderr).not.toContain('train: ours');
    expect(existsSync(out)).toBe(false);
  });

  it.skipIf(!hasTorch)('with PyTorch: same parameter count, both sides timed, ratio = PyTorch time / ours', async () => {
    const out = join(dir, 'peer.json');
    const r = await ofm(['bench', 'perf', '--spec', specPath, '--peer-script', twin, '--python', python, '--only', 'train', '--steps', '1', '--warmup', '0', '--rounds', '2', '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout) as PerfJson;
    expect(json.peer.status).toBe('ok');
    expect(json.param_count.match).toBe(true);
    expect(json.param_count.peer).toBe(json.param_count.ours);
    expect(json.forward_gflop_per_image.ours).toBeCloseTo(json.forward_gflop_per_image.peer!, 4);
    const train = json.train!;
    expect(train.peer!.runs).toHaveLength(3); // PyTorch, ours, PyTorch, ours, PyTorch
    expect(train.peer!.n).toBe(3);
    const runs = train.peer!.runs.map((x) => x.all[0]!);
    const expected = train.rounds.map((round, i) => (runs[i]! + runs[i + 1]!) / 2 / round.seconds[0]!);
    expect(train.speed_ratio_rounds).toEqual(expected);
    expect(train.speed_ratio).toBeCloseTo((expected[0]! + expected[1]!) / 2, 9);
    expect(json.ddim).toBeUndefined();
    expect(formatPerfTable(json)).toMatch(/\| training step, batch 2 \(s\/step\) \| [\d.]+ \| [\d.]+ \| [\d.]+x \([\d.]+x-[\d.]+x, 2 rounds\) \|/);
  });
});
