import { describe, expect, it } from 'vitest';
import {
  MetricsInputError,
  aupro,
  auroc,
  averagePrecision,
  decodeScoreMap,
  encodeScoreMap,
  evaluateDetections,
  f1Max,
} from '../src/index';
import { testRandom } from './reference';

function fixture(n: number, size: number, seed: number) {
  const rnd = testRandom(seed);
  const imageLabels = Array.from({ length: n }, (_, i) => (i % 2 ? 1 : 0));
  const pixelMasks = imageLabels.map((l) => {
    const m = new Uint8Array(size * size);
    if (l) for (let i = 0; i < m.length; i++) if (i % size < size / 3 && i < m.length / 2) m[i] = 255;
    return m;
  });
  const pixelScores = pixelMasks.map((m) => Float32Array.from(m, (v) => rnd() + (v ? 0.5 : 0)));
  const imageScores = pixelScores.map((s) => Math.max(...s));
  return { imageScores, imageLabels, pixelScores, pixelMasks };
}

describe('evaluateDetections', () => {
  it('returns the flat record, each value equal to the single metric', () => {
    const input = fixture(6, 9, 1);
    const m = evaluateDetections(input);
    expect(Object.keys(m).sort()).toEqual(
      ['image_ap', 'image_auroc', 'image_f1max', 'pixel_ap', 'pixel_aupro', 'pixel_auroc', 'pixel_f1max'].sort(),
    );
    expect(m.image_auroc).toBe(auroc(input.imageScores, input.imageLabels));
    expect(m.image_ap).toBe(averagePrecision(input.imageScores, input.imageLabels));
    expect(m.image_f1max).toBe(f1Max(input.imageScores, input.imageLabels));
    expect(m.pixel_auroc).toBe(auroc(input.pixelScores, input.pixelMasks));
    expect(m.pixel_ap).toBe(averagePrecision(input.pixelScores, input.pixelMasks));
    expect(m.pixel_f1max).toBe(f1Max(input.pixelScores, input.pixelMasks));
    expect(m.pixel_aupro).toBe(aupro(input.pixelScores, input.pixelMasks));
    expect(m.pixel_auroc).toBeGreaterThan(0.8);
  });

  it('leaves pixel metrics out without maps, and wants maps and masks together', () => {
    const input = fixture(4, 4, 2);
    expect(Object.keys(evaluateDetections({ imageScores: input.imageScores, imageLabels: input.imageLabels }))).toEqual([
      'image_auroc',
      'image_ap',
      'image_f1max',
    ]);
    expect(() => evaluateDetections({ ...input, pixelMasks: undefined })).toThrow(/both pixelScores and pixelMasks/);
    expect(() => evaluateDetections({ ...input, pixelScores: input.pixelScores.slice(1) })).toThrow(MetricsInputError);
  });
});

describe('OFMS score map files', () => {
  it('round-trips and reports corrupt files', () => {
    const map = { data: Float32Array.of(0.25, -1, 3.5, 1e-3, 0, 7), width: 3, height: 2 };
    const bytes = encodeScoreMap(map);
    expect(bytes.length).toBe(12 + 24);
    expect(String.fromCharCode(...bytes.subarray(0, 4))).toBe('OFMS');
    expect(decodeScoreMap(bytes)).toEqual(map);
    expect(() => decodeScoreMap(bytes.subarray(0, 30), 'a.ofms')).toThrow(/a.ofms: header says 3 x 2, which needs 36 bytes, but the file has 30/);
    expect(() => decodeScoreMap(new Uint8Array(36), 'b.ofms')).toThrow(/b.ofms: not an OFMS score map/);
  });
});
