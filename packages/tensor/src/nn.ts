/**
 * Neural-network primitives as functions over a {@link ParamStore}. A layer is called with a
 * context (the store, a name prefix, an optional tap, training mode) and a name; its parameters are
 * `<prefix>.<name>.weight` and `<prefix>.<name>.bias`. Layouts follow tfjs: images NHWC, conv
 * weights `[kh, kw, in, out]`, dense weights `[in, out]`.
 *
 * Taps: when a context carries a {@link TapFn}, every conv and dense layer reports its input as a
 * 2-D matrix whose rows are the vectors its weight multiplies — for a conv, the im2col patch matrix
 * laid out to match the weight reshaped to `[kh*kw*in, out]` — so `tap.input · W + b` equals the
 * layer's output. Gradient projection (GPM) and iSVD need nothing model-specific beyond this.
 */
import { ConfigError } from '@ofm/errors';
import { groupNormOps, upsampleOps } from './kernels/composite';
import { GROUP_NORM_KERNEL } from './kernels/group_norm';
import { registerOfmKernels } from './kernels/ofm_kernels';
import { UPSAMPLE_KERNEL } from './kernels/upsample';
import type { Init, ParamStore } from './params';
import type { Rng } from './rng';
import { tf } from './tf';

/** What a tap receives for one layer call. `input` is disposed after the callback returns. */
export interface TapEvent {
  /** Layer name (the parameter name without `.weight`). */
  layer: string;
  kind: 'conv' | 'dense';
  /** `[rows, inDim]`: the vectors the weight (reshaped to `[inDim, out]`) multiplies. */
  input: tf.Tensor2D;
  weightShape: number[];
}
/** A callback that receives each conv and dense layer's input matrix (see {@link TapEvent}). */
export type TapFn = (event: TapEvent) => void;

/**
 * What a layer function is called with: the parameter store, the current name prefix, an optional
 * tap, training mode and a generator for dropout. Build one with {@link context} and {@link scope}.
 */
export interface Ctx {
  readonly params: ParamStore;
  /** Dotted name prefix of the current scope ('' at the root). */
  readonly prefix: string;
  readonly tap?: TapFn;
  /** Training mode enables dropout. */
  readonly training: boolean;
  /** Randomness for dropout; required when training with dropout > 0. */
  readonly rng?: Rng;
}

/** A root context over `params`. */
export function context(params: ParamStore, opts: { tap?: TapFn; training?: boolean; rng?: Rng } = {}): Ctx {
  return { params, prefix: '', tap: opts.tap, training: opts.training ?? false, rng: opts.rng };
}

/** A child context whose layers are named under `name`. */
export function scope(ctx: Ctx, name: string | number): Ctx {
  return { ...ctx, prefix: join(ctx.prefix, String(name)) };
}

function join(prefix: string, name: string): string {
  return prefix ? `${prefix}.${name}` : name;
}

/** Padding of a conv: 'same' / 'valid' as in TensorFlow, or a symmetric pixel count as in PyTorch. */
export type ConvPadding = 'same' | 'valid' | number;

/** Options of {@link conv2d}. */
export interface Conv2dOptions {
  /** Number of output channels. */
  filters: number;
  /** Square kernel size (default 3). */
  kernelSize?: number;
  /** Step in pixels along both spatial axes (default 1). */
  stride?: number;
  /** Default: PyTorch-style symmetric `floor(kernelSize / 2)`. */
  padding?: ConvPadding;
  /** Whether the layer has a bias (default true). */
  bias?: boolean;
  /**
   * 'default': weights and bias from U(-1/sqrt(fanIn), 1/sqrt(fanIn)) (PyTorch's default);
   * 'zeros' starts the layer as a no-op (used for control projections); 'he': weights from
   * N(0, 2/fanIn) and a zero bias (He et al. 2015; for stacks of ReLU layers trained from scratch).
   */
  init?: 'default' | 'zeros' | 'he';
}

