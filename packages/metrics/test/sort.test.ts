import { describe, expect, it } from 'vitest';
import { sortFloat32, sortFloat32WithPayload, withExactStorage } from '../src/sort';
import { testRandom } from './reference';

function specialValues(n: number, seed: number): Float32Array {
  const rnd = testRandom(seed);
  const pool = [Number.NEGATIVE_INFINITY, -1e30, -1, -1e-40, 0, 1e-40, 0.5, 3, 1e30, Number.POSITIVE_INFINITY];
  return Float32Array.from({ length: n }, () => (rnd() < 0.3 ? pool[Math.floor(rnd() * pool.length)]! : (rnd() - 0.5) * 1e4));
}

describe('radix sort of float32', () => {
  it('sorts like the native sort, across signs, subnormals and infinities', () => {
    for (const n of [10, 5000, 100_000]) {
      const values = specialValues(n, n);
      const expected = Float32Array.from(values).sort();
      expect(Array.from(sortFloat32(values))).toEqual(Array.from(expected));
    }
  });

  it('carries the payload with its value, keeping equal values in input order', () => {
    for (const n of [100, 10_000]) {
      const rnd = testRandom(n);
      const values = Float32Array.from({ length: n }, () => Math.floor(rnd() * 50) - 25);
      const original = Float32Array.from(values);
      const payload = Uint32Array.from({ length: n }, (_, i) => i);
      sortFloat32WithPayload(values, payload);
      for (let i = 0; i < n; i++) expect(values[i]).toBe(original[payload[i]!]);
      for (let i = 1; i < n; i++) {
        expect(values[i]! >= values[i - 1]!).toBe(true);
        if (values[i] === values[i - 1]) expect(payload[i]! > payload[i - 1]!).toBe(true);
      }
    }
  });
});

describe('exact storage', () => {
  it('keeps float32 while every value fits, and refills as float64 when one does not', () => {
    const kinds = (values: number[]) =>
      withExactStorage(
        [values.length],
        ([out]) => {
          let exact = true;
          values.forEach((v, i) => {
            out![i] = v;
            exact = exact && out![i] === v;
          });
          return exact;
        },
        ([out]) => out!,
      );
    expect(kinds([0.5, 0.25, -3])).toBeInstanceOf(Float32Array);
    const f64 = kinds([0.5, 0.1]);
    expect(f64).toBeInstanceOf(Float64Array);
    expect(Array.from(f64)).toEqual([0.5, 0.1]);
  });
});
