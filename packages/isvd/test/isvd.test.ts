import { type Matrix, matrixMultiply, subspaceCosines, tf } from '@ofm/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import { IncrementalSvd, type IsvdMethod } from '../src/isvd';
import { maxRelativeError, subspaceAgreement } from '../src/agreement';
import { StackedSvd } from '../src/stacked';
import { SyntheticRepresentation } from '../src/synthetic';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** max |UᵀU - I| over all entries. */
function orthonormalityError(u: Matrix): number {
  const g = matrixMultiply(u, u, { transposeA: true });
  let worst = 0;
  for (let i = 0; i < g.rows; i++) {
    for (let j = 0; j < g.cols; j++) worst = Math.max(worst, Math.abs(g.data[i * g.cols + j]! - (i === j ? 1 : 0)));
  }
  return worst;
}

/** Stream the same seeded blocks into several factorisers. */
function stream(
  gen: SyntheticRepresentation,
  blocks: number,
  rows: number,
  targets: { push(b: Matrix): void }[],
  steps = 10,
): void {
  for (let b = 0; b < blocks; b++) {
    const block = gen.block(rows, b % steps);
    for (const t of targets) t.push(block);
  }
}

describe('IncrementalSvd against a full SVD of the stacked matrix', () => {
  const cases: { method: IsvdMethod; k: number }[] = [
    { method: 'gram', k: 1 },
    { method: 'qr', k: 1 },
    { method: 'gram', k: 4 },
    { method: 'qr', k: 3 },
  ];
  for (const { method, k } of cases) {
    it(`recovers the energy-0.999 subspace and singular values (method ${method}, k = ${k})`, () => {
      const gen = new SyntheticRepresentation({ dim: 96, rank: 20, noiseFraction: 5e-4, modulation: 0.4, mean: 1, seed: 3 });
      const isvd = new IncrementalSvd({ dim: 96, energy: 0.999, method, blocksPerUpdate: k });
      const full = new StackedSvd({ dim: 96, energy: 0.999 });
      stream(gen, 120, 16, [isvd, full]);
      const ref = full.factor();
      const got = isvd.factor();
      // The data has 21 strong directions (20 signal + mean inside their span: still 20) above a
      // noise floor of 0.05% of the energy: the 0.999 rank is the signal rank.
      expect(ref.S.length).toBe(20);
      expect(got.S.length).toBe(ref.S.length);
      const agree = subspaceAgreement(got.U, ref.U, ref.S.length);
      expect(agree.minCosine).toBeGreaterThanOrEqual(0.99);
      expect(maxRelativeError(got.S, ref.S, ref.S.length)).toBeLessThan(0.01);
      expect(orthonormalityError(got.U)).toBeLessThan(1e-10);
      expect(isvd.updates).toBe(Math.ceil(120 / k));
    });
  }

  it('keeps directions that first appear late in the stream', () => {
    // 60 blocks from one subspace, then 60 blocks that add two new directions carrying ~3% of each
    // block's energy (~1.5% of the total: inside the full SVD's 0.999 rank). A truncation budget
    // measured against the whole factor would cut them at every update, one block's worth at a time.
    const dim = 48;
    const early = new SyntheticRepresentation({ dim, rank: 8, noiseFraction: 2e-4, seed: 21 });
    const late = new SyntheticRepresentation({ dim, rank: 2, sigmaMin: 1, noiseFraction: 0, seed: 22 });
    for (const method of ['gram', 'qr'] as const) {
      const isvd = new IncrementalSvd({ dim, energy: 0.999, method });
      const full = new StackedSvd({ dim, energy: 0.999 });
      for (let b = 0; b < 120; b++) {
        const block = early.block(16, b);
        if (b >= 60) {
          const extra = late.block(16, b);
          for (let i = 0; i < block.data.length; i++) block.data[i] += 0.3 * extra.data[i]!;
        }
        isvd.push(block);
        full.push(block);
      }
      const ref = full.factor();
      const got = isvd.factor();
      expect(ref.S.length).toBe(10);
      expect(got.S.length).toBe(10);
      // span(late.basis) lies in the factor's span: both principal cosines are ~1.
      expect(Math.min(...subspaceCosines(got.U, late.basis))).toBeGreaterThan(0.99);
      expect(subspaceAgreement(got.U, ref.U, 10).minCosine).toBeGreaterThan(0.99);
      expect(maxRelativeError(got.S, ref.S, 10)).toBeLessThan(0.01);
    }
  });

  it('is exact on data of exact low rank', () => {
    const gen = new SyntheticRepresentation({ dim: 40, rank: 6, noiseFraction: 0, seed: 11 });
    for (const method of ['gram', 'qr'] as const) {
      const isvd = new IncrementalSvd({ dim: 40, energy: 1, method });
      const full = new StackedSvd({ dim: 40, energy: 1 });
      stream(gen, 30, 5, [isvd, full]);
      const ref = full.factor();
      const got = isvd.factor();
      // Rank-6 data: the full SVD's other singular values are rounding noise.
      expect(ref.S[6]! / ref.S[0]!).toBeLessThan(1e-6);
      // Energy 1 keeps every direction of the data, and nothing below numerical resolution.
      expect(got.S.length).toBe(6);
      expect(maxRelativeError(got.S, ref.S, 6)).toBeLessThan(1e-9);
      expect(subspaceAgreement(got.U, ref.U, 6).minCosine).toBeGreaterThan(1 - 1e-9);
      // And the subspace is the generator's.
      expect(subspaceAgreement(got.U, gen.basis, 6).minCosine).toBeGreaterThan(1 - 1e-9);
    }
  });
});