/** Per-side pixel padding `[top, bottom, left, right]` and the output size, as tfjs computes them. */
export function resolvePadding(
  height: number,
  width: number,
  kernelSize: number,
  stride: number,
  padding: ConvPadding,
): { pads: [number, number, number, number]; outHeight: number; outWidth: number } {
  if (typeof padding === 'number') {
    const p = padding;
    return {
      pads: [p, p, p, p],
      outHeight: Math.floor((height + 2 * p - kernelSize) / stride) + 1,
      outWidth: Math.floor((width + 2 * p - kernelSize) / stride) + 1,
    };
  }
  if (padding === 'valid') {
    return {
      pads: [0, 0, 0, 0],
      outHeight: Math.floor((height - kernelSize) / stride) + 1,
      outWidth: Math.floor((width - kernelSize) / stride) + 1,
    };
  }
  const outHeight = Math.ceil(height / stride);
  const outWidth = Math.ceil(width / stride);
  const padH = Math.max((outHeight - 1) * stride + kernelSize - height, 0);
  const padW = Math.max((outWidth - 1) * stride + kernelSize - width, 0);
  const top = Math.floor(padH / 2);
  const left = Math.floor(padW / 2);
  return { pads: [top, padH - top, left, padW - left], outHeight, outWidth };
}

/**
 * The im2col patch matrix of an NHWC batch: `[N*outH*outW, k*k*C]`, columns ordered (ky, kx, c) to
 * match a `[k, k, C, out]` weight reshaped to `[k*k*C, out]`.
 */
export function im2col(x: tf.Tensor4D, kernelSize: number, stride: number, padding: ConvPadding): tf.Tensor2D {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    const { pads, outHeight, outWidth } = resolvePadding(h, w, kernelSize, stride, padding);
    const [top, bottom, left, right] = pads;
    const xp =
      top + bottom + left + right > 0
        ? tf.pad(x, [
            [0, 0],
            [top, bottom],
            [left, right],
            [0, 0],
          ])
        : x;
    const slices: tf.Tensor4D[] = [];
    for (let ky = 0; ky < kernelSize; ky++) {
      for (let kx = 0; kx < kernelSize; kx++) {
        slices.push(
          tf.stridedSlice(
            xp,
            [0, ky, kx, 0],
            [n, ky + (outHeight - 1) * stride + 1, kx + (outWidth - 1) * stride + 1, c],
            [1, stride, stride, 1],
          ) as tf.Tensor4D,
        );
      }
    }
    return tf.stack(slices, 3).reshape([n * outHeight * outWidth, kernelSize * kernelSize * c]) as tf.Tensor2D;
  });
}

/** The initial values of a conv layer's weight and bias for {@link Conv2dOptions.init}. */
function convInit(kind: NonNullable<Conv2dOptions['init']>, fanIn: number): { weight: Init; bias: Init } {
  switch (kind) {
    case 'zeros':
      return { weight: { kind: 'zeros' }, bias: { kind: 'zeros' } };
    case 'he':
      return { weight: { kind: 'normal', std: Math.sqrt(2 / fanIn) }, bias: { kind: 'zeros' } };
    case 'default':
      return { weight: { kind: 'uniformFanIn', fanIn }, bias: { kind: 'uniformFanIn', fanIn } };
  }
}

/** 2-D convolution over NHWC input with a `[k, k, in, out]` weight. */
export function conv2d(ctx: Ctx, name: string, x: tf.Tensor4D, opts: Conv2dOptions): tf.Tensor4D {
  const k = opts.kernelSize ?? 3;
  const stride = opts.stride ?? 1;
  const padding = opts.padding ?? Math.floor(k / 2);
  const inC = x.shape[3];
  const layer = join(ctx.prefix, name);
  const fanIn = inC * k * k;
  const { weight: weightInit, bias: biasInit } = convInit(opts.init ?? 'default', fanIn);
  const w = ctx.params.param(`${layer}.weight`, [k, k, inC, opts.filters], weightInit, {
    layer,
    role: 'weight',
    layerKind: 'conv',
  });
  const b =
    opts.bias === false
      ? null
      : ctx.params.param(`${layer}.bias`, [opts.filters], biasInit, {
          layer,
          role: 'bias',
          layerKind: 'conv',
        });
  if (ctx.tap) emitTap(ctx.tap, { layer, kind: 'conv', weightShape: w.shape }, () => im2col(x, k, stride, padding));
  const pad = typeof padding === 'number' ? explicitPad(padding) : padding;
  // One FusedConv2D kernel (the bias added inside XNNPACK's conv) instead of Conv2D + Add; its
  // gradient is the same Conv2DBackpropInput/Filter pair plus a sum for the bias.
  return tf.fused.conv2d({ x, filter: w as tf.Tensor4D, strides: stride, pad, bias: b ?? undefined });
}

