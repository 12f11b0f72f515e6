import { describe, expect, it } from 'vitest';
import { MetricsInputError, aupro, labelComponents, proCurve } from '../src/index';
import { bruteAupro, testRandom } from './reference';

describe('connected regions', () => {
  it('joins diagonal neighbours (8-connectivity) and counts areas', () => {
    // 1 0 0 1
    // 0 1 0 1
    // 0 0 0 0
    // 1 1 0 0
    const mask = [1, 0, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0];
    const { count, areas, labels } = labelComponents(mask, 4, 4);
    expect(count).toBe(3);
    expect(areas).toEqual([2, 2, 2]);
    expect(labels[0]).toBe(labels[5]);
    expect(labels[3]).toBe(labels[7]);
    expect(labels[0]).not.toBe(labels[3]);
  });
});

describe('aupro', () => {
  it('is 1 for a perfect map', () => {
    const mask = Uint8Array.from({ length: 64 }, (_, i) => (i % 8 > 4 && i > 30 ? 1 : 0));
    expect(aupro([Float32Array.from(mask)], [mask])).toBe(1);
  });

  it('matches a hand-computed curve with two regions of different areas', () => {
    // 4 x 4: region A = pixel (0,0) scored 0.9; region B = column x=3, rows 1..3, scored 0.5, 0.5, 0.1;
    // one normal pixel at 0.7, the other 11 at 0.
    const mask = new Uint8Array(16);
    const map = new Float32Array(16);
    mask[0] = 1;
    map[0] = 0.9;
    for (const [y, v] of [[1, 0.5], [2, 0.5], [3, 0.1]] as const) {
      mask[y * 4 + 3] = 1;
      map[y * 4 + 3] = v;
    }
    map[5] = 0.7;
    // Curve: (0,0) (0,1/2) (1/12,1/2) (1/12,5/6) (1/12,1) ... (0.3,1); area 1/24 + (0.3 - 1/12).
    const curve = proCurve([map], [mask]);
    expect(curve.regions).toBe(2);
    expect(Array.from(curve.fpr)).toEqual([0, 0, 1 / 12, 1 / 12, 1 / 12, 0.3]);
    expect(Array.from(curve.pro).map((v) => +v.toFixed(12))).toEqual([0, 0.5, 0.5, +(5 / 6).toFixed(12), 1, 1]);
    expect(aupro([map], [mask])).toBeCloseTo((1 / 24 + 0.3 - 1 / 12) / 0.3, 12);
  });

  it('gives 0.15 for a constant map (one threshold: the segment (0,0)-(1,1) cut at 0.3)', () => {
    const mask = Uint8Array.from({ length: 25 }, (_, i) => (i < 5 ? 1 : 0));
    expect(aupro([new Float32Array(25).fill(0.3)], [mask])).toBeCloseTo(0.15, 12);
  });

  it('honours fprLimit and per-map shapes', () => {
    const mask = { data: Uint8Array.of(1, 0, 0, 0, 0, 0), width: 3, height: 2 };
    const map = { data: Float32Array.of(0.5, 0.5, 0.1, 0.1, 0.1, 0.1), width: 3, height: 2 };
    // One normal pixel ties with the defect: FPR jumps to 1/5 with PRO 1.
    expect(aupro([map], [mask], { fprLimit: 0.2 })).toBeCloseTo(0.5, 12);
    expect(aupro([map], [mask], { fprLimit: 1 })).toBeCloseTo((0.1 + 0.8) / 1, 12);
  });

  it('returns NaN without defect regions', () => {
    expect(aupro([new Float32Array(4)], [new Uint8Array(4)])).toBeNaN();
  });

  it('rejects mismatched shapes and counts', () => {
    expect(() => aupro([new Float32Array(9)], [new Uint8Array(16)])).toThrow(/anomaly map 0 is 3 x 3 but its mask has 16 values/);
    expect(() => aupro([new Float32Array(9)], [])).toThrow(MetricsInputError);
    expect(() => aupro([new Float32Array(10)], [new Uint8Array(10)])).toThrow(/not a square/);
  });

  it('matches a per-threshold brute force on random maps with ties and blob masks', () => {
    const w = 12;
    const h = 10;
    for (const seed of [1, 2, 3]) {
      const rnd = testRandom(seed);
      const maps: number[][] = [];
      const masks: number[][] = [];
      for (let m = 0; m < 5; m++) {
        const mask = new Array(w * h).fill(0);
        if (m > 0) {
          for (let b = 0; b < 2; b++) {
            const cx = rnd() * w;
            const cy = rnd() * h;
            const r = 1 + rnd() * 2.5;
            for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if ((x - cx) ** 2 + (y - cy) ** 2 < r * r) mask[y * w + x] = 1;
          }
        }
        masks.push(mask);
        maps.push(mask.map((v) => Math.round((rnd() + 0.5 * v) * 12) / 12));
      }
      expect(aupro(maps, masks, { width: w, height: h })).toBeCloseTo(bruteAupro(maps, masks, w, h), 12);
      expect(aupro(maps, masks, { width: w, height: h, fprLimit: 0.05 })).toBeCloseTo(bruteAupro(maps, masks, w, h, 0.05), 12);
    }
  });

  it('uses the radix path on large inputs and still matches the brute force', () => {
    const w = 64;
    const rnd = testRandom(11);
    const mask = Array.from({ length: w * w }, (_, i) => ((i % w) - 20) ** 2 + (Math.floor(i / w) - 30) ** 2 < 150 ? 1 : 0);
    const map = mask.map((v) => Math.fround(Math.round((rnd() + 0.6 * v) * 200) / 200));
    expect(aupro([map], [mask])).toBeCloseTo(bruteAupro([map], [mask], w, w), 12);
  });
});
