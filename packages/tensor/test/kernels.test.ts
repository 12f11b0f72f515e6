/**
 * The custom wasm kernels against the cpu backend (real kernels on both sides): every conv
 * padding/stride/kernel case, every matMul transpose and batch/broadcast shape, the gather
 * gradient, and a whole small network's gradients. Also: no leaked tensors or wasm data ids.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend';
import { registeredWasmKernels, registerWasmKernels, unregisterWasmKernels, WASM_CUSTOM_KERNELS } from '../src/kernels';
import { Rng } from '../src/rng';
import { tf } from '../src/tf';
import { runOn } from './helpers/backends';

type Pad = 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;

const TOLERANCE = 1e-4;
const errors: Array<{ kernel: string; case: string; maxRel: number }> = [];

/** max |a - b| / max |b|, with b the reference. */
function maxRelError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  expect(scale).toBeGreaterThan(0);
  return diff / scale;
}

function record(kernel: string, name: string, wasm: ArrayLike<number>, ref: ArrayLike<number>): void {
  const maxRel = maxRelError(wasm, ref);
  errors.push({ kernel, case: name, maxRel });
  expect(maxRel, `${kernel} ${name}`).toBeLessThanOrEqual(TOLERANCE);
}

async function compare(kernel: string, name: string, f: () => tf.Tensor[]): Promise<void> {
  const wasm = (await runOn('wasm', f)).map((r) => r.values);
  const cpu = (await runOn('cpu', f)).map((r) => r.values);
  expect(wasm.length).toBe(cpu.length);
  wasm.forEach((w, i) => record(kernel, wasm.length > 1 ? `${name} #${i}` : name, w, cpu[i]));
}

const rng = new Rng(20250301);
const data = (n: number) => rng.normalArray(n);
const size = (shape: number[]) => shape.reduce((p, d) => p * d, 1);

beforeAll(async () => {
  const report = await initBackend({ backend: 'wasm' });
  expect(report.backend).toBe('wasm');
});

afterAll(() => {
  const worst = new Map<string, number>();
  for (const e of errors) worst.set(e.kernel, Math.max(worst.get(e.kernel) ?? 0, e.maxRel));
  const lines = [...worst].map(([k, v]) => `  ${k.padEnd(22)} ${v.toExponential(2)}`);
  console.log(`max relative error, wasm vs cpu (${errors.length} comparisons):\n${lines.join('\n')}`);
});

describe('registration', () => {
  it('registers all custom kernels on wasm, idempotently, and can restore the built-ins', () => {
    expect(registeredWasmKernels()).toEqual([...WASM_CUSTOM_KERNELS]);
    const ours = tf.getKernel('BatchMatMul', 'wasm')?.kernelFunc;
    expect(registerWasmKernels()).toEqual([...WASM_CUSTOM_KERNELS]);
    expect(tf.getKernel('BatchMatMul', 'wasm')?.kernelFunc).toBe(ours);

    unregisterWasmKernels();
    expect(registeredWasmKernels()).toEqual([]);
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeUndefined();
    expect(tf.getKernel('UnsortedSegmentSum', 'wasm')).toBeUndefined();
    const builtin = tf.getKernel('BatchMatMul', 'wasm');
    expect(builtin?.kernelFunc).not.toBe(ours);
    expect(builtin?.setupFunc).toBeTypeOf('function');

    expect(registerWasmKernels()).toEqual([...WASM_CUSTOM_KERNELS]);
    expect(tf.getKernel('Conv2DBackpropInput', 'wasm')?.setupFunc).toBeTypeOf('function');
  });
});

