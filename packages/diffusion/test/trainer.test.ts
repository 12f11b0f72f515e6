import { ParamStore, Rng, conv2d, context, tf } from '@ofm/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DiffusionTrainer,
  Ema,
  NoiseSchedule,
  NonFiniteError,
  UNet,
  type UNetConfig,
  globalNorm,
  protectedLayers,
  trainableParams,
} from '../src/index';
import { TINY, maxAbsDiff, useBackend } from './helpers';

const CONTROLLED: UNetConfig = { ...TINY, control_channels: 3 };

/** A fixed batch, timesteps and noise so that two runs compute the same thing. */
function fixedInputs(seed: number) {
  const rng = new Rng(seed);
  return {
    x: rng.rand([2, 8, 8, 1], -1, 1) as tf.Tensor4D,
    control: rng.randn([2, 4, 4, 3]) as tf.Tensor4D,
    noise: rng.randn([2, 8, 8, 1]) as tf.Tensor4D,
    t: [17, 640],
  };
}

function snapshot(store: ParamStore, names: string[]): Map<string, Float32Array> {
  return new Map(names.map((n) => [n, Float32Array.from(store.get(n).dataSync() as Float32Array)]));
}

/** Gradients of every UNet parameter on one backend, as plain arrays. */
async function gradientsOn(backend: 'cpu' | 'wasm'): Promise<Map<string, Float32Array>> {
  await useBackend(backend);
  const store = new ParamStore(21);
  const unet = new UNet(store, CONTROLLED).init();
  const trainer = new DiffusionTrainer({ unet, schedule: new NoiseSchedule() });
  const { x, control, noise, t } = fixedInputs(22);
  const { grads } = trainer.computeGradients(x, { control, noise, t });
  const out = new Map(Object.entries(grads).map(([n, g]) => [n, Float32Array.from(g.dataSync() as Float32Array)]));
  tf.dispose([x, control, noise, ...Object.values(grads)]);
  trainer.dispose();
  store.dispose();
  return out;
}

describe('stepAsync', () => {
  it('gives the numbers of step (same losses, norm and weights), reading asynchronously', async () => {
    await useBackend('wasm');
    const run = async (asynchronous: boolean) => {
      const store = new ParamStore(31);
      const unet = new UNet(store, CONTROLLED).init();
      const trainer = new DiffusionTrainer({ unet, schedule: new NoiseSchedule(), optimizer: { lr: 1e-2 }, clipGradNorm: 0.5 });
      const results = [];
      for (let i = 0; i < 2; i++) {
        const { x, control, noise, t } = fixedInputs(40 + i);
        results.push(asynchronous ? await trainer.stepAsync(x, { control, noise, t }) : trainer.step(x, { control, noise, t }));
        tf.dispose([x, control, noise]);
      }
      const weights = snapshot(store, unet.paramNames());
      trainer.dispose();
      store.dispose();
      return { results, weights };
    };
    const sync = await run(false);
    const viaAsync = await run(true);
    for (const [i, r] of sync.results.entries()) {
      const a = viaAsync.results[i]!;
      expect([a.step, a.loss, a.diffusionLoss, a.gradNorm]).toEqual([r.step, r.loss, r.diffusionLoss, r.gradNorm]);
    }
    // The clip (at 0.5) acted, so the norm read asynchronously steered the update.
    expect(sync.results[0]!.gradNorm).toBeGreaterThan(0.5);
    for (const [name, w] of sync.weights) expect(Array.from(viaAsync.weights.get(name)!), name).toEqual(Array.from(w));
  });
});

describe('gradients on cpu and wasm', () => {
  it('reach every trainable parameter (non-zero), and the two backends agree', async () => {
    const cpu = await gradientsOn('cpu');
    const wasm = await gradientsOn('wasm');
    const store = new ParamStore(21);
    await useBackend('cpu');
    const names = new UNet(store, CONTROLLED).init().paramNames();
    store.dispose();
    expect([...cpu.keys()].sort()).toEqual([...names].sort());
    expect([...wasm.keys()].sort()).toEqual([...names].sort());
    for (const name of names) {
      const a = cpu.get(name)!;
      const b = wasm.get(name)!;
      const norm = Math.sqrt(a.reduce((s, v) => s + v * v, 0));
      expect(norm, name).toBeGreaterThan(0);
      const diff = Math.sqrt(a.reduce((s, v, i) => s + (v - b[i]!) ** 2, 0));
      expect(diff / norm, name).toBeLessThan(1e-3);
    }
  });
});

