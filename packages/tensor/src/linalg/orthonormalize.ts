/**
 * Orthonormalisation of vectors by block Gram-Schmidt with re-orthogonalisation ("twice is
 * enough"), and projection onto the orthogonal complement of a basis.
 */
import { dot, gemmNN, gemmNT } from './kernels';
import { type Matrix, type MatrixData, asFloat64, matrixTranspose } from './matrix';

/** Rows projected together against the accepted ones (a matrix product per block). */
const BLOCK = 32;

/** Options of {@link orthonormalizeRows}. */
export interface RowOrthonormalizeOptions {
  /**
   * A row whose norm after removing the earlier directions is at most `tolerance` times its
   * original norm is numerically dependent (so is an all-zero row).
   */
  tolerance: number;
  /**
   * 'drop': dependent rows are left out and the accepted rows are packed at the top.
   * 'complete': a dependent row is replaced by a unit vector orthogonal to all rows before it,
   * so the output has as many rows as the input (requires rows <= length).
   */
  dependent: 'drop' | 'complete';
  /**
   * The first `trusted` rows are already orthogonal to working precision and are only normalised
   * (default 0). The SVD uses this for singular vectors whose orthogonality the theory guarantees.
   */
  trusted?: number;
}

/**
 * Orthonormalise the `k` rows (each of length `len`) of `y` in order, in place. Returns the number of
 * rows kept (always `k` with 'complete'), the indices of the dependent input rows, and for each
 * output row the norm it had after the earlier directions were removed (the diagonal of R in
 * Yᵀ = Q R; 0 for completed rows).
 */
export function orthonormalizeRows(
  y: Float64Array,
  k: number,
  len: number,
  options: RowOrthonormalizeOptions,
): { kept: number; dependent: number[]; norms: Float64Array } {
  const { tolerance, dependent: mode } = options;
  const trusted = Math.min(k, options.trusted ?? 0);
  if (mode === 'complete' && k > len) {
    throw new RangeError(`orthonormalizeRows: cannot complete ${k} orthonormal rows of length ${len}`);
  }
  const dependent: number[] = [];
  const rNorms = new Float64Array(k);
  const block = new Float64Array(BLOCK * len);
  const coeff = new Float64Array(BLOCK * Math.max(k, 1));
  const norms = new Float64Array(BLOCK);
  let kept = 0;
  for (let r = 0; r < trusted; r++) {
    const o = r * len;
    const nrm = Math.sqrt(dot(len, y, o, y, o));
    if (!(nrm > 0)) throw new RangeError(`orthonormalizeRows: trusted row ${r} is zero`);
    for (let i = 0; i < len; i++) y[o + i] = y[o + i]! / nrm;
    rNorms[kept] = nrm;
    kept++;
  }
  for (let b0 = trusted; b0 < k; b0 += BLOCK) {
    const bs = Math.min(BLOCK, k - b0);
    block.set(y.subarray(b0 * len, (b0 + bs) * len));
    for (let r = 0; r < bs; r++) norms[r] = Math.sqrt(dot(len, block, r * len, block, r * len));
    // Two projections of the whole block against the rows accepted so far.
    for (let pass = 0; pass < 2 && kept > 0; pass++) projectBlock(block, bs, len, y, kept, coeff);
    const blockStart = kept;
    for (let r = 0; r < bs; r++) {
      const ro = r * len;
      // Against the rows accepted earlier in this block, twice.
      for (let pass = 0; pass < 2; pass++) {
        for (let q = blockStart; q < kept; q++) {
          const c = dot(len, block, ro, y, q * len);
          if (c !== 0) for (let i = 0; i < len; i++) block[ro + i] -= c * y[q * len + i]!;
        }
      }
      let nrm = Math.sqrt(dot(len, block, ro, block, ro));
      if (nrm > 0 && nrm < 1e-3 * norms[r]!) {
        // Heavy cancellation: one more full pass restores orthogonality.
        projectRow(block, ro, len, y, kept);
        nrm = Math.sqrt(dot(len, block, ro, block, ro));
      }
      rNorms[kept] = nrm;
      if (!(norms[r]! > 0) || nrm <= tolerance * norms[r]!) {
        dependent.push(b0 + r);
        if (mode === 'drop') continue;
        completeRow(block, ro, len, y, kept);
        rNorms[kept] = 0;
        nrm = 1;
      }
      const inv = 1 / nrm;
      const dst = kept * len;
      for (let i = 0; i < len; i++) y[dst + i] = block[ro + i]! * inv;
      kept++;
    }
  }
  return { kept, dependent, norms: rNorms.subarray(0, kept) };
}

/** block (bs x len) -= (block · Qᵀ) · Q, Q = the first `q` rows of y. */
function projectBlock(block: Float64Array, bs: number, len: number, y: Float64Array, q: number, coeff: Float64Array): void {
  coeff.fill(0, 0, bs * q);
  gemmNT(bs, q, len, block, 0, len, y, 0, len, coeff, 0, q);
  for (let i = 0; i < bs * q; i++) coeff[i] = -coeff[i]!;
  gemmNN(bs, len, q, coeff, 0, q, y, 0, len, block, 0, len);
}

