/**
 * Errors become exit codes in one place (`exitCodeOf` in src/cli.ts), by the kind the packages'
 * typed errors carry: through the built binary with real bad input, one `ofm: error:` line each,
 * and in-process for every kind (interruptions by a real signal are in interrupt.test.ts and
 * faults.test.ts).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AbortError, ConfigError, DataError, NumericError } from '@ofm/errors';
import { ExperimentError } from '@ofm/detector/experiments';
import { CheckpointError } from '@ofm/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exitCodeOf } from '../src/cli';
import { CliError, EXIT } from '../src/errors';
import { TINY_CONFIG, type OfmResult, ofm, tinyFixture } from './helpers';

let dir: string;
let data: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ofm-cli-exit-codes-'));
  ({ data } = await tinyFixture(dir, false));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Exit code `code`, exactly one `ofm: error:` line matching `pattern`, no stack trace. */
function expectError(r: OfmResult, code: number, pattern: RegExp): void {
  expect(r.code, r.stderr).toBe(code);
  const lines = r.stderr.split('\n').filter((l) => l.startsWith('ofm: error:'));
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toContain('    at ');
}

describe('exit codes through the built binary', () => {
  it('config: an unknown key in --config is a ConfigError, exit 2', async () => {
    const config = join(dir, 'bad-key.json');
    await writeFile(config, JSON.stringify({ ...TINY_CONFIG, trainig: { steps: 5 } }));
    const r = await ofm(['train', '--data', data, '--tasks', 'tiles', '--out', join(dir, 'never'), '--config', config]);
    expectError(r, 2, /^ofm: error: --config '.*bad-key\.json': .*trainig/);
  });

  it('data: a missing --data folder (CliError) and a folder that is not a dataset (DatasetError), exit 2', async () => {
    const missing = await ofm(['train', '--data', join(dir, 'no-such-folder'), '--tasks', 'tiles', '--out', join(dir, 'never')]);
    expectError(missing, 2, /^ofm: error: --data '.*no-such-folder' does not exist/);
    const empty = join(dir, 'empty');
    await mkdir(empty);
    const notData = await ofm(['train', '--data', empty, '--tasks', 'tiles', '--out', join(dir, 'never')]);
    expectError(notData, 2, /^ofm: error: .*empty/);
  });

  it('checkpoint: a damaged manifest is a CheckpointError, exit 2 (inspect and export)', async () => {
    const ckpt = join(dir, 'damaged');
    await mkdir(ckpt);
    await writeFile(join(ckpt, 'manifest.json'), '{"format": "ofm-checkpoint", "formatVer');
    expectError(await ofm(['inspect', ckpt]), 2, /^ofm: error: .*damaged.*manifest\.json/);
    expectError(await ofm(['export', ckpt, '--out', join(dir, 'web')]), 2, /^ofm: error: .*damaged.*manifest\.json/);
  });

  it('numeric: training that keeps producing non-finite values stops with a TrainingFaultError, exit 1', async () => {
    const config = join(dir, 'diverges.json');
    await writeFile(config, JSON.stringify({ ...TINY_CONFIG, training: { ...TINY_CONFIG.training, lr: 1e38 } }));
    const r = await ofm(['train', '--data', data, '--tasks', 'tiles', '--out', join(dir, 'diverged'), '--config', config, '--backend', 'wasm', '--quiet']);
    expectError(r, 1, /^ofm: error: .*non-finite/);
  });
});

describe('exitCodeOf: one place, by kind', () => {
  it('maps every kind and keeps a CliError its own code', () => {
    expect(exitCodeOf(new ConfigError('x'))).toBe(EXIT.usage);
    expect(exitCodeOf(new DataError('x'))).toBe(EXIT.usage);
    expect(exitCodeOf(new CheckpointError('truncated', '/ckpt', 'x'))).toBe(EXIT.usage);
    expect(exitCodeOf(new NumericError('x'))).toBe(EXIT.failure);
    expect(exitCodeOf(new AbortError())).toBe(EXIT.interrupted);
    expect(exitCodeOf(Object.assign(new AbortError(), { signal: 'SIGTERM' }))).toBe(EXIT.terminated);
    expect(exitCodeOf(new DOMException('This operation was aborted', 'AbortError'))).toBe(EXIT.interrupted);
    expect(exitCodeOf(new CliError('x'))).toBe(EXIT.usage);
    expect(exitCodeOf(new CliError('x', EXIT.interrupted))).toBe(EXIT.interrupted);
    expect(exitCodeOf(new ExperimentError('unknown-method', 'x'))).toBe(EXIT.usage);
    expect(exitCodeOf(new ExperimentError('bad-input', 'x'))).toBe(EXIT.usage);
    expect(exitCodeOf(new ExperimentError('parameter-mismatch', 'x'))).toBe(EXIT.failure);
    expect(exitCodeOf(new Error('x'))).toBe(EXIT.failure);
    expect(exitCodeOf(new RangeError('x'))).toBe(EXIT.failure);
    expect(exitCodeOf('a string')).toBe(EXIT.failure);
  });
});
