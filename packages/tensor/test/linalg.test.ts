import { describe, expect, it } from 'vitest';
import {
  type Matrix,
  energyRank,
  matrixFromRows,
  gramMatrix,
  matrixMultiply,
  matrix,
  orthonormalize,
  projectGradient,
  projectOut,
  matrixSliceColumns,
  subspaceCosines,
  svd,
  symmetricEigen,
  matrixTranspose,
} from '../src/linalg';
import { tf } from '../src/tf';
import {
  gaussian,
  logspace,
  maxAbsDiff,
  naiveMatmul,
  orthonormalityError,
  randomOrthonormal,
  reconstructionError,
  withSingularValues,
} from './helpers/matrices';

describe('matrix helpers', () => {
  it('multiplies with every transpose combination like the naive triple loop', () => {
    // Sizes off the kernels' 4-wide tiles and 128/256 blocks.
    const a = gaussian(37, 261, 1);
    const b = gaussian(261, 19, 2);
    const bt = matrixTranspose(b);
    const at = matrixTranspose(a);
    const ref = naiveMatmul(a, b);
    expect(maxAbsDiff(matrixMultiply(a, b).data, ref.data)).toBeLessThan(1e-12);
    expect(maxAbsDiff(matrixMultiply(a, bt, { transposeB: true }).data, ref.data)).toBeLessThan(1e-12);
    expect(maxAbsDiff(matrixMultiply(at, b, { transposeA: true }).data, ref.data)).toBeLessThan(1e-12);
    expect(maxAbsDiff(matrixMultiply(at, bt, { transposeA: true, transposeB: true }).data, ref.data)).toBeLessThan(1e-12);
    const f32 = gaussian(9, 5, 3, 'float32');
    expect(matrixTranspose(f32).data).toBeInstanceOf(Float32Array);
    expect(matrixTranspose(matrixTranspose(f32)).data).toEqual(f32.data);
    expect(() => matrixMultiply(a, a)).toThrow(/inner dimensions differ/);
    expect(() => matrix(2, 3, [1, 2, 3])).toThrow(/needs 6/);
  });

  it('computes both Gram matrices in float64 from float32 data', () => {
    const a = gaussian(70, 300, 4, 'float32');
    const rows = gramMatrix(a, 'rows');
    const cols = gramMatrix(a, 'cols');
    expect(maxAbsDiff(rows, naiveMatmul(a, a, false, true).data)).toBeLessThan(1e-10);
    expect(maxAbsDiff(cols, naiveMatmul(a, a, true, false).data)).toBeLessThan(1e-10);
  });
});

describe('symmetricEigen', () => {
  it('finds the closed-form spectrum of the 1-2-1 matrix (divide and conquer over many levels)', () => {
    const n = 300;
    const rows = Array.from({ length: n }, (_, i) =>
      Array.from({ length: n }, (_, j) => (i === j ? 2 : Math.abs(i - j) === 1 ? -1 : 0)),
    );
    const { values, vectors } = symmetricEigen(matrixFromRows(rows));
    const expected = Array.from({ length: n }, (_, k) => 2 - 2 * Math.cos(((n - k) * Math.PI) / (n + 1)));
    expect(maxAbsDiff(values, expected)).toBeLessThan(1e-12);
    expect(orthonormalityError(vectors)).toBeLessThan(1e-12);
  });

  it('handles repeated eigenvalues (deflation) with orthonormal vectors and small residuals', () => {
    // Q diag(λ) Qᵀ with λ = 5 (x40), 2 (x30), 0 (x30): the merge steps deflate almost everything.
    const n = 100;
    const q = randomOrthonormal(n, n, 5);
    const lam = Array.from({ length: n }, (_, i) => (i < 40 ? 5 : i < 70 ? 2 : 0));
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < n; p++) s += q.data[i * n + p]! * lam[p]! * q.data[j * n + p]!;
        a[i * n + j] = s;
      }
    }
    const A = matrix(n, n, a);
    const { values, vectors } = symmetricEigen(A);
    expect(maxAbsDiff(values, lam)).toBeLessThan(1e-12);
    expect(orthonormalityError(vectors)).toBeLessThan(1e-12);
    const av = naiveMatmul(A, vectors);
    let res = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) res = Math.max(res, Math.abs(av.data[i * n + j]! - vectors.data[i * n + j]! * values[j]!));
    }
    expect(res).toBeLessThan(1e-12);
  });

  it('forms only the requested leading vectors, equal to those of the full solve', () => {
    const b = gaussian(80, 80, 6);
    const a = naiveMatmul(b, b, false, true);
    const full = symmetricEigen(a);
    const part = symmetricEigen(a, { vectors: 5 });
    expect(part.vectors.cols).toBe(5);
    expect(maxAbsDiff(part.values, full.values)).toBeLessThan(1e-10);
    const cos = subspaceCosines(part.vectors, matrixSliceColumns(full.vectors, 0, 5));
    expect(Math.min(...cos)).toBeGreaterThan(1 - 1e-10);
    expect(() => symmetricEigen(gaussian(3, 4, 1))).toThrow(/must be square/);
  });
});

