/**
 * The project's own kernels (fused group norm, nearest upsampling) as compositions of tfjs ops,
 * registered under the same kernel names for the backends that have no JavaScript implementation
 * of them (webgpu, webgl, tensorflow, and any backend registered later). The ops in nn.ts always
 * run the kernel; which implementation answers is decided by registration, per backend.
 *
 * A kernel function here receives the tensors the op passed to `runKernel` and returns new
 * tensors computed with tfjs ops on the same (active) backend. tfjs does not record ops run inside
 * a kernel on the gradient tape, so each forward kernel has an explicit gradient kernel, with the
 * same inputs and outputs as the JavaScript kernels of `./group_norm` and `./upsample`.
 */
import { tf } from '../tf';
import type { GroupNormAttrs } from './group_norm';

type Tensor = tf.Tensor;

function tensorInput(kernel: string, inputs: tf.NamedTensorInfoMap, name: string): Tensor {
  const t = inputs[name];
  if (!(t instanceof tf.Tensor)) {
    throw new Error(`${kernel} (tfjs-ops version): input '${name}' must be a tf.Tensor; run it through tf.engine().runKernel`);
  }
  return t;
}

/**
 * `silu(groupNorm(x))` (or the plain normalisation) from tfjs ops: returns `[y, stats]` with
 * `stats` `[N, groups, 2]` = (mean, 1/sqrt(var + eps)) per sample and group, biased variance.
 */
export function groupNormOps(x: Tensor, scale: Tensor, offset: Tensor, attrs: GroupNormAttrs): [Tensor, Tensor] {
  return tf.tidy(() => {
    const c = x.shape[x.shape.length - 1]!;
    const n = x.shape[0]!;
    const g = attrs.groups;
    const grouped = x.reshape([n, -1, g, c / g]);
    const { mean, variance } = tf.moments(grouped, [1, 3], true);
    const rstd = tf.rsqrt(tf.add(variance, attrs.epsilon));
    const normed = tf.mul(tf.sub(grouped, mean), rstd);
    const z = tf.add(tf.mul(normed.reshape(x.shape), scale), offset);
    const y = attrs.activation === 'silu' ? tf.mul(z, tf.sigmoid(z)) : z;
    const stats = tf.stack([mean.reshape([n, g]), rstd.reshape([n, g])], 2);
    return [y, stats] as [Tensor, Tensor];
  });
}

/** The gradient of {@link groupNormOps}: `[dx, dscale, doffset]` from dy and the saved statistics. */
export function groupNormGradOps(
  dy: Tensor,
  x: Tensor,
  scale: Tensor,
  offset: Tensor,
  stats: Tensor,
  attrs: GroupNormAttrs,
): [Tensor, Tensor, Tensor] {
  return tf.tidy(() => {
    const c = x.shape[x.shape.length - 1]!;
    const n = x.shape[0]!;
    const g = attrs.groups;
    const cg = c / g;
    const grouped = x.reshape([n, -1, g, cg]);
    const [mean, rstd] = tf.split(stats.reshape([n, 1, g, 2]), 2, 3) as [Tensor, Tensor];
    const xhat = tf.mul(tf.sub(grouped, mean!), rstd!); // [N, P, G, Cg]
    const scaleG = scale.reshape([1, 1, g, cg]);
    let dz = dy.reshape([n, -1, g, cg]);
    if (attrs.activation === 'silu') {
      const z = tf.add(tf.mul(xhat, scaleG), offset.reshape([1, 1, g, cg]));
      const s = tf.sigmoid(z);
      dz = tf.mul(dz, tf.mul(s, tf.add(1, tf.mul(z, tf.sub(1, s)))));
    }
    const doffset = tf.sum(dz, [0, 1]).reshape([c]);
    const dscale = tf.sum(tf.mul(dz, xhat), [0, 1]).reshape([c]);
    const dxhat = tf.mul(dz, scaleG);
    const m1 = tf.mean(dxhat, [1, 3], true);
    const m2 = tf.mean(tf.mul(dxhat, xhat), [1, 3], true);
    const dx = tf.mul(rstd!, tf.sub(tf.sub(dxhat, m1), tf.mul(xhat, m2))).reshape(x.shape);
    return [dx, dscale, doffset] as [Tensor, Tensor, Tensor];
  });
}