describe('Conv2DBackpropFilter and Conv2DBackpropInput', () => {
  const explicit1: Pad = [
    [0, 0],
    [1, 1],
    [1, 1],
    [0, 0],
  ];
  const asymmetric: Pad = [
    [0, 0],
    [0, 2],
    [2, 1],
    [0, 0],
  ];
  const cases: Array<{ x: [number, number, number, number]; k: number; s: number; pad: Pad; co: number }> = [
    { x: [2, 16, 16, 8], k: 3, s: 1, pad: 'same', co: 16 },
    { x: [2, 16, 16, 8], k: 3, s: 2, pad: 'same', co: 16 },
    { x: [2, 16, 16, 8], k: 3, s: 1, pad: 'valid', co: 16 },
    { x: [2, 15, 15, 8], k: 3, s: 2, pad: 'valid', co: 16 },
    { x: [2, 16, 16, 8], k: 3, s: 1, pad: explicit1, co: 16 },
    { x: [2, 16, 16, 8], k: 3, s: 2, pad: explicit1, co: 16 },
    { x: [2, 9, 11, 5], k: 3, s: 1, pad: asymmetric, co: 7 },
    { x: [2, 9, 11, 5], k: 3, s: 2, pad: asymmetric, co: 7 },
    { x: [2, 16, 16, 8], k: 1, s: 1, pad: 'same', co: 16 },
    { x: [2, 16, 16, 8], k: 1, s: 2, pad: 'valid', co: 16 },
    { x: [2, 8, 8, 8], k: 1, s: 1, pad: explicit1, co: 6 },
    { x: [2, 10, 9, 4], k: 5, s: 2, pad: 'same', co: 6 },
    { x: [2, 8, 8, 4], k: 4, s: 2, pad: 'same', co: 6 },
    { x: [2, 8, 8, 4], k: 3, s: 1, pad: 3, co: 6 },
    { x: [2, 8, 8, 4], k: 3, s: 2, pad: 1, co: 6 },
    // 9·16·16 = 2304 output pixels: the filter gradient runs in two reduction chunks.
    { x: [9, 16, 16, 8], k: 3, s: 1, pad: 'same', co: 8 },
  ];
  for (const c of cases) {
    const name = `x[${c.x}] k${c.k} s${c.s} pad ${JSON.stringify(c.pad)}`;
    it(`matches cpu: ${name}`, async () => {
      const filterShape = [c.k, c.k, c.x[3], c.co] as [number, number, number, number];
      const dyShape = tf.tidy(() => tf.conv2d(tf.zeros(c.x) as tf.Tensor4D, tf.zeros(filterShape) as tf.Tensor4D, c.s, c.pad).shape);
      const xv = data(size(c.x));
      const wv = data(size(filterShape));
      const dyv = data(size(dyShape));
      const attrs = { strides: c.s, pad: c.pad, dataFormat: 'NHWC' };
      await compare('Conv2DBackpropFilter', name, () => [
        tf.engine().runKernel(
          'Conv2DBackpropFilter',
          { x: tf.tensor(xv, c.x), dy: tf.tensor(dyv, dyShape) },
          { ...attrs, filterShape },
        ) as tf.Tensor,
      ]);
      await compare('Conv2DBackpropInput', name, () => [
        tf.engine().runKernel(
          'Conv2DBackpropInput',
          { dy: tf.tensor(dyv, dyShape), filter: tf.tensor(wv, filterShape) },
          { ...attrs, inputShape: c.x },
        ) as tf.Tensor,
      ]);
      // The same two kernels reached through tfjs's gradient of conv2d.
      await compare('conv2d gradient', name, () => {
        const x = tf.tensor(xv, c.x) as tf.Tensor4D;
        const w = tf.tensor(wv, filterShape) as tf.Tensor4D;
        const dy = tf.tensor(dyv, dyShape);
        return tf.grads((xx: tf.Tensor, ww: tf.Tensor) =>
          tf.conv2d(xx as tf.Tensor4D, ww as tf.Tensor4D, c.s, c.pad).mul(dy).sum(),
        )([x, w]);
      });
    });
  }

  it('rejects dilation > 1 and NCHW with a clear message', () => {
    const x = tf.zeros([1, 6, 6, 2]);
    const dy = tf.zeros([1, 6, 6, 3]);
    const w = tf.zeros([3, 3, 2, 3]);
    const base = { strides: 1, pad: 'same', filterShape: [3, 3, 2, 3], inputShape: [1, 6, 6, 2] };
    expect(() => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { ...base, dilations: 2 })).toThrow(
      /dilation 2x2 is not supported/,
    );
    expect(() => tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: w }, { ...base, dataFormat: 'NCHW' })).toThrow(
      /dataFormat 'NCHW' is not supported.*NHWC/,
    );
    tf.dispose([x, dy, w]);
  });
});

