import { describe, expect, it } from 'vitest';
import { MetricsInputError, auroc, aurocStandardError, averagePrecision, bestF1, binaryMetrics, f1Max, rocCurve } from '../src/index';
import { bruteApF1, bruteAuroc, testRandom } from './reference';

describe('hand-computed cases', () => {
  // The example of scikit-learn's documentation: roc_auc_score = 0.75, average_precision_score = 0.8333.
  const scores = [0.1, 0.4, 0.35, 0.8];
  const labels = [0, 0, 1, 1];

  it('matches the scikit-learn documentation example', () => {
    expect(auroc(scores, labels)).toBeCloseTo(0.75, 12);
    expect(averagePrecision(scores, labels)).toBeCloseTo(5 / 6, 12);
  });

  it('finds the best F1 and its threshold', () => {
    // t=0.8: 2/3; t=0.4: 1/2; t=0.35: tp 2, fp 1 -> 4/5; t=0.1: 4/6.
    expect(f1Max(scores, labels)).toBeCloseTo(0.8, 12);
    expect(bestF1(scores, labels)).toEqual({ f1: expect.closeTo(0.8, 12), threshold: expect.closeTo(0.35, 6) });
  });

  it('gives 1 for a perfect ranking and 0 for a reversed one (never flipped)', () => {
    const y = [0, 0, 0, 1, 1];
    const s = [0.1, 0.2, 0.3, 0.7, 0.9];
    expect(auroc(s, y)).toBe(1);
    expect(averagePrecision(s, y)).toBe(1);
    expect(f1Max(s, y)).toBe(1);
    const reversed = s.map((v) => -v);
    expect(auroc(reversed, y)).toBe(0);
    // Reversed: positives come last; precision 1/4 then 2/5 as recall reaches 1/2 then 1.
    expect(averagePrecision(reversed, y)).toBeCloseTo(0.5 * (1 / 4) + 0.5 * (2 / 5), 12);
  });

  it('gives 0.5 for all ties, and precision = prevalence', () => {
    const y = [0, 1, 0, 0, 1, 1, 0, 0];
    const s = new Array(y.length).fill(0.42);
    expect(auroc(s, y)).toBe(0.5);
    expect(averagePrecision(s, y)).toBeCloseTo(3 / 8, 12);
    expect(f1Max(s, y)).toBeCloseTo((2 * 3) / (8 + 3), 12);
  });

  it('counts a tie between a positive and a negative as one half', () => {
    // Pairs (pos, neg): (0.5, 0.5) x2 -> 1/2 each, (0.5, 0.9) x2 -> 0: AUROC 1/4, below chance.
    expect(auroc([0.5, 0.5, 0.5, 0.9], [0, 1, 1, 0])).toBeCloseTo(0.25, 12);
  });

  it('accepts booleans, 0/255 masks and typed arrays', () => {
    const s = Float32Array.of(0.1, 0.9, 0.2, 0.8);
    expect(auroc(s, [false, true, false, true])).toBe(1);
    expect(auroc(s, Uint8Array.of(0, 255, 0, 255))).toBe(1);
  });

  it('treats a list of per-image arrays as one long array', () => {
    const maps = [Float32Array.of(0.1, 0.7, 0.3), Float32Array.of(0.9, 0.3, 0.2)];
    const masks = [Uint8Array.of(0, 1, 0), Uint8Array.of(1, 1, 0)];
    const flat = binaryMetrics([...maps[0]!, ...maps[1]!], [...masks[0]!, ...masks[1]!]);
    expect(binaryMetrics(maps, masks)).toEqual(flat);
  });

  it('returns NaN where a metric is undefined', () => {
    expect(auroc([0.1, 0.2], [1, 1])).toBeNaN();
    expect(auroc([0.1, 0.2], [0, 0])).toBeNaN();
    expect(averagePrecision([0.1, 0.2], [0, 0])).toBeNaN();
    expect(averagePrecision([0.1, 0.2], [1, 1])).toBe(1);
  });

  it('draws the ROC curve through (0,0) and (1,1), one point per distinct score', () => {
    const c = rocCurve([0.1, 0.4, 0.4, 0.8], [0, 0, 1, 1]);
    expect(Array.from(c.thresholds)).toEqual([Number.POSITIVE_INFINITY, 0.8, 0.4, 0.1]);
    expect(Array.from(c.fpr)).toEqual([0, 0, 0.5, 1]);
    expect(Array.from(c.tpr)).toEqual([0, 0.5, 1, 1]);
  });
});

