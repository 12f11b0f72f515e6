/**
 * Group normalisation, optionally followed by SiLU, as one kernel with a one-kernel gradient.
 *
 * Composed from tfjs ops, `silu(groupNorm(x))` runs ~9 passes over the activation forward and
 * ~20 backward (broadcast multiplies at ~20 ns/element on wasm), and the tape keeps ~6
 * activation-sized intermediates per call. This kernel makes a few passes in JavaScript
 * (statistics, affine map, and the activation given its sigmoid, which comes from XNNPACK's
 * vectorised kernel on wasm: `Math.exp` costs ~11 ns per element) and saves only its input plus
 * `[N, groups, 2]` statistics; the pre-activation is recomputed in the backward pass.
 *
 * Layout: `x` is `[N, ...spatial, C]` (channels last), `scale` and `offset` are `[C]`, and groups
 * are consecutive runs of `C / groups` channels (PyTorch's GroupNorm). Statistics are per sample
 * and group, with the biased variance, accumulated in float64.
 *
 * Kernels: {@link GROUP_NORM_KERNEL} (outputs `[y, stats]`, `stats[n, g] = (mean, 1/sqrt(var +
 * eps))`) and {@link GROUP_NORM_GRAD_KERNEL} (outputs `[dx, dscale, doffset]`), for the wasm
 * and cpu backends. Other backends get the same kernels built from tfjs ops (`./composite`).
 */
import { tf } from '../tf';
import { JS_KERNEL_BACKENDS, type KernelArgs, type Storage } from './js_storage';

type TensorInfo = tf.TensorInfo;

/** Forward kernel name. Inputs `{x, scale, offset}`, attrs {@link GroupNormAttrs}, outputs `[y, stats]`. */
export const GROUP_NORM_KERNEL = 'OfmGroupNorm';
/** Gradient kernel name. Inputs `{dy, x, scale, offset, stats}`, outputs `[dx, dscale, doffset]`. */
export const GROUP_NORM_GRAD_KERNEL = 'OfmGroupNormGrad';

/** Attributes of both kernels. */
export interface GroupNormAttrs {
  groups: number;
  epsilon: number;
  /** 'silu' applies x·sigmoid(x) to the normalised, scaled and shifted value. */
  activation: 'linear' | 'silu';
}

/** Sizes of one call: `n` samples of `spatial` positions of `c` channels. */
export interface GroupNormDims {
  n: number;
  spatial: number;
  c: number;
  groups: number;
}

function dimsOf(name: string, x: TensorInfo, scale: TensorInfo, offset: TensorInfo, attrs: GroupNormAttrs): GroupNormDims {
  const shape = x.shape;
  if (shape.length < 2) throw new Error(`${name}: x must be [N, ..., C], got [${shape.join(', ')}]`);
  const c = shape[shape.length - 1]!;
  const groups = attrs.groups;
  if (!Number.isInteger(groups) || groups < 1 || c % groups !== 0) {
    throw new Error(`${name}: ${c} channels do not split into ${groups} groups`);
  }
  for (const [what, t] of [['scale', scale], ['offset', offset]] as const) {
    if (t.shape.length !== 1 || t.shape[0] !== c) throw new Error(`${name}: ${what} must be [${c}], got [${t.shape.join(', ')}]`);
  }
  for (const t of [x, scale, offset]) {
    if (t.dtype !== 'float32') throw new Error(`${name}: float32 tensors only, got ${t.dtype}`);
  }
  const n = shape[0]!;
  const spatial = n === 0 ? 0 : shape.reduce((p, d) => p * d, 1) / (n * c);
  return { n, spatial, c, groups };
}

/** Per sample and channel, the affine map the normalisation amounts to: y = a·x + b. */
export interface GroupNormCoefficients {
  /** `[N·C]`: scale · rstd. */
  a: Float64Array;
  /** `[N·C]`: offset − mean · a. */
  b: Float64Array;
}

/**
 * Statistics pass: per sample and group the mean and 1/sqrt(var + eps) into `stats`
 * (`[N, groups, 2]`), and the per-channel coefficients of the affine map. Arrays are addressed as
 * `array[offset + i]` so that the wasm heap can be used in place.
 */
