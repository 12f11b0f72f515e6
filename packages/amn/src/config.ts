/**
 * Configuration of the anomaly-masked network (AMN): defaults, validation, and the geometry the
 * hint encoder gives the token grid (stride, receptive field, the mask size that covers it).
 */

import { ConfigError } from '@ofm/tensor';

/** What the caller may set; every field is optional and falls back to {@link DEFAULT_AMN_CONFIG}. */
export interface AmnConfig {
  /**
   * Whether the model has a condition branch at all. `false` is the ablation "no AMN": the
   * diffusion model then gets no control input. Building or running a disabled AMN throws.
   */
  enabled: boolean;
  /** Channels of the input image (3 for RGB). */
  inChannels: number;
  /**
   * Widths of the hint encoder's stages, `[c0, c1, ..., cD]`. Stage 0 runs at the image
   * resolution (two 3x3 convs); each later stage starts with a stride-2 3x3 conv, so the token grid
   * is the image downsampled by `2^D` (`D = hintChannels.length - 1`, the number of downsamplings).
   */
  hintChannels: readonly number[];
  /**
   * Width of the tokens and of the output control map (`C` of `[N, hc, wc, C]`). Must match the
   * UNet's control channels, be divisible by 4 (2-D sine embedding) and by `heads`.
   */
  dim: number;
  /** Transformer encoder layers. */
  layers: number;
  /** Attention heads per layer. */
  heads: number;
  /** Hidden width of each layer's ReLU feed-forward block. */
  ffn: number;
  /** Dropout on attention weights, after attention, inside and after the feed-forward block (training only). */
  dropout: number;
  /**
   * Side `k` (odd) of the neighbourhood a token may not attend to, itself included. See
   * {@link hintGeometry} for the size that covers the hint encoder's receptive field.
   */
  maskSize: number;
  /** `false` drops the neighbour mask (plain self-attention): the ablation of the mask itself. */
  useMask: boolean;
  /**
   * Whether the feature-reconstruction loss may train the hint encoder through the transformer's
   * input (as in the reference code). Default `false`: the loss trains the transformer only, and
   * the hint encoder learns from what the caller does with the control map (the diffusion loss).
   * Measured on the package's toy surfaces (32 px, 300 Adam steps; `scripts/collapse-study.ts`):
   * trained by this loss alone, the share of the hint features' spread that depends on the image
   * stays at 0.48 with this off, falls to 0.18 with it on, and to 0.05 with the target attached as
   * well (the reference code). With a stand-in for the diffusion loss added: 0.67, 0.30 and 0.52.
   * The loss target is detached either way.
   */
  lossTrainsHintEncoder: boolean;
}

/**
 * Defaults for 64 x 64 images: a 16 x 16 token grid (two stride-2 steps), 64-wide tokens (the
 * benchmark UNet's model channels), 4 post-norm layers of 4 heads, and a 5 x 5 neighbour mask —
 * the smallest mask whose unmasked tokens cannot see the query token's centre pixel with this
 * hint encoder (receptive field 23 px, stride 4; see {@link hintGeometry}).
 */
export const DEFAULT_AMN_CONFIG: Readonly<AmnConfig> = Object.freeze({
  enabled: true,
  inChannels: 3,
  hintChannels: Object.freeze([16, 32, 64]),
  dim: 64,
  layers: 4,
  heads: 4,
  ffn: 256,
  dropout: 0.1,
  maskSize: 5,
  useMask: true,
  lossTrainsHintEncoder: false,
});

/** Merge `options` over the defaults and validate; throws an error naming the bad field. */
export function resolveAmnConfig(options: Partial<AmnConfig> = {}): AmnConfig {
  for (const key of Object.keys(options)) {
    if (!(key in DEFAULT_AMN_CONFIG)) {
      throw new ConfigError(
        `AMN config: unknown option '${key}' (known: ${Object.keys(DEFAULT_AMN_CONFIG).join(', ')})`,
      );
    }
  }
  const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
  const config: AmnConfig = { ...DEFAULT_AMN_CONFIG, ...defined };
  config.hintChannels = Object.freeze([...config.hintChannels]);
  validate(config);
  return config;
}

