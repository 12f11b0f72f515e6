import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ParamStore,
  Rng,
  conv2d,
  context,
  dense,
  downsample,
  groupNorm,
  im2col,
  layerNorm,
  multiHeadAttention,
  positionalEmbedding2d,
  resolvePadding,
  scope,
  silu,
  tf,
  timestepEmbedding,
  upsampleNearest,
  type Ctx,
  type TapEvent,
} from '../src/index';
import { useBackend } from './helpers';

/** Directional finite-difference check: d/de f(p + e v) at 0 against <grad f(p), v>, in float64 terms. */
function checkGradients(
  build: (ctx: Ctx, x: tf.Tensor) => tf.Tensor,
  inputShape: number[],
  seed: number,
): { maxRelErr: number; checked: number } {
  const rng = new Rng(seed);
  const params = new ParamStore(seed);
  const ctx = context(params);
  const x0 = rng.randn(inputShape);
  // Create the parameters once, then perturb them with non-trivial values (biases, norm scales).
  const probe = build(ctx, x0);
  const r = rng.randn(probe.shape);
  probe.dispose();
  for (const [, v] of params.entries()) v.assign(rng.randn(v.shape, 0, 0.5));

  const xVar = tf.variable(x0, true);
  const vars = [xVar, ...params.entries().map(([, v]) => v)];
  const loss = () => tf.sum(tf.mul(build(ctx, xVar), r)) as tf.Scalar;
  const { grads } = tf.variableGrads(loss, vars);

  let maxRelErr = 0;
  let checked = 0;
  for (const v of vars) {
    const g = grads[v.name]!;
    const dir = rng.randn(v.shape);
    const analytic = tf.sum(tf.mul(g, dir)).dataSync()[0]!;
    const base = tf.clone(v);
    const eps = 1e-2;
    v.assign(tf.add(base, tf.mul(dir, eps)));
    const up = loss().dataSync()[0]!;
    v.assign(tf.sub(base, tf.mul(dir, eps)));
    const down = loss().dataSync()[0]!;
    v.assign(base);
    const numeric = (up - down) / (2 * eps);
    const scale = Math.max(1, Math.abs(numeric), Math.abs(analytic));
    maxRelErr = Math.max(maxRelErr, Math.abs(numeric - analytic) / scale);
    checked++;
    base.dispose();
    dir.dispose();
  }
  Object.values(grads).forEach((g) => g.dispose());
  xVar.dispose();
  params.dispose();
  return { maxRelErr, checked };
}

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`nn primitives on ${backend}`, () => {
    beforeAll(async () => {
      await useBackend(backend);
    });

    const cases: [string, number[], (ctx: Ctx, x: tf.Tensor) => tf.Tensor][] = [
      ['conv2d 3x3 stride 1 pad 1', [2, 6, 6, 3], (c, x) => conv2d(c, 'c', x as tf.Tensor4D, { filters: 4 })],
      ['conv2d 3x3 stride 2 pad 1', [2, 6, 6, 3], (c, x) => conv2d(c, 'c', x as tf.Tensor4D, { filters: 4, stride: 2 })],
      ['conv2d 3x3 same', [1, 5, 5, 2], (c, x) => conv2d(c, 'c', x as tf.Tensor4D, { filters: 3, padding: 'same' })],
      ['conv2d 1x1', [2, 4, 4, 3], (c, x) => conv2d(c, 'c', x as tf.Tensor4D, { filters: 5, kernelSize: 1 })],
      ['downsample', [1, 8, 8, 4], (c, x) => downsample(c, 'd', x as tf.Tensor4D)],
      ['dense', [3, 5, 6], (c, x) => dense(c, 'fc', x, { units: 4 })],
      ['groupNorm', [2, 4, 4, 8], (c, x) => groupNorm(c, 'gn', x, { groups: 4 })],
      ['layerNorm', [2, 5, 8], (c, x) => layerNorm(c, 'ln', x)],
      ['silu', [2, 7], (_c, x) => silu(x)],
      ['upsampleNearest', [1, 3, 3, 2], (_c, x) => upsampleNearest(x as tf.Tensor4D, 2)],
      [
        'multiHeadAttention with mask',
        [2, 6, 8],
        (c, x) => {
          const mask = tf.tensor2d(
            Array.from({ length: 36 }, (_, i) => (Math.floor(i / 6) === i % 6 ? -1e9 : 0)),
            [6, 6],
          );
          return multiHeadAttention(c, 'attn', x as tf.Tensor3D, { heads: 2, mask });
        },
      ],
    ];

    for (const [name, shape, build] of cases) {
      it(`${name}: gradients match finite differences`, () => {
        const { maxRelErr, checked } = checkGradients(build, shape, 7);
        expect(checked).toBeGreaterThan(0);
        expect(maxRelErr).toBeLessThan(2e-2);
      });
    }

    it('conv2d taps the im2col matrix: tap · W + b equals the output', () => {
      const params = new ParamStore(3);
      const rng = new Rng(11);
      for (const [stride, padding] of [
        [1, 1],
        [2, 1],
        [1, 'same'],
        [2, 'same'],
        [1, 'valid'],
      ] as const) {
        const events: { layer: string; input: number[][]; shape: number[] }[] = [];
        const ctx = context(params, {
          tap: (e: TapEvent) => events.push({ layer: e.layer, input: e.input.arraySync(), shape: e.input.shape }),
        });
        const x = rng.randn([2, 7, 6, 3]) as tf.Tensor4D;
        const y = conv2d(scope(ctx, `s${stride}${padding}`), 'conv', x, { filters: 4, stride, padding });
        expect(events).toHaveLength(1);
        const e = events[0]!;
        expect(e.layer).toBe(`s${stride}${padding}.conv`);
        const [n, oh, ow] = y.shape;
        expect(e.shape).toEqual([n * oh * ow, 27]);
        const w = params.get(`${e.layer}.weight`).reshape([27, 4]) as tf.Tensor2D;
        const b = params.get(`${e.layer}.bias`);
        const viaTap = tf.add(tf.matMul(tf.tensor2d(e.input), w), b);
        const diff = tf.max(tf.abs(tf.sub(viaTap, y.reshape([-1, 4])))).dataSync()[0]!;
        expect(diff).toBeLessThan(1e-4);
        // And the tap matches an explicit, loop-built im2col.
        const explicit = naiveIm2col(x.arraySync(), 3, stride, padding);
        expect(maxAbsDiff(e.input, explicit)).toBeLessThan(1e-6);
      }
      params.dispose();
    });

    it('dense taps its flattened input', () => {
      const params = new ParamStore(1);
      const seen: TapEvent['kind'][] = [];
      let rows = 0;
      const ctx = context(params, {
        tap: (e) => {
          seen.push(e.kind);
          rows = e.input.shape[0];
        },
      });
      const y = dense(ctx, 'fc', tf.ones([2, 3, 5]), { units: 4 });
      expect(y.shape).toEqual([2, 3, 4]);
      expect(seen).toEqual(['dense']);
      expect(rows).toBe(6);
      params.dispose();
    });
  });
}

