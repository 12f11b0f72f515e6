/**
 * Seeded random numbers. Everything random in one-for-more draws from an {@link Rng}, so the same
 * seed on the same backend gives the same numbers. The generator is xoshiro128** (fast, 128-bit
 * state, good statistical quality); seeds are expanded with splitmix32.
 */
import { ConfigError, DataError } from '@ofm/errors';
import { tf } from './tf';

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/**
 * The seed of a forked stream: a 32-bit avalanche mix of the parent seed and the label hash.
 * Unlike `seed ^ hash`, it is not symmetric (fork(a).fork(b) != fork(b).fork(a)) and not an
 * involution (fork(a).fork(a) is not the parent stream again).
 */
function forkSeed(seed: number, label: number): number {
  let z = (Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1) + label) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

/** Hash a string label into 32 bits (FNV-1a), for {@link Rng.fork}. */
function hashLabel(label: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < label.length; i++) {
    h ^= label.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** The whole state of an {@link Rng}: enough to continue its stream exactly. Plain JSON. */
export interface RngState {
  seed: number;
  /** The four 32-bit words of the xoshiro128** state. */
  words: [number, number, number, number];
  /** The spare normal of Box-Muller, or null. */
  spare: number | null;
}

/**
 * A seeded xoshiro128** generator with uniform, integer, normal and tensor draws. Not
 * cryptographic; {@link Rng.fork} derives independent named streams and {@link Rng.state}
 * captures the state for checkpoints.
 */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spare: number | null = null;
  readonly seed: number;

  constructor(seed = 0) {
    if (!Number.isFinite(seed)) throw new ConfigError(`Rng: seed must be a finite number, got ${seed}`);
    this.seed = seed >>> 0;
    const sm = splitmix32(this.seed);
    this.s0 = sm();
    this.s1 = sm();
    this.s2 = sm();
    this.s3 = sm();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** The generator's state now (see {@link Rng.fromState}). */
  state(): RngState {
    return { seed: this.seed, words: [this.s0, this.s1, this.s2, this.s3], spare: this.spare };
  }

  /** A generator that continues exactly where the one whose {@link Rng.state} this is stood. */
  static fromState(state: RngState): Rng {
    const w = state?.words;
    const u32 = (x: unknown) => Number.isInteger(x) && (x as number) >= 0 && (x as number) <= 0xffffffff;
    if (!Array.isArray(w) || w.length !== 4 || !w.every(u32) || w.every((x) => x === 0) || !u32(state.seed)) {
      throw new DataError(`Rng.fromState: not an Rng state: ${JSON.stringify(state)}`);
    }
    if (state.spare !== null && !Number.isFinite(state.spare)) throw new DataError(`Rng.fromState: bad spare value ${state.spare}`);
    const rng = new Rng(state.seed);
    [rng.s0, rng.s1, rng.s2, rng.s3] = w;
    rng.spare = state.spare;
    return rng;
  }

  /** Next raw 32-bit unsigned integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    this.s0 >>>= 0;
    this.s1 >>>= 0;
    this.s2 >>>= 0;
    this.s3 >>>= 0;
    return result;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.uniform();
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!(n >= 1)) throw new Error(`Rng.int: n must be >= 1, got ${n}`);
    return Math.floor(this.uniform() * n);
  }

  /** True with probability p. */
  bernoulli(p: number): boolean {
    return this.uniform() < p;
  }

  /** Standard normal (Box-Muller, the spare value is kept). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = 0;
    while (u <= 1e-12) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Fisher-Yates shuffle, in place; returns the array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = items[i]!;
      items[i] = items[j]!;
      items[j] = tmp;
    }
    return items;
  }

  /** A permutation of 0..n-1. */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = p[i]!;
      p[i] = p[j]!;
      p[j] = tmp;
    }
    return p;
  }

  /**
   * An independent stream derived from this generator's seed and a label; does not advance this
   * generator. `rng.fork('noise')` is the same stream every time for the same seed.
   */
  fork(label: string): Rng {
    return new Rng(forkSeed(this.seed, hashLabel(label)));
  }

  /** Fill a Float32Array with standard normals. */
  normalArray(n: number, mean = 0, std = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = mean + std * this.normal();
    return out;
  }

  /** Fill a Float32Array with uniforms in [lo, hi). */
  uniformArray(n: number, lo = 0, hi = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * this.uniform();
    return out;
  }

  /** A tensor of standard normals (drawn here, so identical on every backend). */
  randn(shape: number[], mean = 0, std = 1): tf.Tensor {
    return tf.tensor(this.normalArray(sizeOf(shape), mean, std), shape, 'float32');
  }

  /** A tensor of uniforms in [lo, hi). */
  rand(shape: number[], lo = 0, hi = 1): tf.Tensor {
    return tf.tensor(this.uniformArray(sizeOf(shape), lo, hi), shape, 'float32');
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

function sizeOf(shape: number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