describe('DiffusionTrainer (wasm)', () => {
  const schedule = new NoiseSchedule();
  beforeAll(async () => {
    await useBackend('wasm');
  });

  describe('later-task phase', () => {
    let store: ParamStore;
    let unet: UNet;
    beforeAll(() => {
      store = new ParamStore(31);
      unet = new UNet(store, CONTROLLED).init();
    });
    afterAll(() => store.dispose());

    it('computes gradients only for the trainable group and leaves frozen parameters bit-identical', () => {
      const later = trainableParams(store, 'later-task');
      const trainer = new DiffusionTrainer({ unet, schedule, trainable: later, optimizer: { lr: 1e-2 } });
      const { x, control, noise, t } = fixedInputs(32);
      const { grads } = trainer.computeGradients(x, { control, noise, t });
      expect(Object.keys(grads).sort()).toEqual([...later].sort());
      tf.dispose(Object.values(grads));
      const frozen = unet.paramNames().filter((n) => !later.includes(n));
      expect(frozen.length).toBeGreaterThan(later.length / 2);
      const before = snapshot(store, unet.paramNames());
      trainer.step(x, { control, noise, t });
      const after = snapshot(store, unet.paramNames());
      for (const n of frozen) expect(after.get(n), n).toEqual(before.get(n));
      for (const n of later) expect(after.get(n), n).not.toEqual(before.get(n));
      tf.dispose([x, control, noise]);
      trainer.dispose();
    });
  });

  it('trains a condition network in another store through the control map and an extra loss in the same tape', () => {
    const store = new ParamStore(41);
    const unet = new UNet(store, CONTROLLED).init();
    const amnStore = new ParamStore(42);
    const amn = context(amnStore);
    // A stand-in condition network: 8x8 image -> 4x4 map with 3 channels.
    const condition = (image: tf.Tensor4D) => conv2d(amn, 'amn.enc', image, { filters: 3, stride: 2, padding: 1 });
    tf.tidy(() => {
      condition(tf.zeros([1, 8, 8, 1]) as tf.Tensor4D);
    });
    const { x, noise, t } = fixedInputs(43);
    const target = tf.zeros([2, 4, 4, 3]);
    const trainer = new DiffusionTrainer({ unet, schedule, extra: [{ store: amnStore }], optimizer: { lr: 1e-2 } });
    expect(trainer.trainableNames()).toEqual([...unet.paramNames(), 'amn.enc.weight', 'amn.enc.bias']);
    let seenControl: tf.Tensor4D | undefined;
    const opts = {
      noise,
      t,
      control: (ctx: { x0: tf.Tensor4D }) => condition(ctx.x0),
      extraLoss: (ctx: { control?: tf.Tensor4D }) => {
        seenControl = ctx.control;
        return tf.mean(tf.squaredDifference(ctx.control!, target)) as tf.Scalar;
      },
    };
    // The zero-initialised projection passes no diffusion gradient to the condition network yet:
    // only the extra loss reaches it.
    const onlyExtra = trainer.computeGradients(x, { ...opts, extraLoss: undefined });
    expect(globalNorm([onlyExtra.grads['amn.enc.weight']!])).toBe(0);
    tf.dispose(Object.values(onlyExtra.grads));
    const both = trainer.computeGradients(x, opts);
    expect(seenControl?.shape).toEqual([2, 4, 4, 3]);
    expect(both.extraLoss).toBeGreaterThan(0);
    expect(both.loss).toBeCloseTo(both.diffusionLoss + both.extraLoss!, 5);
    expect(globalNorm([both.grads['amn.enc.weight']!])).toBeGreaterThan(0);
    tf.dispose(Object.values(both.grads));
    // Once the projection is non-zero, the diffusion loss alone trains the condition network.
    const proj = store.get('unet.control.proj.weight');
    proj.assign(tf.fill(proj.shape, 0.1));
    const diffusionOnly = trainer.computeGradients(x, { ...opts, extraLoss: undefined });
    expect(globalNorm([diffusionOnly.grads['amn.enc.weight']!])).toBeGreaterThan(0);
    tf.dispose(Object.values(diffusionOnly.grads));
    const before = snapshot(amnStore, amnStore.names());
    const result = trainer.step(x, opts);
    expect(result.extraLoss).toBeGreaterThan(0);
    expect(snapshot(amnStore, amnStore.names()).get('amn.enc.weight')).not.toEqual(before.get('amn.enc.weight'));
    tf.dispose([x, noise, target]);
    trainer.dispose();
    store.dispose();
    amnStore.dispose();
  });

  it('micro-batches give the loss and gradients of the whole batch (uneven slices, control and extra loss per slice)', () => {
    const rng = new Rng(45);
    const x = rng.rand([3, 8, 8, 1], -1, 1) as tf.Tensor4D;
    const noise = rng.randn([3, 8, 8, 1]) as tf.Tensor4D;
    const controlSource = rng.randn([3, 4, 4, 3]) as tf.Tensor4D;
    const t = [5, 300, 901];
    const run = (microBatch?: number) => {
      const store = new ParamStore(46);
      const unet = new UNet(store, CONTROLLED).init();
      const proj = store.get('unet.control.proj.weight');
      proj.assign(tf.fill(proj.shape, 0.2));
      const trainer = new DiffusionTrainer({ unet, schedule, microBatch });
      const slices: [number, number][] = [];
      const g = trainer.computeGradients(x, {
        noise,
        t,
        control: (ctx) => {
          slices.push([ctx.start, ctx.end]);
          return tf.slice(controlSource, ctx.start, ctx.end - ctx.start) as tf.Tensor4D;
        },
        extraLoss: (ctx) => tf.mean(tf.square(ctx.predictedNoise)) as tf.Scalar,
      });
      const grads = new Map(Object.entries(g.grads).map(([k, v]) => [k, Float32Array.from(v.dataSync() as Float32Array)]));
      tf.dispose(Object.values(g.grads));
      trainer.dispose();
      store.dispose();
      return { ...g, grads, slices };
    };
    const whole = run();
    const split = run(2);
    expect(whole.slices).toEqual([[0, 3]]);
    expect(split.slices).toEqual([
      [0, 2],
      [2, 3],
    ]);
    expect(split.loss).toBeCloseTo(whole.loss, 5);
    expect(split.diffusionLoss).toBeCloseTo(whole.diffusionLoss, 5);
    expect(split.extraLoss).toBeCloseTo(whole.extraLoss!, 5);
    for (const [name, a] of whole.grads) {
      const b = split.grads.get(name)!;
      const norm = Math.sqrt(a.reduce((acc, v) => acc + v * v, 0));
      const diff = Math.sqrt(a.reduce((acc, v, i) => acc + (v - b[i]!) ** 2, 0));
      expect(diff, name).toBeLessThan(1e-4 * norm + 1e-7);
    }
    tf.dispose([x, noise, controlSource]);
  });

  it('rejects two stores that use the same parameter name', () => {
    const a = new ParamStore(0);
    const unet = new UNet(a, TINY).init();
    const b = new ParamStore(0);
    new UNet(b, TINY).init();
    expect(() => new DiffusionTrainer({ unet, schedule, extra: [{ store: b }] })).toThrow(/used by two stores/);
    a.dispose();
    b.dispose();
  });

  it('gradient hook: replaced gradients are what the optimiser uses', () => {
    const store = new ParamStore(51);
    const unet = new UNet(store, TINY).init();
    const target = 'unet.input_blocks.1.0.in_layers.2.weight';
    const seen: string[] = [];
    const trainer = new DiffusionTrainer({
      unet,
      schedule,
      optimizer: { lr: 1e-2, weightDecay: 0 },
      transformGradients: (grads, info) => {
        seen.push(...Object.keys(grads));
        expect(info.step).toBe(0);
        return { [target]: tf.zerosLike(grads[target]!) };
      },
    });
    const { x, noise, t } = fixedInputs(52);
    const before = snapshot(store, unet.paramNames());
    trainer.step(x, { noise, t });
    const after = snapshot(store, unet.paramNames());
    expect(seen.sort()).toEqual([...unet.paramNames()].sort());
    expect(after.get(target)).toEqual(before.get(target)); // zero gradient, no decay: Adam does not move it
    const other = 'unet.input_blocks.1.0.out_layers.3.weight';
    expect(after.get(other)).not.toEqual(before.get(other));
    tf.dispose([x, noise]);
    trainer.dispose();
    store.dispose();
  });

  it('update hook: projecting the actual weight change keeps it orthogonal to a protected input direction', () => {
    const run = (project: boolean) => {
      const store = new ParamStore(61);
      const unet = new UNet(store, TINY).init();
      const layer = protectedLayers(store).find((l) => l.layer === 'unet.input_blocks.1.0.in_layers.2')!;
      // A unit direction u in the layer's input space (rows of the weight as an [inDim, out] matrix).
      const u = tf.tidy(() => {
        const r = new Rng(62).randn([layer.inDim, 1]);
        return tf.div(r, tf.norm(r)) as tf.Tensor2D;
      });
      const trainer = new DiffusionTrainer({
        unet,
        schedule,
        optimizer: { lr: 1e-2 },
        transformUpdate: project
          ? (deltas) =>
              tf.tidy(() => {
                const d = deltas[layer.weight]!;
                const m = d.reshape([layer.inDim, layer.outDim]);
                const projected = tf.sub(m, tf.matMul(u, tf.matMul(u, m, true, false)));
                return { [layer.weight]: tf.keep(projected.reshape(d.shape)) };
              })
          : undefined,
      });
      const w = store.get(layer.weight);
      const before = tf.clone(w);
      const { x, noise, t } = fixedInputs(63);
      trainer.step(x, { noise, t });
      trainer.step(x, { noise, t });
      const along = tf.tidy(() =>
        tf.norm(tf.matMul(u, tf.sub(w, before).reshape([layer.inDim, layer.outDim]), true, false)).dataSync()[0]!,
      );
      const moved = tf.tidy(() => tf.norm(tf.sub(w, before)).dataSync()[0]!);
      tf.dispose([u, before, x, noise]);
      trainer.dispose();
      store.dispose();
      return { along, moved };
    };
    const free = run(false);
    const projected = run(true);
    expect(free.along).toBeGreaterThan(1e-4);
    expect(projected.moved).toBeGreaterThan(1e-3);
    expect(projected.along).toBeLessThan(1e-6 * projected.moved + 1e-7);
  });

  it('clips the global gradient norm', () => {
    // With a huge eps and beta1 = 0, AdamW's step is lr·g/eps: linear in the gradient, so the
    // ratio of clipped to unclipped weight changes is exactly the clipping factor.
    const change = (clip?: number) => {
      const store = new ParamStore(71);
      const unet = new UNet(store, TINY).init();
      const trainer = new DiffusionTrainer({
        unet,
        schedule,
        optimizer: { lr: 1, eps: 1e4, beta1: 0, weightDecay: 0 },
        clipGradNorm: clip,
      });
      const name = 'unet.out.2.weight';
      const before = tf.clone(store.get(name));
      const { x, noise, t } = fixedInputs(72);
      const result = trainer.step(x, { noise, t });
      const delta = tf.sub(store.get(name), before);
      const out = { delta: Float32Array.from(delta.dataSync() as Float32Array), gradNorm: result.gradNorm };
      tf.dispose([before, delta, x, noise]);
      trainer.dispose();
      store.dispose();
      return out;
    };
    const free = change();
    expect(free.gradNorm).toBeGreaterThan(0.05);
    const clip = free.gradNorm / 4;
    const clipped = change(clip);
    expect(clipped.gradNorm).toBeCloseTo(free.gradNorm, 5); // reported before clipping
    free.delta.forEach((d, i) => {
      expect(clipped.delta[i]!).toBeCloseTo(d / 4, 7);
    });
  });

  it('leaks no tensors across 20 steps (control function, extra loss, hooks, EMA, clipping, micro-batches)', () => {
    const store = new ParamStore(81);
    const unet = new UNet(store, CONTROLLED).init();
    const trainer = new DiffusionTrainer({
      unet,
      schedule,
      microBatch: 1,
      optimizer: { lr: 1e-3 },
      ema: { decay: 0.9 },
      clipGradNorm: 1,
      transformGradients: (grads) => ({ 'unet.out.2.weight': tf.mul(grads['unet.out.2.weight']!, 0.5) }),
      transformUpdate: (deltas) => ({ 'unet.out.2.bias': tf.mul(deltas['unet.out.2.bias']!, 0.5) }),
    });
    const { x, control } = fixedInputs(82);
    const run = () =>
      trainer.step(x, {
        control: (ctx) => tf.mul(tf.slice(control, ctx.start, ctx.end - ctx.start), 2) as tf.Tensor4D,
        extraLoss: (ctx) => tf.mul(tf.mean(tf.square(ctx.predictedNoise)), 0.01) as tf.Scalar,
      });
    run(); // optimiser and EMA state are created on the first step
    const before = tf.memory().numTensors;
    for (let i = 0; i < 20; i++) run();
    expect(tf.memory().numTensors).toBe(before);
    expect(trainer.stepCount).toBe(21);
    tf.dispose([x, control]);
    trainer.dispose();
    store.dispose();
  });

  it('resumes exactly from saved parameters and trainer state', () => {
    const { x } = fixedInputs(91);
    const store = new ParamStore(92);
    const unet = new UNet(store, TINY).init();
    const make = (s: ParamStore, u: UNet) =>
      new DiffusionTrainer({ unet: u, schedule, optimizer: { lr: 1e-2 }, ema: { decay: 0.5 }, seed: 93 });
    const trainer = make(store, unet);
    for (let i = 0; i < 2; i++) trainer.step(x);
    const savedParams = store.snapshot();
    const savedState = trainer.state();
    const losses = [trainer.step(x).loss, trainer.step(x).loss];
    const finalParams = snapshot(store, unet.paramNames());

    const store2 = new ParamStore(0); // other initial values, overwritten from the save
    const unet2 = new UNet(store2, TINY).init();
    store2.assign(savedParams);
    const resumed = make(store2, unet2);
    resumed.loadState(savedState);
    expect(resumed.stepCount).toBe(2);
    expect([resumed.step(x).loss, resumed.step(x).loss]).toEqual(losses);
    const resumedParams = snapshot(store2, unet2.paramNames());
    for (const n of unet.paramNames()) expect(resumedParams.get(n), n).toEqual(finalParams.get(n));
    tf.dispose([x, ...Object.values(savedParams), ...Object.values(savedState)]);
    trainer.dispose();
    resumed.dispose();
    store.dispose();
    store2.dispose();
  });

  it('refuses to apply an update when the loss is not finite, and says what to do', () => {
    const store = new ParamStore(101);
    const unet = new UNet(store, TINY).init();
    const trainer = new DiffusionTrainer({ unet, schedule });
    const { x } = fixedInputs(102);
    const bad = tf.mul(x, Number.NaN) as tf.Tensor4D;
    const before = snapshot(store, unet.paramNames());
    const tensors = tf.memory().numTensors;
    expect(() => trainer.step(bad)).toThrow(/loss is NaN at step 0; the update was skipped. Lower the learning rate/);
    expect(tf.memory().numTensors).toBe(tensors);
    expect(snapshot(store, unet.paramNames())).toEqual(before);
    expect(trainer.stepCount).toBe(0);
    tf.dispose([x, bad]);
    trainer.dispose();
    store.dispose();
  });

  /** What one step throws (undefined when it does not). */
  function stepError(trainer: DiffusionTrainer, x: tf.Tensor4D): unknown {
    try {
      trainer.step(x);
    } catch (e) {
      return e;
    }
    return undefined;
  }

  /** Weights and optimiser state as plain arrays, to compare a trainer before and after a step. */
  function fullState(store: ParamStore, names: string[], trainer: DiffusionTrainer): Map<string, number[]> {
    const out = new Map([...snapshot(store, names)].map(([n, a]) => [n, Array.from(a)]));
    const state = trainer.state();
    for (const [n, t] of Object.entries(state)) out.set(n, Array.from(t.dataSync()));
    tf.dispose(Object.values(state));
    return out;
  }

  it('a NaN injected into one gradient stops the step, names the layer and changes nothing', () => {
    const store = new ParamStore(103);
    const unet = new UNet(store, TINY).init();
    const names = unet.paramNames();
    const victim = names[5]!;
    let poison = false;
    const trainer = new DiffusionTrainer({
      unet,
      schedule,
      optimizer: { lr: 1e-3 },
      transformGradients: (grads) => (poison ? { [victim]: tf.fill(grads[victim]!.shape, Number.NaN) } : undefined),
    });
    const { x } = fixedInputs(104);
    trainer.step(x); // optimiser state exists now
    const before = fullState(store, names, trainer);
    const tensors = tf.memory().numTensors;
    poison = true;
    const caught = stepError(trainer, x);
    expect(caught).toBeInstanceOf(NonFiniteError);
    const fault = (caught as NonFiniteError).fault;
    expect(fault).toMatchObject({ step: 1, kind: 'gradient', layer: victim });
    expect(Number.isFinite(fault.loss)).toBe(true);
    expect((caught as Error).message).toMatch(new RegExp(`a gradient is not finite .* at step 1; .*first non-finite gradient: ${victim.replace(/\./g, '\\.')}`));
    expect(tf.memory().numTensors).toBe(tensors);
    expect(fullState(store, names, trainer)).toEqual(before);
    expect(trainer.stepCount).toBe(1);
    // The next clean step goes on from the untouched state.
    poison = false;
    expect(Number.isFinite(trainer.step(x).loss)).toBe(true);
    expect(trainer.stepCount).toBe(2);
    tf.dispose(x);
    trainer.dispose();
    store.dispose();
  });

  it('an update that leaves a non-finite weight is rolled back: weights and optimiser state as before', () => {
    const store = new ParamStore(105);
    const unet = new UNet(store, TINY).init();
    const names = unet.paramNames();
    const victim = names[3]!;
    let poison = false;
    const trainer = new DiffusionTrainer({
      unet,
      schedule,
      optimizer: { lr: 1e-3 },
      transformUpdate: (deltas) => (poison ? { [victim]: tf.fill(deltas[victim]!.shape, Number.POSITIVE_INFINITY) } : undefined),
    });
    const { x } = fixedInputs(106);
    trainer.step(x);
    trainer.step(x);
    const before = fullState(store, names, trainer);
    const tensors = tf.memory().numTensors;
    poison = true;
    const err = stepError(trainer, x);
    expect(err).toBeInstanceOf(NonFiniteError);
    expect((err as NonFiniteError).fault).toMatchObject({ step: 2, kind: 'update', layer: victim });
    expect(tf.memory().numTensors).toBe(tensors);
    expect(fullState(store, names, trainer)).toEqual(before);
    expect(trainer.optimizer.stepsOf(victim)).toBe(2);
    tf.dispose(x);
    trainer.dispose();
    store.dispose();
  });
});