describe('parameter store and embeddings', () => {
  afterAll(() => undefined);

  it('same seed gives the same parameters; another seed does not', () => {
    const make = (seed: number) => {
      const p = new ParamStore(seed);
      conv2d(context(p), 'c', tf.zeros([1, 4, 4, 2]) as tf.Tensor4D, { filters: 3 });
      const values = p.get('c.weight').dataSync().slice();
      p.dispose();
      return values;
    };
    expect(make(5)).toEqual(make(5));
    expect(make(5)).not.toEqual(make(6));
  });

  it('PyTorch default init bounds and stable names', () => {
    const p = new ParamStore(0);
    const ctx = scope(context(p), 'unet');
    conv2d(scope(ctx, 'in'), '0', tf.zeros([1, 4, 4, 8]) as tf.Tensor4D, { filters: 16 });
    expect(p.names()).toEqual(['unet.in.0.weight', 'unet.in.0.bias']);
    const w = p.get('unet.in.0.weight').dataSync();
    const bound = 1 / Math.sqrt(8 * 9);
    expect(Math.max(...w)).toBeLessThanOrEqual(bound);
    expect(Math.min(...w)).toBeGreaterThanOrEqual(-bound);
    expect(Math.max(...w)).toBeGreaterThan(0.8 * bound);
    expect(p.info('unet.in.0.weight')).toMatchObject({ layer: 'unet.in.0', role: 'weight', layerKind: 'conv' });
    expect(() => p.param('unet.in.0.weight', [1, 2], { kind: 'zeros' }, { layer: 'x', role: 'weight', layerKind: 'conv' })).toThrow(
      /exists with shape \[3,3,8,16\]/,
    );
    p.dispose();
  });

  it('zero-initialised conv is a no-op projection', () => {
    const p = new ParamStore(0);
    const y = conv2d(context(p), 'zero', tf.ones([1, 3, 3, 2]) as tf.Tensor4D, { filters: 2, kernelSize: 1, init: 'zeros' });
    expect(Array.from(y.dataSync()).every((v) => v === 0)).toBe(true);
    p.dispose();
  });

  it('He init: normal weights with variance 2 / fanIn and zero biases', () => {
    const p = new ParamStore(0);
    conv2d(context(p), 'he', tf.zeros([1, 4, 4, 32]) as tf.Tensor4D, { filters: 64, init: 'he' });
    const w = Array.from(p.get('he.weight').dataSync());
    const fanIn = 32 * 9;
    const mean = w.reduce((a, b) => a + b, 0) / w.length;
    const variance = w.reduce((a, b) => a + (b - mean) ** 2, 0) / w.length;
    // 18 432 draws: the sample variance is within 3% (3 standard errors) of 2 / fanIn, and some
    // draws pass 3 / sqrt(fanIn) (2.1 sd, 3.4% of draws), three times the uniform default's bound.
    expect(Math.abs(variance / (2 / fanIn) - 1)).toBeLessThan(0.03);
    expect(Math.max(...w.map(Math.abs))).toBeGreaterThan(3 / Math.sqrt(fanIn));
    expect(Array.from(p.get('he.bias').dataSync()).every((v) => v === 0)).toBe(true);
    p.dispose();
  });

  it('timestep embedding follows the closed form (cos first, then sin)', () => {
    const e = timestepEmbedding([0, 10], 8).arraySync();
    expect(e[0]).toEqual([1, 1, 1, 1, 0, 0, 0, 0]);
    for (let i = 0; i < 4; i++) {
      const f = Math.exp((-Math.log(10000) * i) / 4);
      expect(e[1]![i]).toBeCloseTo(Math.cos(10 * f), 5);
      expect(e[1]![4 + i]).toBeCloseTo(Math.sin(10 * f), 5);
    }
  });

  it('2-D positional embedding distinguishes every token', () => {
    const pe = positionalEmbedding2d(4, 5, 16).arraySync();
    const keys = new Set(pe.map((row) => row.map((v) => v.toFixed(4)).join(',')));
    expect(keys.size).toBe(20);
  });

  it('resolvePadding matches tfjs output sizes', () => {
    for (const [h, k, s, p] of [
      [7, 3, 2, 'same'],
      [8, 3, 2, 1],
      [6, 1, 1, 'valid'],
    ] as const) {
      const { outHeight } = resolvePadding(h, h, k, s, p);
      const cols = im2col(tf.zeros([1, h, h, 1]) as tf.Tensor4D, k, s, p);
      expect(cols.shape[0]).toBe(outHeight * outHeight);
    }
  });
});

function naiveIm2col(x: number[][][][], k: number, stride: number, padding: number | 'same' | 'valid'): number[][] {
  const n = x.length;
  const h = x[0]!.length;
  const w = x[0]![0]!.length;
  const c = x[0]![0]![0]!.length;
  const { pads, outHeight, outWidth } = resolvePadding(h, w, k, stride, padding);
  const rows: number[][] = [];
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < outHeight; oy++) {
      for (let ox = 0; ox < outWidth; ox++) {
        const row: number[] = [];
        for (let ky = 0; ky < k; ky++) {
          for (let kx = 0; kx < k; kx++) {
            const iy = oy * stride + ky - pads[0];
            const ix = ox * stride + kx - pads[2];
            for (let ch = 0; ch < c; ch++) {
              row.push(iy >= 0 && iy < h && ix >= 0 && ix < w ? x[b]![iy]![ix]![ch]! : 0);
            }
          }
        }
        rows.push(row);
      }
    }
  }
  return rows;
}

function maxAbsDiff(a: number[][], b: number[][]): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) for (let j = 0; j < a[i]!.length; j++) m = Math.max(m, Math.abs(a[i]![j]! - b[i]![j]!));
  return a.length === b.length ? m : Number.POSITIVE_INFINITY;
}