describe('svd', () => {
  const shapes: [string, number, number][] = [
    ['wide', 45, 130],
    ['tall', 130, 45],
    ['square', 70, 70],
  ];

  for (const [name, m, n] of shapes) {
    it(`decomposes a random ${name} ${m} x ${n} matrix`, () => {
      const a = gaussian(m, n, m * 7 + n);
      const { U, S, V } = svd(a, { computeV: true });
      const k = Math.min(m, n);
      expect(U!.rows).toBe(m);
      expect(U!.cols).toBe(k);
      expect(V!.rows).toBe(n);
      expect(S.length).toBe(k);
      for (let i = 1; i < k; i++) expect(S[i]!).toBeLessThanOrEqual(S[i - 1]!);
      expect(reconstructionError(a, U!, S, V!)).toBeLessThan(1e-12);
      expect(orthonormalityError(U!)).toBeLessThan(1e-12);
      expect(orthonormalityError(V!)).toBeLessThan(1e-12);
    });
  }

  for (const [name, m, n] of [
    ['wide', 60, 150],
    ['tall', 150, 60],
  ] as const) {
    it(`recovers known singular values with condition number 1e6 (${name})`, () => {
      const s = logspace(1, 1e-6, Math.min(m, n));
      const a = withSingularValues(m, n, s, 11);
      const { U, S, V } = svd(a, { computeV: true });
      // Absolute accuracy relative to σ_1; relative accuracy while σ_i is not tiny.
      for (let i = 0; i < s.length; i++) {
        expect(Math.abs(S[i]! - s[i]!)).toBeLessThan(1e-9);
        if (s[i]! > 1e-3) expect(Math.abs(S[i]! - s[i]!) / s[i]!).toBeLessThan(1e-9);
      }
      expect(reconstructionError(a, U!, S, V!)).toBeLessThan(1e-10);
      expect(orthonormalityError(U!)).toBeLessThan(1e-10);
      expect(orthonormalityError(V!)).toBeLessThan(1e-10);
    });
  }

  it('keeps both factors orthonormal at condition 1e10 and on exactly rank-deficient input', () => {
    const a = withSingularValues(40, 90, logspace(1, 1e-10, 40), 12);
    const r = svd(a, { computeV: true });
    // Directions with σ below ~sqrt(eps)·σ_1 are not resolved by the Gram matrix: the error floor
    // is of that order, far inside the 1e-4 that GPM needs.
    expect(reconstructionError(a, r.U!, r.S, r.V!)).toBeLessThan(1e-7);
    expect(orthonormalityError(r.U!)).toBeLessThan(1e-9);
    expect(orthonormalityError(r.V!)).toBeLessThan(1e-9);
    // Rank 3 with duplicate and zero columns; the full factors must still be orthonormal.
    const b = withSingularValues(50, 20, [3, 2, 1], 13);
    for (let i = 0; i < 50; i++) {
      b.data[i * 20 + 5] = b.data[i * 20 + 4]!;
      b.data[i * 20 + 7] = 0;
    }
    for (const input of [b, matrixTranspose(b)]) {
      const rb = svd(input, { computeV: true });
      expect(rb.S[2]! / rb.S[0]!).toBeGreaterThan(0.1);
      expect(rb.S[3]! / rb.S[0]!).toBeLessThan(1e-7);
      expect(orthonormalityError(rb.U!)).toBeLessThan(1e-10);
      expect(orthonormalityError(rb.V!)).toBeLessThan(1e-10);
      expect(reconstructionError(input, rb.U!, rb.S, rb.V!)).toBeLessThan(1e-10);
    }
  });

  it('finds the signal subspace of low-rank data plus noise, and its energy rank', () => {
    const m = 64;
    const n = 900;
    const signal = withSingularValues(m, n, [40, 30, 20, 10, 5], 14);
    const noise = gaussian(m, n, 15);
    const a = matrix(
      m,
      n,
      Array.from(signal.data, (x, i) => x + 1e-3 * noise.data[i]!),
    );
    const full = svd(a);
    const k = energyRank(full.S, 0.999);
    expect(k).toBe(5);
    const truncated = svd(a, { energy: 0.999 });
    expect(truncated.S.length).toBe(5);
    expect(truncated.U!.cols).toBe(5);
    // The kept directions span the signal's column space.
    const cos = subspaceCosines(truncated.U!, randomOrthonormal(m, 5, 14));
    expect(Math.min(...cos)).toBeGreaterThan(1 - 1e-4);
    const ranked = svd(a, { rank: 3, computeV: true });
    expect(ranked.U!.cols).toBe(3);
    expect(ranked.V!.cols).toBe(3);
    expect(maxAbsDiff(ranked.S, full.S.subarray(0, 3))).toBeLessThan(1e-10);
    expect(ranked.allS.length).toBe(m);
  });

  it('decomposes float32 data across several panels and reflector blocks', () => {
    const a = gaussian(90, 700, 16, 'float32');
    const { U, S, V } = svd(a, { computeV: true });
    expect(reconstructionError(a, U!, S, V!)).toBeLessThan(1e-10);
    expect(orthonormalityError(U!)).toBeLessThan(1e-10);
    expect(orthonormalityError(V!)).toBeLessThan(1e-10);
  });

  it('runs the products with A as float32 tfjs matMuls when asked, still with orthonormal factors', () => {
    for (const a of [gaussian(40, 1300, 50, 'float32'), gaussian(1300, 40, 51, 'float32')]) {
      const exact = svd(a, { computeV: true });
      const before = tf.memory().numTensors;
      const fast = svd(a, { computeV: true, products: 'tfjs' });
      expect(tf.memory().numTensors).toBe(before);
      expect(reconstructionError(a, fast.U!, fast.S, fast.V!)).toBeLessThan(1e-5);
      expect(orthonormalityError(fast.U!)).toBeLessThan(1e-10);
      expect(orthonormalityError(fast.V!)).toBeLessThan(1e-10);
      expect(maxAbsDiff(fast.S, exact.S) / exact.S[0]!).toBeLessThan(1e-5);
      expect(maxAbsDiff(fast.allS, exact.allS) / exact.S[0]!).toBeLessThan(1e-5);
    }
  });

  it('rejects non-finite input and bad options', () => {
    const a = gaussian(4, 6, 17);
    a.data[9] = Number.NaN;
    expect(() => svd(a)).toThrow(/row 1, col 3\) is NaN/);
    expect(() => svd(gaussian(3, 3, 1), { rank: -1 })).toThrow(/rank must be/);
    expect(() => svd(gaussian(3, 3, 1), { energy: 2 })).toThrow(/energy must be in \[0, 1\]/);
    // @ts-expect-error: an unknown products mode
    expect(() => svd(gaussian(3, 3, 1), { products: 'gpu' })).toThrow(/products must be 'float64' or 'tfjs'/);
  });
});