describe('Ema', () => {
  it('averages with the closed-form weights and swaps averaged values in and out', async () => {
    await useBackend('cpu');
    const v = tf.variable(tf.tensor1d([0, 10]));
    const ema = new Ema([['v', v]], { decay: 0.5 });
    v.assign(tf.tensor1d([4, 2]));
    ema.update(); // 0.5·[0,10] + 0.5·[4,2] = [2, 6]
    v.assign(tf.tensor1d([8, 6]));
    ema.update(); // 0.5·[2,6] + 0.5·[8,6] = [5, 6]
    const inside = ema.withAverages(() => Array.from(v.dataSync()));
    expect(inside).toEqual([5, 6]);
    expect(Array.from(v.dataSync())).toEqual([8, 6]);
    const state = ema.state();
    const other = new Ema([['v', v]], { decay: 0.5 });
    other.loadState(state);
    expect(other.withAverages(() => Array.from(v.dataSync()))).toEqual([5, 6]);
    const warm = new Ema([['v', v]], { decay: 0.999, warmup: true });
    expect(warm.currentDecay()).toBeCloseTo(0.1, 10);
    tf.dispose([v, ...Object.values(state)]);
    ema.dispose();
    other.dispose();
    warm.dispose();
  });
});

it('maxAbsDiff helper sees differences (sanity of the test helper)', () => {
  const a = tf.tensor1d([1, 2]);
  const b = tf.tensor1d([1, 2.5]);
  expect(maxAbsDiff(a, b)).toBeCloseTo(0.5, 6);
  tf.dispose([a, b]);
});