describe('bad input', () => {
  it('rejects NaN scores, bad labels and length mismatches with a clear message', () => {
    expect(() => auroc([0.1, Number.NaN], [0, 1])).toThrow(/score at index 1 is NaN/);
    expect(() => auroc([0.1, 0.2], [0, Number.NaN])).toThrow(MetricsInputError);
    expect(() => auroc([0.1, 0.2, 0.3], [0, 1])).toThrow(/3 scores but 2 labels/);
  });
});

describe('cross-check against brute force on random data with ties', () => {
  // Small sizes use the native sort, the large one the radix sort; the rounded scores make ties;
  // the float64 case (values float32 cannot hold) takes the fallback path.
  const cases = [
    { n: 60, levels: 7, seed: 1, f64: false },
    { n: 500, levels: 40, seed: 2, f64: false },
    { n: 6000, levels: 300, seed: 3, f64: false },
    { n: 3000, levels: 0, seed: 4, f64: true },
    { n: 2500, levels: 50, seed: 5, f64: true },
  ];
  for (const { n, levels, seed, f64 } of cases) {
    it(`n=${n}, ${levels ? `${levels} score levels` : 'continuous'}${f64 ? ', float64' : ''}`, () => {
      const rnd = testRandom(seed);
      const labels = Array.from({ length: n }, () => (rnd() < 0.3 ? 1 : 0));
      const scores = labels.map((l) => {
        const v = rnd() + 0.4 * l - (f64 ? 1e-9 : 0);
        const q = levels ? Math.round(v * levels) / levels : v;
        return f64 ? q + 1 / 3 : Math.fround(q);
      });
      const m = binaryMetrics(scores, labels);
      const ref = bruteApF1(scores, labels);
      expect(m.auroc).toBeCloseTo(bruteAuroc(scores, labels), 12);
      expect(m.ap).toBeCloseTo(ref.ap, 12);
      expect(m.f1max).toBeCloseTo(ref.f1, 12);
    });
  }

  it('orders negative numbers, zeros and infinities correctly in the radix sort', () => {
    const rnd = testRandom(9);
    const n = 6000;
    const labels = Array.from({ length: n }, () => (rnd() < 0.5 ? 1 : 0));
    const pool = [Number.NEGATIVE_INFINITY, -1e30, -3.5, -0, 0, 1e-40, 2.25, 1e30, Number.POSITIVE_INFINITY];
    const scores = labels.map((l) => Math.fround(pool[Math.floor(rnd() * pool.length)]! + (l && rnd() < 0.3 ? 1 : 0)));
    expect(auroc(scores, labels)).toBeCloseTo(bruteAuroc(scores, labels), 12);
    const ref = bruteApF1(scores, labels);
    expect(averagePrecision(scores, labels)).toBeCloseTo(ref.ap, 12);
  });
});

describe('aurocStandardError (Hanley and McNeil)', () => {
  it('matches the formula worked by hand', () => {
    // A = 0.5 with one sample of each: Q1 = Q2 = 1/3, variance = A(1 - A) = 0.25.
    expect(aurocStandardError(0.5, 1, 1)).toBeCloseTo(0.5, 12);
    // A = 0.8, 12 anomalous, 10 normal: Q1 = 2/3, Q2 = 32/45.
    const variance = (0.8 * 0.2 + 11 * (2 / 3 - 0.64) + 9 * (32 / 45 - 0.64)) / 120;
    expect(aurocStandardError(0.8, 12, 10)).toBeCloseTo(Math.sqrt(variance), 12);
    expect(aurocStandardError(0.95, 9, 9)).toBeCloseTo(0.0556, 4);
  });

  it('is zero for a perfect ranking and shrinks like one over the square root of the sample size', () => {
    expect(aurocStandardError(1, 9, 9)).toBe(0);
    const ratio = aurocStandardError(0.9, 10, 10) / aurocStandardError(0.9, 40, 40);
    expect(ratio).toBeGreaterThan(1.8);
    expect(ratio).toBeLessThan(2.2);
  });

  it('refuses an AUROC outside [0, 1] or empty classes', () => {
    expect(() => aurocStandardError(Number.NaN, 5, 5)).toThrow(/auc must be in \[0, 1\]/);
    expect(() => aurocStandardError(0.7, 0, 5)).toThrow(/positives must be a positive integer/);
  });
});
