/**
 * Dense matrices on plain typed arrays, row-major. The linear algebra of one-for-more (SVD,
 * orthonormalisation, gradient projection) works on these, so it runs without tfjs and in float64
 * where accuracy needs it.
 */
import { gemmNN, gemmNT } from './kernels';

/** Element storage of a {@link Matrix}: float64 for accuracy, float32 for large data. */
export type MatrixData = Float64Array | Float32Array;

/**
 * A dense row-major matrix: element (i, j) is `data[i * cols + j]`.
 * `data.length` must equal `rows * cols`.
 */
export interface Matrix {
  rows: number;
  cols: number;
  data: MatrixData;
}

function checkDims(rows: number, cols: number, where: string): void {
  if (!Number.isInteger(rows) || rows < 0 || !Number.isInteger(cols) || cols < 0) {
    throw new RangeError(`${where}: rows and cols must be non-negative integers, got ${rows} x ${cols}`);
  }
}

/**
 * Wrap (or copy) values as a `rows x cols` matrix. A Float64Array or Float32Array is used as is
 * (no copy); any other array-like is copied into a Float64Array.
 */
export function matrix(rows: number, cols: number, data: MatrixData | ArrayLike<number>): Matrix {
  checkDims(rows, cols, 'matrix');
  if (data.length !== rows * cols) {
    throw new RangeError(
      `matrix: data has ${data.length} elements but ${rows} x ${cols} needs ${rows * cols}`,
    );
  }
  const stored =
    data instanceof Float64Array || data instanceof Float32Array ? data : Float64Array.from(data);
  return { rows, cols, data: stored };
}

/** A `rows x cols` matrix of zeros (float64 unless `dtype` is 'float32'). */
export function matrixZeros(rows: number, cols: number, dtype: 'float64' | 'float32' = 'float64'): Matrix {
  checkDims(rows, cols, 'zeros');
  const data = dtype === 'float32' ? new Float32Array(rows * cols) : new Float64Array(rows * cols);
  return { rows, cols, data };
}

/** The n x n identity (float64). */
export function matrixIdentity(n: number): Matrix {
  const m = matrixZeros(n, n);
  for (let i = 0; i < n; i++) m.data[i * n + i] = 1;
  return m;
}

/** A matrix from an array of equal-length rows (float64). */
export function matrixFromRows(rows: ArrayLike<number>[]): Matrix {
  const r = rows.length;
  const c = r === 0 ? 0 : rows[0]!.length;
  const data = new Float64Array(r * c);
  for (let i = 0; i < r; i++) {
    const row = rows[i]!;
    if (row.length !== c) {
      throw new RangeError(`fromRows: row ${i} has ${row.length} entries, row 0 has ${c}`);
    }
    for (let j = 0; j < c; j++) data[i * c + j] = row[j]!;
  }
  return { rows: r, cols: c, data };
}

/** The rows of a matrix as plain arrays (for printing and small tests). */
export function matrixToRows(a: Matrix): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < a.rows; i++) out.push(Array.from(a.data.subarray(i * a.cols, (i + 1) * a.cols)));
  return out;
}

/** The transpose, with the same element type. */
export function matrixTranspose(a: Matrix): Matrix {
  const { rows, cols, data } = a;
  const out = data instanceof Float32Array ? new Float32Array(rows * cols) : new Float64Array(rows * cols);
  // Tiles keep both the reads and the writes within a few cache lines.
  const B = 32;
  for (let i0 = 0; i0 < rows; i0 += B) {
    const i1 = Math.min(rows, i0 + B);
    for (let j0 = 0; j0 < cols; j0 += B) {
      const j1 = Math.min(cols, j0 + B);
      for (let i = i0; i < i1; i++) {
        const src = i * cols;
        for (let j = j0; j < j1; j++) out[j * rows + i] = data[src + j]!;
      }
    }
  }
  return { rows: cols, cols: rows, data: out };
}

/** A float64 copy of a matrix. */
export function matrixToFloat64(a: Matrix): Matrix {
  return { rows: a.rows, cols: a.cols, data: Float64Array.from(a.data) };
}

/** Column j as a new Float64Array. */
export function matrixColumn(a: Matrix, j: number): Float64Array {
  if (!(j >= 0 && j < a.cols)) throw new RangeError(`column: index ${j} outside 0..${a.cols - 1}`);
  const out = new Float64Array(a.rows);
  for (let i = 0; i < a.rows; i++) out[i] = a.data[i * a.cols + j]!;
  return out;
}

/** Columns `from..to-1` as a new float64 matrix. */
export function matrixSliceColumns(a: Matrix, from: number, to: number): Matrix {
  if (!(from >= 0 && from <= to && to <= a.cols)) {
    throw new RangeError(`sliceColumns: range ${from}..${to} outside 0..${a.cols}`);
  }
  const k = to - from;
  const out = new Float64Array(a.rows * k);
  for (let i = 0; i < a.rows; i++) {
    for (let j = 0; j < k; j++) out[i * k + j] = a.data[i * a.cols + from + j]!;
  }
  return { rows: a.rows, cols: k, data: out };
}

/** Frobenius norm, accumulated in float64 with scaling-free summation of squares. */
export function frobeniusNorm(a: Matrix): number {
  let s = 0;
  const d = a.data;
  for (let i = 0; i < d.length; i++) s += d[i]! * d[i]!;
  return Math.sqrt(s);
}

/** Options of {@link matrixMultiply}. */
export interface MatrixMultiplyOptions {
  /** Use Aᵀ instead of A. */
  transposeA?: boolean;
  /** Use Bᵀ instead of B. */
  transposeB?: boolean;
}

/** A float64 copy of `data` (or the array itself when it already is float64 and `copy` is false). */
export function asFloat64(data: MatrixData, copy = false): Float64Array {
  if (data instanceof Float64Array) return copy ? data.slice() : data;
  return Float64Array.from(data);
}

/**
 * The product op(A) · op(B) in float64 (op = optional transpose), by cache-blocked kernels.
 * Float32 inputs are widened to float64, so the products are exact before summation.
 */
export function matrixMultiply(a: Matrix, b: Matrix, options: MatrixMultiplyOptions = {}): Matrix {
  const ta = options.transposeA === true;
  const tb = options.transposeB === true;
  const m = ta ? a.cols : a.rows;
  const k = ta ? a.rows : a.cols;
  const k2 = tb ? b.cols : b.rows;
  const n = tb ? b.rows : b.cols;
  if (k !== k2) {
    throw new RangeError(
      `matmul: inner dimensions differ: op(A) is ${m} x ${k}, op(B) is ${k2} x ${n}`,
    );
  }
  const out = new Float64Array(m * n);
  if (m === 0 || n === 0 || k === 0) return { rows: m, cols: n, data: out };
  // Row-major A (m x k) with rows contiguous; B either as rows of Bᵀ (n x k, dot products) or as
  // rows of B (k x n, row updates).
  const A = ta ? asFloat64(matrixTranspose(a).data) : asFloat64(a.data);
  if (tb) {
    gemmNT(m, n, k, A, 0, k, asFloat64(b.data), 0, k, out, 0, n);
  } else {
    gemmNN(m, n, k, A, 0, k, asFloat64(b.data), 0, n, out, 0, n);
  }
  return { rows: m, cols: n, data: out };
}
