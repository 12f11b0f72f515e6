/**
 * Seeded randomness for data generation and augmentation.
 *
 * Functions that take a generator accept any {@link RandomSource}: the project's `Rng` from
 * `@ofm/tensor` fits as it is (it has `uniform()`), and {@link createRandom} gives one without
 * pulling in a tensor library. Functions that take a numeric seed derive their own streams with
 * {@link hashSeed}, so each image of a generated set depends only on (seed, class, split, index).
 */

/** Anything that yields uniform numbers in [0, 1), e.g. `new Rng(seed)` from @ofm/tensor. */
export interface RandomSource {
  /** The next number of the stream, uniform in [0, 1); each call advances the source. */
  uniform(): number;
}

/**
 * A small, fast seeded generator (sfc32, seeds expanded with splitmix32). Same seed, same
 * sequence, on every platform.
 */
export function createRandom(seed: number): RandomSource {
  let s = seed >>> 0;
  const splitmix = (): number => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = splitmix();
  let b = splitmix();
  let c = splitmix();
  let d = splitmix() | 1;
  const next = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
  for (let i = 0; i < 12; i++) next();
  return { uniform: () => next() / 4294967296 };
}

/** Hash a seed and any labels (class names, indices) into a new 32-bit seed (FNV-1a, then mixed). */
export function hashSeed(seed: number, ...parts: Array<string | number>): number {
  let h = (0x811c9dc5 ^ (seed >>> 0)) >>> 0;
  h = Math.imul(h, 0x01000193) >>> 0;
  for (const part of parts) {
    const text = `|${part}`;
    for (let i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d) >>> 0;
  h ^= h >>> 15;
  return h >>> 0;
}

/** Uniform in [lo, hi). */
export function uniformIn(rng: RandomSource, lo: number, hi: number): number {
  return lo + (hi - lo) * rng.uniform();
}

/** Uniform integer in [0, n). */
export function intBelow(rng: RandomSource, n: number): number {
  return Math.min(n - 1, Math.floor(rng.uniform() * n));
}

/** Standard normal (Box-Muller). */
export function normalSample(rng: RandomSource): number {
  let u = rng.uniform();
  while (u <= 1e-12) u = rng.uniform();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.uniform());
}

/** Fisher-Yates shuffle in place; returns the array. */
export function shuffleInPlace<T>(rng: RandomSource, items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = intBelow(rng, i + 1);
    const tmp = items[i]!;
    items[i] = items[j]!;
    items[j] = tmp;
  }
  return items;
}
