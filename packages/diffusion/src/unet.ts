/**
 * The ADM / latent-diffusion UNet (the `openaimodel.UNetModel` layout of guided-diffusion and
 * latent diffusion) as a function over a {@link ParamStore}, with an optional control input.
 *
 * Tensors: images and feature maps are NHWC float32; images are expected in [-1, 1]. The network
 * predicts the noise ε that was added to an image (epsilon prediction), same shape as its input
 * except for `out_channels`.
 *
 * Parameter names mirror the PyTorch twin's state-dict keys under a prefix (default `unet`), e.g.
 * `unet.input_blocks.1.0.in_layers.2.weight`, so a state dict maps one-to-one (conv weights are
 * stored `[kh, kw, in, out]` here and `[out, in, kh, kw]` there; linear weights `[in, out]` and
 * `[out, in]`; attention `qkv`/`proj_out` are dense layers here and 1x1 convs there, same numbers).
 * The control branch is `<prefix>.control.proj` (a 1x1 conv, zero-initialised).
 */
import {
  ConfigError,
  type Ctx,
  type ParamStore,
  type TapFn,
  conv2d,
  context,
  dense,
  groupNorm,
  scope,
  silu,
  tf,
  timestepEmbedding,
  upsampleNearest,
} from '@ofm/tensor';
import { type UNetConfig, architectureProblems, levelResolutions } from './config';
import type { Timesteps } from './schedule';

/** One layer of a UNet block, in the order it runs. */
export type UNetLayer =
  | { kind: 'conv-in'; outChannels: number }
  | { kind: 'res'; inChannels: number; outChannels: number }
  | { kind: 'attention'; channels: number }
  | { kind: 'downsample'; channels: number }
  | { kind: 'upsample'; channels: number };

/** The block structure the config describes (the same lists as the PyTorch twin builds). */
export interface UNetPlan {
  inputBlocks: UNetLayer[][];
  middleBlock: UNetLayer[];
  outputBlocks: UNetLayer[][];
  /** Channels of the skip connection each input block pushes. */
  skipChannels: number[];
}

/** Options of one forward pass. */
export interface UNetForwardOptions {
  /**
   * Control map `[N, hc, wc, control_channels]`, upsampled (nearest) by the integer factor
   * `H / hc` to the image resolution, projected by the zero-initialised 1x1 conv
   * `<prefix>.control.proj` and added to the output of the first input block.
   */
  control?: tf.Tensor4D;
  /** Receives the input of every conv/dense layer (for gradient-projection bases). */
  tap?: TapFn;
}

/** Anything that predicts the noise in `x` at timesteps `t`: the UNet, or a test oracle. */
export interface NoisePredictor {
  /** `opts.tap`, when the predictor has layers, receives their inputs (see {@link UNetForwardOptions}). */
  predictNoise(x: tf.Tensor4D, t: Timesteps, opts?: UNetForwardOptions): tf.Tensor4D;
}

export class UNet implements NoisePredictor {
  readonly config: Readonly<UNetConfig>;
  readonly params: ParamStore;
  /** Name prefix of every parameter of this UNet (no trailing dot). */
  readonly prefix: string;
  readonly plan: UNetPlan;
  private readonly attentionLevels: boolean[];

  /**
   * A UNet whose parameters live in `params` under `prefix`. Parameters are created on the first
   * forward pass (or by {@link UNet.init}); several models may share one store under different
   * prefixes.
   */
  constructor(params: ParamStore, config: UNetConfig, opts: { prefix?: string } = {}) {
    const problems = architectureProblems(config);
    if (problems.length > 0) throw new ConfigError(`UNet config: ${problems.join('; ')}`);
    this.config = Object.freeze({ ...config, channel_mult: [...config.channel_mult] });
    this.params = params;
    this.prefix = opts.prefix ?? 'unet';
    const resolutions = levelResolutions(config);
    this.attentionLevels = resolutions.map((r) => config.attention_resolutions.includes(r));
    this.plan = buildPlan(config, this.attentionLevels);
  }

