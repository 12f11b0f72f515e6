/**
 * A continual run: learn tasks in order from a dataset, evaluate every class seen after each task,
 * and save the checkpoint (with the result matrix and the report inside it) after each task. While
 * a task trains, snapshots in `<out>/snapshot/` let an interrupted run continue the task where it
 * stopped; the run holds the checkpoint's write lock throughout. Node only (reads datasets from
 * disk, writes checkpoints).
 */
import type { AnomalyDataset, Sample } from '@ofm/datasets';
import { auroc, finalAverage, forgetting } from '@ofm/metrics';
import { DataError, acquireCheckpointLock, tf } from '@ofm/tensor';
import type { ContinualDetector, Detection, LearnProgress, TaskRecord, TrainingFault } from '../model/detector';
import { type ClassMetrics, classMetrics } from '../model/evaluate';
import { saveDetector } from '../io/persist';
import { type SnapshotPolicy, disposeSnapshot, loadTrainSnapshot, saveTrainSnapshot, snapshotMismatch } from '../io/snapshot';
import {
  type ContinualReport,
  REPORT_FORMAT_VERSION,
  REPORT_METRICS,
  type ReportMetric,
  type ReportSample,
  renderReport,
} from '../report/report';
import { abortError } from '../model/abort';


/** What a run keeps in the checkpoint to continue its result matrix after a resume. */
export interface RunResults {
  /** `rows[i][className]`: metrics of each class seen after task i. */
  rows: Record<string, ClassMetrics>[];
  /** Per task: pooled AUROCs and routing accuracy. */
  pooled: { raw: number; calibrated: number; routing: number }[];
  seed: number;
}

/**
 * An event of {@link runContinual}, told to {@link RunOptions.onProgress}; `kind` says which, `task`
 * is the 0-based task it concerns and `tasks` the number of tasks in the run.
 */
export type RunProgress =
  | (LearnProgress & { kind: 'learn'; tasks: number })
  | { kind: 'load'; task: number; tasks: number; className: string; done: number }
  | { kind: 'evaluate'; task: number; tasks: number; className: string; done: number; total: number }
  | { kind: 'saved'; task: number; tasks: number; path: string; report: ContinualReport }
  /** Training of `task` continues from its snapshot at `step`. */
  | { kind: 'resume'; task: number; tasks: number; step: number; steps: number; savedAt: string }
  /** A snapshot of `task` was written at `step`. */
  | { kind: 'snapshot'; task: number; tasks: number; step: number; steps: number }
  /** A training step was refused for a non-finite value (and is retried on the next batch). */
  | { kind: 'fault'; task: number; tasks: number; fault: TrainingFault }
  /** Something the user should know that changes nothing (a stale lock taken over, a snapshot discarded). */
  | { kind: 'notice'; task: number; tasks: number; message: string };

/** Options of {@link runContinual}. */
export interface RunOptions {
  /** Where the training and test images come from. */
  dataset: AnomalyDataset;
  /** The class names of each task, in learning order; tasks the detector already learned are skipped. */
  tasks: string[][];
  /** The detector to train (fresh, or loaded from the checkpoint in `out` to resume). */
  detector: ContinualDetector;
  /** Checkpoint directory, rewritten atomically after each task. */
  out: string;
  /** Results of the tasks already learned (from the checkpoint when resuming). */
  previous?: RunResults;
  /** Evaluate after each task (default true). */
  evaluate?: boolean;
  /** Normal test images per class also shown in the report's sample grid (with one defective). */
  reportSamples?: number;
  /** Receives every {@link RunProgress} event (loading, learning, evaluation, snapshots, faults, saves, notices). */
  onProgress?: (p: RunProgress) => void;
  /**
   * Aborting stops the run with an `AbortError` at the next check: between training steps, batches
   * of images scored to choose the start timestep, consolidated and evaluated, images loaded, and
   * tasks. A checkpoint being written is finished first (it is atomic either way).
   */
  signal?: AbortSignal;
  /**
   * Mid-task snapshots into `<out>/snapshot/` (default: every 60 s of training, at its end and on
   * abort); false for none. A snapshot of the next task found there is continued from.
   */
  snapshots?: Omit<SnapshotPolicy, 'save'> | false;
  /** Refused training steps in a row that stop the run (default 3; see `LearnOptions`). */
  maxConsecutiveFaults?: number;
}

