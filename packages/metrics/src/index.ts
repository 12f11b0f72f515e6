/**
 * @ofm/metrics: anomaly-detection metrics on plain and typed arrays (no tensor dependency).
 *
 * - {@link auroc}, {@link averagePrecision}, {@link f1Max}: image or pixel level, scikit-learn
 *   semantics for ties.
 * - {@link aupro}: MVTec AD's per-region overlap, integrated to FPR 0.3.
 * - {@link forgetting}, {@link averageIncremental}, {@link finalAverage}: continual-learning
 *   summaries of a task-by-task result matrix.
 * - {@link evaluateDetections}: everything at once, as a flat record.
 */
export {
  auroc,
  aurocStandardError,
  averagePrecision,
  bestF1,
  binaryMetrics,
  f1Max,
  rocCurve,
  type BinaryMetrics,
  type RocCurve,
} from './binary';
export { labelComponents } from './components';
export {
  averageIncremental,
  backwardTransfer,
  continualSummary,
  finalAverage,
  forgetting,
  forgettingPerTask,
  type ContinualOptions,
  type ContinualSummary,
  type ResultMatrix,
} from './continual';
export { evaluateDetections, type DetectionInput, type DetectionMetrics } from './evaluate';
export { MetricsInputError, type Labels, type Map2D, type MaskMap, type ScoreMap, type Scores } from './input';
export { aupro, proCurve, type AuproOptions, type ProCurve } from './pro';
export type { LabelInput, ScoreInput } from './ranking';
export { decodeScoreMap, encodeScoreMap, type ScoreMapData } from './scoremap';