describe('energyRank', () => {
  it('returns the smallest prefix reaching the energy fraction', () => {
    const s = [3, 2, 1]; // energies 9, 4, 1 of 14
    expect(energyRank(s, 9 / 14)).toBe(1);
    expect(energyRank(s, 0.65)).toBe(2);
    expect(energyRank(s, 13 / 14)).toBe(2);
    expect(energyRank(s, 0.93)).toBe(3);
    expect(energyRank(s, 1)).toBe(3);
    expect(energyRank(s, 0)).toBe(0);
    expect(energyRank([0, 0], 0.5)).toBe(0);
    expect(() => energyRank(s, 1.5)).toThrow(/threshold must be in \[0, 1\]/);
  });
});

describe('orthonormalize', () => {
  it('returns an orthonormal basis of the same span', () => {
    const a = gaussian(50, 12, 20);
    const { Q, dropped } = orthonormalize(a);
    expect(dropped).toBe(0);
    expect(Q.cols).toBe(12);
    expect(orthonormalityError(Q)).toBeLessThan(1e-13);
    // Columns in order: Q's first j columns span A's first j columns (A = Q R, R upper triangular).
    const r = matrixMultiply(Q, a, { transposeA: true });
    for (let i = 0; i < 12; i++) for (let j = 0; j < i; j++) expect(Math.abs(r.data[i * 12 + j]!)).toBeLessThan(1e-12);
    expect(maxAbsDiff(matrixMultiply(Q, r).data, a.data)).toBeLessThan(1e-12);
  });

  it('drops dependent and zero columns and says which', () => {
    const base = gaussian(30, 3, 21);
    const cols = [0, 1, -1, -2, 2]; // x, y, x+y, 0, z
    const data = new Float64Array(30 * 5);
    for (let i = 0; i < 30; i++) {
      const x = base.data[i * 3]!;
      const y = base.data[i * 3 + 1]!;
      const z = base.data[i * 3 + 2]!;
      const row = [x, y, x + y, 0, z];
      for (let j = 0; j < 5; j++) data[i * 5 + j] = row[j]!;
    }
    expect(cols.length).toBe(5);
    const { Q, dropped, droppedColumns } = orthonormalize(matrix(30, 5, data));
    expect(dropped).toBe(2);
    expect(droppedColumns).toEqual([2, 3]);
    expect(Q.cols).toBe(3);
    expect(orthonormalityError(Q)).toBeLessThan(1e-13);
  });
});

