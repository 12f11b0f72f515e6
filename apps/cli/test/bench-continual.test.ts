/**
 * `ofm bench continual` through the built binary on a tiny config: two tasks, four methods and the
 * `knn` reference, two runs at once; the table's structure and the properties every benchmark must
 * have; a second invocation reuses the finished runs; bad input. Build first: `pnpm --filter @ofm/cli... build`.
 * (The methods, representation memory and the table itself are tested in
 * packages/detector/test/experiments.test.ts.)
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BenchJson, RunResult } from '@ofm/detector/experiments';
import { TINY_CONFIG, ofm } from './helpers';

let dir: string;
let data: string;
let config: string;

/**
 * The tiny model of train.test.ts, collecting more rows than the layers are wide (8 reconstruction
 * calls of up to 128 rows per layer and task against input dimensions of at most 288), the regime
 * where a naive representation matrix outgrows the iSVD factor.
 */
const TINY = { ...TINY_CONFIG, continual: { collectImages: 8, maxRowsPerCall: 128 }, inferenceBatch: 2 };
const METHODS = ['finetune', 'gpm', 'ofm', 'ofm-shared', 'joint', 'knn'];
const args = () => ['bench', 'continual', '--data', data, '--tasks', 'tiles|washer', '--methods', METHODS.join(','), '--config', config, '--jobs', '2', '--backend', 'wasm', '--out', join(dir, 'bench')];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ofm-cli-bench-continual-'));
  data = join(dir, 'data');
  config = join(dir, 'tiny.json');
  await writeFile(config, JSON.stringify(TINY));
  const s = await ofm(['synth', '--out', data, '--classes', 'tiles,washer', '--size', '24', '--n-train', '10', '--n-test-good', '3', '--n-test-bad', '3']);
  expect(s.code).toBe(0);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('ofm bench continual', () => {
  it('runs every method as its own process and writes the table', async () => {
    const r = await ofm(args());
    expect(r.stderr).not.toContain('    at ');
    expect(r.code, r.stderr).toBe(0);
    const out = join(dir, 'bench');
    const table: BenchJson = JSON.parse(readFileSync(join(out, 'benchmark.json'), 'utf8'));
    expect(table.complete).toBe(true);
    expect(table.tasks).toEqual([['tiles'], ['washer']]);
    expect(table.machine.cpus).toBeGreaterThan(0);
    expect(table.machine.backends).toEqual(['wasm']);
    expect(table.command).toContain('bench continual');
    expect(table.rows.map((row) => row.method)).toEqual(METHODS);
    const row = Object.fromEntries(table.rows.map((x) => [x.method, x]));
    for (const x of table.rows) {
      expect(x.runs).toBe(1);
      for (const k of ['image_auroc', 'pixel_auroc', 'pixel_ap', 'pixel_aupro'] as const) {
        expect(x[k]).toBeGreaterThanOrEqual(0);
        expect(x[k]).toBeLessThanOrEqual(1);
        expect(x[`${k}_std`]).toBeNull(); // one seed
      }
      expect(x.seconds).toBeGreaterThan(0);
    }
    // Two tasks: forgetting is defined for the sequential methods, not for joint (one task).
    for (const m of ['finetune', 'gpm', 'ofm', 'ofm-shared', 'knn']) expect(typeof row[m]!.image_auroc_forgetting).toBe('number');
    for (const k of ['image_auroc', 'pixel_auroc', 'pixel_ap', 'pixel_aupro'] as const) expect(row.joint![`${k}_forgetting`]).toBeNull();
    // Without projection (and with per-task weights) nothing is collected or kept.
    for (const m of ['finetune', 'joint', 'ofm']) {
      expect(row[m]!.basis_bytes).toBe(0);
      expect(row[m]!.representation_peak_bytes).toBe(0);
    }
    // Projection keeps bases; the same representation stream costs the naive GPM the whole matrix, iSVD less.
    expect(row.gpm!.basis_bytes).toBeGreaterThan(0);
    expect(row['ofm-shared']!.basis_bytes).toBeGreaterThan(0);
    expect(row['ofm-shared']!.representation_matrix_bytes).toBe(row.gpm!.representation_matrix_bytes);
    expect(row.gpm!.representation_peak_bytes).toBeGreaterThanOrEqual(row.gpm!.representation_matrix_bytes!);
    expect(row['ofm-shared']!.representation_peak_bytes).toBeLessThan(row.gpm!.representation_peak_bytes!);
    // The reference holds its patch banks (4096 entries at most per class, 15 float32 features) and collects no representations.
    expect(row.knn!.basis_bytes).toBeGreaterThan(0);
    expect(row.knn!.basis_bytes).toBeLessThanOrEqual(2 * 4096 * 15 * 4);
    expect(row.knn!.representation_peak_bytes).toBeNull();
    expect(row.knn!.representation_matrix_bytes).toBeNull();
    expect(table.comparisons.map((c) => c.claim)).toEqual([
      'ofm forgets at most 2 points of image AUROC',
      'ofm within 3 points of joint (final image AUROC)',
    ]);

    // Each run kept its own result, checkpoint and log; joint learned one task with the steps of both.
    for (const m of METHODS) {
      const id = `${m}-seed0`;
      const res: RunResult = JSON.parse(readFileSync(join(out, 'runs', `${id}.json`), 'utf8'));
      expect(res.method).toBe(m);
      // The reference writes its report only (no model to checkpoint).
      expect(existsSync(join(out, 'runs', id, m === 'knn' ? 'report/report.json' : 'manifest.json'))).toBe(true);
      expect(existsSync(join(out, 'runs', `${id}.log`))).toBe(true);
      expect(res.per_task).toHaveLength(m === 'joint' ? 1 : 2);
      expect(res.config.training.steps).toBe(m === 'joint' ? 10 : 5);
      expect(res.config.continual.factorizer).toBe(m === 'gpm' ? 'naive' : 'isvd');
    }
    const md = readFileSync(join(out, 'benchmark.md'), 'utf8');
    expect(md).toContain('| method | image AUROC | pixel AUROC | pixel AP | AUPRO |');
    for (const m of METHODS) expect(md).toMatch(new RegExp(`^\\| ${m} \\|`, 'm'));
    // Finite numbers in the four metrics and their four forgetting columns.
    expect(md).toMatch(/^\| knn \| (-?\d+\.\d \| ){8}/m);
    expect(r.stdout).toBe(md);
  }, 300_000); // about 40 s of CPU over two processes: minutes when the machine is shared

  it('reuses finished runs and prints flat JSON', async () => {
    const runFile = join(dir, 'bench', 'runs', 'ofm-seed0.json');
    const before = readFileSync(runFile, 'utf8');
    const r = await ofm([...args(), '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(runFile, 'utf8')).toBe(before);
    const summary = JSON.parse(r.stdout);
    expect(summary).toMatchObject({ tool: 'ofm bench continual', version: 1, complete: true, seeds: [0] });
    const table: BenchJson = JSON.parse(readFileSync(join(dir, 'bench', 'benchmark.json'), 'utf8'));
    expect(summary.rows).toEqual(table.rows);
    for (const row of summary.rows) for (const v of Object.values(row)) expect(typeof v === 'object' && v !== null && !Array.isArray(v)).toBe(false);
  });

  it('bad input gives one clear line and exit code 2', async () => {
    const other = join(dir, 'other.json');
    await writeFile(other, JSON.stringify({ ...TINY, training: { ...TINY.training, steps: 6 } }));
    const badFactorizer = join(dir, 'bad.json');
    await writeFile(badFactorizer, JSON.stringify({ ...TINY, continual: { factorizer: 'svd' } }));
    const withConfig = (file: string) => args().map((a) => (a === config ? file : a));
    const cases: [string[], RegExp][] = [
      [['bench', 'continual', '--data', data, '--tasks', 'tiles|washer', '--methods', 'ofm,nope', '--out', join(dir, 'x')], /unknown method 'nope'/],
      [['bench', 'continual', '--data', data, '--tasks', 'tiles|washer', '--seeds', '1,x', '--out', join(dir, 'x')], /--seeds must be an integer/],
      [withConfig(other), /holds a result of another configuration/],
      [withConfig(badFactorizer), /continual\.factorizer: must be one of 'isvd', 'naive', got "svd"/],
    ];
    for (const [a, pattern] of cases) {
      const r = await ofm(a);
      expect(r.code, a.join(' ')).toBe(2);
      expect(r.stderr).toMatch(pattern);
      expect(r.stderr).not.toContain('    at ');
    }
  });
});
