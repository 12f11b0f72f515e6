/**
 * Summaries of a continual-learning result matrix, as continual-learning papers report them.
 *
 * `R[i][j]` is a metric (say image AUROC) on task j measured after learning task i. Row i only
 * needs the tasks learned so far (j <= i); later entries may be missing, null or NaN. A matrix
 * may also have one column per *class* when tasks hold several classes: pass `learnedAt[j]`, the
 * task after which column j is first learned (default: column j is learned at task j).
 */
import { MetricsInputError } from './input';

/** A task-by-task result matrix; `R[i][j]` is the metric on task j after learning task i. */
export type ResultMatrix = ReadonlyArray<ReadonlyArray<number | null | undefined>>;

/** Options shared by the continual summaries. */
export interface ContinualOptions {
  /** For each column, the index of the task (row) after which it is first learned. */
  learnedAt?: ReadonlyArray<number>;
}

interface Checked {
  tasks: number;
  columns: number;
  learnedAt: ReadonlyArray<number>;
  at(i: number, j: number): number;
}

function check(matrix: ResultMatrix, options: ContinualOptions, where: string): Checked {
  const tasks = matrix.length;
  if (tasks === 0) throw new MetricsInputError(`${where}: the result matrix has no rows`);
  const columns = options.learnedAt?.length ?? tasks;
  const learnedAt = options.learnedAt ?? Array.from({ length: tasks }, (_, j) => j);
  for (let j = 0; j < columns; j++) {
    const l = learnedAt[j]!;
    if (!Number.isInteger(l) || l < 0 || l >= tasks) {
      throw new MetricsInputError(`${where}: learnedAt[${j}] = ${l}, expected a task index in 0..${tasks - 1}`);
    }
  }
  const at = (i: number, j: number): number => {
    const v = matrix[i]![j];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new MetricsInputError(
        `${where}: R[${i}][${j}] is ${String(v)}; every task learned by step ${i} needs a finite result in row ${i}`,
      );
    }
    return v;
  };
  return { tasks, columns, learnedAt, at };
}

/**
 * Forgetting of each column learned before the last task: the best result it ever had before the
 * last task minus its result after the last task, `max_{learnedAt_j <= i < T-1} R[i][j] - R[T-1][j]`
 * (Chaudhry et al., 2018). Columns learned in the last task get NaN.
 */
export function forgettingPerTask(matrix: ResultMatrix, options: ContinualOptions = {}): number[] {
  const m = check(matrix, options, 'forgetting');
  const last = m.tasks - 1;
  const out: number[] = [];
  for (let j = 0; j < m.columns; j++) {
    if (m.learnedAt[j]! >= last) {
      out.push(Number.NaN);
      continue;
    }
    let best = Number.NEGATIVE_INFINITY;
    for (let i = m.learnedAt[j]!; i < last; i++) best = Math.max(best, m.at(i, j));
    out.push(best - m.at(last, j));
  }
  return out;
}

/**
 * The forgetting measure: {@link forgettingPerTask} averaged over the columns learned before the
 * last task. Positive = the model got worse on earlier tasks. NaN for a single task.
 */
export function forgetting(matrix: ResultMatrix, options: ContinualOptions = {}): number {
  return meanOfFinite(forgettingPerTask(matrix, options));
}

/** Mean over the columns learned so far of row `i`. */
function rowMean(m: Checked, i: number): number {
  let sum = 0;
  let count = 0;
  for (let j = 0; j < m.columns; j++) {
    if (m.learnedAt[j]! <= i) {
      sum += m.at(i, j);
      count++;
    }
  }
  return count > 0 ? sum / count : Number.NaN;
}

/** The final average: the mean over all columns of the last row (the number most papers report). */
export function finalAverage(matrix: ResultMatrix, options: ContinualOptions = {}): number {
  const m = check(matrix, options, 'finalAverage');
  return rowMean(m, m.tasks - 1);
}

/**
 * The average incremental result (Rebuffi et al., iCaRL): after each task, the mean over the
 * columns learned so far; then the mean of those per-step averages.
 */
export function averageIncremental(matrix: ResultMatrix, options: ContinualOptions = {}): number {
  const m = check(matrix, options, 'averageIncremental');
  let sum = 0;
  for (let i = 0; i < m.tasks; i++) sum += rowMean(m, i);
  return sum / m.tasks;
}

/**
 * Backward transfer (Lopez-Paz and Ranzato, 2017): the mean over columns learned before the last
 * task of `R[T-1][j] - R[learnedAt_j][j]`. Negative = forgetting. NaN for a single task.
 */
export function backwardTransfer(matrix: ResultMatrix, options: ContinualOptions = {}): number {
  const m = check(matrix, options, 'backwardTransfer');
  const last = m.tasks - 1;
  const deltas: number[] = [];
  for (let j = 0; j < m.columns; j++) {
    const l = m.learnedAt[j]!;
    if (l < last) deltas.push(m.at(last, j) - m.at(l, j));
  }
  return meanOfFinite(deltas);
}

/** The summaries of a result matrix, with snake_case keys ready for JSON reports. */
export interface ContinualSummary {
  final_average: number;
  average_incremental: number;
  forgetting: number;
  backward_transfer: number;
}

/** All continual summaries of one result matrix. */
export function continualSummary(matrix: ResultMatrix, options: ContinualOptions = {}): ContinualSummary {
  return {
    final_average: finalAverage(matrix, options),
    average_incremental: averageIncremental(matrix, options),
    forgetting: forgetting(matrix, options),
    backward_transfer: backwardTransfer(matrix, options),
  };
}

function meanOfFinite(values: number[]): number {
  let sum = 0;
  let count = 0;
  for (const v of values) {
    if (!Number.isNaN(v)) {
      sum += v;
      count++;
    }
  }
  return count > 0 ? sum / count : Number.NaN;
}