  /**
   * Create every parameter (control branch included) without touching real data: one forward pass
   * on a single zero image of the smallest size the network accepts. Attention placement follows
   * `image_size`, not the input size, so the parameters are those of the full-size model.
   */
  init(): this {
    const m = 2 ** (this.config.channel_mult.length - 1);
    tf.tidy(() => {
      const x = tf.zeros([1, m, m, this.config.in_channels]) as tf.Tensor4D;
      const cc = this.config.control_channels;
      const control = cc ? (tf.zeros([1, m, m, cc]) as tf.Tensor4D) : undefined;
      this.forward(x, [0], { control });
    });
    return this;
  }

  /** Names of this UNet's parameters (those created so far), in creation order. */
  paramNames(): string[] {
    const p = `${this.prefix}.`;
    return this.params.names().filter((n) => n.startsWith(p));
  }

  /** Number of scalar parameters of this UNet (call {@link UNet.init} first). */
  paramCount(): number {
    const p = `${this.prefix}.`;
    return this.params.count((info) => info.name.startsWith(p));
  }

  /**
   * Parameter counts per top-level block, keyed as the twin's `param_breakdown`
   * (`time_embed`, `input_blocks.0`, ..., `middle_block`, `output_blocks.k`, `out`, and `control`
   * when present).
   */
  paramBreakdown(): Record<string, number> {
    const out: Record<string, number> = {};
    const p = `${this.prefix}.`;
    for (const info of this.params.infosList()) {
      if (!info.name.startsWith(p)) continue;
      const parts = info.name.slice(p.length).split('.');
      const key = parts[0] === 'input_blocks' || parts[0] === 'output_blocks' ? `${parts[0]}.${parts[1]}` : parts[0]!;
      out[key] = (out[key] ?? 0) + info.shape.reduce((a, b) => a * b, 1);
    }
    return out;
  }

  /** {@link NoisePredictor} view of {@link UNet.forward}. */
  predictNoise(x: tf.Tensor4D, t: Timesteps, opts: UNetForwardOptions = {}): tf.Tensor4D {
    return this.forward(x, t, opts);
  }

  /**
   * Predict the noise in the NHWC batch `x` (`[N, H, W, in_channels]`, H and W divisible by
   * `2^(levels-1)`) at timesteps `t` (one per sample, or one for all). Returns
   * `[N, H, W, out_channels]`.
   */
  forward(x: tf.Tensor4D, t: Timesteps | tf.Tensor1D, opts: UNetForwardOptions = {}): tf.Tensor4D {
    this.checkInput(x, t, opts.control);
    return tf.tidy(() => {
      const root = scope(context(this.params, { tap: opts.tap }), this.prefix);
      const n = x.shape[0];
      const tt = t instanceof tf.Tensor ? t : typeof t === 'number' ? new Array<number>(n).fill(t) : Array.from(t);
      const emb = this.timeEmbedding(scope(root, 'time_embed'), tt);

      const skips: tf.Tensor4D[] = [];
      let h = x;
      this.plan.inputBlocks.forEach((block, i) => {
        const bctx = scope(scope(root, 'input_blocks'), i);
        block.forEach((layer, j) => {
          h = this.applyLayer(bctx, j, layer, h, emb);
        });
        if (i === 0 && opts.control) h = tf.add(h, this.controlBranch(scope(root, 'control'), opts.control, h));
        skips.push(h);
      });
      const mctx = scope(root, 'middle_block');
      this.plan.middleBlock.forEach((layer, j) => {
        h = this.applyLayer(mctx, j, layer, h, emb);
      });
      this.plan.outputBlocks.forEach((block, i) => {
        const bctx = scope(scope(root, 'output_blocks'), i);
        h = tf.concat([h, skips.pop()!], 3);
        block.forEach((layer, j) => {
          h = this.applyLayer(bctx, j, layer, h, emb);
        });
      });
      const octx = scope(root, 'out');
      h = groupNorm(octx, '0', h, { groups: this.config.groupnorm_groups, activation: 'silu' }) as tf.Tensor4D;
      return conv2d(octx, '2', h, { filters: this.config.out_channels });
    });
  }

