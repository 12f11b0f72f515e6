import { Rng, tf } from '@ofm/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import { NoiseSchedule } from '../src/index';
import { useBackend } from './helpers';

describe('noise schedules', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it('linear: betas on the line from 1e-4 to 0.02, ᾱ the running product', () => {
    const s = new NoiseSchedule({ kind: 'linear' });
    expect(s.T).toBe(1000);
    expect(s.betas[0]).toBeCloseTo(1e-4, 15);
    expect(s.betas[999]).toBeCloseTo(0.02, 15);
    for (const t of [1, 250, 500, 998]) expect(s.betas[t]).toBeCloseTo(1e-4 + ((0.02 - 1e-4) * t) / 999, 15);
    // ᾱ_t = Π(1 - β_s); its log is a sum with a closed form for a linear β (to first order small).
    let logProd = 0;
    for (let t = 0; t < 1000; t++) logProd += Math.log(1 - (1e-4 + ((0.02 - 1e-4) * t) / 999));
    expect(Math.log(s.alphasCumprod[999]!)).toBeCloseTo(logProd, 9);
    // The DDPM value everyone quotes: ᾱ_999 ≈ 4.04e-5.
    expect(s.alphasCumprod[999]).toBeGreaterThan(4.0e-5);
    expect(s.alphasCumprod[999]).toBeLessThan(4.1e-5);
  });

  it('scaled-linear: linear in sqrt(β) from 0.00085 to 0.012, T configurable', () => {
    const s = new NoiseSchedule({ kind: 'scaled-linear', timesteps: 500 });
    expect(s.T).toBe(500);
    expect(s.betas[0]).toBeCloseTo(0.00085, 15);
    expect(s.betas[499]).toBeCloseTo(0.012, 15);
    const mid = (Math.sqrt(0.00085) + Math.sqrt(0.012)) / 2;
    // t = 249.5 is the midpoint: the mean of sqrt(β) at 249 and 250 is exactly it.
    expect((Math.sqrt(s.betas[249]!) + Math.sqrt(s.betas[250]!)) / 2).toBeCloseTo(mid, 14);
    expect(s.betas[250]! - s.betas[249]!).toBeGreaterThan(s.betas[1]! - s.betas[0]!); // convex in t
  });

  it('cosine: ᾱ_t = f(t+1)/f(0) with f(u) = cos²((u/T + s)/(1 + s)·π/2) until the β cap', () => {
    const T = 1000;
    const s = new NoiseSchedule({ kind: 'cosine', timesteps: T });
    const f = (u: number) => Math.cos(((u / T + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
    for (const t of [0, 10, 300, 700, 950]) expect(s.alphasCumprod[t]).toBeCloseTo(f(t + 1) / f(0), 12);
    expect(s.betas[999]).toBe(0.999); // the cap
    expect(Math.max(...s.betas)).toBe(0.999);
  });

  it('rejects bad options with a clear message', () => {
    expect(() => new NoiseSchedule({ timesteps: 1 })).toThrow(/timesteps must be an integer >= 2/);
    expect(() => new NoiseSchedule({ betaEnd: 1.5 })).toThrow(/outside \(0, 1\)/);
    expect(() => new NoiseSchedule({ kind: 'quadratic' as never })).toThrow(/unknown schedule kind 'quadratic'/);
    expect(() => new NoiseSchedule().alphaBar(1000)).toThrow(/integers 0\.\.999/);
  });

  it('qSample: x_t = sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) ε, per sample', () => {
    const s = new NoiseSchedule({ kind: 'linear' });
    const rng = new Rng(1);
    const x0 = rng.rand([3, 4, 4, 2], -1, 1) as tf.Tensor4D;
    const noise = rng.randn([3, 4, 4, 2]) as tf.Tensor4D;
    const ts = [0, 400, 999];
    const xt = s.qSample(x0, ts, noise);
    const got = xt.arraySync() as number[][][][];
    const a = x0.arraySync() as number[][][][];
    const e = noise.arraySync() as number[][][][];
    ts.forEach((t, n) => {
      const ab = s.alphasCumprod[t]!;
      expect(got[n]![2]![3]![1]).toBeCloseTo(Math.sqrt(ab) * a[n]![2]![3]![1]! + Math.sqrt(1 - ab) * e[n]![2]![3]![1]!, 6);
    });
    tf.dispose([x0, noise, xt]);
  });

  it('qSample statistics: mean sqrt(ᾱ_t)·x0 and variance 1 - ᾱ_t over many noise draws', () => {
    const s = new NoiseSchedule({ kind: 'scaled-linear' });
    const rng = new Rng(2);
    const n = 4000;
    const c = 0.6;
    for (const t of [50, 500, 950]) {
      const x0 = tf.fill([n, 2, 2, 1], c) as tf.Tensor4D;
      const noise = rng.randn([n, 2, 2, 1]) as tf.Tensor4D;
      const xt = s.qSample(x0, t, noise);
      const { mean, variance } = tf.moments(xt);
      const ab = s.alphasCumprod[t]!;
      const m = mean.dataSync()[0]!;
      const v = variance.dataSync()[0]!;
      // 16000 samples: standard error of the mean about 0.008·sqrt(1-ᾱ), of the variance about 1.1%.
      expect(Math.abs(m - Math.sqrt(ab) * c)).toBeLessThan(0.03);
      expect(Math.abs(v / (1 - ab) - 1)).toBeLessThan(0.05);
      tf.dispose([x0, noise, xt, mean, variance]);
    }
  });

  it('qSample checks shapes and timesteps', () => {
    const s = new NoiseSchedule();
    const x = tf.zeros([2, 2, 2, 1]) as tf.Tensor4D;
    const wrong = tf.zeros([2, 2, 2, 3]) as tf.Tensor4D;
    expect(() => s.qSample(x, 1, wrong)).toThrow(/noise shape/);
    expect(() => s.qSample(x, [1], x)).toThrow(/1 timesteps for a batch of 2/);
    expect(() => s.qSample(x, [1, 1000], x)).toThrow(/timestep 1000 is outside/);
    tf.dispose([x, wrong]);
  });
});
