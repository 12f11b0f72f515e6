/**
 * Backend conformance: every op the UNet and the AMN use, forward and gradient, on each backend
 * this machine offers (wasm, and webgpu on Mesa's llvmpipe software adapter in CI), against the
 * cpu backend. The same inputs (generated in JavaScript) go to every backend; results are read
 * asynchronously (WebGPU in Node.js has no synchronous reads).
 *
 * Tolerances (relative: max |a - b| over max |reference|, per output): 1e-5 for forward values,
 * 5e-5 for gradients; float32 with another summation order stays well inside (see the numbers
 * printed with OFM_CONFORMANCE_VERBOSE=1).
 *
 * WebGPU is required here: when its adapter cannot be had (Mesa missing, `webgpu` or
 * `@tensorflow/tfjs-backend-webgpu` not installed), the suite fails and says what is missing.
 * The upsampling case uses the project's kernel, never tfjs-backend-cpu's
 * ResizeNearestNeighborGrad, which is wrong for 2x in tfjs 4.22.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BackendReport, initBackend } from '../src/backend';
import { GROUP_NORM_KERNEL } from '../src/kernels/group_norm';
import { registerOfmKernels } from '../src/kernels/ofm_kernels';
import { UPSAMPLE_KERNEL } from '../src/kernels/upsample';
import { MESA_INSTALL, WEBGPU_NODE_PACKAGES } from '../src/webgpu';
import { tf } from '../src/tf';

const FORWARD_TOL = 1e-5;
const GRAD_TOL = 5e-5;
const BACKENDS = ['wasm', 'webgpu'] as const;
const verbose = process.env.OFM_CONFORMANCE_VERBOSE === '1';

/** Deterministic normal samples (mulberry32 + Box-Muller), the same on every backend. */
function normals(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const uniform = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(uniform(), 1e-12);
    out[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * uniform());
  }
  return out;
}

interface InputSpec {
  shape: number[];
  scale?: number;
}

interface Case {
  name: string;
  inputs: InputSpec[];
  /** The op under test; its output is what the forward comparison reads. */
  f: (...xs: tf.Tensor[]) => tf.Tensor;
  /** Inputs the gradient is taken with respect to (default: all). */
  gradOf?: number[];
}

const pad1: [[number, number], [number, number], [number, number], [number, number]] = [
  [0, 0],
  [1, 1],
  [1, 1],
  [0, 0],
];

const silu = (x: tf.Tensor) => tf.mul(x, tf.sigmoid(x));

function groupNormCase(activation: 'linear' | 'silu'): Case {
  return {
    name: `group norm kernel (${activation}), [2, 8, 8, 16], 4 groups`,
    inputs: [{ shape: [2, 8, 8, 16] }, { shape: [16] }, { shape: [16] }],
    f: (x, scale, offset) => {
      const [y, stats] = tf.engine().runKernel(
        GROUP_NORM_KERNEL,
        { x: x!, scale: scale!, offset: offset! },
        { groups: 4, epsilon: 1e-5, activation },
      ) as tf.Tensor[];
      stats!.dispose();
      return y!;
    },
  };
}