export function groupNormStatistics(
  d: GroupNormDims,
  epsilon: number,
  x: Float32Array,
  xo: number,
  stats: Float32Array,
  sto: number,
): void {
  const { n, spatial, c, groups } = d;
  const cg = c / groups;
  const count = spatial * cg;
  for (let s = 0; s < n; s++) {
    for (let g = 0; g < groups; g++) {
      // Channels of one group are a run of cg floats in each of the spatial positions.
      let s1 = 0;
      let s2 = 0;
      for (let p = 0, i = xo + s * spatial * c + g * cg; p < spatial; p++, i += c) {
        let r1 = 0;
        let r2 = 0;
        for (let ch = 0; ch < cg; ch++) {
          const v = x[i + ch]!;
          r1 += v;
          r2 += v * v;
        }
        s1 += r1;
        s2 += r2;
      }
      const mean = s1 / count;
      const variance = Math.max(s2 / count - mean * mean, 0);
      stats[sto + 2 * (s * groups + g)] = mean;
      stats[sto + 2 * (s * groups + g) + 1] = 1 / Math.sqrt(variance + epsilon);
    }
  }
}

/** The affine coefficients of every sample and channel, from the statistics. */
export function groupNormCoefficients(
  d: GroupNormDims,
  stats: Float32Array,
  sto: number,
  scale: Float32Array,
  so: number,
  offset: Float32Array,
  oo: number,
): GroupNormCoefficients {
  const { n, c, groups } = d;
  const cg = c / groups;
  const a = new Float64Array(n * c);
  const b = new Float64Array(n * c);
  for (let s = 0; s < n; s++) {
    for (let ch = 0; ch < c; ch++) {
      const g = Math.floor(ch / cg);
      const mean = stats[sto + 2 * (s * groups + g)]!;
      const rstd = stats[sto + 2 * (s * groups + g) + 1]!;
      a[s * c + ch] = scale[so + ch]! * rstd;
      b[s * c + ch] = offset[oo + ch]! - mean * a[s * c + ch]!;
    }
  }
  return { a, b };
}

/** out = a·x + b, per sample and channel (out may be x). */
export function groupNormAffine(d: GroupNormDims, k: GroupNormCoefficients, x: Float32Array, xo: number, out: Float32Array, oo: number): void {
  const { n, spatial, c } = d;
  for (let s = 0; s < n; s++) {
    const kc = s * c;
    for (let p = 0, i = s * spatial * c; p < spatial; p++, i += c) {
      for (let ch = 0; ch < c; ch++) out[oo + i + ch] = x[xo + i + ch]! * k.a[kc + ch]! + k.b[kc + ch]!;
    }
  }
}

/** z ← z · sigmoid(z), given the sigmoid of z. */
export function siluFromSigmoid(count: number, z: Float32Array, zo: number, sig: Float32Array, sgo: number): void {
  for (let i = 0; i < count; i++) z[zo + i] = z[zo + i]! * sig[sgo + i]!;
}

/**
 * The gradient of the normalisation (after the activation's gradient has been applied):
 * given `dz` (the gradient at the pre-activation, stored in `dx`), overwrite `dx` with the
 * gradient at `x` and write `dscale` and `doffset` (`[C]`, summed over samples).
 *
 * With per-channel sums S = Σ dz and T = Σ dz·x over positions: dx = a·dz + k1·x + k2, where per
 * sample and group (M = positions · channels of the group)
 * m1 = Σ scale·S / M, m2 = Σ scale·rstd·(T − mean·S) / M, k1 = −rstd²·m2, k2 = rstd²·m2·mean − rstd·m1.
 */
