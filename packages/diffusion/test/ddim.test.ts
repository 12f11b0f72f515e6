import { ParamStore, Rng, tf } from '@ofm/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  NoiseSchedule,
  type NoisePredictor,
  type Timesteps,
  UNet,
  ddimLoop,
  ddimTimesteps,
  ldmUniformTimesteps,
  reconstruct,
  sample,
} from '../src/index';
import { TINY, maxAbsDiff, useBackend } from './helpers';

/** Predicts the exact noise in x_t given the clean image: ε = (x_t − sqrt(ᾱ_t) x0) / sqrt(1 − ᾱ_t). */
class Oracle implements NoisePredictor {
  calls: number[] = [];
  constructor(
    private readonly schedule: NoiseSchedule,
    private readonly x0: tf.Tensor4D,
  ) {}
  predictNoise(x: tf.Tensor4D, t: Timesteps): tf.Tensor4D {
    const ts = this.schedule.batchTimesteps(t, x.shape[0]);
    this.calls.push(ts[0]!);
    return tf.tidy(() => {
      const shape = [ts.length, 1, 1, 1];
      const a = tf.tensor(ts.map((ti) => Math.sqrt(this.schedule.alphaBar(ti))), shape);
      const s = tf.tensor(ts.map((ti) => Math.sqrt(1 - this.schedule.alphaBar(ti))), shape);
      return tf.div(tf.sub(x, tf.mul(this.x0, a)), s) as tf.Tensor4D;
    });
  }
}

