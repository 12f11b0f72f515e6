import { type Matrix, matrixMultiply, orthonormalize, Rng } from '@ofm/tensor';
import { describe, expect, it } from 'vitest';
import { growBasis } from '../src/criterion';

/** A random orthonormal `rows x cols` matrix. */
function randomBasis(rows: number, cols: number, seed: number): Matrix {
  const rng = new Rng(seed);
  const g = new Float64Array(rows * cols);
  for (let i = 0; i < g.length; i++) g[i] = rng.normal();
  return orthonormalize({ rows, cols, data: g }).Q;
}

function columns(m: Matrix, from: number, to: number): Matrix {
  const k = to - from;
  const out = new Float64Array(m.rows * k);
  for (let i = 0; i < m.rows; i++) for (let j = 0; j < k; j++) out[i * k + j] = m.data[i * m.cols + from + j]!;
  return { rows: m.rows, cols: k, data: out };
}

function maxAbsDiffFromIdentity(u: Matrix): number {
  const g = matrixMultiply(u, u, { transposeA: true });
  let worst = 0;
  for (let i = 0; i < g.rows; i++) for (let j = 0; j < g.cols; j++) worst = Math.max(worst, Math.abs(g.data[i * g.cols + j]! - (i === j ? 1 : 0)));
  return worst;
}

/** ‖Pᵀ U‖²_F / cols(P): how much of span(P) lies in span(U) (1 = contained). */
function containment(p: Matrix, u: Matrix): number {
  const c = matrixMultiply(p, u, { transposeA: true });
  let s = 0;
  for (const v of c.data) s += v * v;
  return s / p.cols;
}

describe('growBasis (the GPM criterion)', () => {
  const dim = 30;
  const q = randomBasis(dim, 8, 1);
  // A representation factor with energies 8, 4, 2, 1, 0.5, ... along q's columns.
  const sigma = Float64Array.from({ length: 8 }, (_, j) => Math.sqrt(8 / 2 ** j));
  const total = sigma.reduce((a, s) => a + s * s, 0);

  it('first task: keeps the fewest leading directions that reach the threshold', () => {
    const g = growBasis(null, { U: q, S: sigma }, 0.9);
    // Cumulative energy fractions: 0.502, 0.753, 0.878, 0.941 -> 4 directions.
    expect(g.basis.cols).toBe(4);
    expect(g.added).toBe(4);
    expect(g.explainedBefore).toBe(0);
    expect(g.explainedAfter).toBeGreaterThanOrEqual(0.9);
    expect(containment(columns(q, 0, 4), g.basis)).toBeGreaterThan(1 - 1e-12);
    expect(maxAbsDiffFromIdentity(g.basis)).toBeLessThan(1e-12);
  });

  it('later task: starts from the energy already explained and adds only residual directions', () => {
    // The old basis holds directions 0 and 2 of the new representation: (8 + 2) / total explained.
    const oldBasis = joinColumns(columns(q, 0, 1), columns(q, 2, 3));
    const g = growBasis(oldBasis, { U: q, S: sigma }, 0.95);
    expect(g.explainedBefore).toBeCloseTo(10 / total, 10);
    // Residual energies 4, 1, 0.5, ...: reaching 0.95 needs directions 1 and 3 and 4.
    const needed = 0.95 * total - 10;
    expect(needed).toBeGreaterThan(4 + 1);
    expect(needed).toBeLessThan(4 + 1 + 0.5);
    expect(g.added).toBe(3);
    expect(g.basis.cols).toBe(5);
    // The old span is kept exactly; the new one is still orthonormal.
    expect(containment(oldBasis, g.basis)).toBeGreaterThan(1 - 1e-12);
    expect(containment(joinColumns(columns(q, 1, 2), columns(q, 3, 5)), g.basis)).toBeGreaterThan(1 - 1e-10);
    expect(maxAbsDiffFromIdentity(g.basis)).toBeLessThan(1e-12);
    expect(g.explainedAfter).toBeGreaterThanOrEqual(0.95);
  });

  it('adds nothing when the old basis already explains enough', () => {
    const g = growBasis(columns(q, 0, 3), { U: q, S: sigma }, 0.8);
    expect(g.added).toBe(0);
    expect(g.basis.cols).toBe(3);
    expect(g.explainedAfter).toBe(g.explainedBefore);
  });

  it('respects the rank cap and reports what it refused', () => {
    const g = growBasis(null, { U: q, S: sigma }, 0.999, 3);
    expect(g.basis.cols).toBe(3);
    expect(g.refused).toBeGreaterThan(0);
    expect(g.explainedAfter).toBeLessThan(0.999);
  });

  it('rejects a basis from another space', () => {
    expect(() => growBasis(randomBasis(12, 2, 3), { U: q, S: sigma }, 0.9)).toThrow(/30 dimensions/);
  });
});

function joinColumns(a: Matrix, b: Matrix): Matrix {
  const cols = a.cols + b.cols;
  const out = new Float64Array(a.rows * cols);
  for (let i = 0; i < a.rows; i++) {
    for (let j = 0; j < a.cols; j++) out[i * cols + j] = a.data[i * a.cols + j]!;
    for (let j = 0; j < b.cols; j++) out[i * cols + a.cols + j] = b.data[i * b.cols + j]!;
  }
  return { rows: a.rows, cols, data: out };
}