describe('BatchMatMul', () => {
  /** Plain float64 reference with general broadcasting of the batch dimensions. */
  function reference(
    av: Float32Array,
    aShape: number[],
    bv: Float32Array,
    bShape: number[],
    ta: boolean,
    tb: boolean,
  ): Float64Array {
    const ar = aShape.length;
    const br = bShape.length;
    const m = ta ? aShape[ar - 1] : aShape[ar - 2];
    const k = ta ? aShape[ar - 2] : aShape[ar - 1];
    const n = tb ? bShape[br - 2] : bShape[br - 1];
    const outer = tf.broadcast_util.assertAndGetBroadcastShape(aShape.slice(0, -2), bShape.slice(0, -2));
    const pad = (s: number[]) => [...new Array<number>(outer.length - s.length).fill(1), ...s];
    const ao = pad(aShape.slice(0, -2));
    const bo = pad(bShape.slice(0, -2));
    const batches = size(outer);
    const out = new Float64Array(batches * m * n);
    for (let bi = 0; bi < batches; bi++) {
      let rest = bi;
      let ia = 0;
      let ib = 0;
      let strideA = 1;
      let strideB = 1;
      for (let d = outer.length - 1; d >= 0; d--) {
        const idx = rest % outer[d];
        rest = Math.floor(rest / outer[d]);
        if (ao[d] !== 1) ia += idx * strideA;
        if (bo[d] !== 1) ib += idx * strideB;
        strideA *= ao[d];
        strideB *= bo[d];
      }
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let q = 0; q < k; q++) {
            const a = av[ia * m * k + (ta ? q * m + i : i * k + q)];
            const b = bv[ib * k * n + (tb ? j * k + q : q * n + j)];
            s += a * b;
          }
          out[bi * m * n + i * n + j] = s;
        }
      }
    }
    return out;
  }

  const shapes: Array<[number[], number[], boolean, boolean, boolean?]> = [];
  for (const ta of [false, true]) {
    for (const tb of [false, true]) {
      const m = 12;
      const k = 20;
      const n = 9;
      shapes.push([ta ? [3, k, m] : [3, m, k], tb ? [3, n, k] : [3, k, n], ta, tb]); // batched
      shapes.push([ta ? [k, m] : [m, k], tb ? [n, k] : [k, n], ta, tb]); // plain 2-D
      shapes.push([ta ? [4, k, m] : [4, m, k], tb ? [n, k] : [k, n], ta, tb]); // b broadcast
      shapes.push([ta ? [k, m] : [m, k], tb ? [2, 2, n, k] : [2, 2, k, n], ta, tb]); // a broadcast
    }
  }
  // General broadcasting of both operands (cpu's kernel in tfjs 4.22 only handles one side = 1,
  // so this case is checked against the plain reference only).
  shapes.push([[2, 1, 5, 6], [3, 6, 4], false, false, true]);
  shapes.push([[2, 1, 6, 5], [3, 4, 6], true, true, true]);
  // Long reductions: the transposed-a path splits K into chunks.
  shapes.push([[5000, 6], [5000, 7], true, false]);
  shapes.push([[2, 4500, 3], [2, 5, 4500], true, true]);

  for (const [aShape, bShape, ta, tb, referenceOnly] of shapes) {
    const name = `[${aShape}]${ta ? 'ᵀ' : ''} x [${bShape}]${tb ? 'ᵀ' : ''}`;
    it(`matches ${referenceOnly ? 'the float64 reference' : 'cpu and the float64 reference'}: ${name}`, async () => {
      const av = data(size(aShape));
      const bv = data(size(bShape));
      const f = () => [tf.matMul(tf.tensor(av, aShape), tf.tensor(bv, bShape), ta, tb)];
      const wasm = (await runOn('wasm', f)).map((r) => r.values);
      const ref = reference(av, aShape, bv, bShape, ta, tb);
      const maxRel = maxRelError(wasm[0], ref);
      errors.push({ kernel: 'BatchMatMul (vs f64)', case: name, maxRel });
      expect(maxRel).toBeLessThanOrEqual(TOLERANCE);
      if (!referenceOnly) await compare('BatchMatMul', name, f);
    });
  }

  it('keeps the built-in fast path for a plain product and still gets gradients right', async () => {
    const av = data(16 * 24);
    const bv = data(24 * 8);
    await compare('BatchMatMul', 'grads of [16,24] x [24,8]', () =>
      tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.matMul(a, b).square().sum())([tf.tensor(av, [16, 24]), tf.tensor(bv, [24, 8])]),
    );
  });
});

describe('UnsortedSegmentSum', () => {
  it('matches cpu, dropping out-of-range ids', async () => {
    const xv = data(6 * 3 * 2);
    const ids = [0, 2, 0, 5, -1, 2];
    await compare('UnsortedSegmentSum', 'x[6,3,2] ids [0,2,0,5,-1,2] n=4', () => [
      tf.unsortedSegmentSum(tf.tensor(xv, [6, 3, 2]), tf.tensor1d(ids, 'int32'), 4),
    ]);
  });

  it('gives the gradient of gather (an embedding table)', async () => {
    const table = data(10 * 8);
    const weights = data(5 * 8);
    await compare('UnsortedSegmentSum', 'gather gradient', () =>
      tf.grads((t: tf.Tensor) => tf.gather(t, tf.tensor1d([3, 1, 3, 9, 0], 'int32')).mul(tf.tensor(weights, [5, 8])).sum())([
        tf.tensor(table, [10, 8]),
      ]),
    );
  });
});

