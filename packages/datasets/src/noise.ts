/**
 * Seeded 2-D gradient noise (Perlin's improved noise) and fractal sums of it: the smooth
 * randomness behind the synthetic textures and the Perlin-shaped anomalies.
 */
import { type RandomSource, intBelow } from './random';

/** Perlin gradient noise over the plane, values roughly in [-1, 1], one lattice cell per unit. */
export class PerlinNoise {
  private readonly perm = new Uint8Array(512);

  constructor(rng: RandomSource) {
    const p = new Uint8Array(256);
    for (let i = 0; i < 256; i++) p[i] = i;
    for (let i = 255; i > 0; i--) {
      const j = intBelow(rng, i + 1);
      const t = p[i]!;
      p[i] = p[j]!;
      p[j] = t;
    }
    for (let i = 0; i < 512; i++) this.perm[i] = p[i & 255]!;
  }

  /** Noise at (x, y). Zero on every lattice point; smooth (C2) everywhere. */
  at(x: number, y: number): number {
    const xf = Math.floor(x);
    const yf = Math.floor(y);
    const X = xf & 255;
    const Y = yf & 255;
    const dx = x - xf;
    const dy = y - yf;
    const u = fade(dx);
    const v = fade(dy);
    const p = this.perm;
    const aa = p[p[X]! + Y]!;
    const ab = p[p[X]! + Y + 1]!;
    const ba = p[p[X + 1]! + Y]!;
    const bb = p[p[X + 1]! + Y + 1]!;
    const x1 = lerp(grad(aa, dx, dy), grad(ba, dx - 1, dy), u);
    const x2 = lerp(grad(ab, dx, dy - 1), grad(bb, dx - 1, dy - 1), u);
    return lerp(x1, x2, v) * 1.41;
  }

  /** Sum of `octaves` noise layers, each twice the frequency and `gain` times the amplitude. */
  fractal(x: number, y: number, octaves: number, gain = 0.5): number {
    let sum = 0;
    let amplitude = 1;
    let frequency = 1;
    let norm = 0;
    for (let o = 0; o < octaves; o++) {
      sum += amplitude * this.at(x * frequency + o * 17.3, y * frequency + o * 7.1);
      norm += amplitude;
      amplitude *= gain;
      frequency *= 2;
    }
    return sum / norm;
  }
}

function fade(t: number): number {
  return t * t * t * (t * (t * 6 - 15) + 10);
}

function lerp(a: number, b: number, t: number): number {
  return a + (b - a) * t;
}

function grad(hash: number, x: number, y: number): number {
  switch (hash & 7) {
    case 0:
      return x + y;
    case 1:
      return -x + y;
    case 2:
      return x - y;
    case 3:
      return -x - y;
    case 4:
      return x;
    case 5:
      return -x;
    case 6:
      return y;
    default:
      return -y;
  }
}
