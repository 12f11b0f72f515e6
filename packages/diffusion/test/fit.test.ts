/**
 * `fit`, the training loop: the same weights as stepping by hand (sync and async reads), progress,
 * fault retry and its limit, snapshots by step count, abort after a last snapshot, hooks installed
 * for the fit only, batches released.
 */
import { NumericError, ParamStore, Rng, tf } from '@ofm/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import { DiffusionTrainer, type FitBatch, FitFaultError, type FitProgress, NoiseSchedule, UNet, fit } from '../src/index';
import { TINY, useBackend } from './helpers';

beforeAll(async () => {
  await useBackend('cpu');
});

const schedule = new NoiseSchedule();

function setup(seed = 1) {
  const store = new ParamStore(seed);
  const unet = new UNet(store, TINY).init();
  const trainer = new DiffusionTrainer({ unet, schedule, optimizer: { lr: 1e-2 }, clipGradNorm: 1, seed });
  return { store, unet, trainer };
}

/** An endless seeded stream of 2-image batches. */
function* batches(seed: number): Generator<FitBatch> {
  const rng = new Rng(seed);
  while (true) yield { batch: rng.rand([2, 8, 8, 1], -1, 1) as tf.Tensor4D, options: { t: [rng.int(1000), rng.int(1000)] } };
}

function weights(store: ParamStore): Float32Array[] {
  return store.entries().map(([, v]) => Float32Array.from(v.dataSync() as Float32Array));
}

describe('fit', () => {
  it('takes the steps stepping by hand takes, with sync and async reads, and reports each', async () => {
    const byHand = setup();
    const source = batches(7);
    const handLosses: number[] = [];
    const handTensors = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      const { batch, options } = source.next().value as FitBatch;
      handLosses.push(byHand.trainer.step(batch, options).loss);
      batch.dispose();
    }
    const optimizerTensors = tf.memory().numTensors - handTensors; // AdamW's moments, created on the first step
    for (const reads of ['sync', 'async'] as const) {
      const run = setup();
      const seen: [number, FitProgress][] = [];
      const tensors = tf.memory().numTensors;
      const result = await fit(run.trainer, batches(7), { steps: 3, reads, onStep: (r, p) => seen.push([r.loss, p]) });
      expect(tf.memory().numTensors - tensors).toBe(optimizerTensors); // every batch released
      expect(result).toMatchObject({ done: 3, faults: 0 });
      expect(seen.map(([loss]) => loss)).toEqual(handLosses);
      expect(seen.map(([, p]) => [p.done, p.total])).toEqual([
        [1, 3],
        [2, 3],
        [3, 3],
      ]);
      expect(weights(run.store)).toEqual(weights(byHand.store));
      run.trainer.dispose();
      run.store.dispose();
    }
    byHand.trainer.dispose();
    byHand.store.dispose();
  });

  it('retries a refused step on the next batch, and stops after maxConsecutiveFaults in a row', async () => {
    const { store, trainer } = setup(2);
    const victim = trainer.trainableNames()[0]!;
    const poisoned = new Set([1, 3, 4]); // attempts (0-based) whose gradients turn NaN
    let attempts = 0;
    const poison = () => {
      const bad = poisoned.has(attempts++);
      return bad ? (grads: Readonly<Record<string, tf.Tensor>>) => ({ [victim]: tf.fill(grads[victim]!.shape, Number.NaN) }) : undefined;
    };
    const faults: unknown[] = [];
    const result = await fit(trainer, batches(3), {
      steps: 4,
      transformGradients: (grads) => poison()?.(grads),
      onFault: (f) => faults.push(f),
      maxConsecutiveFaults: 3,
    });
    expect(result).toMatchObject({ done: 4, faults: 3 });
    expect(faults).toMatchObject([
      { step: 2, consecutive: 1, limit: 3, kind: 'gradient', layer: victim },
      { step: 3, consecutive: 1 },
      { step: 3, consecutive: 2 },
    ]);
    expect(trainer.transformGradients).toBeUndefined(); // the hook was the fit's only

    const err = await fit(trainer, batches(4), {
      steps: 10,
      transformGradients: (grads) => ({ [victim]: tf.fill(grads[victim]!.shape, Number.NaN) }),
      maxConsecutiveFaults: 2,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FitFaultError);
    expect((err as FitFaultError).fault).toMatchObject({ step: 5, consecutive: 2, limit: 2 });
    expect(err).toBeInstanceOf(NumericError);
    expect(err).toMatchObject({ kind: 'numeric', code: 'training-fault' });
    expect(trainer.stepCount).toBe(4);
    expect(weights(store).every((w) => w.every(Number.isFinite))).toBe(true);
    trainer.dispose();
    store.dispose();
  });

  it('snapshots every N steps and at the end; an abort stops with an AbortError after a last snapshot', async () => {
    const { store, trainer } = setup(5);
    const saved: number[] = [];
    const save = async (p: FitProgress) => void saved.push(p.done);
    await fit(trainer, batches(9), { steps: 5, snapshots: { everySteps: 2, everySeconds: 3600, save } });
    expect(saved).toEqual([2, 4, 5]);

    saved.length = 0;
    const controller = new AbortController();
    const run = fit(trainer, batches(10), {
      steps: 20,
      signal: controller.signal,
      snapshots: { everySteps: 2, everySeconds: 3600, save },
      onStep: (_, p) => {
        if (p.done === 8) controller.abort();
      },
    });
    await expect(run).rejects.toMatchObject({ name: 'AbortError', kind: 'aborted', message: 'interrupted' });
    expect(saved).toEqual([7, 8]); // on from step 5: every 2 steps, then at the abort
    expect(trainer.stepCount).toBe(8);
    trainer.dispose();
    store.dispose();
  });

  it('stops early when the batch source ends', async () => {
    const { store, trainer } = setup(6);
    const two = [...Array(2)].map((_, i) => ({ batch: tf.fill([1, 8, 8, 1], i / 2) as tf.Tensor4D }));
    expect(await fit(trainer, two, { steps: 5 })).toMatchObject({ done: 2, faults: 0 });
    trainer.dispose();
    store.dispose();
  });
});
