/**
 * Evaluation of a detector on labelled test images, without a task id: every image goes through
 * `detect` (routing included), and the metrics are computed per class, then averaged per task.
 * Browser-safe (no file access); `runContinual` streams datasets through the same metrics.
 */
import { evaluateDetections } from '@ofm/metrics';
import type { ContinualDetector, Detection } from './detector';
import { REPORT_METRICS, type ReportMetric } from '../report/report-format';
import { ConfigError } from '@ofm/tensor';

/** Metrics of one class (null where undefined: e.g. pixel metrics without masks). */
export type ClassMetrics = Record<ReportMetric, number | null>;

/** A labelled test image (HWC RGB in [0, 1] at the model size; mask H*W of 0/1, optional). */
export interface TestImage {
  image: Float32Array;
  label: 0 | 1;
  mask?: Uint8Array;
}

/** What `ContinualDetector.evaluate` returns. */
export interface Evaluation {
  /** Per learned class that had test images. */
  classes: Record<string, ClassMetrics>;
  /** Per learned task, the mean over its classes (null when a class of it had no test images). */
  tasks: { index: number; classes: string[]; metrics: ClassMetrics }[];
  /** Share of test images routed to their own class. */
  routingAccuracy: number;
}

/** The metrics of one class's detections against its labels and masks. */
export function classMetrics(detections: readonly Detection[], tests: readonly TestImage[], size: number): ClassMetrics {
  if (detections.length !== tests.length) throw new Error(`classMetrics: ${detections.length} detections for ${tests.length} test images`);
  const hasMasks = tests.every((t) => t.mask !== undefined);
  const m = evaluateDetections({
    imageScores: detections.map((d) => d.score),
    imageLabels: tests.map((t) => t.label),
    ...(hasMasks ? { pixelScores: detections.map((d) => d.map), pixelMasks: tests.map((t) => t.mask!), width: size, height: size } : {}),
  });
  const metrics = {} as ClassMetrics;
  for (const k of REPORT_METRICS) {
    const v = (m as unknown as Record<string, number | undefined>)[k];
    metrics[k] = v === undefined || !Number.isFinite(v) ? null : v;
  }
  return metrics;
}

/** Evaluate `detector` on test images by class name (see {@link Evaluation}). */
export function evaluateDetector(detector: ContinualDetector, tests: ReadonlyMap<string, readonly TestImage[]>): Evaluation {
  const known = new Set(detector.classNames());
  for (const cls of tests.keys()) {
    if (!known.has(cls)) throw new ConfigError(`evaluate: class '${cls}' was never learned (learned: ${[...known].join(', ') || 'none'})`);
  }
  const classes: Record<string, ClassMetrics> = {};
  let routed = 0;
  let count = 0;
  for (const [cls, images] of tests) {
    if (images.length === 0) continue;
    const detections = detector.detect(images.map((t) => t.image));
    classes[cls] = classMetrics(detections, images, detector.config.imageSize);
    routed += detections.filter((d) => d.className === cls).length;
    count += images.length;
  }
  const tasks = detector.tasks.map((t) => {
    const metrics = {} as ClassMetrics;
    for (const k of REPORT_METRICS) {
      const vals = t.classes.map((c) => classes[c]?.[k]);
      metrics[k] = vals.every((v): v is number => typeof v === 'number') ? vals.reduce((a, b) => a + b, 0) / vals.length : null;
    }
    return { index: t.index, classes: [...t.classes], metrics };
  });
  return { classes, tasks, routingAccuracy: count ? routed / count : Number.NaN };
}