/** Nearest upsampling of NHWC by `factor` from two rank-4 broadcasts (tfjs's Tile). */
export function upsampleOps(x: Tensor, factor: number): Tensor {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape as [number, number, number, number];
    const wide = tf.broadcastTo(x.reshape([n * h, w, 1, c]), [n * h, w, factor, c]);
    const tall = tf.broadcastTo(wide.reshape([n * h, 1, w * factor * c]), [n * h, factor, w * factor * c]);
    return tall.reshape([n, h * factor, w * factor, c]);
  });
}

/** The gradient of {@link upsampleOps}: each `factor x factor` block of dy summed. */
export function upsampleGradOps(dy: Tensor, factor: number): Tensor {
  return tf.tidy(() => {
    const [n, hf, wf, c] = dy.shape as [number, number, number, number];
    const h = hf / factor;
    const w = wf / factor;
    // Sum over the rows of each block, then over its columns (rank-4 reductions only).
    const rows = tf.sum(dy.reshape([n * h, factor, wf * c]), 1);
    return tf.sum(rows.reshape([n * h, w, factor, c]), 2).reshape([n, h, w, c]);
  });
}

/** Names of the kernels {@link registerCompositeKernels} installs (see `./group_norm`, `./upsample`). */
export const COMPOSITE_KERNELS = ['OfmGroupNorm', 'OfmGroupNormGrad', 'OfmUpsampleNearest', 'OfmUpsampleNearestGrad'] as const;

function factorAttr(kernel: string, attrs: tf.NamedAttrMap | undefined): number {
  const f = (attrs as { factor?: number } | undefined)?.factor;
  if (f == null || !Number.isInteger(f) || f < 1) throw new Error(`${kernel}: factor must be a positive integer, got ${f}`);
  return f;
}

const kernelFuncs: Record<(typeof COMPOSITE_KERNELS)[number], tf.KernelFunc> = {
  OfmGroupNorm: ({ inputs, attrs }) => {
    const k = 'OfmGroupNorm';
    return groupNormOps(
      tensorInput(k, inputs, 'x'),
      tensorInput(k, inputs, 'scale'),
      tensorInput(k, inputs, 'offset'),
      attrs as unknown as GroupNormAttrs,
    );
  },
  OfmGroupNormGrad: ({ inputs, attrs }) => {
    const k = 'OfmGroupNormGrad';
    return groupNormGradOps(
      tensorInput(k, inputs, 'dy'),
      tensorInput(k, inputs, 'x'),
      tensorInput(k, inputs, 'scale'),
      tensorInput(k, inputs, 'offset'),
      tensorInput(k, inputs, 'stats'),
      attrs as unknown as GroupNormAttrs,
    );
  },
  OfmUpsampleNearest: ({ inputs, attrs }) =>
    upsampleOps(tensorInput('OfmUpsampleNearest', inputs, 'x'), factorAttr('OfmUpsampleNearest', attrs)),
  OfmUpsampleNearestGrad: ({ inputs, attrs }) =>
    upsampleGradOps(tensorInput('OfmUpsampleNearestGrad', inputs, 'dy'), factorAttr('OfmUpsampleNearestGrad', attrs)),
};

/**
 * Register the tfjs-ops versions of the project's kernels for `backendName`, where that backend
 * has none yet (a JavaScript kernel registered for it is left alone). Idempotent.
 * @returns the kernel names now registered from this module for the backend.
 */
export function registerCompositeKernels(backendName: string): string[] {
  const names: string[] = [];
  for (const name of COMPOSITE_KERNELS) {
    const existing = tf.getKernel(name, backendName);
    if (existing == null) tf.registerKernel({ kernelName: name, backendName, kernelFunc: kernelFuncs[name] });
    if (tf.getKernel(name, backendName)?.kernelFunc === kernelFuncs[name]) names.push(name);
  }
  return names;
}
