/**
 * `fit`: the one training loop. It drives a {@link DiffusionTrainer} over a source of batches for a
 * number of optimiser steps and owns what every long training needs and no model should repeat:
 *
 * - progress: `onStep` after every accepted step;
 * - interruption: the event loop gets a turn before every step (so a SIGINT handler can run) and
 *   an aborted `signal` stops the loop with an `AbortError`, after a last snapshot;
 * - fault tolerance: a step the trainer refuses for a non-finite value ({@link NonFiniteError};
 *   the trainer is left exactly as it was) is reported and retried on the next batch, until
 *   `maxConsecutiveFaults` refusals in a row stop training with a {@link FitFaultError};
 * - snapshots: `snapshots.save` every N steps or S seconds, at the end and on abort.
 *
 * What a step trains on (the batches and their step options: control map, extra loss) and what
 * trains (the trainer's parameters and its gradient/update hooks) are the caller's: the detector
 * composes its data, its continual-learning policy and this loop.
 *
 * Steps read losses asynchronously by default ({@link DiffusionTrainer.stepAsync}: every backend,
 * WebGPU in Node.js too); `reads: 'sync'` uses {@link DiffusionTrainer.step}. The numbers are the
 * same either way.
 */
import { AbortError, NumericError, type tf } from '@ofm/tensor';
import {
  type DiffusionTrainer,
  type GradientHook,
  NonFiniteError,
  type NonFiniteFault,
  type StepOptions,
  type StepResult,
  type UpdateHook,
} from './trainer';

/** One batch of {@link fit}: what one {@link DiffusionTrainer.step} is given. */
export interface FitBatch {
  /** The clean batch, NHWC in [-1, 1]. {@link fit} disposes it after its step (taken or refused). */
  batch: tf.Tensor4D;
  /** The step's options (control map, extra loss, timesteps, noise). */
  options?: StepOptions;
  /** Releases anything else the batch holds (tensors its options use); called after `batch` is disposed. */
  dispose?: () => void;
}

/**
 * Where {@link fit} gets its batches: one is taken per step attempt (a refused step takes the next
 * one), lazily, after the abort check. A source that ends stops training early.
 */
export type FitBatches = Iterable<FitBatch> | AsyncIterable<FitBatch>;

/** Where a {@link fit} stands, given to `onStep` and `snapshots.save`. */
export interface FitProgress {
  /** Steps completed (counted from `start`, so a resumed fit continues the count). */
  done: number;
  /** Steps to complete ({@link FitOptions.steps}). */
  total: number;
  /** Seconds since this call of {@link fit} started. */
  elapsed: number;
}

/** A step refused for a non-finite value (see {@link NonFiniteFault}); the trainer kept its last good state. */
export interface FitFault extends Omit<NonFiniteFault, 'step'> {
  /** The refused step (1-based, counted like {@link FitProgress.done}); it is retried on the next batch. */
  step: number;
  /** Refusals in a row so far, this one included. */
  consecutive: number;
  /** Refusals in a row that stop training ({@link FitOptions.maxConsecutiveFaults}). */
  limit: number;
}

/** {@link fit} stopped: `fault.limit` steps in a row were refused. Nothing non-finite was kept. */
export class FitFaultError extends NumericError {
  override readonly name: string = 'FitFaultError';
  constructor(readonly fault: FitFault) {
    const at = fault.layer ? `, first non-finite ${fault.kind === 'update' ? 'weight' : 'gradient'} in ${fault.layer}` : '';
    super(
      `fit: step ${fault.step}: ${fault.consecutive} steps in a row had non-finite values (last: ${fault.kind}, loss ${fault.loss}${at}); ` +
        'training stopped with the last good weights. Lower the learning rate or the gradient clipping norm, or check the data',
      { code: 'training-fault' },
    );
  }
}

/** When {@link fit} takes snapshots, and how. */
export interface FitSnapshots {
  /** Take one when this many steps were completed since the last (default: by time only). */
  everySteps?: number;
  /** Take one when this many seconds passed since the last (default 60). */
  everySeconds?: number;
  /**
   * Keep a snapshot of the caller's state (weights, `trainer.state()`, its own streams). Training
   * waits for it. Also called when the last step completes and when the loop is aborted after
   * steps not yet saved.
   */
  save: (progress: FitProgress) => Promise<void>;
}