describe('DDIM', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it('timestep rule: evenly spaced on (0, tStart], first = tStart', () => {
    expect(ddimTimesteps(999, 10)).toEqual([999, 899, 799, 699, 599, 500, 400, 300, 200, 100]);
    expect(ddimTimesteps(200, 4)).toEqual([200, 150, 100, 50]);
    expect(ddimTimesteps(5, 5)).toEqual([5, 4, 3, 2, 1]);
    expect(() => ddimTimesteps(3, 5)).toThrow(/tStart 3 must be an integer >= steps/);
    expect(ldmUniformTimesteps(10, 1000)).toEqual([901, 801, 701, 601, 501, 401, 301, 201, 101, 1]);
  });

  for (const eta of [0, 0.7]) {
    it(`with an oracle that returns the true noise, recovers x0 to float precision (eta ${eta})`, () => {
      const schedule = new NoiseSchedule({ kind: 'scaled-linear' });
      const x0 = new Rng(3).rand([3, 4, 4, 2], -1, 1) as tf.Tensor4D;
      const oracle = new Oracle(schedule, x0);
      const before = tf.memory().numTensors;
      const out = reconstruct(oracle, schedule, x0, { tStart: 999, steps: 10, eta, seed: 4 });
      expect(tf.memory().numTensors).toBe(before + 1);
      expect(oracle.calls).toEqual(ddimTimesteps(999, 10));
      expect(maxAbsDiff(out, x0)).toBeLessThan(1e-5);
      tf.dispose([out, x0]);
    });
  }

  it('a wrong noise prediction does not recover x0 (the oracle test can fail)', () => {
    const schedule = new NoiseSchedule();
    const x0 = new Rng(5).rand([2, 4, 4, 1], -1, 1) as tf.Tensor4D;
    const zero: NoisePredictor = { predictNoise: (x) => tf.zerosLike(x) };
    const out = reconstruct(zero, schedule, x0, { tStart: 600, steps: 5, seed: 1 });
    expect(maxAbsDiff(out, x0)).toBeGreaterThan(0.1);
    tf.dispose([out, x0]);
  });

  it('reproduces the reference schedule when given explicit timesteps, and checks them', () => {
    const schedule = new NoiseSchedule({ kind: 'scaled-linear' });
    const x0 = new Rng(6).rand([1, 2, 2, 1], -1, 1) as tf.Tensor4D;
    const oracle = new Oracle(schedule, x0);
    const out = reconstruct(oracle, schedule, x0, { tStart: 999, timesteps: ldmUniformTimesteps(10, 1000) });
    expect(oracle.calls).toEqual([901, 801, 701, 601, 501, 401, 301, 201, 101, 1]);
    expect(() => reconstruct(oracle, schedule, x0, { tStart: 500, timesteps: [600, 1] })).toThrow(/above tStart/);
    expect(() => ddimLoop(oracle, schedule, x0, [5, 5])).toThrow(/strictly decrease/);
    tf.dispose([out, x0]);
  });

  it('is deterministic per seed at eta 0 and batch-consistent: each sample reconstructs independently', () => {
    const schedule = new NoiseSchedule();
    const store = new ParamStore(7);
    const unet = new UNet(store, TINY).init();
    const x = new Rng(8).rand([2, 8, 8, 1], -1, 1) as tf.Tensor4D;
    const a = reconstruct(unet, schedule, x, { tStart: 300, steps: 3, seed: 9 });
    const b = reconstruct(unet, schedule, x, { tStart: 300, steps: 3, seed: 9 });
    const c = reconstruct(unet, schedule, x, { tStart: 300, steps: 3, seed: 10 });
    expect(maxAbsDiff(a, b)).toBe(0);
    expect(maxAbsDiff(a, c)).toBeGreaterThan(1e-3);
    // Same start noise fed per sample: a batch of two gives what two batches of one give.
    const rng = new Rng(11);
    const xt = rng.randn([2, 8, 8, 1]) as tf.Tensor4D;
    const whole = ddimLoop(unet, schedule, xt, [300, 150]);
    const first = tf.slice(xt, [0, 0, 0, 0], [1, 8, 8, 1]) as tf.Tensor4D;
    const alone = ddimLoop(unet, schedule, first, [300, 150]);
    const wholeFirst = tf.slice(whole, [0, 0, 0, 0], [1, 8, 8, 1]);
    expect(maxAbsDiff(wholeFirst, alone)).toBeLessThan(1e-5);
    tf.dispose([x, a, b, c, xt, whole, first, alone, wholeFirst]);
    store.dispose();
  });

  it('with per-image seeds, reconstructs an image the same whatever batch it is in and wherever in it (eta 0 and 1)', () => {
    const schedule = new NoiseSchedule();
    const store = new ParamStore(7);
    const unet = new UNet(store, TINY).init();
    const x = new Rng(8).rand([3, 8, 8, 1], -1, 1) as tf.Tensor4D;
    const pick = (t: tf.Tensor4D, i: number) => tf.slice(t, [i, 0, 0, 0], [1, -1, -1, -1]) as tf.Tensor4D;
    const reversed = tf.reverse(x, 0) as tf.Tensor4D;
    const seeds = [5, 6, 7];
    for (const eta of [0, 1]) {
      const opts = { tStart: 300, steps: 3, eta };
      const batch = reconstruct(unet, schedule, x, { ...opts, seeds });
      const flipped = reconstruct(unet, schedule, reversed, { ...opts, seeds: [...seeds].reverse() });
      const last = pick(x, 2);
      const alone = reconstruct(unet, schedule, last, { ...opts, seeds: [7] });
      // The third image: alone, third of three, and first of the reversed batch.
      expect(maxAbsDiff(pick(batch, 2), alone)).toBeLessThan(1e-5);
      expect(maxAbsDiff(pick(flipped, 0), alone)).toBeLessThan(1e-5);
      // Different seeds, different noise: the seed matters.
      const other = reconstruct(unet, schedule, last, { ...opts, seeds: [8] });
      expect(maxAbsDiff(other, alone)).toBeGreaterThan(1e-4);
      tf.dispose([batch, flipped, last, alone, other]);
    }
    expect(() => reconstruct(unet, schedule, x, { tStart: 300, steps: 3, seeds: [1] })).toThrow(/1 seeds for a batch of 3/);
    tf.dispose([x, reversed]);
    store.dispose();
  });

  it('taps every conv/dense layer once per DDIM step (the path gradient projection samples)', () => {
    const schedule = new NoiseSchedule();
    const store = new ParamStore(14);
    const unet = new UNet(store, TINY).init();
    const x = new Rng(15).rand([1, 8, 8, 1], -1, 1) as tf.Tensor4D;
    const counts = new Map<string, number>();
    const r = reconstruct(unet, schedule, x, {
      tStart: 400,
      steps: 3,
      tap: (e) => counts.set(e.layer, (counts.get(e.layer) ?? 0) + 1),
    });
    const layers = store.infosList().filter((i) => i.role === 'weight' && i.layerKind !== 'norm');
    expect(counts.size).toBe(layers.length);
    for (const l of layers) expect(counts.get(l.layer), l.layer).toBe(3);
    tf.dispose([x, r]);
    store.dispose();
  });

  it('leaks no tensors through UNet reconstruction and sampling', () => {
    const schedule = new NoiseSchedule();
    const store = new ParamStore(12);
    const unet = new UNet(store, { ...TINY, control_channels: 3 }).init();
    const x = new Rng(13).rand([2, 8, 8, 1], -1, 1) as tf.Tensor4D;
    const control = tf.ones([2, 4, 4, 3]) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    const r = reconstruct(unet, schedule, x, { tStart: 999, steps: 4, control, eta: 0.5, seed: 1 });
    const s = sample(unet, schedule, [1, 8, 8, 1], { steps: 3, seed: 2 });
    expect(tf.memory().numTensors).toBe(before + 2);
    expect(r.shape).toEqual(x.shape);
    expect(s.shape).toEqual([1, 8, 8, 1]);
    tf.dispose([r, s, x, control]);
    store.dispose();
  });
});
