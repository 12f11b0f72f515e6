/**
 * Thin singular value decomposition of dense float32/float64 matrices, for GPM and the iterative
 * SVD: the left singular vectors and singular values of representation matrices that are far
 * wider than tall (in_dim x samples), and of the small blocks of incremental updates.
 *
 * Method: A is m x n; p = min(m, n) is the short side.
 *  1. The p x p Gram matrix of the short side (A Aᵀ or AᵀA), accumulated in float64 from exact
 *     products (float32 x float32 is exact in float64), by cache-blocked kernels.
 *  2. Its eigen-decomposition in float64 (Householder tridiagonalisation, divide and conquer,
 *     blocked back-transformation): the short-side singular vectors and σ_i = sqrt(λ_i). Only the
 *     vectors that the rank/energy truncation keeps are formed.
 *  3. The long-side vectors, when wanted, from A's action on the short-side ones (y_i = Aᵀ u_i or
 *     A v_i, which is σ_i times the singular vector), orthonormalised in order of decreasing σ by
 *     Gram-Schmidt with re-orthogonalisation. This step removes the error that the Gram matrix
 *     leaves in the directions of small singular values, so both factors are orthonormal to
 *     working precision even for condition numbers of 1e6 and more.
 *
 * Cost: about m·n·p flops for the Gram matrix, ~6 p³ for the eigen-decomposition, and for a
 * long-side factor of k vectors 2·m·n·k more (plus Gram-Schmidt on the few vectors with tiny σ).
 * With `products: 'tfjs'` the products with A run as float32 tf.matMul on the active backend.
 * Accuracy: the Gram matrix carries an absolute error of order eps·σ_1² on σ_i², so directions with
 * σ_i below about sqrt(eps)·σ_1 ≈ 1e-8·σ_1 are not resolved: the relative reconstruction error
 * ‖A - U S Vᵀ‖_F / ‖A‖_F is at most of that order (about 1e-14 for well-conditioned input, 1e-8 at
 * condition 1e10), singular values above ~1e-3·σ_1 have ~12 correct digits, and both factors are
 * orthonormal to ~1e-12 whatever the conditioning.
 */
import { eigenRows } from './eigen';
import { gemmNN, gemmNT, mirrorLower, syrkLower } from './kernels';
import { type Matrix, type MatrixData, matrixTranspose } from './matrix';
import { orthonormalizeRows } from './orthonormalize';
import { applyTfjs, gramTfjs } from './tfjs-products';

/** Options of {@link svd}. */
export interface SvdOptions {
  /** Keep at most this many singular triplets (default: min(rows, cols)). */
  rank?: number;
  /**
   * Keep the fewest leading triplets whose squared singular values reach this fraction of the
   * total (see {@link energyRank}); combined with `rank`, the smaller count wins.
   */
  energy?: number;
  /** Form V, the right singular vectors (default false). */
  computeV?: boolean;
  /** Form U, the left singular vectors (default true). */
  computeU?: boolean;
  /**
   * How the products with A (the Gram matrix, and A applied to singular vectors) are computed.
   * 'float64' (default): exact products summed in float64 by the JavaScript kernels.
   * 'tfjs': float32 `tf.matMul` on the active tfjs backend: several times faster with the wasm or
   * a native backend, but the Gram matrix then carries relative errors of about 1e-6, so
   * directions with σ_i below ~1e-3·σ_1 are approximate (fine for GPM bases kept by energy).
   * The eigen-decomposition and the orthonormalisation stay in float64 either way, so U and V are
   * orthonormal to working precision in both modes.
   */
  products?: 'float64' | 'tfjs';
}

/** Result of {@link svd}: A ≈ U diag(S) Vᵀ. */
export interface SvdResult {
  /** `rows x k` float64, orthonormal columns (absent only when `computeU` is false). */
  U?: Matrix;
  /**
   * The k kept singular values, descending, non-negative. When the long-side factor is formed
   * (V of a wide matrix, U of a tall one) they are refined to u_iᵀ A v_i; otherwise they are the
   * square roots of the Gram eigenvalues (absolute error about eps·σ_1²/σ_i).
   */
  S: Float64Array;
  /** `cols x k` float64, orthonormal columns (when `computeV`). */
  V?: Matrix;
  /** All min(rows, cols) singular values from the Gram eigenvalues, descending (for energy bookkeeping). */
  allS: Float64Array;
}

/**
 * The smallest k such that S_0² + ... + S_{k-1}² >= threshold · Σ S_i² (S descending).
 * 0 for an all-zero S or threshold 0; S.length for threshold 1.
 */