async function collect(iterable: AsyncIterable<Sample>, onEach?: (n: number) => void, signal?: AbortSignal): Promise<Sample[]> {
  const out: Sample[] = [];
  for await (const s of iterable) {
    if (signal?.aborted) throw abortError();
    out.push(s);
    onEach?.(out.length);
  }
  return out;
}

/**
 * Evaluate one learned class on its test split, with no task id: the metrics, plus the raw and
 * calibrated scores, how many images were routed to the class, and a few samples for a report.
 * Aborting `signal` stops it with an `AbortError` before the next batch of images.
 */
export async function evaluateClass(
  detector: ContinualDetector,
  dataset: AnomalyDataset,
  className: string,
  onDone: (done: number, total: number) => void = () => {},
  signal?: AbortSignal,
) {
  const refs = await dataset.testFiles(className);
  const size = detector.config.imageSize;
  const detections: Detection[] = [];
  const tests: Sample[] = [];
  const samples: ReportSample[] = [];
  const batch = detector.config.inferenceBatch;
  for (let i = 0; i < refs.length; i += batch) {
    if (signal?.aborted) throw abortError();
    const chunk = await Promise.all(refs.slice(i, i + batch).map((r) => dataset.load(r)));
    if (signal?.aborted) throw abortError();
    // Asynchronous reads: the same detections, and the only kind WebGPU has in Node.js.
    const found = await detector.detectAsync(
      chunk.map((s) => s.image),
      { reconstructions: true },
    );
    found.forEach((d, j) => {
      const s = chunk[j]!;
      // Keep the first good and the first two defective images for the report's grid.
      const wanted = s.label === 1 ? samples.filter((x) => x.label === 1).length < 2 : samples.filter((x) => x.label === 0).length < 1;
      if (wanted) {
        samples.push({
          className,
          label: s.label,
          score: d.score,
          width: size,
          height: size,
          image: s.image,
          reconstruction: d.reconstruction!,
          map: d.map,
          mask: s.mask,
        });
      }
      // The reconstruction was needed for the grid only.
      detections.push({ ...d, reconstruction: undefined });
      tests.push(s);
    });
    onDone(Math.min(i + batch, refs.length), refs.length);
  }
  const metrics = classMetrics(detections, tests, size);
  const scores = detections.map((d) => d.score);
  const rawScores = detections.map((d) => d.rawScore);
  const labels = tests.map((t) => t.label);
  const routedRight = detections.filter((d) => d.className === className).length;
  return { metrics, scores, rawScores, labels, routedRight, count: refs.length, samples };
}

/**
 * What {@link buildReport} reads of a detector: the classes in learning order (with the task that
 * taught each and its start timestep, when it has one) and the task records. A
 * {@link ContinualDetector} is one; a reference method provides its own.
 */
export interface ReportSource {
  classNames(): string[];
  readonly classes: readonly { className: string; task: number; tStart?: number; fused?: readonly { tStart: number }[] }[];
  readonly tasks: readonly Pick<TaskRecord, 'index' | 'classes' | 'steps' | 'trainSeconds' | 'finalLoss' | 'basisRank' | 'basisBytes' | 'segmenterSeconds'>[];
}