const CASES: Case[] = [
  {
    name: 'fused conv2d 3x3 + bias (the UNet conv), [2, 8, 8, 8] -> 16',
    inputs: [{ shape: [2, 8, 8, 8] }, { shape: [3, 3, 8, 16], scale: 0.2 }, { shape: [16] }],
    f: (x, w, b) => tf.fused.conv2d({ x: x as tf.Tensor4D, filter: w as tf.Tensor4D, strides: 1, pad: pad1, bias: b }),
  },
  {
    name: 'conv2d 3x3 stride 2 (downsample), [2, 8, 8, 8] -> 8',
    inputs: [{ shape: [2, 8, 8, 8] }, { shape: [3, 3, 8, 8], scale: 0.2 }],
    f: (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 2, pad1),
  },
  {
    name: 'conv2d 1x1 (skip projection), [2, 8, 8, 16] -> 8',
    inputs: [{ shape: [2, 8, 8, 16] }, { shape: [1, 1, 16, 8], scale: 0.3 }],
    f: (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'valid'),
  },
  groupNormCase('linear'),
  groupNormCase('silu'),
  {
    name: 'nearest upsampling kernel x2, [2, 4, 4, 8]',
    inputs: [{ shape: [2, 4, 4, 8] }],
    f: (x) => tf.engine().runKernel(UPSAMPLE_KERNEL, { x: x! }, { factor: 2 }) as tf.Tensor,
  },
  { name: 'silu', inputs: [{ shape: [4, 64] }], f: (x) => silu(x!) },
  {
    name: 'dense: matMul + bias, [32, 16] x [16, 24]',
    inputs: [{ shape: [32, 16] }, { shape: [16, 24], scale: 0.25 }, { shape: [24] }],
    f: (x, w, b) => tf.add(tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D), b!),
  },
  {
    name: 'attention: softmax(q kᵀ / sqrt(d) + mask) v, batched over [N·heads]',
    inputs: [{ shape: [4, 16, 8] }, { shape: [4, 16, 8] }, { shape: [4, 16, 8] }],
    f: (q, k, v) => {
      // A neighbour mask like the AMN's: a token may not attend to itself or the next one.
      const mask = new Float32Array(16 * 16);
      for (let i = 0; i < 16; i++) for (let j = 0; j < 16; j++) mask[i * 16 + j] = Math.abs(i - j) <= 1 ? -1e9 : 0;
      const logits = tf.add(tf.mul(tf.matMul(q as tf.Tensor3D, k as tf.Tensor3D, false, true), 1 / Math.sqrt(8)), tf.tensor2d(mask, [16, 16]));
      return tf.matMul(tf.softmax(logits), v as tf.Tensor3D);
    },
  },
  {
    name: 'matMul transposeA (a gradient form), [4, 12, 8]ᵀ x [4, 12, 6]',
    inputs: [{ shape: [4, 12, 8] }, { shape: [4, 12, 6] }],
    f: (a, b) => tf.matMul(a as tf.Tensor3D, b as tf.Tensor3D, true, false),
  },
  {
    name: 'concat (skip connection) + slice (qkv split) + transpose (heads)',
    inputs: [{ shape: [2, 4, 4, 6] }, { shape: [2, 4, 4, 10] }],
    f: (a, b) => {
      const cat = tf.concat([a!, b!], 3);
      const part = tf.slice(cat, [0, 0, 0, 4], [2, 4, 4, 8]);
      return tf.transpose(part.reshape([2, 16, 2, 4]), [0, 2, 1, 3]);
    },
  },
  {
    name: 'layer norm via moments (AMN transformer), [2, 16, 8]',
    inputs: [{ shape: [2, 16, 8] }],
    f: (x) => {
      const { mean, variance } = tf.moments(x!, -1, true);
      return tf.mul(tf.sub(x!, mean), tf.rsqrt(tf.add(variance, 1e-5)));
    },
  },
  {
    name: 'timestep embedding (cos, sin of t·f) + dense + silu',
    inputs: [{ shape: [4, 1], scale: 100 }, { shape: [1, 8], scale: 0.01 }, { shape: [16, 16], scale: 0.25 }],
    f: (t, f, w) => {
      const args = tf.mul(t!, f!);
      return silu(tf.matMul(tf.concat([tf.cos(args), tf.sin(args)], 1) as tf.Tensor2D, w as tf.Tensor2D));
    },
    gradOf: [2],
  },
  {
    name: 'max pool 2x2 + relu (hint encoder)',
    inputs: [{ shape: [2, 8, 8, 4] }],
    f: (x) => tf.relu(tf.maxPool(x as tf.Tensor4D, 2, 2, 'valid')),
  },
  {
    name: 'MSE loss (squared difference, mean)',
    inputs: [{ shape: [2, 8, 8, 3] }, { shape: [2, 8, 8, 3] }],
    f: (a, b) => tf.mean(tf.squaredDifference(a!, b!)),
  },
];

