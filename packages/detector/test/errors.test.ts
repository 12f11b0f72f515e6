/**
 * The error classes of every package are one hierarchy (@ofm/errors, re-exported by @ofm/tensor):
 * `instanceof`, `name`, `kind` and `code` hold across the package boundaries, for errors the
 * packages really throw.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatasetError, loadMvtec, parseTasks } from '@ofm/datasets';
import { NonFiniteError, parseUNetConfig } from '@ofm/diffusion';
import { AbortError, CheckpointError, ConfigError, DataError, NumericError, OfmError, errorKind, isAbortError } from '@ofm/tensor';
import { afterAll, describe, expect, it } from 'vitest';
import { TrainingFaultError, loadDetector, presetConfig } from '../src/index';
import { abortError } from '../src/model/abort';

const dir = mkdtempSync(join(tmpdir(), 'ofm-errors-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function caught(work: () => unknown): Promise<unknown> {
  try {
    await work();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error');
}

describe('error classes across packages', () => {
  it('@ofm/datasets: a missing dataset folder is a DatasetError, a DataError of @ofm/errors', async () => {
    const err = await caught(() => loadMvtec(join(dir, 'no-such-dataset')));
    expect(err).toBeInstanceOf(DatasetError);
    expect(err).toBeInstanceOf(DataError);
    expect(err).toBeInstanceOf(OfmError);
    expect((err as DatasetError).name).toBe('DatasetError');
    expect((err as DatasetError).kind).toBe('data');
    expect((err as DatasetError).code).toBe('data');
    expect((err as DatasetError).path).toBe(join(dir, 'no-such-dataset'));
  });

  it('@ofm/datasets: a malformed task list is a ConfigError', async () => {
    const err = await caught(() => parseTasks('bottle|bottle'));
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toBe('tasks "bottle|bottle": class "bottle" appears twice; each class belongs to one task');
  });

  it('@ofm/diffusion and @ofm/detector: bad config values are ConfigErrors', async () => {
    const unet = await caught(() => parseUNetConfig([]));
    expect(unet).toBeInstanceOf(ConfigError);
    expect(errorKind(unet)).toBe('config');
    const preset = await caught(() => presetConfig('fast'));
    expect(preset).toBeInstanceOf(ConfigError);
    expect((preset as ConfigError).name).toBe('ConfigError');
    expect((preset as ConfigError).code).toBe('config');
  });

  it('@ofm/tensor: a missing checkpoint is a CheckpointError, an OfmError of kind checkpoint with its own code', async () => {
    const err = await caught(() => loadDetector(join(dir, 'no-such-checkpoint')));
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err).toBeInstanceOf(OfmError);
    expect((err as CheckpointError).name).toBe('CheckpointError');
    expect((err as CheckpointError).kind).toBe('checkpoint');
    expect((err as CheckpointError).code).toBe('missing');
  });

  it('@ofm/diffusion NonFiniteError and @ofm/detector TrainingFaultError are NumericErrors', () => {
    const fault = { step: 3, kind: 'loss' as const, loss: Number.NaN, layer: null };
    const step = new NonFiniteError(fault, 1e-3);
    expect(step).toBeInstanceOf(NumericError);
    expect(step.name).toBe('NonFiniteError');
    expect(step.code).toBe('non-finite');
    expect(step.message).toMatch(/^DiffusionTrainer: loss is NaN at step 3; the update was skipped/);
    const stop = new TrainingFaultError({ ...fault, task: 0, consecutive: 3, limit: 3 }, 'training stopped');
    expect(stop).toBeInstanceOf(NumericError);
    expect(stop.name).toBe('TrainingFaultError');
    expect(stop.code).toBe('training-fault');
    expect(errorKind(stop)).toBe('numeric');
  });

  it("@ofm/detector stops with an AbortError named 'AbortError' that says 'interrupted'", () => {
    const err = abortError();
    expect(err).toBeInstanceOf(AbortError);
    expect(err.name).toBe('AbortError');
    expect(err.message).toBe('interrupted');
    expect(isAbortError(err)).toBe(true);
  });
});
