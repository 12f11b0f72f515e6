import { describe, expect, it } from 'vitest';
import {
  type RgbImage,
  type SyntheticAnomaly,
  createRandom,
  cutPasteAnomaly,
  nsaAnomaly,
  perlinAnomaly,
  renderSynthImage,
  rgbFromBytes,
} from '../src/index';

const SIZE = 48;

function synthImage(className: string, index: number): RgbImage {
  const s = renderSynthImage({ className, split: 'train', index, size: SIZE });
  return rgbFromBytes(s.image, SIZE, SIZE, 3);
}

const target = synthImage('tiles', 0);
const source = synthImage('tiles', 1);

type Generator = (seed: number, extra?: Record<string, unknown>) => SyntheticAnomaly;
const generators: Record<string, Generator> = {
  nsa: (seed, extra) => nsaAnomaly(target, source, { rng: createRandom(seed), ...extra }),
  cutPaste: (seed, extra) => cutPasteAnomaly(target, { rng: createRandom(seed), ...extra }),
  perlin: (seed, extra) => perlinAnomaly(target, { rng: createRandom(seed), ...extra }),
};

/** Pixels where the two images differ at all. */
function changed(a: Float32Array, b: Float32Array): Uint8Array {
  const out = new Uint8Array(a.length / 3);
  for (let i = 0; i < out.length; i++) {
    if (a[3 * i] !== b[3 * i] || a[3 * i + 1] !== b[3 * i + 1] || a[3 * i + 2] !== b[3 * i + 2]) out[i] = 1;
  }
  return out;
}

for (const [name, generate] of Object.entries(generators)) {
  describe(`${name} anomaly`, () => {
    it('has a mask that is exactly the changed pixels, each changed by more than the tolerance', () => {
      const before = Float32Array.from(target.data);
      for (let seed = 0; seed < 8; seed++) {
        const a = generate(seed);
        expect(a.clean).toBe(false);
        expect(Array.from(a.mask)).toEqual(Array.from(changed(a.image, target.data)));
        let faint = 0;
        for (let i = 0; i < a.mask.length; i++) {
          if (!a.mask[i]) continue;
          let d = 0;
          for (let c = 0; c < 3; c++) d = Math.max(d, Math.abs(a.image[3 * i + c]! - target.data[3 * i + c]!));
          if (d <= 1 / 255) faint++;
        }
        expect(faint).toBe(0);
        expect(a.area).toBe(a.mask.reduce((s, v) => s + v, 0));
      }
      expect(target.data).toEqual(before); // the input is never modified
    });

    it('keeps the mask area inside the requested range', () => {
      for (const range of [[0.02, 0.05], [0.1, 0.2]] as const) {
        for (let seed = 0; seed < 6; seed++) {
          const a = generate(100 + seed, { areaRange: range });
          expect(a.clean).toBe(false);
          expect(a.area).toBeGreaterThanOrEqual(Math.ceil(range[0] * SIZE * SIZE));
          expect(a.area).toBeLessThanOrEqual(Math.floor(range[1] * SIZE * SIZE));
        }
      }
    });

    it('gives the same output for the same seed, and another for another seed', () => {
      expect(generate(7)).toEqual(generate(7));
      expect(generate(8).mask).not.toEqual(generate(7).mask);
    });

    it('honours the clean probability', () => {
      const always = generate(1, { cleanProbability: 1 });
      expect(always.clean).toBe(true);
      expect(always.area).toBe(0);
      expect(always.image).toEqual(target.data);
      let clean = 0;
      const draws = 120;
      for (let seed = 0; seed < draws; seed++) if (generate(seed, { cleanProbability: 0.5 }).clean) clean++;
      // Binomial(120, 0.5): mean 60, sd 5.5; 40..80 is beyond 3.5 sd either way.
      expect(clean).toBeGreaterThan(40);
      expect(clean).toBeLessThan(80);
    });

    it('rejects a bad area range', () => {
      expect(() => generate(1, { areaRange: [0.3, 0.1] })).toThrow(/areaRange must satisfy 0 < min <= max <= 1/);
    });
  });
}

describe('generator specifics', () => {
  it('accepts any uniform() source, such as the Rng of @ofm/tensor', () => {
    let state = 12345;
    const lcg = {
      uniform: () => {
        state = (Math.imul(state, 1103515245) + 12345) >>> 0;
        return state / 4294967296;
      },
    };
    const a = cutPasteAnomaly(target, { rng: lcg });
    expect(a.clean).toBe(false);
  });

  it('NSA gives up cleanly when nothing can change (the source is a flat copy of a flat target)', () => {
    const flat: RgbImage = { data: new Float32Array(SIZE * SIZE * 3).fill(0.5), width: SIZE, height: SIZE, channels: 3 };
    const a = nsaAnomaly(flat, flat, { rng: createRandom(1), maxAttempts: 3 });
    expect(a.clean).toBe(true);
    expect(a.area).toBe(0);
  });

  it('Perlin uses a given texture', () => {
    const red: RgbImage = { data: new Float32Array(4 * 4 * 3).map((_, i) => (i % 3 === 0 ? 1 : 0)), width: 4, height: 4, channels: 3 };
    const a = perlinAnomaly(target, { rng: createRandom(2), texture: red, opacityRange: [1, 1] });
    for (let i = 0; i < a.mask.length; i++) {
      if (a.mask[i]) expect([a.image[3 * i], a.image[3 * i + 1], a.image[3 * i + 2]]).toEqual([1, 0, 0]);
    }
  });
});
