/**
 * The data-movement kernels (Identity, Cast, Slice, SplitV, Transpose) on wasm against the cpu
 * backend, bit for bit, and the fused group-norm kernel against the composition of tfjs ops it
 * replaces: values and all three gradients, with and without SiLU, on wasm and cpu.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend';
import { GROUP_NORM_GRAD_KERNEL, GROUP_NORM_KERNEL, registerGroupNormKernels } from '../src/kernels/group_norm';
import { UPSAMPLE_KERNEL, registerUpsampleKernels } from '../src/kernels/upsample';
import { type Ctx, context, groupNorm, setFusedGroupNorm, upsampleNearest } from '../src/nn';
import { ParamStore } from '../src/params';
import { Rng } from '../src/rng';
import { tf } from '../src/tf';
import { runOn } from './helpers/backends';

const rng = new Rng(77);
const size = (shape: number[]) => shape.reduce((p, d) => p * d, 1);

async function expectSameOnBothBackends(f: () => tf.Tensor[]): Promise<void> {
  const wasm = await runOn('wasm', f);
  const cpu = await runOn('cpu', f);
  expect(wasm).toEqual(cpu);
}

beforeAll(async () => {
  const report = await initBackend({ backend: 'wasm' });
  registerGroupNormKernels();
  registerUpsampleKernels();
  expect(report.customKernels).toEqual(expect.arrayContaining(['Identity', 'Cast', 'Slice', 'SplitV', 'Transpose']));
});

describe('data movement on wasm', () => {
  const floats = (shape: number[]) => rng.normalArray(size(shape));
  const ints = (shape: number[]) => Array.from({ length: size(shape) }, (_, i) => ((i * 2654435761) | 0) >> 3);

  it('Slice: contiguous, strided, single-element runs, size-1 and empty dims, int32', async () => {
    const xv = floats([3, 5, 7, 6]);
    const iv = ints([4, 9, 33]);
    await expectSameOnBothBackends(() => {
      const x = tf.tensor(xv, [3, 5, 7, 6]);
      const xi = tf.tensor(iv, [4, 9, 33], 'int32');
      return [
        tf.slice(x, [1, 0, 0, 0], [2, 5, 7, 6]), // one run
        tf.slice(x, [0, 1, 2, 0], [3, 3, 4, 6]), // runs of 24 floats
        tf.slice(x, [0, 0, 0, 2], [3, 5, 7, 3]), // short runs
        tf.slice(x, [2, 4, 6, 5], [1, 1, 1, 1]),
        tf.slice(x, [0, 0, 0, 0], [3, 0, 7, 6]),
        tf.slice(xi, [1, 2, 1], [3, 6, 30]), // runs of 30 words, int32 bits preserved
        tf.slice(xi, [0, 0, 5], [4, 9, 1]),
      ];
    });
  });

  it('SplitV (the gradient of concat) on every axis, uneven sizes', async () => {
    const xv = floats([2, 4, 6, 40]);
    await expectSameOnBothBackends(() => {
      const x = tf.tensor(xv, [2, 4, 6, 40]);
      return [...tf.split(x, [25, 15], 3), ...tf.split(x, 3, 2), ...tf.split(x, [1, 3], 1), ...tf.split(x, 2, 0)];
    });
    const table = floats([3, 8]);
    await expectSameOnBothBackends(() => {
      const a = tf.tensor(table, [3, 8]);
      const b = tf.tensor(table.map((v) => v * 2), [3, 8]);
      return tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.concat([p, q], 1).square().sum())([a, b]);
    });
  });

  it('Transpose: block copies, batched matrix swaps, general permutations, int32', async () => {
    const xv = floats([2, 5, 3, 32]);
    const yv = floats([3, 7, 9]);
    const iv = ints([2, 3, 4, 5]);
    await expectSameOnBothBackends(() => {
      const x = tf.tensor(xv, [2, 5, 3, 32]);
      const y = tf.tensor(yv, [3, 7, 9]);
      const xi = tf.tensor(iv, [2, 3, 4, 5], 'int32');
      return [
        tf.transpose(x, [0, 2, 1, 3]), // attention head split
        tf.transpose(x, [2, 0, 1, 3]),
        tf.transpose(x, [0, 1, 3, 2]), // batched matrix transpose
        tf.transpose(x, [0, 2, 3, 1]), // [b] + swap of ([5], [3, 32])
        tf.transpose(x, [3, 2, 1, 0]), // general: the built-in
        tf.transpose(y, [1, 0, 2]),
        tf.transpose(y, [2, 0, 1]),
        tf.transpose(xi, [0, 2, 1, 3]),
        tf.transpose(xi, [1, 0, 3, 2]),
      ];
    });
  });

  it('Identity and same-dtype Cast share the data (no copy); other casts convert', async () => {
    await tf.setBackend('wasm');
    const backend = tf.backend() as unknown as { dataIdMap: { get(id: object): { memoryOffset: number; refCount: number } } };
    const x = tf.tensor([1.5, -2, 3.25], [3]);
    const clone = tf.clone(x);
    const cast = tf.cast(x, 'float32');
    expect(backend.dataIdMap.get(clone.dataId)!.memoryOffset).toBe(backend.dataIdMap.get(x.dataId)!.memoryOffset);
    expect(backend.dataIdMap.get(cast.dataId)!.memoryOffset).toBe(backend.dataIdMap.get(x.dataId)!.memoryOffset);
    x.dispose();
    expect(Array.from(clone.dataSync())).toEqual([1.5, -2, 3.25]);
    expect(Array.from(cast.dataSync())).toEqual([1.5, -2, 3.25]);
    const asInt = tf.cast(clone, 'int32');
    expect(asInt.dtype).toBe('int32');
    expect(Array.from(asInt.dataSync())).toEqual([1, -2, 3]);
    tf.dispose([clone, cast, asInt]);
  });

  it('Cast to bool is x != 0, as on cpu (the built-in wrapped -2 to 254)', async () => {
    await expectSameOnBothBackends(() => [
      tf.cast(tf.tensor([1.5, -2, 0, Number.NaN, 256, -0], [6]), 'bool'),
      tf.cast(tf.tensor([0, -2, 256, 7], [2, 2], 'int32'), 'bool'),
      tf.cast(tf.tensor([0.5, -3.7, 2], [3]), 'int32'),
    ]);
  });
});

describe('fused group norm', () => {
  /** The composite reference: what groupNorm computed before the kernel. */
  function composite(x: tf.Tensor, scale: tf.Tensor, offset: tf.Tensor, groups: number, silu: boolean): tf.Tensor {
    const c = x.shape[x.shape.length - 1]!;
    const grouped = x.reshape([x.shape[0]!, -1, groups, c / groups]);
    const { mean, variance } = tf.moments(grouped, [1, 3], true);
    const y = tf.sub(grouped, mean).mul(tf.rsqrt(tf.add(variance, 1e-5))).reshape(x.shape).mul(scale).add(offset);
    return silu ? y.mul(tf.sigmoid(y)) : y;
  }

  function fused(x: tf.Tensor, scale: tf.Tensor, offset: tf.Tensor, groups: number, silu: boolean): tf.Tensor {
    const [y, stats] = tf.engine().runKernel(
      GROUP_NORM_KERNEL,
      { x, scale, offset },
      { groups, epsilon: 1e-5, activation: silu ? 'silu' : 'linear' },
    ) as tf.Tensor[];
    stats!.dispose();
    return y!;
  }

  function maxRel(a: number[], b: number[]): number {
    expect(a.length).toBe(b.length);
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < a.length; i++) {
      diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
      scale = Math.max(scale, Math.abs(b[i]!));
    }
    return diff / scale;
  }

  const cases: Array<{ shape: number[]; groups: number }> = [
    { shape: [2, 5, 6, 8], groups: 4 },
    { shape: [3, 7, 12], groups: 3 },
    { shape: [2, 16], groups: 1 },
    { shape: [1, 4, 4, 6], groups: 6 },
  ];
  for (const backend of ['wasm', 'cpu'] as const) {
    for (const { shape, groups } of cases) {
      for (const silu of [false, true]) {
        it(`${backend}: [${shape}] in ${groups} groups${silu ? ' + SiLU' : ''}: value and gradients of x, scale, offset`, async () => {
          const c = shape[shape.length - 1]!;
          // An offset mean and varied scales, so that centring and every gradient term matter.
          const xv = rng.normalArray(size(shape)).map((v, i) => 3 + 2 * v + (i % c) * 0.1);
          const sv = rng.normalArray(c).map((v) => 1 + 0.5 * v);
          const ov = rng.normalArray(c).map((v) => 0.5 * v);
          const rv = rng.normalArray(size(shape));
          const run = (f: typeof fused) => () => {
            const x = tf.tensor(xv, shape);
            const s = tf.tensor(sv, [c]);
            const o = tf.tensor(ov, [c]);
            const r = tf.tensor(rv, shape);
            const y = f(x, s, o, groups, silu);
            const grads = tf.grads((a: tf.Tensor, b: tf.Tensor, d: tf.Tensor) => f(a, b, d, groups, silu).mul(r).sum())([x, s, o]);
            return [y, ...grads];
          };
          const ours = await runOn(backend, run(fused));
          const reference = await runOn(backend, run(composite));
          const labels = ['y', 'dx', 'dscale', 'doffset'];
          ours.forEach((o, i) => {
            expect(o.shape).toEqual(reference[i]!.shape);
            expect(maxRel(o.values, reference[i]!.values), labels[i]).toBeLessThan(2e-5);
          });
        });
      }
    }
  }

  it('nn.groupNorm uses it on wasm and cpu, with the same result as the composite path', async () => {
    for (const backend of ['wasm', 'cpu'] as const) {
      await tf.setBackend(backend);
      const params = new ParamStore(3);
      const ctx: Ctx = context(params);
      const x = tf.tensor(rng.normalArray(2 * 4 * 4 * 8), [2, 4, 4, 8]);
      tf.dispose(groupNorm(ctx, 'gn', x, { groups: 2 })); // creates the parameters
      const profile = await tf.profile(() => groupNorm(ctx, 'gn', x, { groups: 2, activation: 'silu' }));
      expect(profile.kernels.map((k) => k.name)).toEqual([GROUP_NORM_KERNEL]);
      const fusedOut = groupNorm(ctx, 'gn', x, { groups: 2, activation: 'silu' });
      const before = setFusedGroupNorm(false);
      const compositeOut = groupNorm(ctx, 'gn', x, { groups: 2, activation: 'silu' });
      setFusedGroupNorm(before);
      expect(maxRel(Array.from(fusedOut.dataSync()), Array.from(compositeOut.dataSync()))).toBeLessThan(1e-5);
      tf.dispose([x, fusedOut, compositeOut, profile.result as tf.Tensor]);
      params.dispose();
    }
    await tf.setBackend('wasm');
  });

  it('saves only the input and the statistics for the gradient', async () => {
    await tf.setBackend('wasm');
    const x = tf.tensor(rng.normalArray(2 * 8 * 8 * 16), [2, 8, 8, 16]);
    const s = tf.ones([16]);
    const o = tf.zeros([16]);
    // Bytes held by the tape while a gradient is pending: fused vs composite.
    const held = (f: (x: tf.Tensor, s: tf.Tensor, o: tf.Tensor, g: number, silu: boolean) => tf.Tensor) => {
      let bytes = 0;
      tf.tidy(() => {
        const before = tf.memory().numBytes;
        tf.grads((a: tf.Tensor) => {
          const y = f(a, s, o, 4, true);
          bytes = tf.memory().numBytes - before;
          return y.sum();
        })([x]);
      });
      return bytes;
    };
    const xBytes = 2 * 8 * 8 * 16 * 4;
    const fusedBytes = held(fused);
    const compositeBytes = held(composite);
    expect(fusedBytes).toBeLessThanOrEqual(2 * xBytes + 1024); // y, plus the input saved, plus stats
    expect(compositeBytes).toBeGreaterThan(3 * fusedBytes);
    tf.dispose([x, s, o]);
  });

  it('rejects channels that do not split into groups, with the kernel name', () => {
    const x = tf.zeros([1, 2, 2, 6]);
    const s = tf.ones([6]);
    expect(() => tf.engine().runKernel(GROUP_NORM_KERNEL, { x, scale: s, offset: s }, { groups: 4, epsilon: 1e-5, activation: 'linear' })).toThrow(
      /OfmGroupNorm: 6 channels do not split into 4 groups/,
    );
    expect(GROUP_NORM_GRAD_KERNEL).toBe('OfmGroupNormGrad');
    tf.dispose([x, s]);
  });
});