/** Build the report of the tasks learned so far from the stored results. */
export function buildReport(detector: ReportSource, results: RunResults, projection: boolean): ContinualReport {
  const classes = detector.classNames();
  const learnedAt = detector.classes.map((c) => c.task);
  const classMatrices = {} as ContinualReport['classMatrices'];
  const taskMatrices = {} as ContinualReport['taskMatrices'];
  for (const metric of REPORT_METRICS) {
    classMatrices[metric] = results.rows.map((row) => classes.map((c) => row[c]?.[metric] ?? null));
    taskMatrices[metric] = results.rows.map((row) =>
      detector.tasks.map((t) => {
        const vals = t.classes.map((c) => row[c]?.[metric]).filter((v): v is number => typeof v === 'number');
        return vals.length === t.classes.length && vals.length > 0 ? vals.reduce((a, b) => a + b, 0) / vals.length : null;
      }),
    );
  }
  const curve = results.rows.map((_, i) => {
    const rows = (metric: ReportMetric) =>
      classMatrices[metric].slice(0, i + 1).map((r) => r.map((v) => (v === null ? Number.NaN : v)));
    const seen = learnedAt.filter((t) => t <= i).length;
    const sub = (metric: ReportMetric) => rows(metric).map((r) => r.slice(0, seen));
    const opts = { learnedAt: learnedAt.slice(0, seen) };
    // null where a needed value was not measured: a task learned with evaluation off, or a
    // pixel metric on a dataset without masks.
    const measured = (m: number[][]) => m.every((r, k) => r.every((v, j) => k < opts.learnedAt[j]! || Number.isFinite(v)));
    const avg = (metric: ReportMetric) => (sub(metric)[i]!.every(Number.isFinite) ? finalAverage(sub(metric), opts) : null);
    const forget = (metric: ReportMetric) => (i === 0 || !measured(sub(metric)) ? null : forgetting(sub(metric), opts));
    return {
      task: i + 1,
      avg_image_auroc: avg('image_auroc'),
      avg_pixel_auroc: avg('pixel_auroc'),
      avg_pixel_ap: avg('pixel_ap'),
      avg_pixel_aupro: avg('pixel_aupro'),
      image_auroc_forgetting: forget('image_auroc'),
      pixel_auroc_forgetting: forget('pixel_auroc'),
      pooled_image_auroc_raw: finiteOrNull(results.pooled[i]?.raw),
      pooled_image_auroc_calibrated: finiteOrNull(results.pooled[i]?.calibrated),
      routing_accuracy: finiteOrNull(results.pooled[i]?.routing),
    };
  });
  const last = curve[curve.length - 1];
  return {
    formatVersion: REPORT_FORMAT_VERSION,
    createdAt: new Date().toISOString(),
    backend: tf.getBackend(),
    seed: results.seed,
    projection,
    tasks: detector.tasks.map((t) => ({
      index: t.index,
      classes: t.classes,
      steps: t.steps,
      trainSeconds: t.trainSeconds,
      finalLoss: t.finalLoss,
      tStart: Object.fromEntries(
        t.classes.flatMap((c) => {
          const tStart = detector.classes.find((k) => k.className === c)?.tStart;
          return tStart === undefined ? [] : [[c, tStart]];
        }),
      ),
      ...fusedOf(detector, t.classes),
      ...(t.segmenterSeconds !== undefined ? { segmenterSeconds: t.segmenterSeconds } : {}),
      basisRank: t.basisRank,
      basisBytes: t.basisBytes,
    })),
    classes,
    classMatrices,
    taskMatrices,
    curve,
    summary: last ? { tasks_learned: last.task, ...Object.fromEntries(Object.entries(last).filter(([k]) => k !== 'task')) } : {},
  };
}

/**
 * Learn the tasks not yet learned, in order. After each task: evaluate every class seen, then save
 * the checkpoint with the result matrix and the report (one atomic write). The checkpoint's write
 * lock is held throughout: a run on a directory another process writes is refused.
 */
export async function runContinual(opts: RunOptions): Promise<{ report: ContinualReport; results: RunResults }> {
  const lock = await acquireCheckpointLock(opts.out, {
    purpose: 'continual run',
    onNotice: (message) => opts.onProgress?.({ kind: 'notice', task: opts.detector.tasks.length, tasks: opts.tasks.length, message }),
  });
  try {
    return await learnTasks(opts);
  } finally {
    await lock.release();
  }
}

/** Continue the task's training from the snapshot in `out`, when there is one of it. */
async function resumeOptions(opts: RunOptions, t: number, classes: string[]) {
  const notice = (message: string) => opts.onProgress?.({ kind: 'notice', task: t, tasks: opts.tasks.length, message });
  let found: Awaited<ReturnType<typeof loadTrainSnapshot>>;
  try {
    found = await loadTrainSnapshot(opts.out);
  } catch (e) {
    notice(`ignoring the training snapshot in ${opts.out}: ${(e as Error).message}`);
    return undefined;
  }
  if (!found) return undefined;
  const why = snapshotMismatch(found.meta, opts.detector, classes);
  if (why) {
    disposeSnapshot(found.snapshot);
    notice(`not continuing from the training snapshot in ${opts.out}: ${why}; task ${t + 1} starts from its beginning`);
    return undefined;
  }
  opts.onProgress?.({
    kind: 'resume',
    task: t,
    tasks: opts.tasks.length,
    step: found.snapshot.step,
    steps: found.snapshot.steps,
    savedAt: found.meta.savedAt,
  });
  return found.snapshot;
}

