/**
 * The ranking at the heart of AUROC, AP and F1: scores split by label and sorted once, then swept
 * from the highest threshold down, one step per distinct score (ties move together, as in
 * scikit-learn's `roc_curve` / `precision_recall_curve`).
 */
import { type Labels, MetricsInputError, type Scores, isNested, labelBit } from './input';
import { sortAscending, withExactStorage } from './sort';

/** Scores of the positive and the negative samples, each sorted ascending. */
export interface RankedScores {
  positives: Float32Array | Float64Array;
  negatives: Float32Array | Float64Array;
}

/** Scores and labels: two flat arrays, or two lists of per-image arrays (pixel maps and masks). */
export type ScoreInput = Scores | ReadonlyArray<Scores>;
/** Labels matching a {@link ScoreInput}: one flat array, or one array per image in the same order. */
export type LabelInput = Labels | ReadonlyArray<Labels>;

function chunks<T>(value: ArrayLike<T> | ReadonlyArray<ArrayLike<T>>): ReadonlyArray<ArrayLike<T>> {
  return isNested(value) ? (value as ReadonlyArray<ArrayLike<T>>) : [value as ArrayLike<T>];
}

/** Number of non-zero labels, validating each (integer typed arrays cannot hold bad values). */
export function countPositives(labels: Labels, where: string): number {
  let positives = 0;
  if (ArrayBuffer.isView(labels) && !(labels instanceof Float32Array || labels instanceof Float64Array)) {
    for (let i = 0; i < labels.length; i++) if (labels[i]) positives++;
  } else {
    for (let i = 0; i < labels.length; i++) positives += labelBit(labels[i]!, where, i);
  }
  return positives;
}

/** Split scores by label and sort each side. Throws {@link MetricsInputError} on bad input. */
export function rankScores(scores: ScoreInput, labels: LabelInput, where = 'metric'): RankedScores {
  const scoreChunks = chunks<number>(scores as Scores | ReadonlyArray<Scores>);
  const labelChunks = chunks<number | boolean>(labels as Labels | ReadonlyArray<Labels>);
  if (scoreChunks.length !== labelChunks.length) {
    throw new MetricsInputError(`${where}: ${scoreChunks.length} score arrays but ${labelChunks.length} label arrays`);
  }
  let positives = 0;
  let total = 0;
  for (let c = 0; c < scoreChunks.length; c++) {
    const s = scoreChunks[c]!;
    const l = labelChunks[c]!;
    if (s.length !== l.length) {
      const which = scoreChunks.length > 1 ? ` (array ${c})` : '';
      throw new MetricsInputError(`${where}: ${s.length} scores but ${l.length} labels${which}`);
    }
    positives += countPositives(l, where);
    total += s.length;
  }
  const fill = ([pos, neg]: Array<Float32Array | Float64Array>): boolean => {
    let p = 0;
    let n = 0;
    let exact = true;
    for (let c = 0; c < scoreChunks.length; c++) {
      const s = scoreChunks[c]!;
      const l = labelChunks[c]!;
      for (let i = 0; i < s.length; i++) {
        let v = s[i]!;
        if (typeof v !== 'number' || Number.isNaN(v)) throw badScore(where, v, i, c, scoreChunks.length);
        if (v === 0) v = 0; // -0 and 0 are one threshold
        // Labels were validated by countPositives: truthy = anomalous.
        if (l[i]) {
          pos![p] = v;
          exact = exact && pos![p] === v;
          p++;
        } else {
          neg![n] = v;
          exact = exact && neg![n] === v;
          n++;
        }
      }
    }
    return exact;
  };
  return withExactStorage([positives, total - positives], fill, ([pos, neg]) => ({
    positives: sortAscending(pos!),
    negatives: sortAscending(neg!),
  }));
}

export function badScore(where: string, value: unknown, index: number, chunk: number, chunks: number): MetricsInputError {
  const which = chunks > 1 ? ` of array ${chunk}` : '';
  return new MetricsInputError(`${where}: score at index ${index}${which} is ${String(value)}; scores must be numbers, not NaN`);
}

/**
 * Visit every distinct threshold from the highest score down with the cumulative counts of
 * positives (tp) and negatives (fp) scoring at or above it.
 */
export function sweepThresholds(
  ranked: RankedScores,
  visit: (tp: number, fp: number, threshold: number) => void,
): void {
  const { positives: pos, negatives: neg } = ranked;
  let i = pos.length - 1;
  let j = neg.length - 1;
  let tp = 0;
  let fp = 0;
  while (i >= 0 || j >= 0) {
    const t = i < 0 ? neg[j]! : j < 0 ? pos[i]! : Math.max(pos[i]!, neg[j]!);
    while (i >= 0 && pos[i] === t) {
      tp++;
      i--;
    }
    while (j >= 0 && neg[j] === t) {
      fp++;
      j--;
    }
    visit(tp, fp, t);
  }
}
