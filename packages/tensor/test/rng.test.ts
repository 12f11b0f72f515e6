import { describe, expect, it } from 'vitest';
import { Rng } from '../src/rng';

function draws(rng: Rng, n: number): number[] {
  return Array.from({ length: n }, () => rng.nextU32());
}

describe('Rng', () => {
  it('runs the xoshiro128** reference sequence from state (1, 2, 3, 4)', () => {
    const rng = new Rng(0);
    // The state is private; set it to the reference authors' test state.
    Object.assign(rng as unknown as Record<string, number>, { s0: 1, s1: 2, s2: 3, s3: 4 });
    expect(draws(rng, 6)).toEqual([11520, 0, 5927040, 70819200, 2031721883, 1637235492]);
  });

  it('gives the same numbers for the same seed and different ones for different seeds', () => {
    expect(draws(new Rng(42), 1000)).toEqual(draws(new Rng(42), 1000));
    const firsts = new Set<string>();
    for (let seed = 0; seed < 200; seed++) firsts.add(draws(new Rng(seed), 4).join(','));
    expect(firsts.size).toBe(200);
    expect(new Rng(7).normalArray(16)).toEqual(new Rng(7).normalArray(16));
  });

  it('draws uniforms in [0, 1) with mean 1/2 and variance 1/12', () => {
    const rng = new Rng(3);
    const n = 100_000;
    let sum = 0;
    let sq = 0;
    let lo = 1;
    let hi = 0;
    for (let i = 0; i < n; i++) {
      const u = rng.uniform();
      lo = Math.min(lo, u);
      hi = Math.max(hi, u);
      sum += u;
      sq += u * u;
    }
    expect(lo).toBeGreaterThanOrEqual(0);
    expect(hi).toBeLessThan(1);
    const mean = sum / n;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.005);
    expect(Math.abs(sq / n - mean * mean - 1 / 12)).toBeLessThan(0.002);
  });

  it('draws standard normals: mean 0, variance 1, kurtosis 3, 68.3% within one sigma', () => {
    const rng = new Rng(11);
    const n = 200_000;
    let s1 = 0;
    let s2 = 0;
    let s4 = 0;
    let within = 0;
    for (let i = 0; i < n; i++) {
      const x = rng.normal();
      s1 += x;
      s2 += x * x;
      s4 += x * x * x * x;
      if (Math.abs(x) < 1) within++;
    }
    expect(Math.abs(s1 / n)).toBeLessThan(0.01);
    expect(Math.abs(s2 / n - 1)).toBeLessThan(0.015);
    expect(Math.abs(s4 / n - 3)).toBeLessThan(0.1);
    expect(Math.abs(within / n - 0.6827)).toBeLessThan(0.005);
    const shifted = new Rng(5).normalArray(50_000, 3, 2);
    const m = shifted.reduce((a, b) => a + b, 0) / shifted.length;
    const v = shifted.reduce((a, b) => a + (b - m) * (b - m), 0) / shifted.length;
    expect(Math.abs(m - 3)).toBeLessThan(0.04);
    expect(Math.abs(Math.sqrt(v) - 2)).toBeLessThan(0.03);
  });

  it('draws integers uniformly over [0, n)', () => {
    const rng = new Rng(9);
    const n = 7;
    const counts = new Array<number>(n).fill(0);
    const total = 70_000;
    for (let i = 0; i < total; i++) counts[rng.int(n)]!++;
    // Chi-square with 6 degrees of freedom: 22.5 is the 0.999 quantile.
    const expected = total / n;
    const chi2 = counts.reduce((a, c) => a + ((c - expected) * (c - expected)) / expected, 0);
    expect(chi2).toBeLessThan(22.5);
    expect(() => rng.int(0)).toThrow(/n must be >= 1/);
  });

  it('shuffles and permutes into permutations', () => {
    const p = new Rng(1).permutation(100);
    expect(Array.from(p).sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(Array.from(p)).not.toEqual(Array.from({ length: 100 }, (_, i) => i));
    const items = ['a', 'b', 'c', 'd', 'e'];
    const shuffled = new Rng(2).shuffle([...items]);
    expect([...shuffled].sort()).toEqual(items);
  });

  it('forks independent, reproducible streams without advancing the parent', () => {
    const parent = new Rng(123);
    const a1 = draws(parent.fork('noise'), 50);
    const a2 = draws(parent.fork('noise'), 50);
    expect(a1).toEqual(a2);
    expect(draws(parent.fork('mask'), 50)).not.toEqual(a1);
    // Forking does not advance the parent.
    expect(draws(parent, 50)).toEqual(draws(new Rng(123), 50));
    // Nested forks depend on the order of labels, and forking twice with one label does not
    // return to the parent stream.
    expect(draws(new Rng(123).fork('a').fork('b'), 20)).not.toEqual(draws(new Rng(123).fork('b').fork('a'), 20));
    expect(draws(new Rng(123).fork('a').fork('a'), 20)).not.toEqual(draws(new Rng(123), 20));
    // Parent and child streams are uncorrelated.
    const x = new Rng(99);
    const y = x.fork('child');
    const n = 20_000;
    let sxy = 0;
    for (let i = 0; i < n; i++) sxy += (x.uniform() - 0.5) * (y.uniform() - 0.5);
    expect(Math.abs(sxy / n / (1 / 12))).toBeLessThan(0.03);
  });

  it('saves its state as JSON and continues the exact stream from it, Box-Muller spare included', () => {
    const rng = new Rng(31);
    draws(rng, 7);
    rng.normal(); // leaves a spare normal pending
    const state = JSON.parse(JSON.stringify(rng.state()));
    const resumed = Rng.fromState(state);
    expect([resumed.normal(), resumed.normal(), ...draws(resumed, 20)]).toEqual([rng.normal(), rng.normal(), ...draws(rng, 20)]);
    expect(draws(resumed.fork('x'), 5)).toEqual(draws(new Rng(31).fork('x'), 5));
    expect(() => Rng.fromState({ seed: 1, words: [0, 0, 0, 0], spare: null })).toThrow(/not an Rng state/);
    expect(() => Rng.fromState({ seed: 1, words: [1, 2, 3], spare: null } as never)).toThrow(/not an Rng state/);
  });

  it('rejects a non-finite seed', () => {
    expect(() => new Rng(Number.NaN)).toThrow(/seed must be a finite number/);
  });
});