/** One projection of a single row against the first `q` rows of y. */
function projectRow(buf: Float64Array, off: number, len: number, y: Float64Array, q: number): void {
  for (let r = 0; r < q; r++) {
    const c = dot(len, buf, off, y, r * len);
    if (c !== 0) for (let i = 0; i < len; i++) buf[off + i] -= c * y[r * len + i]!;
  }
}

/** Write to buf[off..] a unit vector orthogonal to the first `q` rows of y (q < len). */
function completeRow(buf: Float64Array, off: number, len: number, y: Float64Array, q: number): void {
  // Some coordinate vector keeps at least 1/len of its squared norm outside span(y rows).
  for (let t = 0; t < len; t++) {
    buf.fill(0, off, off + len);
    buf[off + t] = 1;
    projectRow(buf, off, len, y, q);
    projectRow(buf, off, len, y, q);
    const nrm = Math.sqrt(dot(len, buf, off, buf, off));
    if (nrm > 0.5 / Math.sqrt(len)) {
      projectRow(buf, off, len, y, q);
      const n2 = Math.sqrt(dot(len, buf, off, buf, off));
      for (let i = 0; i < len; i++) buf[off + i] = buf[off + i]! / n2;
      return;
    }
  }
  throw new Error('orthonormalizeRows: no direction left to complete the basis');
}

/** Options of {@link orthonormalize}. */
export interface OrthonormalizeOptions {
  /**
   * Relative tolerance for dependence (default 1e-10): a column whose component orthogonal to the
   * columns before it has at most `tolerance` times the column's norm is dropped.
   */
  tolerance?: number;
}

/** Result of {@link orthonormalize}. */
export interface OrthonormalizeResult {
  /** `rows x kept` float64 with orthonormal columns spanning the kept input columns. */
  Q: Matrix;
  /** How many input columns were dropped as numerically dependent (zero columns included). */
  dropped: number;
  /** Indices of the dropped input columns. */
  droppedColumns: number[];
}

/**
 * Orthonormal basis of the column space of A, column by column in input order (Gram-Schmidt with
 * re-orthogonalisation, in blocks); numerically dependent columns are dropped and counted.
 */
export function orthonormalize(a: Matrix, options: OrthonormalizeOptions = {}): OrthonormalizeResult {
  const tolerance = options.tolerance ?? 1e-10;
  if (!(tolerance >= 0 && tolerance < 1)) {
    throw new RangeError(`orthonormalize: tolerance must be in [0, 1), got ${tolerance}`);
  }
  // Columns of A are the rows of Aᵀ.
  const rowsT = asFloat64(matrixTranspose(a).data, true);
  const { kept, dependent } = orthonormalizeRows(rowsT, a.cols, a.rows, { tolerance, dependent: 'drop' });
  const q = matrixTranspose({ rows: kept, cols: a.rows, data: rowsT.subarray(0, kept * a.rows) });
  return { Q: q, dropped: dependent.length, droppedColumns: dependent };
}

/** Layout of a gradient handed to {@link projectOut}. */
export type GradientLayout = 'in-out' | 'out-in';

/** Options of {@link projectOut}. */
export interface ProjectOutOptions {
  /**
   * 'in-out' (default, how one-for-more stores weights: dense `[in, out]`, conv
   * `[kh*kw*in, out]`): G is `in_dim x out` and the result is G - U (Uᵀ G).
   * 'out-in': G is `out x in_dim` and the result is G - (G U) Uᵀ.
   */
  layout?: GradientLayout;
}

/**
 * Remove from G its component in the span of the orthonormal columns of U (`in_dim x k`): the
 * gradient projection of GPM. Computed in float64; the result has G's element type.
 */
export function projectOut(g: Matrix, u: Matrix, options: ProjectOutOptions = {}): Matrix {
  const layout = options.layout ?? 'in-out';
  const inDim = layout === 'in-out' ? g.rows : g.cols;
  if (u.rows !== inDim) {
    throw new RangeError(
      `projectOut: basis has ${u.rows} rows but the gradient's input dimension is ${inDim} ` +
        `(G is ${g.rows} x ${g.cols}, layout '${layout}'); the basis must be in_dim x k`,
    );
  }
  const k = u.cols;
  const U = asFloat64(u.data);
  const out = asFloat64(g.data, true);
  if (k > 0) {
    if (layout === 'in-out') {
      const nOut = g.cols;
      // C = Uᵀ G (k x out), then G -= U C.
      const ut = asFloat64(matrixTranspose(u).data);
      const c = new Float64Array(k * nOut);
      gemmNN(k, nOut, inDim, ut, 0, inDim, out, 0, nOut, c, 0, nOut);
      for (let i = 0; i < c.length; i++) c[i] = -c[i]!;
      gemmNN(inDim, nOut, k, U, 0, k, c, 0, nOut, out, 0, nOut);
    } else {
      const nOut = g.rows;
      // C = G U (out x k), then G -= C Uᵀ.
      const c = new Float64Array(nOut * k);
      gemmNN(nOut, k, inDim, out, 0, inDim, U, 0, k, c, 0, k);
      for (let i = 0; i < c.length; i++) c[i] = -c[i]!;
      const ut = asFloat64(matrixTranspose(u).data);
      gemmNN(nOut, inDim, k, c, 0, k, ut, 0, inDim, out, 0, inDim);
    }
  }
  const data: MatrixData = g.data instanceof Float32Array ? Float32Array.from(out) : out;
  return { rows: g.rows, cols: g.cols, data };
}