describe('nearest upsampling kernel', () => {
  /** The broadcast formulation nn.ts uses where the kernel is missing. */
  function broadcastUpsample(x: tf.Tensor4D, f: number): tf.Tensor {
    const [n, h, w, c] = x.shape;
    const wide = tf.broadcastTo(x.reshape([n * h, w, 1, c]), [n * h, w, f, c]);
    return tf.broadcastTo(wide.reshape([n * h, 1, w * f * c]), [n * h, f, w * f * c]).reshape([n, h * f, w * f, c]);
  }
  const kernel = (x: tf.Tensor4D, f: number) => tf.engine().runKernel(UPSAMPLE_KERNEL, { x }, { factor: f }) as tf.Tensor;

  for (const backend of ['wasm', 'cpu'] as const) {
    for (const [shape, f] of [
      [[2, 3, 5, 40], 2], // channel runs copied as memmoves on wasm
      [[1, 4, 3, 6], 3], // short runs, element loop
      [[2, 2, 2, 1], 2],
    ] as Array<[[number, number, number, number], number]>) {
      it(`${backend}: [${shape}] x${f}: values and gradient equal the broadcast formulation exactly`, async () => {
        const xv = rng.normalArray(size(shape));
        const outShape = [shape[0], shape[1] * f, shape[2] * f, shape[3]];
        const rv = rng.normalArray(size(outShape));
        const run = (up: (x: tf.Tensor4D, f: number) => tf.Tensor) => () => {
          const x = tf.tensor(xv, shape) as tf.Tensor4D;
          const r = tf.tensor(rv, outShape);
          return [up(x, f), tf.grad((a: tf.Tensor) => up(a as tf.Tensor4D, f).mul(r).sum())(x)];
        };
        const ours = await runOn(backend, run(kernel));
        const reference = await runOn(backend, run(broadcastUpsample));
        expect(ours[0]).toEqual(reference[0]);
        expect(ours[1]!.shape).toEqual(shape);
        ours[1]!.values.forEach((v, i) => expect(v).toBeCloseTo(reference[1]!.values[i]!, 5));
      });
    }
  }

  it('nn.upsampleNearest runs the kernel (one kernel call) on wasm', async () => {
    await tf.setBackend('wasm');
    const x = tf.zeros([1, 2, 2, 4]) as tf.Tensor4D;
    const profile = await tf.profile(() => upsampleNearest(x, 2));
    expect(profile.kernels.map((k) => k.name)).toEqual([UPSAMPLE_KERNEL]);
    tf.dispose([x, profile.result as tf.Tensor]);
  });
});

afterAll(async () => {
  await tf.setBackend('wasm');
});