export function groupNormBackwardFromDz(
  d: GroupNormDims,
  k: GroupNormCoefficients,
  x: Float32Array,
  xo: number,
  scale: Float32Array,
  so: number,
  stats: Float32Array,
  sto: number,
  dx: Float32Array,
  dxo: number,
  dscale: Float32Array,
  dso: number,
  doffset: Float32Array,
  doo: number,
): void {
  const { n, spatial, c, groups } = d;
  const cg = c / groups;
  const count = spatial * cg;
  const sumDz = new Float64Array(c);
  const sumDzX = new Float64Array(c);
  const k1 = new Float64Array(c);
  const k2 = new Float64Array(c);
  const gScale = new Float64Array(c);
  const gOffset = new Float64Array(c);
  for (let s = 0; s < n; s++) {
    const base = s * spatial * c;
    sumDz.fill(0);
    sumDzX.fill(0);
    for (let p = 0, i = base; p < spatial; p++, i += c) {
      for (let ch = 0; ch < c; ch++) {
        const dz = dx[dxo + i + ch]!;
        sumDz[ch]! += dz;
        sumDzX[ch]! += dz * x[xo + i + ch]!;
      }
    }
    for (let g = 0; g < groups; g++) {
      const mean = stats[sto + 2 * (s * groups + g)]!;
      const rstd = stats[sto + 2 * (s * groups + g) + 1]!;
      let m1 = 0;
      let m2 = 0;
      for (let ch = g * cg; ch < (g + 1) * cg; ch++) {
        const centred = sumDzX[ch]! - mean * sumDz[ch]!; // Σ dz·(x − mean)
        const sc = scale[so + ch]!;
        m1 += sc * sumDz[ch]!;
        m2 += sc * rstd * centred;
        gScale[ch]! += rstd * centred;
        gOffset[ch]! += sumDz[ch];
      }
      m1 /= count;
      m2 /= count;
      for (let ch = g * cg; ch < (g + 1) * cg; ch++) {
        k1[ch] = -rstd * rstd * m2;
        k2[ch] = rstd * rstd * m2 * mean - rstd * m1;
      }
    }
    const kc = s * c;
    for (let p = 0, i = base; p < spatial; p++, i += c) {
      for (let ch = 0; ch < c; ch++) {
        dx[dxo + i + ch] = dx[dxo + i + ch]! * k.a[kc + ch]! + x[xo + i + ch]! * k1[ch]! + k2[ch]!;
      }
    }
  }
  for (let ch = 0; ch < c; ch++) {
    dscale[dso + ch] = gScale[ch]!;
    doffset[doo + ch] = gOffset[ch]!;
  }
}

/** dz ← dy · silu'(z), given z (in `dz`) and sigmoid(z): silu'(z) = s·(1 + z·(1 − s)). */
export function siluBackward(count: number, dy: Float32Array, dyo: number, dz: Float32Array, dzo: number, sig: Float32Array, sgo: number): void {
  for (let i = 0; i < count; i++) {
    const z = dz[dzo + i]!;
    const s = sig[sgo + i]!;
    dz[dzo + i] = dy[dyo + i]! * s * (1 + z * (1 - s));
  }
}

function forwardKernel(storage: (backend: unknown) => Storage) {
  return (args: KernelArgs): TensorInfo[] => {
    const { x, scale, offset } = args.inputs as Record<string, TensorInfo>;
    const attrs = args.attrs as unknown as GroupNormAttrs;
    const d = dimsOf(GROUP_NORM_KERNEL, x!, scale!, offset!, attrs);
    const st = storage(args.backend);
    const y = st.make([...x!.shape]);
    const stats = st.make([d.n, d.groups, 2]);
    groupNormStatistics(d, attrs.epsilon, ...st.read(x!), ...st.read(stats));
    const k = groupNormCoefficients(d, ...st.read(stats), ...st.read(scale!), ...st.read(offset!));
    groupNormAffine(d, k, ...st.read(x!), ...st.read(y));
    if (attrs.activation === 'silu') {
      const sig = st.sigmoid(y);
      siluFromSigmoid(d.n * d.spatial * d.c, ...st.read(y), ...st.read(sig));
      st.dispose(sig);
    }
    return [y, stats];
  };
}