function explicitPad(p: number): [[number, number], [number, number], [number, number], [number, number]] | 'valid' {
  return p === 0
    ? 'valid'
    : [
        [0, 0],
        [p, p],
        [p, p],
        [0, 0],
      ];
}

/** Options of {@link dense}. */
export interface DenseOptions {
  /** Output width. */
  units: number;
  /** Whether the layer has a bias (default true). */
  bias?: boolean;
  /** 'zeros' initialises weight and bias to zero; the default is U(-1/sqrt(in), 1/sqrt(in)). */
  init?: 'default' | 'zeros';
}

/** Fully connected layer over the last axis: `[..., in] -> [..., units]`. */
export function dense(ctx: Ctx, name: string, x: tf.Tensor, opts: DenseOptions): tf.Tensor {
  const inDim = x.shape[x.shape.length - 1]!;
  const layer = join(ctx.prefix, name);
  const init = opts.init === 'zeros' ? ({ kind: 'zeros' } as const) : ({ kind: 'uniformFanIn', fanIn: inDim } as const);
  const w = ctx.params.param(`${layer}.weight`, [inDim, opts.units], init, { layer, role: 'weight', layerKind: 'dense' });
  const b =
    opts.bias === false
      ? null
      : ctx.params.param(`${layer}.bias`, [opts.units], init, { layer, role: 'bias', layerKind: 'dense' });
  const flat = x.reshape([-1, inDim]) as tf.Tensor2D;
  if (ctx.tap) emitTap(ctx.tap, { layer, kind: 'dense', weightShape: w.shape }, () => tf.clone(flat));
  let y: tf.Tensor = tf.matMul(flat, w as tf.Tensor2D);
  if (b) y = tf.add(y, b);
  return y.reshape([...x.shape.slice(0, -1), opts.units]);
}

function emitTap(tap: TapFn, meta: Omit<TapEvent, 'input'>, make: () => tf.Tensor2D): void {
  const input = make();
  try {
    tap({ ...meta, input });
  } finally {
    input.dispose();
  }
}

/** Options of {@link groupNorm}. */
export interface GroupNormOptions {
  groups: number;
  /** Added to the variance (default 1e-5, PyTorch's). */
  eps?: number;
  /**
   * Applied to the result (default 'linear', none). `'silu'` gives `silu(groupNorm(x))`, computed
   * in the same kernel (on wasm and cpu a JavaScript one that keeps less memory for the gradient).
   */
  activation?: 'linear' | 'silu';
}

/** Whether {@link groupNorm} uses the fused kernel on backends that have it (default true). */
let fusedGroupNorm = true;

/**
 * Choose between the group-norm kernel (the default: JavaScript on wasm and cpu, tfjs ops inside
 * one kernel elsewhere) and the composition of tfjs ops on the gradient tape. Both compute the same function; for tests and benchmarks.
 * @returns the previous setting.
 */
export function setFusedGroupNorm(enabled: boolean): boolean {
  const previous = fusedGroupNorm;
  fusedGroupNorm = enabled;
  return previous;
}

/**
 * Group normalisation over the channel (last) axis of `[N, ..., C]`, statistics per sample and
 * group over all other axes (biased variance), with a learned per-channel scale and offset
 * (PyTorch GroupNorm), optionally followed by SiLU.
 */