async function learnTasks(opts: RunOptions): Promise<{ report: ContinualReport; results: RunResults }> {
  const { dataset, tasks, detector } = opts;
  const results: RunResults = opts.previous
    ? structuredClone(opts.previous)
    : { rows: [], pooled: [], seed: detector.config.seed };
  if (results.rows.length !== detector.tasks.length) {
    throw new DataError(
      `the checkpoint holds ${detector.tasks.length} tasks but results for ${results.rows.length}; it was not written by a continual run`,
    );
  }
  const projection = detector.config.continual.projection !== 'none';
  let report = buildReport(detector, results, projection);
  for (let t = detector.tasks.length; t < tasks.length; t++) {
    if (opts.signal?.aborted) throw abortError();
    const classes = tasks[t]!;
    const images = new Map<string, Float32Array[]>();
    for (const cls of classes) {
      const samples = await collect(
        dataset.train(cls),
        (done) => opts.onProgress?.({ kind: 'load', task: t, tasks: tasks.length, className: cls, done }),
        opts.signal,
      );
      images.set(cls, samples.map((s) => s.image));
    }
    if (opts.signal?.aborted) throw abortError();
    const resume = await resumeOptions(opts, t, classes);
    const snapshots = opts.snapshots === false ? undefined : (opts.snapshots ?? {});
    try {
      await detector.learnTask(
        { classes, images },
        {
          signal: opts.signal,
          onProgress: (p) => opts.onProgress?.({ ...p, kind: 'learn', tasks: tasks.length }),
          resume,
          snapshots: snapshots && {
            ...snapshots,
            save: async (snap) => {
              await saveTrainSnapshot(opts.out, snap, detector);
              opts.onProgress?.({ kind: 'snapshot', task: t, tasks: tasks.length, step: snap.step, steps: snap.steps });
            },
          },
          onFault: (fault) => opts.onProgress?.({ kind: 'fault', task: t, tasks: tasks.length, fault }),
          maxConsecutiveFaults: opts.maxConsecutiveFaults,
        },
      );
    } finally {
      if (resume) disposeSnapshot(resume);
    }

    const row: Record<string, ClassMetrics> = {};
    const pooledScores: number[] = [];
    const pooledRaw: number[] = [];
    const pooledLabels: number[] = [];
    let routed = 0;
    let count = 0;
    const samples: ReportSample[] = [];
    if (opts.evaluate !== false) {
      for (const cls of detector.classNames()) {
        if (opts.signal?.aborted) throw abortError();
        const r = await evaluateClass(
          detector,
          dataset,
          cls,
          (done, total) => opts.onProgress?.({ kind: 'evaluate', task: t, tasks: tasks.length, className: cls, done, total }),
          opts.signal,
        );
        row[cls] = r.metrics;
        pooledScores.push(...r.scores);
        pooledRaw.push(...r.rawScores);
        pooledLabels.push(...r.labels);
        routed += r.routedRight;
        count += r.count;
        samples.push(...r.samples);
      }
    }
    results.rows.push(row);
    results.pooled.push({
      raw: pooledLabels.length ? auroc(pooledRaw, pooledLabels) : Number.NaN,
      calibrated: pooledLabels.length ? auroc(pooledScores, pooledLabels) : Number.NaN,
      routing: count ? routed / count : Number.NaN,
    });
    report = buildReport(detector, results, projection);
    const files = await renderReport(report, samples);
    await saveDetector(detector, opts.out, { results, files: prefixed(files, 'report/') });
    opts.onProgress?.({ kind: 'saved', task: t, tasks: tasks.length, path: opts.out, report });
  }
  return { report, results };
}

function finiteOrNull(v: number | undefined): number | null {
  return v !== undefined && Number.isFinite(v) ? v : null;
}

function prefixed(files: Record<string, Uint8Array | string>, prefix: string): Record<string, Uint8Array | string> {
  return Object.fromEntries(Object.entries(files).map(([k, v]) => [`${prefix}${k}`, v]));
}


/** `{ fusedTStarts }` for the classes of a task whose detection fuses start timesteps, or nothing. */
function fusedOf(source: ReportSource, classes: readonly string[]): { fusedTStarts?: Record<string, number[]> } {
  const entries = classes.flatMap((c) => {
    const fused = source.classes.find((k) => k.className === c)?.fused;
    return fused ? [[c, fused.map((f) => f.tStart)] as const] : [];
  });
  return entries.length ? { fusedTStarts: Object.fromEntries(entries) } : {};
}