function backwardKernel(storage: (backend: unknown) => Storage) {
  return (args: KernelArgs): TensorInfo[] => {
    const { dy, x, scale, offset, stats } = args.inputs as Record<string, TensorInfo>;
    const attrs = args.attrs as unknown as GroupNormAttrs;
    const d = dimsOf(GROUP_NORM_GRAD_KERNEL, x!, scale!, offset!, attrs);
    if (dy!.shape.length !== x!.shape.length || dy!.shape.some((v, i) => v !== x!.shape[i])) {
      throw new Error(`${GROUP_NORM_GRAD_KERNEL}: dy [${dy!.shape.join(', ')}] and x [${x!.shape.join(', ')}] differ`);
    }
    const count = d.n * d.spatial * d.c;
    const st = storage(args.backend);
    const dx = st.make([...x!.shape]);
    const dscale = st.make([d.c]);
    const doffset = st.make([d.c]);
    const k = groupNormCoefficients(d, ...st.read(stats!), ...st.read(scale!), ...st.read(offset!));
    if (attrs.activation === 'silu') {
      // Recompute the pre-activation z into dx, then dz = dy · silu'(z) in place.
      groupNormAffine(d, k, ...st.read(x!), ...st.read(dx));
      const sig = st.sigmoid(dx);
      siluBackward(count, ...st.read(dy!), ...st.read(dx), ...st.read(sig));
      st.dispose(sig);
    } else {
      const [dyArray, dyo] = st.read(dy!);
      const [dxArray, dxo] = st.read(dx);
      dxArray.set(dyArray.subarray(dyo, dyo + count), dxo);
    }
    groupNormBackwardFromDz(
      d,
      k,
      ...st.read(x!),
      ...st.read(scale!),
      ...st.read(stats!),
      ...st.read(dx),
      ...st.read(dscale),
      ...st.read(doffset),
    );
    return [dx, dscale, doffset];
  };
}

/** Backends the group-norm kernels are registered for. */
export const GROUP_NORM_BACKENDS = ['wasm', 'cpu'] as const;

let registered = false;

/**
 * Register the group-norm kernels for wasm and cpu, and their gradient. Idempotent; kernels
 * already registered under these names (by another copy of this module) are left alone.
 */
export function registerGroupNormKernels(): void {
  if (registered) return;
  registered = true;
  const storages = JS_KERNEL_BACKENDS;
  for (const backendName of GROUP_NORM_BACKENDS) {
    if (tf.getKernel(GROUP_NORM_KERNEL, backendName) == null) {
      tf.registerKernel({ kernelName: GROUP_NORM_KERNEL, backendName, kernelFunc: forwardKernel(storages[backendName]) as unknown as tf.KernelFunc });
    }
    if (tf.getKernel(GROUP_NORM_GRAD_KERNEL, backendName) == null) {
      tf.registerKernel({ kernelName: GROUP_NORM_GRAD_KERNEL, backendName, kernelFunc: backwardKernel(storages[backendName]) as unknown as tf.KernelFunc });
    }
  }
  if (tf.getGradient(GROUP_NORM_KERNEL) == null) {
    tf.registerGradient({
      kernelName: GROUP_NORM_KERNEL,
      inputsToSave: ['x', 'scale', 'offset'],
      outputsToSave: [false, true],
      gradFunc: (dys, saved, attrs) => {
        const dy = Array.isArray(dys) ? dys[0]! : dys;
        const [x, scale, offset, stats] = saved as tf.Tensor[];
        // One kernel computes all three gradients; run it now (not lazily per input, which
        // would dispose the other two in the tape's per-input tidy).
        const [dx, dscale, doffset] = tf.engine().runKernel(
          GROUP_NORM_GRAD_KERNEL,
          { dy, x: x!, scale: scale!, offset: offset!, stats: stats! },
          attrs as unknown as tf.NamedAttrMap,
        ) as tf.Tensor[];
        return { x: () => dx!, scale: () => dscale!, offset: () => doffset! };
      },
    });
  }
}

/** Whether {@link registerGroupNormKernels} covers `backendName`. */
export function hasGroupNormKernel(backendName: string): boolean {
  return tf.getKernel(GROUP_NORM_KERNEL, backendName) != null && tf.getGradient(GROUP_NORM_KERNEL) != null;
}