  private timeEmbedding(ctx: Ctx, t: number[] | tf.Tensor1D): tf.Tensor2D {
    const sinusoid = timestepEmbedding(t, this.config.model_channels);
    const hidden = silu(dense(ctx, '0', sinusoid, { units: this.config.time_embed_dim }));
    return dense(ctx, '2', hidden, { units: this.config.time_embed_dim }) as tf.Tensor2D;
  }

  /** Run layer `index` of the block whose context is `block` (its parameters are `<block>.<index>.*`). */
  private applyLayer(block: Ctx, index: number, layer: UNetLayer, h: tf.Tensor4D, emb: tf.Tensor2D): tf.Tensor4D {
    const ctx = scope(block, index);
    switch (layer.kind) {
      case 'conv-in':
        return conv2d(block, String(index), h, { filters: layer.outChannels });
      case 'res':
        return this.resBlock(ctx, h, emb, layer.outChannels);
      case 'attention':
        return this.attentionBlock(ctx, h);
      case 'downsample':
        return conv2d(ctx, 'op', h, { filters: layer.channels, kernelSize: 3, stride: 2, padding: 1 });
      case 'upsample':
        return conv2d(ctx, 'conv', upsampleNearest(h, 2), { filters: layer.channels });
    }
  }

  /** `skip(x) + out_layers(in_layers(x) + emb_layers(emb))`, ADM without scale-shift norm. */
  private resBlock(ctx: Ctx, x: tf.Tensor4D, emb: tf.Tensor2D, outChannels: number): tf.Tensor4D {
    const groups = this.config.groupnorm_groups;
    const inCtx = scope(ctx, 'in_layers');
    let h = conv2d(inCtx, '2', groupNorm(inCtx, '0', x, { groups, activation: 'silu' }) as tf.Tensor4D, { filters: outChannels });
    const e = dense(scope(ctx, 'emb_layers'), '1', silu(emb), { units: outChannels });
    h = tf.add(h, e.reshape([-1, 1, 1, outChannels]));
    const outCtx = scope(ctx, 'out_layers');
    h = conv2d(outCtx, '3', groupNorm(outCtx, '0', h, { groups, activation: 'silu' }) as tf.Tensor4D, { filters: outChannels });
    const skip = x.shape[3] === outChannels ? x : conv2d(ctx, 'skip_connection', x, { filters: outChannels, kernelSize: 1 });
    return tf.add(skip, h);
  }

