/**
 * How closely two factorisations of the same data agree: principal angles between their leading
 * subspaces and the relative error of their singular values.
 */
import { type Matrix, subspaceCosines } from '@ofm/tensor';
import { leadingColumns } from './factor';

/** Agreement of two leading subspaces of equal dimension. */
export interface SubspaceAgreement {
  /** The dimension compared (the leading `rank` columns of each basis). */
  rank: number;
  /** Cosines of the principal angles, descending. */
  cosines: Float64Array;
  /** The smallest cosine: 1 means one subspace contains the other. */
  minCosine: number;
  /** Mean squared cosine, ‖AᵀB‖²_F / rank: the fraction of one subspace captured by the other. */
  meanSquaredCosine: number;
}

/**
 * Principal-angle agreement between the leading `rank` columns of two orthonormal bases of the same
 * space (default: the smaller column count).
 */
export function subspaceAgreement(a: Matrix, b: Matrix, rank = Math.min(a.cols, b.cols)): SubspaceAgreement {
  if (rank > a.cols || rank > b.cols) {
    throw new RangeError(`subspaceAgreement: rank ${rank} exceeds a basis (${a.cols} and ${b.cols} columns)`);
  }
  if (rank === 0) return { rank, cosines: new Float64Array(0), minCosine: 1, meanSquaredCosine: 1 };
  const cosines = subspaceCosines(leadingColumns(a, rank), leadingColumns(b, rank));
  let ss = 0;
  for (const c of cosines) ss += c * c;
  return { rank, cosines, minCosine: cosines[cosines.length - 1]!, meanSquaredCosine: ss / rank };
}

/** max_i |a_i - b_i| / b_i over the leading `count` values (b is the reference). */
export function maxRelativeError(a: ArrayLike<number>, b: ArrayLike<number>, count = Math.min(a.length, b.length)): number {
  if (count > a.length || count > b.length) {
    throw new RangeError(`maxRelativeError: count ${count} exceeds the arrays (${a.length} and ${b.length} values)`);
  }
  let worst = 0;
  for (let i = 0; i < count; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / Math.abs(b[i]!));
  return worst;
}
