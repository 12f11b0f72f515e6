/**
 * Mid-task training snapshots. A task's training can run for hours; a snapshot holds what it needs
 * to continue exactly where it stopped: every weight, the AdamW moments and step counts, the batch
 * and dropout random streams, the losses so far and the training time spent. It is written
 * atomically (it is a checkpoint of its own) inside the run's checkpoint directory, as
 * `<checkpoint>/snapshot/`, and goes away with the next consolidated save of that directory, which
 * replaces it as a whole. The consolidated checkpoint itself is never touched by a snapshot.
 *
 * The types and the save/load functions here need no Node API of their own (the checkpoint IO of
 * @ofm/tensor loads its Node built-ins on first use).
 */
import { CheckpointError, type RngState, loadCheckpoint, readManifest, saveCheckpoint, tf } from '@ofm/tensor';
import type { DetectorConfig } from '../config/config';
import type { ContinualDetector, TaskRecord } from '../model/detector';

/** Name of the snapshot directory inside a checkpoint directory. */
export const SNAPSHOT_DIR = 'snapshot';
/** The `format` tag of a training snapshot's manifest meta. */
export const SNAPSHOT_FORMAT = 'ofm-train-snapshot';
/** The snapshot format version this package writes, and the only one {@link loadTrainSnapshot} accepts. */
export const SNAPSHOT_FORMAT_VERSION = 1;

/** Where a task's training stands: plain data. */
export interface TrainProgress {
  /** 0-based index of the task being learned. */
  task: number;
  classes: string[];
  /** Optimiser steps completed. */
  step: number;
  /** Steps the task trains for. */
  steps: number;
  /** Loss of every completed step. */
  losses: number[];
  /** The loss curve sampled so far (as in {@link TaskRecord.lossCurve}). */
  sampled: number[];
  /** Steps refused so far for non-finite values. */
  faults: number;
  /** Training seconds spent so far, over every process that worked on the task. */
  trainSeconds: number;
  /** The stream that draws batches, timesteps and synthetic anomalies. */
  rng: RngState;
  /** The stream of the condition network's dropout. */
  dropoutRng: RngState;
}

/** A training snapshot: progress plus tensors (owned by whoever made or loaded it). */
export interface TrainSnapshot extends TrainProgress {
  /** Every parameter of the model, by name. */
  weights: Record<string, tf.Tensor>;
  /** The trainer's state (`adamw.*`, `trainer.step`), as `DiffusionTrainer.state()` gives it. */
  optimizer: Record<string, tf.Tensor>;
}

/** When {@link ContinualDetector.learnTask} takes snapshots, and what it does with them. */
export interface SnapshotPolicy {
  /** Take one after this many steps since the last (default: by time only). */
  everySteps?: number;
  /** Take one when this many seconds passed since the last (default 60). */
  everySeconds?: number;
  /**
   * Keep a snapshot (e.g. {@link saveTrainSnapshot}). Training waits for it; the snapshot's tensors
   * are released when the returned promise settles. Snapshots are also taken when training
   * completes and when it is aborted.
   */
  save: (snapshot: TrainSnapshot) => Promise<void>;
}

/** The `meta` of a snapshot's manifest. */
export interface SnapshotMeta extends TrainProgress {
  format: typeof SNAPSHOT_FORMAT;
  version: number;
  savedAt: string;
  /** The detector's config: a snapshot continues only the same training. */
  config: DetectorConfig;
  /** The tasks the model had learned before this one (the checkpoint the snapshot builds on). */
  base: TaskRecord[];
  /** Which stored tensors are weights (the rest are trainer state). */
  weightNames: string[];
}

/** The snapshot directory of a checkpoint directory. */
export function snapshotDir(checkpoint: string): string {
  return `${checkpoint.replace(/[\\/]+$/, '')}/${SNAPSHOT_DIR}`;
}

