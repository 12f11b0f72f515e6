/**
 * Comparison of subspaces: principal angles between the spans of two orthonormal bases.
 */
import { type Matrix, matrixMultiply } from './matrix';
import { svd } from './svd';

/**
 * Cosines of the principal angles between span(U1) and span(U2), descending: the singular values
 * of U1ᵀU2, clipped to [0, 1]. Both bases must have orthonormal columns and the same row count.
 * min(k1, k2) values; all ones means one span contains the other.
 */
export function subspaceCosines(u1: Matrix, u2: Matrix): Float64Array {
  if (u1.rows !== u2.rows) {
    throw new RangeError(`subspaceCosines: bases live in different spaces (${u1.rows} vs ${u2.rows} rows)`);
  }
  const m = matrixMultiply(u1, u2, { transposeA: true });
  const s = svd(m, { computeU: false }).S;
  return s.map((v) => Math.min(1, Math.max(0, v)));
}