  /**
   * Self-attention over the H*W positions, `x + proj_out(attention(qkv(norm(x))))`. The `qkv`
   * channels use the legacy ADM layout: head `h` owns channels `[3dh, 3dh + 3d)`, split q | k | v.
   */
  private attentionBlock(ctx: Ctx, x: tf.Tensor4D): tf.Tensor4D {
    const [n, hh, ww, c] = x.shape;
    const heads = this.config.num_heads;
    const d = c / heads;
    const tokens = hh * ww;
    const normed = groupNorm(ctx, 'norm', x, { groups: this.config.groupnorm_groups }).reshape([n, tokens, c]);
    const qkv = dense(ctx, 'qkv', normed, { units: 3 * c }).reshape([n, tokens, heads, 3 * d]);
    const [q, k, v] = tf.split(qkv, 3, 3).map((part) => tf.transpose(part, [0, 2, 1, 3]) as tf.Tensor4D) as [
      tf.Tensor4D,
      tf.Tensor4D,
      tf.Tensor4D,
    ];
    const weights = tf.softmax(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(d)));
    const attended = tf.transpose(tf.matMul(weights, v), [0, 2, 1, 3]).reshape([n, tokens, c]);
    const projected = dense(ctx, 'proj_out', attended, { units: c });
    return tf.add(x, projected.reshape([n, hh, ww, c]));
  }

  private controlBranch(ctx: Ctx, control: tf.Tensor4D, target: tf.Tensor4D): tf.Tensor4D {
    const factor = target.shape[1] / control.shape[1];
    const up = factor === 1 ? control : upsampleNearest(control, factor);
    return conv2d(ctx, 'proj', up, {
      filters: this.config.model_channels,
      kernelSize: 1,
      padding: 0,
      init: 'zeros',
    });
  }

  private checkInput(x: tf.Tensor4D, t: Timesteps | tf.Tensor1D, control: tf.Tensor4D | undefined): void {
    const where = `UNet(${this.prefix}).forward`;
    if (x.rank !== 4) throw new Error(`${where}: x must be NHWC [N, H, W, ${this.config.in_channels}], got shape [${x.shape}]`);
    const [n, h, w, c] = x.shape;
    if (c !== this.config.in_channels) {
      throw new Error(`${where}: x has ${c} channels but in_channels is ${this.config.in_channels} (images are NHWC)`);
    }
    const m = 2 ** (this.config.channel_mult.length - 1);
    if (h % m !== 0 || w % m !== 0) {
      throw new ConfigError(`${where}: image size ${h}x${w} must be divisible by ${m} (${this.config.channel_mult.length} levels)`);
    }
    const tn = typeof t === 'number' ? n : t instanceof tf.Tensor ? t.shape[0] : t.length;
    if (tn !== n) throw new Error(`${where}: ${tn} timesteps for a batch of ${n}`);
    if (!control) return;
    const cc = this.config.control_channels;
    if (cc === undefined) {
      throw new Error(`${where}: a control map was given but the config has no control_channels (set it to add the control branch)`);
    }
    if (control.rank !== 4 || control.shape[0] !== n || control.shape[3] !== cc) {
      throw new Error(`${where}: control must be [${n}, hc, wc, ${cc}] (NHWC), got [${control.shape}]`);
    }
    const fh = h / control.shape[1];
    const fw = w / control.shape[2];
    if (!Number.isInteger(fh) || fh !== fw) {
      throw new ConfigError(
        `${where}: control map ${control.shape[1]}x${control.shape[2]} must divide the image ${h}x${w} by one integer factor (e.g. 16x16 for 64x64)`,
      );
    }
  }
}

function buildPlan(config: UNetConfig, attention: boolean[]): UNetPlan {
  const mc = config.model_channels;
  const levels = config.channel_mult.length;
  const inputBlocks: UNetLayer[][] = [[{ kind: 'conv-in', outChannels: mc }]];
  const skipChannels = [mc];
  let ch = mc;
  config.channel_mult.forEach((mult, level) => {
    for (let r = 0; r < config.num_res_blocks; r++) {
      const block: UNetLayer[] = [{ kind: 'res', inChannels: ch, outChannels: mc * mult }];
      ch = mc * mult;
      if (attention[level]) block.push({ kind: 'attention', channels: ch });
      inputBlocks.push(block);
      skipChannels.push(ch);
    }
    if (level !== levels - 1) {
      inputBlocks.push([{ kind: 'downsample', channels: ch }]);
      skipChannels.push(ch);
    }
  });
  const middleBlock: UNetLayer[] = [
    { kind: 'res', inChannels: ch, outChannels: ch },
    { kind: 'attention', channels: ch },
    { kind: 'res', inChannels: ch, outChannels: ch },
  ];
  const stack = [...skipChannels];
  const outputBlocks: UNetLayer[][] = [];
  for (let level = levels - 1; level >= 0; level--) {
    const mult = config.channel_mult[level]!;
    for (let r = 0; r <= config.num_res_blocks; r++) {
      const block: UNetLayer[] = [{ kind: 'res', inChannels: ch + stack.pop()!, outChannels: mc * mult }];
      ch = mc * mult;
      if (attention[level]) block.push({ kind: 'attention', channels: ch });
      if (level > 0 && r === config.num_res_blocks) block.push({ kind: 'upsample', channels: ch });
      outputBlocks.push(block);
    }
  }
  return { inputBlocks, middleBlock, outputBlocks, skipChannels };
}