interface Result {
  forward: Float32Array;
  grads: Float32Array[];
}

/** Run every case on the active backend; values are read asynchronously. */
async function runCases(): Promise<Map<string, Result>> {
  registerOfmKernels(tf.getBackend());
  const out = new Map<string, Result>();
  for (const [i, c] of CASES.entries()) {
    const xs = c.inputs.map((spec, j) => tf.tensor(normals(spec.shape.reduce((p, d) => p * d, 1), 1000 * i + j, spec.scale ?? 1), spec.shape));
    const which = c.gradOf ?? xs.map((_, j) => j);
    const y = tf.tidy(() => c.f(...xs));
    // A fixed random cotangent, so the gradient check covers every output element.
    const dy = tf.tensor(normals(y.size, 7919 + i), y.shape);
    const grads = tf.grads((...sel: tf.Tensor[]) => {
      const all = xs.map((x, j) => (which.includes(j) ? sel[which.indexOf(j)]! : x));
      return tf.sum(tf.mul(c.f(...all), dy));
    })(which.map((j) => xs[j]!));
    out.set(c.name, {
      forward: (await y.data()) as Float32Array,
      grads: (await Promise.all(grads.map((g) => g.data()))) as Float32Array[],
    });
    tf.dispose([...xs, y, dy, ...grads]);
  }
  return out;
}

function relativeError(a: Float32Array, ref: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < ref.length; i++) {
    if (!Number.isFinite(a[i]!)) return Number.POSITIVE_INFINITY;
    diff = Math.max(diff, Math.abs(a[i]! - ref[i]!));
    scale = Math.max(scale, Math.abs(ref[i]!));
  }
  return diff / Math.max(scale, 1e-12);
}

const results = new Map<string, Map<string, Result>>();
const reports = new Map<string, BackendReport>();
const failures = new Map<string, string>();

beforeAll(async () => {
  await initBackend({ backend: 'cpu', strict: true });
  results.set('cpu', await runCases());
  for (const name of BACKENDS) {
    try {
      const report = await initBackend({ backend: name, strict: true, syncReads: false });
      reports.set(name, report);
      results.set(name, await runCases());
    } catch (err) {
      failures.set(name, err instanceof Error ? err.message : String(err));
    }
  }
}, 240_000);

afterAll(async () => {
  await initBackend({ backend: 'wasm' });
});

describe.each(BACKENDS)('%s against cpu', (backend) => {
  it('starts (webgpu: on an adapter; CI has Mesa llvmpipe)', () => {
    if (failures.has(backend)) {
      throw new Error(
        `The ${backend} backend could not start, so its conformance was not checked: ${failures.get(backend)}\n` +
          (backend === 'webgpu'
            ? `WebGPU in Node.js needs \`npm install ${WEBGPU_NODE_PACKAGES.join(' ')}\` and, without a GPU, Mesa: \`${MESA_INSTALL}\`.`
            : ''),
      );
    }
    expect(reports.get(backend)?.backend).toBe(backend);
    if (backend === 'webgpu' && verbose) console.log(`webgpu adapter: ${JSON.stringify(reports.get(backend)?.adapter)}`);
  });

  it.each(CASES.map((c) => c.name))('%s: forward and gradient within tolerance', (name) => {
    const got = results.get(backend)?.get(name);
    const ref = results.get('cpu')!.get(name)!;
    expect(got, `${backend} did not run (see the first test of this group)`).toBeDefined();
    const forward = relativeError(got!.forward, ref.forward);
    const grads = got!.grads.map((g, i) => relativeError(g, ref.grads[i]!));
    if (verbose) console.log(`${backend} | ${name} | forward ${forward.toExponential(1)} | grads ${grads.map((e) => e.toExponential(1)).join(' ')}`);
    expect(forward, 'forward').toBeLessThanOrEqual(FORWARD_TOL);
    for (const [i, e] of grads.entries()) expect(e, `gradient of input ${i}`).toBeLessThanOrEqual(GRAD_TOL);
  });
});