function validate(c: AmnConfig): void {
  const fail = (field: keyof AmnConfig, why: string): never => {
    throw new ConfigError(`AMN config: '${field}' ${why}`);
  };
  const positiveInt = (field: keyof AmnConfig, v: number) => {
    if (!Number.isInteger(v) || v < 1) fail(field, `must be a positive integer, got ${v}`);
  };
  if (typeof c.enabled !== 'boolean') fail('enabled', `must be true or false, got ${String(c.enabled)}`);
  if (typeof c.useMask !== 'boolean') fail('useMask', `must be true or false, got ${String(c.useMask)}`);
  if (typeof c.lossTrainsHintEncoder !== 'boolean') {
    fail('lossTrainsHintEncoder', `must be true or false, got ${String(c.lossTrainsHintEncoder)}`);
  }
  positiveInt('inChannels', c.inChannels);
  if (!Array.isArray(c.hintChannels) || c.hintChannels.length < 1) {
    fail('hintChannels', 'must list at least one stage width, e.g. [16, 32, 64]');
  }
  c.hintChannels.forEach((w, i) => {
    if (!Number.isInteger(w) || w < 1) fail('hintChannels', `entry ${i} must be a positive integer, got ${w}`);
  });
  positiveInt('dim', c.dim);
  positiveInt('layers', c.layers);
  positiveInt('heads', c.heads);
  positiveInt('ffn', c.ffn);
  if (c.dim % 4 !== 0) fail('dim', `must be divisible by 4 (2-D sine positional embedding), got ${c.dim}`);
  if (c.dim % c.heads !== 0) fail('heads', `must divide dim ${c.dim}, got ${c.heads}`);
  if (!(c.dropout >= 0 && c.dropout < 1)) fail('dropout', `must be in [0, 1), got ${c.dropout}`);
  if (!Number.isInteger(c.maskSize) || c.maskSize < 1 || c.maskSize % 2 === 0) {
    fail('maskSize', `must be an odd positive integer (a neighbourhood centred on the token), got ${c.maskSize}`);
  }
}

/** How the hint encoder maps pixels to tokens. */
export interface HintGeometry {
  /** Pixels per token along each axis (`2^downsamplings`). */
  stride: number;
  /** Number of stride-2 steps. */
  downsamplings: number;
  /** Side of the (theoretical) receptive field of one token, in pixels. */
  receptiveField: number;
  /**
   * The smallest odd mask side `k` such that no token outside the query's `k x k` neighbourhood has
   * the query token's centre pixel in its receptive field: with it, a defect under a token cannot
   * reach that token through attention, only through its own residual stream.
   */
  coveringMaskSize: number;
}

/** The conv stack of the hint encoder as (kernel, stride, in, out) steps, in order. */
export interface HintConvSpec {
  kernelSize: number;
  stride: number;
  inChannels: number;
  outChannels: number;
}

/**
 * The hint encoder's convs: two 3x3 convs at full resolution, then per later stage a stride-2 3x3
 * conv and (except in the last stage) a 3x3 conv, then a 3x3 projection to `dim`; SiLU between
 * convs, none after the last, no biases (as the reference hint block).
 */
export function hintConvSpecs(config: Pick<AmnConfig, 'inChannels' | 'hintChannels' | 'dim'>): HintConvSpec[] {
  const widths = config.hintChannels;
  const specs: HintConvSpec[] = [];
  const add = (inC: number, outC: number, stride: number) =>
    specs.push({ kernelSize: 3, stride, inChannels: inC, outChannels: outC });
  add(config.inChannels, widths[0]!, 1);
  add(widths[0]!, widths[0]!, 1);
  for (let i = 1; i < widths.length; i++) {
    add(widths[i - 1]!, widths[i]!, 2);
    if (i < widths.length - 1) add(widths[i]!, widths[i]!, 1);
  }
  add(widths[widths.length - 1]!, config.dim, 1);
  return specs;
}

/** Stride, receptive field and covering mask size of the hint encoder a config describes. */
export function hintGeometry(config: Pick<AmnConfig, 'inChannels' | 'hintChannels' | 'dim'>): HintGeometry {
  let receptiveField = 1;
  let stride = 1;
  for (const spec of hintConvSpecs(config)) {
    receptiveField += (spec.kernelSize - 1) * stride;
    stride *= spec.stride;
  }
  // A token at grid distance d is centred d*stride pixels away and sees +-floor(rf/2) pixels.
  const halfField = Math.floor(receptiveField / 2);
  let radius = 0;
  while ((radius + 1) * stride <= halfField) radius += 1;
  return { stride, downsamplings: config.hintChannels.length - 1, receptiveField, coveringMaskSize: 2 * radius + 1 };
}

/** The token grid for an image of `height x width`; throws when the size does not divide. */
export function gridSize(config: AmnConfig, height: number, width: number): [number, number] {
  const { stride } = hintGeometry(config);
  if (height % stride !== 0 || width % stride !== 0) {
    throw new ConfigError(
      `AMN: image ${height}x${width} is not divisible by the hint encoder's stride ${stride} ` +
        `(${config.hintChannels.length - 1} downsamplings); resize the images or change 'hintChannels'`,
    );
  }
  return [height / stride, width / stride];
}