/** Options of {@link fit}. */
export interface FitOptions {
  /** Train until this many steps are completed. */
  steps: number;
  /** Steps already completed (resuming; default `trainer.stepCount`). */
  start?: number;
  /** 'async' (default): {@link DiffusionTrainer.stepAsync}; 'sync': {@link DiffusionTrainer.step}. */
  reads?: 'sync' | 'async';
  /** Stops the loop between steps with an `AbortError` (after a last snapshot when `snapshots` is set). */
  signal?: AbortSignal;
  /** Called after every accepted step with its result. */
  onStep?: (result: StepResult, progress: FitProgress) => void;
  /** Told about every refused step, before it is retried. */
  onFault?: (fault: FitFault) => void;
  /** Refusals in a row after which training stops with a {@link FitFaultError} (default 3). */
  maxConsecutiveFaults?: number;
  /** Take snapshots (default: none). */
  snapshots?: FitSnapshots;
  /** Installed as the trainer's `transformGradients` for the fit (e.g. gradient projection); restored after. */
  transformGradients?: GradientHook;
  /** Installed as the trainer's `transformUpdate` for the fit (e.g. update projection); restored after. */
  transformUpdate?: UpdateHook;
}

/** What {@link fit} did. */
export interface FitResult {
  /** Steps completed, `start` included (`steps` unless the batch source ended first). */
  done: number;
  /** Steps refused in this call. */
  faults: number;
  /** Seconds this call took. */
  seconds: number;
}

/**
 * Train `trainer` on `batches` until `opts.steps` steps are completed (see the module doc for
 * progress, abort, fault retry and snapshots). The caller owns the trainer; `fit` owns each batch
 * it takes.
 */
export async function fit(trainer: DiffusionTrainer, batches: FitBatches, opts: FitOptions): Promise<FitResult> {
  const total = opts.steps;
  const maxFaults = opts.maxConsecutiveFaults ?? 3;
  const policy = opts.snapshots;
  const started = Date.now();
  let done = opts.start ?? trainer.stepCount;
  let consecutive = 0;
  let faults = 0;
  let last = { step: done, time: started };
  const progress = (): FitProgress => ({ done, total, elapsed: (Date.now() - started) / 1000 });
  const snapshot = async () => {
    await policy!.save(progress());
    last = { step: done, time: Date.now() };
  };
  const snapshotDue = () =>
    policy !== undefined &&
    done > last.step &&
    (done === total ||
      (policy.everySteps !== undefined && done - last.step >= policy.everySteps) ||
      Date.now() - last.time >= 1000 * (policy.everySeconds ?? 60));

  const hooks = { transformGradients: trainer.transformGradients, transformUpdate: trainer.transformUpdate };
  if (opts.transformGradients) trainer.transformGradients = opts.transformGradients;
  if (opts.transformUpdate) trainer.transformUpdate = opts.transformUpdate;
  const source: Iterator<FitBatch> | AsyncIterator<FitBatch> =
    Symbol.asyncIterator in batches ? batches[Symbol.asyncIterator]() : batches[Symbol.iterator]();
  try {
    while (done < total) {
      // Let signal handlers (Ctrl-C) and progress output run between steps.
      await yieldToEventLoop();
      if (opts.signal?.aborted) {
        if (policy && done > last.step) await snapshot();
        throw new AbortError();
      }
      const next = await source.next();
      if (next.done) break;
      const { batch, options, dispose } = next.value;
      let result: StepResult;
      try {
        result = opts.reads === 'sync' ? trainer.step(batch, options) : await trainer.stepAsync(batch, options);
      } catch (e) {
        if (!(e instanceof NonFiniteError)) throw e;
        // The trainer changed nothing: skip this batch and try the step again on the next one.
        faults += 1;
        consecutive += 1;
        const fault: FitFault = { ...e.fault, step: done + 1, consecutive, limit: maxFaults };
        opts.onFault?.(fault);
        if (consecutive >= maxFaults) throw new FitFaultError(fault);
        continue;
      } finally {
        batch.dispose();
        dispose?.();
      }
      consecutive = 0;
      done += 1;
      opts.onStep?.(result, progress());
      if (snapshotDue()) await snapshot();
    }
  } finally {
    trainer.transformGradients = hooks.transformGradients;
    trainer.transformUpdate = hooks.transformUpdate;
    await source.return?.();
  }
  return { done, faults, seconds: (Date.now() - started) / 1000 };
}

function yieldToEventLoop(): Promise<void> {
  // setImmediate in Node (no 4 ms clamp); a zero timeout in browsers.
  return new Promise((resolve) => (typeof setImmediate === 'function' ? setImmediate(resolve) : setTimeout(resolve, 0)));
}