describe('IncrementalSvd memory', () => {
  it('never holds more than the rank cap plus k blocks while streaming 150 blocks', () => {
    const dim = 64;
    const rows = 24;
    const maxRank = 12;
    for (const k of [1, 3]) {
      const gen = new SyntheticRepresentation({ dim, rank: 30, noiseFraction: 1e-3, seed: 5 });
      const isvd = new IncrementalSvd({ dim, maxRank, blocksPerUpdate: k, energy: 0.999 });
      const bound = IncrementalSvd.memoryBound({ dim, maxRank, blockRows: rows, blocksPerUpdate: k });
      let maxHeld = 0;
      for (let b = 0; b < 150; b++) {
        isvd.push(gen.block(rows, b));
        expect(isvd.rank).toBeLessThanOrEqual(maxRank);
        expect(isvd.pendingBlockCount).toBeLessThan(k);
        maxHeld = Math.max(maxHeld, isvd.bytesHeld());
      }
      expect(isvd.peakBytesHeld).toBeLessThanOrEqual(bound.totalBytes);
      expect(maxHeld).toBeLessThanOrEqual(bound.totalBytes);
      // The data (rank 30) saturates the cap of 12, so the factor reaches its bound exactly.
      expect(isvd.rank).toBe(maxRank);
      expect(isvd.peakBytesHeld).toBeGreaterThanOrEqual(bound.factorBytes);
      // The state kept between pushes is the factor (and the pending-block buffer, k blocks); with
      // k = 1 the block comes on top only while it is folded in.
      expect(isvd.largestBlockBytes).toBe(4 * rows * dim);
      expect(isvd.peakStateBytes).toBeGreaterThanOrEqual(maxHeld);
      expect(isvd.peakStateBytes).toBeLessThanOrEqual(isvd.peakBytesHeld);
      expect(isvd.peakStateBytes).toBeLessThanOrEqual(k === 1 ? bound.factorBytes : bound.totalBytes);
      if (k === 1) expect(isvd.peakBytesHeld).toBeGreaterThan(isvd.peakStateBytes);
      // Far below what stacking everything takes.
      expect(bound.totalBytes).toBeLessThan(0.1 * 4 * dim * rows * 150);
    }
  });

  it('the naive variant grows with the number of samples', () => {
    const full = new StackedSvd({ dim: 10, expectedRows: 100 });
    const gen = new SyntheticRepresentation({ dim: 10, rank: 3, seed: 1 });
    expect(full.bytesHeld()).toBe(4 * 10 * 100);
    for (let b = 0; b < 12; b++) full.push(gen.block(10, b));
    expect(full.samplesSeen).toBe(120);
    expect(full.bytesHeld()).toBeGreaterThanOrEqual(4 * 10 * 120);
  });
});