export function energyRank(s: ArrayLike<number>, threshold: number): number {
  if (!(threshold >= 0 && threshold <= 1)) {
    throw new RangeError(`energyRank: threshold must be in [0, 1], got ${threshold}`);
  }
  let total = 0;
  for (let i = 0; i < s.length; i++) total += s[i]! * s[i]!;
  if (total === 0 || threshold === 0) return 0;
  const target = threshold * total;
  let acc = 0;
  for (let i = 0; i < s.length; i++) {
    acc += s[i]! * s[i]!;
    if (acc >= target) return i + 1;
  }
  return s.length;
}

/** Long-side vectors with σ_i >= TRUST·σ_1 need no re-orthogonalisation (see {@link svd}). */
const TRUST = 1e-3;

/** Columns (or rows) per panel when the Gram matrix is accumulated. */
const PANEL = 256;

/**
 * The Gram matrix of the short side in float64: A Aᵀ (`rows x rows`) when `side` is 'rows',
 * AᵀA (`cols x cols`) when it is 'cols'.
 */
export function gramMatrix(a: Matrix, side: 'rows' | 'cols'): Float64Array {
  const { rows: m, cols: n, data } = a;
  const p = side === 'rows' ? m : n;
  const g = new Float64Array(p * p);
  const panel = new Float64Array(p * PANEL);
  if (side === 'rows') {
    for (let c0 = 0; c0 < n; c0 += PANEL) {
      const w = Math.min(PANEL, n - c0);
      for (let i = 0; i < m; i++) {
        const src = i * n + c0;
        const dst = i * w;
        for (let c = 0; c < w; c++) panel[dst + c] = data[src + c]!;
      }
      syrkLower(m, w, panel, 0, w, g, 0, m);
    }
  } else {
    for (let r0 = 0; r0 < m; r0 += PANEL) {
      const h = Math.min(PANEL, m - r0);
      // panel[j][r] = A[r0 + r][j]
      copyTransposed(data, r0, h, n, panel);
      syrkLower(n, h, panel, 0, h, g, 0, n);
    }
  }
  mirrorLower(p, g);
  return g;
}

/** panel (n x h) = transpose of rows r0..r0+h-1 of the n-column matrix `data`. */
function copyTransposed(data: MatrixData, r0: number, h: number, n: number, panel: Float64Array): void {
  const T = 32;
  for (let j0 = 0; j0 < n; j0 += T) {
    const j1 = Math.min(n, j0 + T);
    for (let r = 0; r < h; r++) {
      const src = (r0 + r) * n;
      for (let j = j0; j < j1; j++) panel[j * h + r] = data[src + j]!;
    }
  }
}

/**
 * Thin SVD A = U diag(S) Vᵀ of a float32 or float64 matrix (see the module comment for the method
 * and its accuracy). Returns the k leading triplets, k from `rank` and `energy`.
 */
