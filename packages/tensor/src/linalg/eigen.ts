/**
 * Symmetric eigendecomposition in float64: Householder tridiagonalisation, divide and conquer on
 * the tridiagonal matrix, and a blocked back-transformation.
 */
import { applyQ, tridiagonalize } from './householder';
import type { Matrix } from './matrix';
import { type KeepSpec, tridiagonalEigen } from './tridiagonal-eigen';

/** Options of {@link symmetricEigen}. */
export interface SymmetricEigenOptions {
  /**
   * How many eigenvectors to form, for the largest eigenvalues (default: all). All eigenvalues are
   * always returned; fewer vectors make the back-transformation proportionally cheaper.
   */
  vectors?: number;
}

/** Result of {@link symmetricEigen}. */
export interface SymmetricEigenResult {
  /** All eigenvalues, descending. */
  values: Float64Array;
  /** `n x k` float64: column j is the unit eigenvector of `values[j]`. */
  vectors: Matrix;
}

/**
 * Eigen-decomposition A = V diag(λ) Vᵀ of a symmetric matrix (only its lower triangle is read),
 * in float64 whatever the input type.
 */
export function symmetricEigen(a: Matrix, options: SymmetricEigenOptions = {}): SymmetricEigenResult {
  if (a.rows !== a.cols) throw new RangeError(`symmetricEigen: matrix must be square, got ${a.rows} x ${a.cols}`);
  const n = a.rows;
  const k = Math.min(n, options.vectors ?? n);
  const { values, rows } = eigenRows(Float64Array.from(a.data), n, k);
  const data = new Float64Array(n * k);
  for (let j = 0; j < k; j++) {
    for (let i = 0; i < n; i++) data[i * k + j] = rows[j * n + i]!;
  }
  return { values, vectors: { rows: n, cols: k, data } };
}

/**
 * Internal form of {@link symmetricEigen}: consumes the n x n buffer `a` and returns all eigenvalues
 * (descending) and the eigenvectors of the k largest as rows (`k x n`, row j for `values[j]`).
 * `keep` is a count or picks one from the eigenvalues (given descending) before vectors are formed.
 */
export function eigenRows(
  a: Float64Array,
  n: number,
  keep: number | ((descending: Float64Array) => number),
): { values: Float64Array; rows: Float64Array; k: number } {
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i]!)) throw new RangeError(`symmetricEigen: entry ${i} is ${a[i]}; the matrix must be finite`);
  }
  const tri = tridiagonalize(a, n);
  const spec: KeepSpec = typeof keep === 'number' ? keep : (asc) => keep(asc.slice().reverse());
  const te = tridiagonalEigen(tri.d, tri.e, spec);
  const k = te.keep;
  applyQ(tri, te.vectors, k);
  // Ascending -> descending.
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = te.values[n - 1 - i]!;
  const rows = new Float64Array(k * n);
  for (let j = 0; j < k; j++) rows.set(te.vectors.subarray((k - 1 - j) * n, (k - j) * n), j * n);
  return { values, rows, k };
}
