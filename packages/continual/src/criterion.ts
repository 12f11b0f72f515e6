/**
 * The GPM basis-growth criterion (Saha et al., "Gradient Projection Memory for Continual
 * Learning", ICLR 2021), on a compressed representation.
 *
 * Given the existing orthonormal basis U of a layer's input space and the new task's
 * representation R (`inDim x samples`):
 *   1. the fraction of R's energy already explained by U is ‖UᵀR‖² / ‖R‖²;
 *   2. the residual R̂ = R - U Uᵀ R is factored, and its leading left singular vectors are added,
 *      largest first, until the explained energy reaches the threshold;
 *   3. the grown basis is re-orthonormalised (it stays a true basis, so P = I - U Uᵀ stays a
 *      projector after any number of tasks; the reference code appends raw residual columns instead
 *      and loses orthonormality from the second task on).
 *
 * R enters only through R Rᵀ, so the compressed factor `U_f Σ_f` of an iSVD (for which
 * `U_f Σ_f² U_fᵀ ≈ R Rᵀ` up to the compression energy) stands in for R without loss beyond that
 * compression. Energies are therefore fractions of the compressed representation's energy.
 */
import { type Matrix, matrixMultiply, orthonormalize, svd } from '@ofm/tensor';
import type { LowRankFactor } from '@ofm/isvd';

/** Outcome of one {@link growBasis}. */
export interface BasisGrowth {
  /** `inDim x rank` float64, orthonormal columns; the old basis's span is contained in it. */
  basis: Matrix;
  /** Fraction of the new representation's energy explained by the old basis. */
  explainedBefore: number;
  /** Fraction explained by the grown basis. */
  explainedAfter: number;
  /** Directions added. */
  added: number;
  /** Directions the criterion asked for but the `maxRank` cap refused. */
  refused: number;
}

/**
 * Grow `existing` (`inDim x k`, orthonormal; null for the first task) with the directions of the
 * new representation (given as its left factor `U_f`, `S_f`) that it does not yet explain, until
 * `threshold` of the representation's energy is explained, keeping at most `maxRank` columns.
 */
export function growBasis(
  existing: Matrix | null,
  representation: LowRankFactor,
  threshold: number,
  maxRank: number = representation.U.rows,
): BasisGrowth {
  const { U: uf, S: sf } = representation;
  const inDim = uf.rows;
  if (existing && existing.rows !== inDim) {
    throw new RangeError(`growBasis: existing basis is ${existing.rows} x ${existing.cols} but the representation lives in ${inDim} dimensions`);
  }
  if (!(threshold > 0 && threshold <= 1)) throw new RangeError(`growBasis: threshold must be in (0, 1], got ${threshold}`);
  const k0 = existing?.cols ?? 0;
  const old = existing ?? { rows: inDim, cols: 0, data: new Float64Array(0) };
  // A = U_f Σ_f stands for R (same R Rᵀ).
  const rf = sf.length;
  const a = new Float64Array(inDim * rf);
  let total = 0;
  for (let j = 0; j < rf; j++) total += sf[j]! * sf[j]!;
  for (let i = 0; i < inDim; i++) {
    for (let j = 0; j < rf; j++) a[i * rf + j] = uf.data[i * uf.cols + j]! * sf[j]!;
  }
  if (total === 0) {
    return { basis: copy(old), explainedBefore: 1, explainedAfter: 1, added: 0, refused: 0 };
  }
  // Residual R̂ = A - U (Uᵀ A), projected twice for accuracy.
  if (k0 > 0) {
    for (let pass = 0; pass < 2; pass++) subtractProjection(a, inDim, rf, old);
  }
  let residualEnergy = 0;
  for (let i = 0; i < a.length; i++) residualEnergy += a[i]! * a[i]!;
  const explainedBefore = k0 === 0 ? 0 : Math.min(1, Math.max(0, 1 - residualEnergy / total));
  const missing = threshold * total - (total - residualEnergy);
  if (missing <= 0 || residualEnergy === 0) {
    return { basis: copy(old), explainedBefore, explainedAfter: explainedBefore, added: 0, refused: 0 };
  }
  // The fewest leading residual directions whose energy covers what is missing.
  const fraction = Math.min(1, missing / residualEnergy);
  const res = svd({ rows: inDim, cols: rf, data: a }, { energy: fraction });
  const wanted = res.S.length;
  const room = Math.max(0, Math.min(maxRank, inDim) - k0);
  const take = Math.min(wanted, room);
  // [U | Û_take], re-orthonormalised (Gram-Schmidt keeps span(U) exactly as the leading columns).
  const width = k0 + take;
  const joined = new Float64Array(inDim * width);
  const ur = res.U!;
  for (let i = 0; i < inDim; i++) {
    for (let j = 0; j < k0; j++) joined[i * width + j] = old.data[i * k0 + j]!;
    for (let j = 0; j < take; j++) joined[i * width + k0 + j] = ur.data[i * ur.cols + j]!;
  }
  const { Q } = orthonormalize({ rows: inDim, cols: width, data: joined }, { tolerance: 1e-8 });
  let addedEnergy = 0;
  for (let j = 0; j < take; j++) addedEnergy += res.S[j]! * res.S[j]!;
  const explainedAfter = Math.min(1, explainedBefore + addedEnergy / total);
  return { basis: Q, explainedBefore, explainedAfter, added: Q.cols - k0, refused: wanted - take };
}

/** a (rows x cols) -= U (Uᵀ a), U = `u` (rows x k). */
function subtractProjection(a: Float64Array, rows: number, cols: number, u: Matrix): void {
  const am: Matrix = { rows, cols, data: a };
  const back = matrixMultiply(u, matrixMultiply(u, am, { transposeA: true }));
  for (let i = 0; i < a.length; i++) a[i] -= back.data[i]!;
}

function copy(m: Matrix): Matrix {
  return { rows: m.rows, cols: m.cols, data: Float64Array.from(m.data) };
}