export function groupNorm(ctx: Ctx, name: string, x: tf.Tensor, opts: GroupNormOptions): tf.Tensor {
  const c = x.shape[x.shape.length - 1]!;
  const g = opts.groups;
  if (c % g !== 0) throw new ConfigError(`groupNorm '${join(ctx.prefix, name)}': ${c} channels do not split into ${g} groups`);
  const layer = join(ctx.prefix, name);
  const scale = ctx.params.param(`${layer}.weight`, [c], { kind: 'ones' }, { layer, role: 'scale', layerKind: 'norm' });
  const offset = ctx.params.param(`${layer}.bias`, [c], { kind: 'zeros' }, { layer, role: 'offset', layerKind: 'norm' });
  const eps = opts.eps ?? 1e-5;
  const activation = opts.activation ?? 'linear';
  const attrs = { groups: g, epsilon: eps, activation };
  if (fusedGroupNorm && x.dtype === 'float32' && x.rank >= 2) {
    // Every backend has the kernel: JavaScript on wasm and cpu, tfjs ops elsewhere (see kernels/ofm_kernels).
    registerOfmKernels(tf.getBackend());
    const [y, stats] = tf.engine().runKernel(GROUP_NORM_KERNEL, { x, scale, offset }, { ...attrs }) as tf.Tensor[];
    // The tape keeps its own reference to the statistics when it needs them.
    stats!.dispose();
    return y!;
  }
  const [y, stats] = groupNormOps(x, scale, offset, attrs);
  stats.dispose();
  return y;
}

/** Layer normalisation over the last axis with a learned scale and offset. */
export function layerNorm(ctx: Ctx, name: string, x: tf.Tensor, opts: { eps?: number } = {}): tf.Tensor {
  const c = x.shape[x.shape.length - 1]!;
  const layer = join(ctx.prefix, name);
  const scale = ctx.params.param(`${layer}.weight`, [c], { kind: 'ones' }, { layer, role: 'scale', layerKind: 'norm' });
  const offset = ctx.params.param(`${layer}.bias`, [c], { kind: 'zeros' }, { layer, role: 'offset', layerKind: 'norm' });
  const { mean, variance } = tf.moments(x, -1, true);
  const normed = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, opts.eps ?? 1e-5)));
  return tf.add(tf.mul(normed, scale), offset);
}

/** SiLU (swish): x * sigmoid(x). */
export function silu<T extends tf.Tensor>(x: T): T {
  return tf.mul(x, tf.sigmoid(x));
}

/** Inverted dropout with a seeded mask; identity outside training or at rate 0. */
export function dropout<T extends tf.Tensor>(ctx: Ctx, x: T, rate: number): T {
  if (!ctx.training || rate <= 0) return x;
  if (!ctx.rng) throw new Error('dropout in training mode needs a context with an rng');
  const keep = ctx.rng.rand(x.shape).less(1 - rate);
  return tf.mul(x, tf.div(tf.cast(keep, 'float32'), 1 - rate));
}

/** Options of {@link multiHeadAttention}. */
export interface AttentionOptions {
  /** Number of heads; must divide the channel count. */
  heads: number;
  /** Additive mask `[T, T]` (0 = attend, a large negative number = blocked), shared by all heads. */
  mask?: tf.Tensor2D;
  /** Dropout on the attention weights (training only). */
  dropout?: number;
}

/**
 * Multi-head self-attention over tokens `[N, T, C]`: a fused `qkv` projection (`C -> 3C`, split
 * into q | k | v, head h owning channels `[h*d, (h+1)*d)` of each), scaled dot-product attention
 * with an optional additive mask, and an output projection `proj`. Returns `[N, T, C]`.
 */