describe('IncrementalSvd bookkeeping and inputs', () => {
  it('tracks the energy it was fed and the energy it kept', () => {
    const gen = new SyntheticRepresentation({ dim: 32, rank: 8, noiseFraction: 2e-3, seed: 9 });
    const isvd = new IncrementalSvd({ dim: 32, energy: 0.999 });
    let total = 0;
    for (let b = 0; b < 20; b++) {
      const block = gen.block(8, b);
      for (const v of block.data) total += v * v;
      isvd.push(block);
    }
    expect(isvd.totalEnergy).toBeCloseTo(total, 6);
    const kept = isvd.retainedEnergy / isvd.totalEnergy;
    // Truncations drop (part of) the 0.2% noise and nothing of the signal.
    expect(kept).toBeLessThan(1);
    expect(kept).toBeGreaterThan(0.996);
    expect(isvd.samplesSeen).toBe(160);
    expect(isvd.blocksSeen).toBe(20);
  });

  it('a block of zeros counts as seen but adds no direction', () => {
    const gen = new SyntheticRepresentation({ dim: 12, rank: 3, noiseFraction: 0, seed: 6 });
    const isvd = new IncrementalSvd({ dim: 12, energy: 1 });
    isvd.push(gen.block(5));
    const before = isvd.singularValues();
    isvd.push({ rows: 4, cols: 12, data: new Float32Array(48) });
    expect(isvd.blocksSeen).toBe(2);
    expect(isvd.samplesSeen).toBe(9);
    expect(isvd.updates).toBe(1);
    expect(Array.from(isvd.singularValues())).toEqual(Array.from(before));
    expect(isvd.rank).toBe(3);
  });

  it('basis(threshold) keeps the leading directions that hold that energy', () => {
    const gen = new SyntheticRepresentation({ dim: 24, rank: 10, sigmaMin: 0.05, noiseFraction: 0, seed: 2 });
    const isvd = new IncrementalSvd({ dim: 24, energy: 1 });
    stream(gen, 10, 12, [isvd]);
    const s = isvd.singularValues();
    const total = s.reduce((a, v) => a + v * v, 0);
    for (const t of [0.5, 0.9, 0.99]) {
      const k = isvd.rankFor(t);
      const head = s.slice(0, k).reduce((a, v) => a + v * v, 0);
      const shorter = s.slice(0, k - 1).reduce((a, v) => a + v * v, 0);
      expect(head / total).toBeGreaterThanOrEqual(t);
      expect(shorter / total).toBeLessThan(t);
      const basis = isvd.basis(t);
      expect(basis.cols).toBe(k);
      expect(orthonormalityError(basis)).toBeLessThan(1e-10);
    }
  });

  it('takes tap tensors [rows, dim] directly, with the same result as matrices', () => {
    const gen = new SyntheticRepresentation({ dim: 16, rank: 4, seed: 4 });
    const a = new IncrementalSvd({ dim: 16 });
    const b = new IncrementalSvd({ dim: 16 });
    for (let i = 0; i < 5; i++) {
      const block = gen.block(6, i);
      a.push(block);
      const t = tf.tensor2d(block.data as Float32Array, [block.rows, block.cols]);
      b.push(t);
      t.dispose();
    }
    expect(Array.from(b.singularValues())).toEqual(Array.from(a.singularValues()));
  });

  it('rejects blocks of the wrong width or with non-finite entries, naming the fix', () => {
    const isvd = new IncrementalSvd({ dim: 8 });
    expect(() => isvd.push({ rows: 2, cols: 7, data: new Float32Array(14) })).toThrow(/built for dim 8.*\[rows, dim\]/);
    const bad = new Float32Array(16);
    bad[5] = Number.NaN;
    expect(() => isvd.push({ rows: 2, cols: 8, data: bad })).toThrow(/row 0, col 5\) is NaN/);
    expect(() => new IncrementalSvd({ dim: 8, energy: 1.5 })).toThrow(/energy must be in \(0, 1\]/);
    expect(() => new IncrementalSvd({ dim: 8, blocksPerUpdate: 0 })).toThrow(/blocksPerUpdate/);
  });
});
