/**
 * The format of the continual-learning report (`report.json`): its types and version, with no
 * Node API, so that the demo's dashboard reads reports with the same types that `./report` writes.
 */

/** The `formatVersion` of the reports this code writes and reads. */
export const REPORT_FORMAT_VERSION = 1;

/** The metrics reported per class and task (keys as in @ofm/metrics' evaluateDetections). */
export const REPORT_METRICS = ['image_auroc', 'image_ap', 'pixel_auroc', 'pixel_ap', 'pixel_aupro'] as const;
/** One of the {@link REPORT_METRICS} keys. */
export type ReportMetric = (typeof REPORT_METRICS)[number];

/** One learned task in a {@link ContinualReport}, taken from the detector's task record. */
export interface ReportTask {
  /** 0-based task index. */
  index: number;
  /** The task's classes. */
  classes: string[];
  /** Optimiser steps taken. */
  steps: number;
  /** Training wall-clock time, in seconds. */
  trainSeconds: number;
  /** Mean training loss over the last 10% of steps. */
  finalLoss: number;
  /** Start timestep chosen on the validation split (per class). */
  tStart: Record<string, number>;
  /** The start timesteps whose maps detection fuses (per class; absent where one is used). */
  fusedTStarts?: Record<string, number[]>;
  /** Wall-clock time of the segmenter's training, in seconds (absent without a segmenter). */
  segmenterSeconds?: number;
  /** Protected directions (total basis rank) and basis bytes after the task. */
  basisRank: number;
  basisBytes: number;
}

/**
 * The report of a continual run (`report.json`): the run's settings, the tasks learned, per-class
 * and per-task metric matrices after each task, and the averages and forgetting after each task.
 */
export interface ContinualReport {
  /** {@link REPORT_FORMAT_VERSION} of the code that wrote it. */
  formatVersion: number;
  /** When the report was built (ISO 8601). */
  createdAt: string;
  /** The tfjs backend of the run. */
  backend: string;
  /** The detector's seed. */
  seed: number;
  /** Whether gradient projection protected earlier tasks (`continual.projection` not 'none'). */
  projection: boolean;
  /** The tasks learned so far, in order. */
  tasks: ReportTask[];
  /** Every class, in the order learned. */
  classes: string[];
  /** `[afterTask][classIndex]`: the metric of each class after each task (null: not yet learned). */
  classMatrices: Record<ReportMetric, (number | null)[][]>;
  /** `[afterTask][taskIndex]`: the mean over the task's classes. */
  taskMatrices: Record<ReportMetric, (number | null)[][]>;
  /** After each task: averages over classes seen so far, and the forgetting measure. */
  curve: {
    task: number;
    /** Every value below is null where it was not measured (evaluation off, or no masks). */
    avg_image_auroc: number | null;
    avg_pixel_auroc: number | null;
    avg_pixel_ap: number | null;
    avg_pixel_aupro: number | null;
    image_auroc_forgetting: number | null;
    pixel_auroc_forgetting: number | null;
    /** Image AUROC over the test images of all classes seen pooled together (one threshold for all). */
    pooled_image_auroc_raw: number | null;
    pooled_image_auroc_calibrated: number | null;
    /** Share of test images routed to their own class. */
    routing_accuracy: number | null;
  }[];
  /** The last row of `curve`, flattened: what a script reads. */
  summary: Record<string, number | null>;
}

/** A sample for the heatmap grid: image HWC in [0, 1], reconstruction, map H*W, optional mask. */
export interface ReportSample {
  className: string;
  label: 0 | 1;
  score: number;
  width: number;
  height: number;
  image: Float32Array;
  reconstruction: Float32Array;
  map: Float32Array;
  mask?: Uint8Array;
}
