/**
 * Test matrices with known structure, built independently of the library under test (plain loops,
 * its own Gram-Schmidt), and the error measures the linear-algebra tests assert on.
 */
import type { Matrix } from '../../src/linalg';
import { Rng } from '../../src/rng';

/** rows x cols with independent standard normal entries. */
export function gaussian(rows: number, cols: number, seed: number, dtype: 'float64' | 'float32' = 'float64'): Matrix {
  const rng = new Rng(seed);
  const data = dtype === 'float32' ? new Float32Array(rows * cols) : new Float64Array(rows * cols);
  for (let i = 0; i < data.length; i++) data[i] = rng.normal();
  return { rows, cols, data };
}

/** A random rows x k matrix with orthonormal columns (double modified Gram-Schmidt, naive loops). */
export function randomOrthonormal(rows: number, k: number, seed: number): Matrix {
  const g = gaussian(rows, k, seed);
  const q = new Float64Array(rows * k);
  for (let j = 0; j < k; j++) {
    const v = new Float64Array(rows);
    for (let i = 0; i < rows; i++) v[i] = g.data[i * k + j]!;
    for (let pass = 0; pass < 2; pass++) {
      for (let p = 0; p < j; p++) {
        let c = 0;
        for (let i = 0; i < rows; i++) c += q[i * k + p]! * v[i]!;
        for (let i = 0; i < rows; i++) v[i] -= c * q[i * k + p]!;
      }
    }
    let nrm = 0;
    for (let i = 0; i < rows; i++) nrm += v[i]! * v[i]!;
    nrm = Math.sqrt(nrm);
    for (let i = 0; i < rows; i++) q[i * k + j] = v[i]! / nrm;
  }
  return { rows, cols: k, data: q };
}

/** Naive product op(A)·op(B) in float64. */
export function naiveMatmul(a: Matrix, b: Matrix, ta = false, tb = false): Matrix {
  const m = ta ? a.cols : a.rows;
  const k = ta ? a.rows : a.cols;
  const n = tb ? b.rows : b.cols;
  const out = new Float64Array(m * n);
  const at = (i: number, p: number) => (ta ? a.data[p * a.cols + i]! : a.data[i * a.cols + p]!);
  const bt = (p: number, j: number) => (tb ? b.data[j * b.cols + p]! : b.data[p * b.cols + j]!);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += at(i, p) * bt(p, j);
      out[i * n + j] = s;
    }
  }
  return { rows: m, cols: n, data: out };
}

/** Q1 diag(s) Q2ᵀ with random orthonormal Q1 (rows x k) and Q2 (cols x k), k = s.length. */
export function withSingularValues(rows: number, cols: number, s: number[], seed: number): Matrix {
  const k = s.length;
  const q1 = randomOrthonormal(rows, k, seed);
  const q2 = randomOrthonormal(cols, k, seed + 1);
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      let v = 0;
      for (let p = 0; p < k; p++) v += q1.data[i * k + p]! * s[p]! * q2.data[j * k + p]!;
      out[i * cols + j] = v;
    }
  }
  return { rows, cols, data: out };
}

/** n values from `hi` down to `lo`, evenly spaced in log scale. */
export function logspace(hi: number, lo: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => hi * (lo / hi) ** (n === 1 ? 0 : i / (n - 1)));
}

/** max |QᵀQ - I|. */
export function orthonormalityError(q: Matrix): number {
  const g = naiveMatmul(q, q, true, false);
  let e = 0;
  for (let i = 0; i < g.rows; i++) {
    for (let j = 0; j < g.cols; j++) e = Math.max(e, Math.abs(g.data[i * g.cols + j]! - (i === j ? 1 : 0)));
  }
  return e;
}

/** ‖A - U diag(S) Vᵀ‖_F / ‖A‖_F. */
export function reconstructionError(a: Matrix, u: Matrix, s: ArrayLike<number>, v: Matrix): number {
  const k = s.length;
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.rows; i++) {
    for (let j = 0; j < a.cols; j++) {
      let r = 0;
      for (let p = 0; p < k; p++) r += u.data[i * k + p]! * s[p]! * v.data[j * k + p]!;
      const x = a.data[i * a.cols + j]!;
      num += (x - r) * (x - r);
      den += x * x;
    }
  }
  return Math.sqrt(num / den);
}

/** max |x - y| over two equally long arrays. */
export function maxAbsDiff(x: ArrayLike<number>, y: ArrayLike<number>): number {
  if (x.length !== y.length) throw new Error(`length ${x.length} vs ${y.length}`);
  let e = 0;
  for (let i = 0; i < x.length; i++) e = Math.max(e, Math.abs(x[i]! - y[i]!));
  return e;
}