describe('projectOut', () => {
  const inDim = 40;
  const out = 13;
  const u = randomOrthonormal(inDim, 6, 30);

  it('removes the basis directions from an [in, out] gradient and keeps the rest', () => {
    const g = gaussian(inDim, out, 31);
    const p = projectOut(g, u);
    // Uᵀ P = 0.
    const c = matrixMultiply(u, p, { transposeA: true });
    const gNorm = Math.sqrt(Array.from(g.data).reduce((s, x) => s + x * x, 0));
    expect(Math.max(...Array.from(c.data, Math.abs)) / gNorm).toBeLessThan(1e-13);
    // P = G - U UᵀG exactly, by the naive route.
    const ref = naiveMatmul(u, naiveMatmul(u, g, true, false));
    expect(maxAbsDiff(p.data, Array.from(g.data, (x, i) => x - ref.data[i]!))).toBeLessThan(1e-12);
    // Identity on gradients already orthogonal to U; idempotent.
    expect(maxAbsDiff(projectOut(p, u).data, p.data)).toBeLessThan(1e-13);
  });

  it('treats an [out, in] gradient as the transpose and keeps float32', () => {
    const g = gaussian(inDim, out, 32, 'float32');
    const p = projectOut(g, u);
    expect(p.data).toBeInstanceOf(Float32Array);
    const pt = projectOut(matrixTranspose(g), u, { layout: 'out-in' });
    expect(maxAbsDiff(matrixTranspose(pt).data, p.data)).toBeLessThan(1e-6);
    expect(() => projectOut(gaussian(inDim + 1, out, 1), u)).toThrow(/input dimension is 41/);
  });

  it('projects a conv-shaped tfjs gradient like the typed-array version, without leaking tensors', () => {
    const [kh, kw, cin, cout] = [3, 3, 4, 5];
    const inD = kh * kw * cin;
    const basis = randomOrthonormal(inD, 7, 33);
    const g = gaussian(inD, cout, 34, 'float32');
    const expected = projectOut(g, basis);
    const gT = tf.tensor4d(g.data as Float32Array, [kh, kw, cin, cout]);
    const uT = tf.tensor2d(Float32Array.from(basis.data), [inD, 7]);
    const before = tf.memory().numTensors;
    const pT = projectGradient(gT, uT);
    expect(tf.memory().numTensors).toBe(before + 1);
    expect(pT.shape).toEqual([kh, kw, cin, cout]);
    expect(maxAbsDiff(pT.dataSync(), expected.data)).toBeLessThan(1e-5);
    // Dense [in, out] too.
    const dense = projectGradient(gT.reshape([inD, cout]), uT);
    expect(maxAbsDiff(dense.dataSync(), expected.data)).toBeLessThan(1e-5);
    expect(() => projectGradient(gT, tf.zeros([inD + 1, 2]) as tf.Tensor2D)).toThrow(/must be \[36, k\]/);
    tf.dispose([gT, uT, pT, dense]);
  });
});

describe('subspaceCosines', () => {
  it('is all ones for the same span, zeros for orthogonal spans, cos θ for a tilted line', () => {
    const q = randomOrthonormal(20, 8, 40);
    const first: Matrix = matrixSliceColumns(q, 0, 4);
    const rot = randomOrthonormal(4, 4, 41);
    const rotated = matrixMultiply(first, rot);
    expect(maxAbsDiff(subspaceCosines(first, rotated), [1, 1, 1, 1])).toBeLessThan(1e-12);
    expect(Math.max(...subspaceCosines(first, matrixSliceColumns(q, 4, 8)))).toBeLessThan(1e-12);
    const theta = 0.3;
    const line = matrixFromRows([[1], [0], [0]]);
    const tilted = matrixFromRows([[Math.cos(theta)], [Math.sin(theta)], [0]]);
    expect(subspaceCosines(line, tilted)[0]).toBeCloseTo(Math.cos(theta), 12);
  });
});