export function multiHeadAttention(ctx: Ctx, name: string, x: tf.Tensor3D, opts: AttentionOptions): tf.Tensor3D {
  const [n, t, c] = x.shape;
  const h = opts.heads;
  if (c % h !== 0) throw new ConfigError(`attention '${join(ctx.prefix, name)}': ${c} channels do not split into ${h} heads`);
  const d = c / h;
  const s = scope(ctx, name);
  const qkv = dense(s, 'qkv', x, { units: 3 * c });
  const heads = (part: number) =>
    tf.transpose(tf.slice(qkv, [0, 0, part * c], [n, t, c]).reshape([n, t, h, d]), [0, 2, 1, 3]) as tf.Tensor4D;
  const q = heads(0);
  const k = heads(1);
  const v = heads(2);
  let logits = tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(d));
  if (opts.mask) logits = tf.add(logits, opts.mask);
  let weights = tf.softmax(logits);
  if (opts.dropout) weights = dropout(ctx, weights, opts.dropout);
  const attended = tf.transpose(tf.matMul(weights, v), [0, 2, 1, 3]).reshape([n, t, c]);
  return dense(s, 'proj', attended, { units: c }) as tf.Tensor3D;
}

/**
 * Nearest-neighbour upsampling of NHWC by an integer factor, as one kernel: on wasm and cpu block
 * copies (its gradient sums each block); elsewhere two broadcasts inside the kernel, whose
 * gradient kernel is an exact block sum (tfjs-backend-cpu 4.22's ResizeNearestNeighborGrad is
 * wrong for 2x, so resize is not used).
 */
export function upsampleNearest(x: tf.Tensor4D, factor = 2): tf.Tensor4D {
  if (x.dtype !== 'float32') return upsampleOps(x, factor) as tf.Tensor4D;
  registerOfmKernels(tf.getBackend());
  return tf.engine().runKernel(UPSAMPLE_KERNEL, { x }, { factor }) as tf.Tensor4D;
}

/** Strided 3x3 conv that halves the spatial size (PyTorch padding 1). */
export function downsample(ctx: Ctx, name: string, x: tf.Tensor4D, opts: { filters?: number } = {}): tf.Tensor4D {
  return conv2d(ctx, name, x, { filters: opts.filters ?? x.shape[3], kernelSize: 3, stride: 2, padding: 1 });
}

/**
 * Sinusoidal embedding of (diffusion) timesteps: `[cos(t f_i), sin(t f_i)]` with
 * `f_i = exp(-ln(maxPeriod) i / half)`, cosines first, as in ADM / latent diffusion.
 */
export function timestepEmbedding(t: tf.Tensor1D | number[], dim: number, maxPeriod = 10000): tf.Tensor2D {
  return tf.tidy(() => {
    const half = Math.floor(dim / 2);
    const freqs = new Float32Array(half);
    for (let i = 0; i < half; i++) freqs[i] = Math.exp((-Math.log(maxPeriod) * i) / half);
    const tt = Array.isArray(t) ? tf.tensor1d(t, 'float32') : tf.cast(t, 'float32');
    const args = tf.mul(tt.reshape([-1, 1]), tf.tensor2d(freqs, [1, half]));
    let emb = tf.concat([tf.cos(args), tf.sin(args)], 1);
    if (dim % 2 === 1) emb = tf.pad(emb, [
      [0, 0],
      [0, 1],
    ]);
    return emb as tf.Tensor2D;
  });
}

/**
 * 2-D sinusoidal positional embedding for an `h x w` token grid, `[h*w, dim]` (row-major tokens):
 * the first half of the channels encodes the row, the second half the column.
 */
export function positionalEmbedding2d(h: number, w: number, dim: number, maxPeriod = 10000): tf.Tensor2D {
  if (dim % 4 !== 0) throw new ConfigError(`positionalEmbedding2d: dim ${dim} must be divisible by 4`);
  const quarter = dim / 4;
  const out = new Float32Array(h * w * dim);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const base = (y * w + x) * dim;
      for (let i = 0; i < quarter; i++) {
        const f = Math.exp((-Math.log(maxPeriod) * i) / quarter);
        out[base + i] = Math.sin(y * f);
        out[base + quarter + i] = Math.cos(y * f);
        out[base + 2 * quarter + i] = Math.sin(x * f);
        out[base + 3 * quarter + i] = Math.cos(x * f);
      }
    }
  }
  return tf.tensor2d(out, [h * w, dim]);
}