export function svd(a: Matrix, options: SvdOptions & { computeU?: true; computeV: true }): SvdResult & { U: Matrix; V: Matrix };
export function svd(a: Matrix, options?: SvdOptions & { computeU?: true; computeV?: false }): SvdResult & { U: Matrix };
export function svd(a: Matrix, options?: SvdOptions): SvdResult;
export function svd(a: Matrix, options: SvdOptions = {}): SvdResult {
  const { rows: m, cols: n, data } = a;
  if (data.length !== m * n) throw new RangeError(`svd: data has ${data.length} elements, ${m} x ${n} needs ${m * n}`);
  const computeU = options.computeU ?? true;
  const computeV = options.computeV ?? false;
  const wide = m <= n;
  const p = Math.min(m, n);
  const L = Math.max(m, n);
  if (options.rank !== undefined && !(Number.isInteger(options.rank) && options.rank >= 0)) {
    throw new RangeError(`svd: rank must be a non-negative integer, got ${options.rank}`);
  }
  const energy = options.energy;
  if (energy !== undefined && !(energy >= 0 && energy <= 1)) {
    throw new RangeError(`svd: energy must be in [0, 1], got ${energy}`);
  }
  const products = options.products ?? 'float64';
  if (products !== 'float64' && products !== 'tfjs') {
    throw new RangeError(`svd: products must be 'float64' or 'tfjs', got ${String(products)}`);
  }
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) {
      throw new RangeError(`svd: element ${i} (row ${Math.floor(i / n)}, col ${i % n}) is ${data[i]}; the matrix must be finite`);
    }
  }

  // 1-2. Short side: Gram matrix and its eigen-decomposition. The eigenvalues come first, so the
  // truncation is known before any vector is formed.
  const g = products === 'tfjs' ? gramTfjs(a, wide ? 'rows' : 'cols') : gramMatrix(a, wide ? 'rows' : 'cols');
  let k = Math.min(p, options.rank ?? p);
  const needShort = wide ? computeU : computeV;
  const needLong = wide ? computeV : computeU;
  const keep = (desc: Float64Array): number => {
    if (!(needShort || needLong)) return 0;
    if (energy === undefined) return k;
    return Math.min(k, energyRank(desc.map((v) => Math.sqrt(Math.max(0, v))), energy));
  };
  const eig = eigenRows(g, p, keep);
  if (energy !== undefined) {
    k = Math.min(k, energyRank(eig.values.map((v) => Math.sqrt(Math.max(0, v))), energy));
  }
  const allS = new Float64Array(p);
  for (let i = 0; i < p; i++) allS[i] = Math.sqrt(Math.max(0, eig.values[i]!));
  const S = allS.slice(0, k);
  const short = eig.rows; // k x p, row i = short-side singular vector i

  const result: SvdResult = { S, allS };
  if (needShort) {
    const mat = rowsToColumns(short, k, p);
    if (wide) result.U = mat;
    else result.V = mat;
  }
  // 3. Long side: y_i = (short vector i) applied through A, then orthonormalised in order.
  if (needLong && k > 0) {
    const y = products === 'tfjs' ? applyTfjs(short, k, a, wide) : applyFloat64(short, k, a, wide);
    // y_iᵀy_j = σ_i σ_j δ_ij - u_iᵀ E u_j, where E (‖E‖ ~ eps·σ_1²) is the rounding error of the
    // Gram matrix: vectors with σ_i >= 1e-3·σ_1 are orthogonal to ~1e-10 as they are; the rest
    // are orthogonalised against all before them.
    // With float32 products no vector is trusted: all are orthogonalised.
    const trustedCutoff = products === 'tfjs' ? Number.POSITIVE_INFINITY : TRUST * allS[0]!;
    let trusted = 0;
    while (trusted < k && S[trusted]! >= trustedCutoff && S[trusted]! > 0) trusted++;
    const { norms } = orthonormalizeRows(y, k, L, { tolerance: 1e-13, dependent: 'complete', trusted });
    // With both factors at hand, σ_i = u_iᵀ A v_i (the best values for these vectors), which is the
    // norm of y_i once the directions of larger σ are removed: accurate also where σ_i² is below
    // the Gram matrix's rounding level.
    S.set(norms);
    const mat = rowsToColumns(y, k, L);
    if (wide) result.V = mat;
    else result.U = mat;
    sortTriplets(result);
  } else if (needLong) {
    const empty: Matrix = { rows: L, cols: 0, data: new Float64Array(0) };
    if (wide) result.V = empty;
    else result.U = empty;
  }
  return result;
}

/**
 * y = rows · A (wide: rows are k x m, y is k x n) or rows · Aᵀ (tall: rows are k x n, y is k x m),
 * in float64, a panel of A at a time.
 */
function applyFloat64(rows: Float64Array, k: number, a: Matrix, wide: boolean): Float64Array {
  const { rows: m, cols: n, data } = a;
  const y = new Float64Array(k * (wide ? n : m));
  if (wide) {
    const buf = new Float64Array(m * PANEL);
    const part = new Float64Array(k * PANEL);
    for (let c0 = 0; c0 < n; c0 += PANEL) {
      const w = Math.min(PANEL, n - c0);
      for (let i = 0; i < m; i++) {
        const src = i * n + c0;
        for (let c = 0; c < w; c++) buf[i * w + c] = data[src + c]!;
      }
      part.fill(0, 0, k * w);
      gemmNN(k, w, m, rows, 0, m, buf, 0, w, part, 0, w);
      for (let r = 0; r < k; r++) y.set(part.subarray(r * w, (r + 1) * w), r * n + c0);
    }
  } else {
    const buf = new Float64Array(PANEL * n);
    for (let r0 = 0; r0 < m; r0 += PANEL) {
      const h = Math.min(PANEL, m - r0);
      for (let i = 0; i < h * n; i++) buf[i] = data[r0 * n + i]!;
      gemmNT(k, h, n, rows, 0, n, buf, 0, n, y, r0, m);
    }
  }
  return y;
}

/** Restore descending order of S (refined values can swap within a cluster), moving U and V along. */
function sortTriplets(r: SvdResult): void {
  const s = r.S;
  let sorted = true;
  for (let i = 1; i < s.length; i++) if (s[i]! > s[i - 1]!) sorted = false;
  if (sorted) return;
  const order = Array.from(s, (_, i) => i).sort((a, b) => s[b]! - s[a]! || a - b);
  const values = order.map((i) => s[i]!);
  s.set(values);
  for (const m of [r.U, r.V]) {
    if (m === undefined) continue;
    const old = m.data.slice();
    for (let i = 0; i < m.rows; i++) {
      for (let j = 0; j < m.cols; j++) m.data[i * m.cols + j] = old[i * m.cols + order[j]!]!;
    }
  }
}

/** A `len x k` matrix whose columns are the k rows (each of length len) of `rows`. */
function rowsToColumns(rows: Float64Array, k: number, len: number): Matrix {
  return matrixTranspose({ rows: k, cols: len, data: rows.subarray(0, k * len) });
}
