/**
 * Threshold-free binary metrics: AUROC, average precision and the best F1, with scikit-learn's
 * semantics (`roc_auc_score`, `average_precision_score`, the maximum over
 * `precision_recall_curve`). One sort, one sweep: O(n log n) time, O(n) memory.
 *
 * An AUROC below 0.5 is reported as it is: it means the scores rank anomalies *below* normal
 * samples, which is worth seeing, not hiding.
 */
import { type LabelInput, type RankedScores, type ScoreInput, rankScores, sweepThresholds } from './ranking';

/** The three threshold-free metrics from one sweep. */
export interface BinaryMetrics {
  /** Area under the ROC curve; NaN when only one class is present. */
  auroc: number;
  /** Average precision, sum over thresholds of (R_k - R_{k-1}) P_k; NaN without positives. */
  ap: number;
  /** Best F1 over all thresholds; NaN without positives. */
  f1max: number;
  /** The score threshold (predict anomalous when score >= threshold) that gives {@link f1max}. */
  f1Threshold: number;
  positives: number;
  negatives: number;
}

/** AUROC, AP and F1-max of already ranked scores. */
export function binaryMetricsOfRanked(ranked: RankedScores): BinaryMetrics {
  const P = ranked.positives.length;
  const N = ranked.negatives.length;
  // Twice the ROC area in units of one positive x one negative: an exact integer sum.
  let area2 = 0;
  let ap = 0;
  let f1max = Number.NaN;
  let f1Threshold = Number.NaN;
  let prevTp = 0;
  let prevFp = 0;
  sweepThresholds(ranked, (tp, fp, threshold) => {
    area2 += (fp - prevFp) * (tp + prevTp);
    // Sum recall gains in units of one positive; divide by P once at the end (fewer roundings).
    if (tp > prevTp) ap += (tp - prevTp) * (tp / (tp + fp));
    if (P > 0) {
      const f1 = (2 * tp) / (tp + fp + P);
      if (!(f1 <= f1max)) {
        f1max = f1;
        f1Threshold = threshold;
      }
    }
    prevTp = tp;
    prevFp = fp;
  });
  return {
    auroc: P > 0 && N > 0 ? area2 / (2 * P * N) : Number.NaN,
    ap: P > 0 ? ap / P : Number.NaN,
    f1max,
    f1Threshold,
    positives: P,
    negatives: N,
  };
}

/**
 * AUROC, AP and F1-max in one pass. `scores` and `labels` are flat arrays, or lists of per-image
 * arrays (pixel maps and masks) that are treated as one long array.
 */
export function binaryMetrics(scores: ScoreInput, labels: LabelInput): BinaryMetrics {
  return binaryMetricsOfRanked(rankScores(scores, labels, 'binaryMetrics'));
}

/**
 * Area under the ROC curve (trapezoidal, ties as in scikit-learn's `roc_auc_score`): the
 * probability that a random anomalous sample scores above a random normal one, ties counting
 * one half. 1 = perfect ranking, 0.5 = chance (or all scores tied), 0 = perfectly reversed.
 * Returns NaN when only one class is present.
 */
export function auroc(scores: ScoreInput, labels: LabelInput): number {
  return binaryMetricsOfRanked(rankScores(scores, labels, 'auroc')).auroc;
}

/**
 * Standard error of an AUROC estimated from `positives` anomalous and `negatives` normal samples
 * (Hanley and McNeil, 1982: the exponential approximation of the score distributions). Useful to
 * tell whether two AUROCs on a small validation set differ by more than noise: with 9 normal and
 * 9 anomalous images an AUROC of 0.95 has a standard error of about 0.056.
 */
export function aurocStandardError(auc: number, positives: number, negatives: number): number {
  if (!(auc >= 0 && auc <= 1)) throw new RangeError(`aurocStandardError: auc must be in [0, 1] (got ${auc})`);
  for (const [name, n] of [['positives', positives], ['negatives', negatives]] as const) {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`aurocStandardError: ${name} must be a positive integer (got ${n})`);
  }
  const q1 = auc / (2 - auc);
  const q2 = (2 * auc * auc) / (1 + auc);
  const a2 = auc * auc;
  const variance = (auc * (1 - auc) + (positives - 1) * (q1 - a2) + (negatives - 1) * (q2 - a2)) / (positives * negatives);
  return Math.sqrt(Math.max(0, variance));
}

/**
 * Average precision as in scikit-learn's `average_precision_score`: the sum over distinct
 * thresholds (highest first) of the recall gained times the precision there. No interpolation.
 * Returns NaN when there is no positive sample.
 */
export function averagePrecision(scores: ScoreInput, labels: LabelInput): number {
  return binaryMetricsOfRanked(rankScores(scores, labels, 'averagePrecision')).ap;
}

/**
 * The best F1 score over all thresholds (F1 = 2 TP / (2 TP + FP + FN)). Returns NaN when there
 * is no positive sample.
 */
export function f1Max(scores: ScoreInput, labels: LabelInput): number {
  return binaryMetricsOfRanked(rankScores(scores, labels, 'f1Max')).f1max;
}

/** The best F1 with the threshold that reaches it (predict anomalous when score >= threshold). */
export function bestF1(scores: ScoreInput, labels: LabelInput): { f1: number; threshold: number } {
  const m = binaryMetricsOfRanked(rankScores(scores, labels, 'bestF1'));
  return { f1: m.f1max, threshold: m.f1Threshold };
}

/** Points of a curve, one per distinct threshold, highest threshold first. */
export interface RocCurve {
  /** False-positive rate, starting at 0. */
  fpr: Float64Array;
  /** True-positive rate, starting at 0. */
  tpr: Float64Array;
  /** Thresholds; the first point (0, 0) has threshold +Infinity. */
  thresholds: Float64Array;
}

/**
 * The ROC curve at every distinct threshold (like scikit-learn's `roc_curve` with
 * `drop_intermediate=False`). Meant for plots; for large inputs prefer {@link auroc}.
 */
export function rocCurve(scores: ScoreInput, labels: LabelInput): RocCurve {
  const ranked = rankScores(scores, labels, 'rocCurve');
  const P = ranked.positives.length;
  const N = ranked.negatives.length;
  const fpr: number[] = [0];
  const tpr: number[] = [0];
  const thresholds: number[] = [Number.POSITIVE_INFINITY];
  sweepThresholds(ranked, (tp, fp, t) => {
    fpr.push(N > 0 ? fp / N : Number.NaN);
    tpr.push(P > 0 ? tp / P : Number.NaN);
    thresholds.push(t);
  });
  return { fpr: Float64Array.from(fpr), tpr: Float64Array.from(tpr), thresholds: Float64Array.from(thresholds) };
}