describe('a whole small network', () => {
  it('has the same gradients on wasm as on cpu, and runs the custom kernels', async () => {
    const shapes: Record<string, number[]> = {
      conv1: [3, 3, 4, 16],
      down: [3, 3, 16, 16],
      proj: [1, 1, 16, 16],
      gamma: [16],
      beta: [16],
      q: [16, 16],
      k: [16, 16],
      v: [16, 16],
      dense: [16, 16],
      denseBias: [16],
      embedding: [5, 16],
      out: [3, 3, 16, 4],
    };
    const params = Object.fromEntries(Object.entries(shapes).map(([n, s]) => [n, data(size(s)).map((v) => v * 0.3)]));
    const xv = data(4 * 16 * 16 * 4);
    const target = data(4 * 8 * 8 * 4);
    const pad1: Pad = [
      [0, 0],
      [1, 1],
      [1, 1],
      [0, 0],
    ];

    const gradients = () => {
      const p = Object.fromEntries(Object.entries(params).map(([n, v]) => [n, tf.tensor(v, shapes[n])]));
      const names = Object.keys(p);
      const loss = (...values: tf.Tensor[]) => {
        const w = Object.fromEntries(names.map((n, i) => [n, values[i]]));
        const silu = (t: tf.Tensor) => t.mul(tf.sigmoid(t));
        const groupNorm = (t: tf.Tensor4D, groups: number) => {
          const [b, h, wd, c] = t.shape;
          const g = t.reshape([b, h, wd, groups, c / groups]);
          const { mean, variance } = tf.moments(g, [1, 2, 4], true);
          return g.sub(mean).mul(tf.rsqrt(variance.add(1e-5))).reshape([b, h, wd, c]).mul(w.gamma).add(w.beta);
        };
        const x = tf.tensor(xv, [4, 16, 16, 4]) as tf.Tensor4D;
        let h = silu(tf.conv2d(x, w.conv1 as tf.Tensor4D, 1, pad1)) as tf.Tensor4D;
        h = tf.conv2d(h, w.down as tf.Tensor4D, 2, pad1); // 8x8
        h = tf.conv2d(h, w.proj as tf.Tensor4D, 1, 'valid');
        h = silu(groupNorm(h, 4)) as tf.Tensor4D;
        // Class embedding (gather) through a dense layer, added per image.
        const emb = tf.gather(w.embedding, tf.tensor1d([0, 3, 3, 1], 'int32'));
        const cond = tf.matMul(silu(emb), w.dense).add(w.denseBias);
        h = h.add(cond.reshape([4, 1, 1, 16]));
        // A concat skip (SplitV in the backward pass) and a channel slice.
        const both = tf.concat([h, h.square()], 3);
        h = tf.slice(both, [0, 0, 0, 8], [4, 8, 8, 16]);
        // Two-head self-attention over the 64 positions (heads split by Transpose).
        const flat = h.reshape([256, 16]);
        const heads = (t: tf.Tensor) => t.reshape([4, 64, 2, 8]).transpose([0, 2, 1, 3]);
        const q = heads(tf.matMul(flat, w.q));
        const k = heads(tf.matMul(flat, w.k));
        const v = heads(tf.matMul(flat, w.v));
        const att = tf.softmax(tf.matMul(q, k, false, true).div(Math.sqrt(8)));
        h = h.add(tf.matMul(att, v).transpose([0, 2, 1, 3]).reshape([4, 8, 8, 16]));
        const y = tf.conv2d(h, w.out as tf.Tensor4D, 1, 'same');
        return tf.losses.meanSquaredError(tf.tensor(target, [4, 8, 8, 4]), y) as tf.Scalar;
      };
      return tf.grads(loss)(names.map((n) => p[n]));
    };

    await tf.setBackend('wasm');
    const profile = await tf.profile(() => {
      tf.dispose(tf.tidy(gradients));
    });
    const ran = new Set(profile.kernels.map((k) => k.name));
    for (const name of WASM_CUSTOM_KERNELS) expect(ran, `kernel ${name} ran`).toContain(name);

    await compare('network gradients', 'conv/gn/dense/attention/gather', gradients);
  });
});