/** Save a snapshot of `detector`'s training into `<checkpoint>/snapshot/` (atomically; NaN refused). */
export async function saveTrainSnapshot(checkpoint: string, snapshot: TrainSnapshot, detector: ContinualDetector): Promise<void> {
  const { weights, optimizer, ...progress } = snapshot;
  const meta: SnapshotMeta = {
    format: SNAPSHOT_FORMAT,
    version: SNAPSHOT_FORMAT_VERSION,
    savedAt: new Date().toISOString(),
    config: detector.config,
    base: detector.tasks,
    weightNames: Object.keys(weights),
    ...progress,
  };
  await saveCheckpoint(snapshotDir(checkpoint), { ...optimizer, ...weights }, meta, { finite: true });
}

/** The meta of the snapshot in a checkpoint directory (no tensors read), or null when there is none. */
export async function readSnapshotMeta(checkpoint: string): Promise<SnapshotMeta | null> {
  try {
    const meta = (await readManifest<SnapshotMeta>(snapshotDir(checkpoint))).meta;
    return meta?.format === SNAPSHOT_FORMAT ? meta : null;
  } catch (e) {
    if (e instanceof CheckpointError && (e.code === 'missing' || e.code === 'missing-manifest')) return null;
    throw e;
  }
}

/** A snapshot read back, with its meta. */
export interface LoadedSnapshot {
  snapshot: TrainSnapshot;
  meta: SnapshotMeta;
}

/**
 * Load the snapshot of a checkpoint directory: null when there is none; a CheckpointError when it
 * is damaged (checksums) or not a snapshot.
 */
export async function loadTrainSnapshot(checkpoint: string): Promise<LoadedSnapshot | null> {
  const dir = snapshotDir(checkpoint);
  try {
    await readManifest(dir);
  } catch (e) {
    if (e instanceof CheckpointError && (e.code === 'missing' || e.code === 'missing-manifest')) return null;
    throw e;
  }
  const ckpt = await loadCheckpoint<SnapshotMeta>(dir);
  const meta = ckpt.meta;
  if (meta?.format !== SNAPSHOT_FORMAT || meta.version !== SNAPSHOT_FORMAT_VERSION || !Array.isArray(meta.weightNames)) {
    tf.dispose(Object.values(ckpt.tensors));
    throw new CheckpointError('bad-manifest', dir, `${dir} is not a training snapshot of this version of @ofm/detector; delete it`);
  }
  const names = new Set(meta.weightNames);
  const weights: Record<string, tf.Tensor> = {};
  const optimizer: Record<string, tf.Tensor> = {};
  for (const [name, t] of Object.entries(ckpt.tensors)) (names.has(name) ? weights : optimizer)[name] = t;
  const { format: _f, version: _v, savedAt: _s, config: _c, base: _b, weightNames: _w, ...progress } = meta;
  return { snapshot: { ...progress, weights, optimizer }, meta };
}

/**
 * Why a loaded snapshot cannot continue `detector`'s next task on `classes`, or null when it can:
 * it must be of that task, taken on the same checkpoint (the same tasks learned before) with the
 * same config.
 */
export function snapshotMismatch(meta: SnapshotMeta, detector: ContinualDetector, classes: readonly string[]): string | null {
  const task = detector.tasks.length;
  if (meta.task !== task || meta.classes.join(',') !== classes.join(',')) {
    return `it is of task ${meta.task + 1} (${meta.classes.join(',')}), not of task ${task + 1} (${classes.join(',')})`;
  }
  if (JSON.stringify(meta.base) !== JSON.stringify(detector.tasks)) return 'it was taken on top of another checkpoint';
  if (JSON.stringify(meta.config) !== JSON.stringify(detector.config)) {
    return 'it was taken with another config (e.g. other --steps)';
  }
  return null;
}

/** Release a snapshot's tensors. */
export function disposeSnapshot(snapshot: TrainSnapshot): void {
  tf.dispose([...Object.values(snapshot.weights), ...Object.values(snapshot.optimizer)]);
}
