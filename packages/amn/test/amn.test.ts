import { type Ctx, ParamStore, Rng, type TapEvent, context, scope, tf } from '@ofm/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AMN_SCOPE, clearAmnCaches, createAmn } from '../src/amn';
import { DEFAULT_AMN_CONFIG, hintConvSpecs, hintGeometry, resolveAmnConfig } from '../src/config';
import { stopGradient } from '../src/stop-gradient';
import { TINY, scoped, useBackend } from './helpers';

beforeAll(async () => {
  await useBackend('cpu');
});
afterAll(() => clearAmnCaches());

const images = (n: number, h: number, w: number, seed = 1) => new Rng(seed).rand([n, h, w, 3]) as tf.Tensor4D;

describe('config', () => {
  it('defaults: 16x16 grid for 64 px images, and a mask that covers the receptive field', () => {
    const config = resolveAmnConfig();
    expect(config).toEqual({ ...DEFAULT_AMN_CONFIG, hintChannels: [16, 32, 64] });
    const g = hintGeometry(config);
    expect(g).toEqual({ stride: 4, downsamplings: 2, receptiveField: 23, coveringMaskSize: 5 });
    expect(config.maskSize).toBe(g.coveringMaskSize);
    expect(createAmn().gridSize(64, 64)).toEqual([16, 16]);
  });

  it('reproduces the reference hint block (three stride-2 steps, 256 -> 32) and its geometry', () => {
    const reference = { inChannels: 3, hintChannels: [16, 32, 96, 256], dim: 320 };
    const specs = hintConvSpecs(reference);
    expect(specs.map((s) => [s.inChannels, s.outChannels, s.stride])).toEqual([
      [3, 16, 1],
      [16, 16, 1],
      [16, 32, 2],
      [32, 32, 1],
      [32, 96, 2],
      [96, 96, 1],
      [96, 256, 2],
      [256, 320, 1],
    ]);
    expect(hintGeometry(reference)).toEqual({ stride: 8, downsamplings: 3, receptiveField: 47, coveringMaskSize: 5 });
  });

  it('rejects bad options with the field named', () => {
    expect(() => resolveAmnConfig({ dim: 30 })).toThrow(/'dim'.*divisible by 4/);
    expect(() => resolveAmnConfig({ dim: 64, heads: 3 })).toThrow(/'heads' must divide dim 64/);
    expect(() => resolveAmnConfig({ maskSize: 4 })).toThrow(/'maskSize'.*odd/);
    expect(() => resolveAmnConfig({ hintChannels: [] })).toThrow(/'hintChannels'/);
    expect(() => resolveAmnConfig({ dropout: 1 })).toThrow(/'dropout'/);
    expect(() => resolveAmnConfig({ mask: 3 } as never)).toThrow(/unknown option 'mask'/);
  });

  it('names the image size and the stride when they do not divide', () => {
    const amn = createAmn(TINY);
    const params = new ParamStore(0);
    const x = images(1, 30, 32);
    expect(() => amn.forward(context(params), x)).toThrow(/30x32 is not divisible by the hint encoder's stride 4/);
    expect(() => amn.forward(context(params), images(1, 32, 32).slice([0, 0, 0, 0], [1, 32, 32, 2]) as tf.Tensor4D)).toThrow(
      /expected images \[N, H, W, 3\]/,
    );
    x.dispose();
    params.dispose();
  });

  it('a disabled AMN says so instead of running', () => {
    const amn = createAmn({ ...TINY, enabled: false });
    expect(amn.enabled).toBe(false);
    const params = new ParamStore(0);
    const x = images(1, 32, 32);
    expect(() => amn.forward(context(params), x)).toThrow(/disabled.*without a control input/);
    expect(() => amn.condition(context(params), x, x)).toThrow(/disabled/);
    expect(params.names()).toEqual([]);
    x.dispose();
  });
});

describe('shapes', () => {
  it.each([
    ['default config, 64x64', {}, 64, 64, [16, 16, 64]],
    ['tiny, 32x32', TINY, 32, 32, [8, 8, 16]],
    ['tiny, 32x48 (not square)', TINY, 32, 48, [8, 12, 16]],
    ['one downsampling, 16x16', { ...TINY, hintChannels: [4, 8] }, 16, 16, [8, 8, 16]],
    ['three downsamplings, 64x64', { ...TINY, hintChannels: [4, 8, 8, 8] }, 64, 64, [8, 8, 16]],
  ] as const)('%s', (_label, options, h, w, grid) => {
    const amn = createAmn(options);
    const params = new ParamStore(0);
    const x = images(1, h, w);
    tf.tidy(() => {
      const ctx = context(params);
      expect(amn.hintFeatures(ctx, x).shape).toEqual([1, ...grid]);
      expect(amn.forward(ctx, x).shape).toEqual([1, ...grid]);
      expect(amn.gridSize(h, w)).toEqual(grid.slice(0, 2));
    });
    x.dispose();
    params.dispose();
  });

  it('hint features are standardised per token; the output is finite', () => {
    const amn = createAmn(TINY);
    const params = new ParamStore(0);
    const x = images(2, 32, 32);
    tf.tidy(() => {
      const h = amn.hintFeatures(context(params), x);
      const { mean, variance } = tf.moments(h, -1);
      expect(tf.max(tf.abs(mean)).dataSync()[0]).toBeLessThan(1e-4);
      expect(tf.max(tf.abs(tf.sub(variance, 1))).dataSync()[0]).toBeLessThan(1e-2);
      expect(tf.all(tf.isFinite(amn.forward(context(params), x))).dataSync()[0]).toBe(1);
    });
    x.dispose();
    params.dispose();
  });
});

describe('receptive field', () => {
  it('a token sees exactly the pixels hintGeometry says', () => {
    const amn = createAmn(TINY);
    const { stride, receptiveField } = amn.geometry;
    const params = new ParamStore(2);
    const x = images(1, 32, 32);
    const [ty, tx] = [4, 3];
    // A random readout of one token (a plain sum would vanish: the features are standardised).
    const probe = new Rng(3).randn([1, 1, 1, TINY.dim]);
    const grad = tf.tidy(() => {
      const g = tf.grad((input: tf.Tensor) =>
        tf.sum(tf.mul(tf.slice(amn.hintFeatures(context(params), input as tf.Tensor4D), [0, ty, tx, 0], [1, 1, 1, TINY.dim]), probe)),
      )(x);
      return tf.sum(tf.abs(g), [0, 3]).arraySync() as number[][];
    });
    const rows: number[] = [];
    const cols: number[] = [];
    grad.forEach((row, y) =>
      row.forEach((v, c) => {
        if (v > 0) {
          rows.push(y);
          cols.push(c);
        }
      }),
    );
    const half = (receptiveField - 1) / 2;
    expect([Math.min(...rows), Math.max(...rows)]).toEqual([ty * stride - half, ty * stride + half]);
    expect([Math.min(...cols), Math.max(...cols)]).toEqual([tx * stride - half, tx * stride + half]);
    probe.dispose();
    x.dispose();
    params.dispose();
  });
});

describe('parameters and taps', () => {
  it('every parameter lives under amn. (and under the caller scope), created by initialize', () => {
    const amn = createAmn(TINY);
    const params = new ParamStore(0);
    amn.initialize(scope(context(params), 'model'));
    const names = params.names();
    expect(names.length).toBe(hintConvSpecs(resolveAmnConfig(TINY)).length + TINY.layers * 14);
    for (const name of names) expect(name.startsWith(`model.${AMN_SCOPE}.`)).toBe(true);
    expect(names).toContain('model.amn.hint.0.weight');
    expect(names).toContain('model.amn.encoder.1.attn.qk.weight');
    expect(names).toContain('model.amn.encoder.1.ffn2.bias');
    // initialize and a real forward ask for the same parameters.
    const before = params.count();
    const x = images(1, 32, 32);
    tf.tidy(() => amn.forward(scope(context(params), 'model'), x));
    expect(params.count()).toBe(before);
    x.dispose();
    params.dispose();
  });

  it('taps report every conv and dense layer with the matrix its weight multiplies', () => {
    const amn = createAmn(TINY);
    const params = new ParamStore(0);
    const seen = new Map<string, { rows: number; cols: number; kind: string }>();
    const tap = (e: TapEvent) => seen.set(e.layer, { rows: e.input.shape[0], cols: e.input.shape[1], kind: e.kind });
    const x = images(2, 32, 32);
    tf.tidy(() => amn.forward(context(params, { tap }), x));
    const weighted = params.infosList().filter((i) => i.role === 'weight' && (i.layerKind === 'conv' || i.layerKind === 'dense'));
    expect([...seen.keys()].sort()).toEqual(weighted.map((i) => i.layer).sort());
    expect(seen.get('amn.hint.0')).toEqual({ rows: 2 * 32 * 32, cols: 9 * 3, kind: 'conv' });
    expect(seen.get('amn.hint.2')).toEqual({ rows: 2 * 16 * 16, cols: 9 * 4, kind: 'conv' });
    expect(seen.get('amn.encoder.0.attn.qk')).toEqual({ rows: 2 * 64, cols: TINY.dim, kind: 'dense' });
    expect(seen.get('amn.encoder.1.ffn2')).toEqual({ rows: 2 * 64, cols: TINY.ffn, kind: 'dense' });
    x.dispose();
    params.dispose();
  });

  it('dropout: active only in training mode, seeded by the context rng', () => {
    const amn = createAmn({ ...TINY, dropout: 0.3 });
    const params = new ParamStore(0);
    const x = images(1, 32, 32);
    const run = (ctx: Ctx) => tf.tidy(() => amn.forward(ctx, x).dataSync());
    const evalOut = run(context(params));
    const a = run(context(params, { training: true, rng: new Rng(1) }));
    const b = run(context(params, { training: true, rng: new Rng(1) }));
    const c = run(context(params, { training: true, rng: new Rng(2) }));
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    expect(a).not.toEqual(evalOut);
    expect(run(context(params))).toEqual(evalOut);
    expect(() => run(context(params, { training: true }))).toThrow(/rng/);
    x.dispose();
    params.dispose();
  });

  it('same seed, same output', () => {
    const amn = createAmn(TINY);
    const x = images(1, 32, 32);
    const run = () => {
      const params = new ParamStore(11);
      const out = tf.tidy(() => amn.forward(context(params), x).dataSync());
      params.dispose();
      return out;
    };
    expect(run()).toEqual(run());
    x.dispose();
  });
});

/** Gradients of `f` for every parameter of the store, by parameter name. */
function gradsByName(params: ParamStore, f: () => tf.Scalar): Map<string, Float32Array> {
  const byVariable = new Map(params.entries().map(([name, v]) => [v.name, name]));
  return scoped(() => {
    const { grads } = tf.variableGrads(f, params.entries().map(([, v]) => v));
    const out = new Map<string, Float32Array>();
    for (const [varName, g] of Object.entries(grads)) out.set(byVariable.get(varName)!, g.dataSync() as Float32Array);
    return out;
  });
}

const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe('gradients', () => {
  const setup = (options = {}) => {
    const amn = createAmn({ ...TINY, ...options });
    const params = new ParamStore(4);
    const ctx: Ctx = context(params);
    amn.initialize(ctx);
    const clean = images(2, 16, 16, 8);
    const corrupted = tf.tidy(() => tf.add(clean, tf.mul(0.3, new Rng(9).randn(clean.shape)))) as tf.Tensor4D;
    const probe = new Rng(10).randn([2, 4, 4, TINY.dim]);
    return { amn, params, ctx, clean, corrupted, probe, dispose: () => [params, clean, corrupted, probe].forEach((t) => t.dispose()) };
  };
  const isHint = (name: string) => name.startsWith('amn.hint.');

  it('reach every parameter through the loss plus a loss on the control map (the diffusion loss in the model)', () => {
    const { amn, params, ctx, clean, corrupted, probe, dispose } = setup();
    const grads = gradsByName(params, () => {
      const { control, loss } = amn.condition(ctx, corrupted, clean);
      return tf.add(loss, tf.mean(tf.mul(control, probe))) as tf.Scalar;
    });
    expect(grads.size).toBe(params.names().length);
    const zero = [...grads].filter(([, g]) => !(maxAbs(g) > 0)).map(([n]) => n);
    expect(zero).toEqual([]);
    dispose();
  });

  it('by default the loss trains the transformer only, with the clean target a constant', () => {
    const { amn, params, ctx, clean, corrupted, dispose } = setup();
    const viaApi = gradsByName(params, () => amn.loss(ctx, corrupted, clean));
    // The same loss written with both hint maps computed outside the gradient tape.
    const [features, target] = tf.tidy(() => [amn.hintFeatures(ctx, corrupted), amn.hintFeatures(ctx, clean)]);
    const manual = gradsByName(params, () => tf.losses.meanSquaredError(target!, amn.transform(ctx, features!)) as tf.Scalar);
    for (const [name, g] of viaApi) {
      if (isHint(name)) expect(maxAbs(g), name).toBe(0);
      else {
        expect(maxAbs(g), name).toBeGreaterThan(0);
        expect(maxDiff(g, manual.get(name)!), name).toBeLessThan(1e-6);
      }
    }
    features!.dispose();
    target!.dispose();
    dispose();
  });

  it('with lossTrainsHintEncoder the loss reaches the hint encoder through its input, never through the target', () => {
    const { amn, params, ctx, clean, corrupted, dispose } = setup({ lossTrainsHintEncoder: true });
    const viaApi = gradsByName(params, () => amn.loss(ctx, corrupted, clean));
    const target = tf.tidy(() => amn.hintFeatures(ctx, clean));
    const detached = gradsByName(params, () => tf.losses.meanSquaredError(target, amn.forward(ctx, corrupted)) as tf.Scalar);
    const attached = gradsByName(
      params,
      () => tf.losses.meanSquaredError(amn.hintFeatures(ctx, clean), amn.forward(ctx, corrupted)) as tf.Scalar,
    );
    let hintDiffersFromAttached = 0;
    for (const [name, g] of viaApi) {
      expect(maxAbs(g), name).toBeGreaterThan(0);
      expect(maxDiff(g, detached.get(name)!), name).toBeLessThan(1e-6);
      if (isHint(name)) hintDiffersFromAttached = Math.max(hintDiffersFromAttached, maxDiff(g, attached.get(name)!));
    }
    // The target side contributes a real gradient when attached, so the comparison above can fail.
    expect(hintDiffersFromAttached).toBeGreaterThan(1e-4);
    target.dispose();
    dispose();
  });

  it('the control map keeps its gradient path into the hint encoder', () => {
    const { amn, params, ctx, clean, corrupted, probe, dispose } = setup();
    const grads = gradsByName(params, () => {
      const { control, loss } = amn.condition(ctx, corrupted, clean);
      loss.dispose();
      return tf.mean(tf.mul(control, probe)) as tf.Scalar;
    });
    for (const [name, g] of grads) if (isHint(name)) expect(maxAbs(g), name).toBeGreaterThan(0);
    dispose();
  });

  it('stopGradient: identity forward, no gradient backward', () => {
    const x = tf.tensor1d([1, -2, 3]);
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(stopGradient(t), t)))(x);
    expect(Array.from(tf.mul(stopGradient(x), 1).dataSync())).toEqual([1, -2, 3]);
    expect(Array.from(g.dataSync())).toEqual([1, -2, 3]); // d/dt (c * t) = c, not 2t
    x.dispose();
    g.dispose();
  });
});
