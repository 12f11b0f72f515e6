/**
 * A run of the reference method ({@link PatchKnnDetector}) over a continual task sequence, with the
 * same data, evaluation and report as {@link runContinual}: after each task every class seen is
 * evaluated on its whole test split without a task id, with the same metrics (`classMetrics`), and
 * the result matrix goes through the same `buildReport`, so `ofm bench continual` summarises it like
 * any other method. Nothing is trained and no checkpoint is written: `<out>/report/` holds the
 * report. Node only (reads datasets from disk, writes the report).
 */
import { join } from 'node:path';
import type { AnomalyDataset, Sample } from '@ofm/datasets';
import { auroc } from '@ofm/metrics';
import type { Detection } from '../model/detector';
import { type ClassMetrics, classMetrics } from '../model/evaluate';
import type { PatchKnnDetector } from '../model/knn';
import { type ContinualReport, writeReport } from '../report/report';
import { type ReportSource, type RunProgress, type RunResults, buildReport } from './continual';
import { abortError } from '../model/abort';

/** Options of {@link runReference}. */
export interface ReferenceRunOptions {
  /** Where the training and test images come from (at the detector's image size). */
  dataset: AnomalyDataset;
  /** The class names of each task, in learning order; tasks the detector already learned are skipped. */
  tasks: string[][];
  /** The reference detector. */
  detector: PatchKnnDetector;
  /** Output directory: the report is written to `<out>/report/` after each task. */
  out: string;
  /** Test images per `detect` call (default 8). */
  batch?: number;
  /** Evaluate after each task (default true). */
  evaluate?: boolean;
  /** Loading, learning ('train' phase: images banked), evaluation and save events, as {@link runContinual} tells them. */
  onProgress?: (p: RunProgress) => void;
  /** Aborting stops the run with an `AbortError` at the next check (between batches, classes and tasks). */
  signal?: AbortSignal;
}

/**
 * Learn the tasks in order with the reference detector; after each, evaluate every class seen and
 * write the report. Returns the report and the result matrix, as {@link runContinual} does.
 */
export async function runReference(opts: ReferenceRunOptions): Promise<{ report: ContinualReport; results: RunResults }> {
  const { dataset, tasks, detector } = opts;
  const batch = opts.batch ?? 8;
  const results: RunResults = { rows: [], pooled: [], seed: detector.config.seed };
  if (detector.tasks.length > 0) throw new Error(`runReference: the detector has already learned ${detector.tasks.length} task(s); start from a fresh one`);
  let report = referenceReport(detector, results);
  for (let t = 0; t < tasks.length; t++) {
    const classes = tasks[t]!;
    const images = new Map<string, Float32Array[]>();
    for (const cls of classes) {
      const train: Float32Array[] = [];
      for await (const s of dataset.train(cls)) {
        train.push(s.image);
        opts.onProgress?.({ kind: 'load', task: t, tasks: tasks.length, className: cls, done: train.length });
      }
      images.set(cls, train);
    }
    if (opts.signal?.aborted) throw abortError();
    await detector.learnTask(
      { classes, images },
      {
        signal: opts.signal,
        onProgress: (p) => opts.onProgress?.({ kind: 'learn', tasks: tasks.length, phase: 'train', task: p.task, done: p.done, total: p.total, elapsed: p.elapsed }),
      },
    );

    const row: Record<string, ClassMetrics> = {};
    const pooledScores: number[] = [];
    const pooledLabels: number[] = [];
    let routed = 0;
    let count = 0;
    if (opts.evaluate !== false) {
      for (const cls of detector.classNames()) {
        const refs = await dataset.testFiles(cls);
        const detections: Detection[] = [];
        const tests: Sample[] = [];
        for (let i = 0; i < refs.length; i += batch) {
          if (opts.signal?.aborted) throw abortError();
          const chunk = await Promise.all(refs.slice(i, i + batch).map((r) => dataset.load(r)));
          detections.push(...detector.detect(chunk.map((s) => s.image)));
          tests.push(...chunk);
          opts.onProgress?.({ kind: 'evaluate', task: t, tasks: tasks.length, className: cls, done: Math.min(i + batch, refs.length), total: refs.length });
        }
        row[cls] = classMetrics(detections, tests, detector.config.imageSize);
        pooledScores.push(...detections.map((d) => d.score));
        pooledLabels.push(...tests.map((s) => s.label));
        routed += detections.filter((d) => d.className === cls).length;
        count += refs.length;
      }
    }
    results.rows.push(row);
    // Raw scores only: the calibrated pooled AUROC is the raw one.
    const pooled = pooledLabels.length ? auroc(pooledScores, pooledLabels) : Number.NaN;
    results.pooled.push({ raw: pooled, calibrated: pooled, routing: count ? routed / count : Number.NaN });
    report = referenceReport(detector, results);
    await writeReport(join(opts.out, 'report'), report);
    opts.onProgress?.({ kind: 'saved', task: t, tasks: tasks.length, path: opts.out, report });
  }
  return { report, results };
}

/**
 * The report of the reference detector through `buildReport`, which reads only the class names, the
 * task that brought each class (and its start timestep, which a bank has not: left out) and the task
 * records. Per task: no steps and no loss (NaN: null in `report.json`), its banking time as training
 * time, and the bytes of all banks after it in place of the GPM basis bytes.
 */
function referenceReport(knn: PatchKnnDetector, results: RunResults): ContinualReport {
  const view: ReportSource = {
    classNames: () => knn.classNames(),
    classes: knn.classes.map((c) => ({ className: c.className, task: c.task })),
    tasks: knn.tasks.map((t) => ({ index: t.index, classes: t.classes, steps: 0, trainSeconds: t.seconds, finalLoss: Number.NaN, basisRank: 0, basisBytes: t.bankBytes })),
  };
  return buildReport(view, results, false);
}

