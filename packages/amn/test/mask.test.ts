import { ParamStore, Rng, context, tf } from '@ofm/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clearAmnCaches, createAmn } from '../src/amn';
import {
  MASK_BLOCKED,
  clearNeighbourMaskCache,
  neighbourMask,
  neighbourMaskBits,
  neighbourMaskCacheSize,
} from '../src/mask';
import { TINY, useBackend } from './helpers';

beforeAll(async () => {
  await useBackend('cpu');
});
afterAll(() => clearAmnCaches());

/** The definition, spelled out: blocked iff both grid offsets are within floor(k/2). */
function blocked(w: number, q: number, key: number, k: number): boolean {
  const r = (k - 1) / 2;
  const dy = Math.abs(Math.floor(q / w) - Math.floor(key / w));
  const dx = Math.abs((q % w) - (key % w));
  return dy <= r && dx <= r;
}

describe('neighbourMaskBits', () => {
  it.each([
    [5, 5, 3],
    [8, 8, 5],
    [4, 7, 3],
    [6, 3, 1],
    [16, 16, 5],
  ])('on a %ix%i grid with k=%i blocks exactly the k x k neighbourhood', (h, w, k) => {
    const bits = neighbourMaskBits(h, w, k);
    const t = h * w;
    expect(bits.length).toBe(t * t);
    const wrong: string[] = [];
    for (let q = 0; q < t; q++) {
      for (let key = 0; key < t; key++) {
        if (bits[q * t + key] !== (blocked(w, q, key, k) ? 1 : 0)) wrong.push(`${q}->${key}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('counts: an interior token blocks k*k keys, a corner token ((k+1)/2)^2', () => {
    const h = 9;
    const w = 9;
    const k = 5;
    const bits = neighbourMaskBits(h, w, k);
    const rowSum = (q: number) => bits.subarray(q * h * w, (q + 1) * h * w).reduce((a, b) => a + b, 0);
    expect(rowSum(4 * w + 4)).toBe(25);
    expect(rowSum(0)).toBe(9);
    expect(rowSum(w - 1)).toBe(9);
  });

  it('rejects an even size, and a size that would leave the centre token nothing to attend to', () => {
    expect(() => neighbourMaskBits(8, 8, 4)).toThrow(/odd/);
    expect(() => neighbourMaskBits(4, 4, 5)).toThrow(/blocks every token/);
    expect(() => neighbourMaskBits(5, 5, 5)).toThrow(/blocks every token/);
    // 6x6 with k=5: the centre tokens (2..3) still see the far row/column.
    expect(() => neighbourMaskBits(6, 6, 5)).not.toThrow();
  });
});

describe('neighbourMask', () => {
  it('is the additive form of the bits', () => {
    const mask = neighbourMask(5, 6, 3);
    const bits = neighbourMaskBits(5, 6, 3);
    expect(mask.shape).toEqual([30, 30]);
    const values = mask.dataSync();
    for (let i = 0; i < bits.length; i++) expect(values[i]).toBe(bits[i] ? MASK_BLOCKED : 0);
  });

  it('is built once per grid and size, and survives tf.tidy', () => {
    clearNeighbourMaskCache();
    const a = tf.tidy(() => neighbourMask(8, 8, 5));
    expect(a.isDisposed).toBe(false);
    const b = neighbourMask(8, 8, 5);
    expect(b).toBe(a);
    expect(neighbourMask(8, 8, 3)).not.toBe(a);
    expect(neighbourMaskCacheSize()).toBe(2);
    clearNeighbourMaskCache();
    expect(a.isDisposed).toBe(true);
    expect(neighbourMaskCacheSize()).toBe(0);
  });
});

/** Softmax weights of every layer from one forward pass: layer -> [N, heads, T, T] values. */
function attentionWeights(maskSize: number, useMask: boolean): { weights: Float32Array[]; shape: number[] } {
  const amn = createAmn({ ...TINY, maskSize, useMask });
  const params = new ParamStore(3);
  const x = new Rng(5).rand([2, 32, 32, 3]) as tf.Tensor4D;
  const weights: Float32Array[] = [];
  let shape: number[] = [];
  tf.tidy(() => {
    amn.forward(context(params), x, {
      onAttention: (_layer, w) => {
        shape = w.shape;
        weights.push(w.dataSync() as Float32Array);
      },
    });
  });
  x.dispose();
  params.dispose();
  return { weights, shape };
}

describe('neighbour-masked attention in a forward pass', () => {
  it.each([3, 5])('k=%i: exactly zero weight inside the k x k neighbourhood, positive weight elsewhere', (k) => {
    const { weights, shape } = attentionWeights(k, true);
    expect(weights.length).toBe(TINY.layers);
    const [n, heads, t] = shape as [number, number, number, number];
    expect(t).toBe(64);
    const bits = neighbourMaskBits(8, 8, k);
    let maskedNonzero = 0;
    let openZero = 0;
    let maxRowError = 0;
    for (const w of weights) {
      for (let b = 0; b < n * heads; b++) {
        for (let q = 0; q < t; q++) {
          let rowSum = 0;
          for (let key = 0; key < t; key++) {
            const v = w[(b * t + q) * t + key]!;
            rowSum += v;
            if (bits[q * t + key] && v !== 0) maskedNonzero++;
            if (!bits[q * t + key] && !(v > 0)) openZero++;
          }
          maxRowError = Math.max(maxRowError, Math.abs(rowSum - 1));
        }
      }
    }
    expect(maskedNonzero).toBe(0);
    expect(openZero).toBe(0);
    expect(maxRowError).toBeLessThan(1e-5);
  });

  it('without the mask (useMask: false) every token, itself included, gets weight', () => {
    const { weights } = attentionWeights(3, false);
    for (const w of weights) for (const v of w) expect(v).toBeGreaterThan(0);
  });
});
