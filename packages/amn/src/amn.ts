/**
 * The anomaly-masked network: a conv hint encoder turns the image into a token grid, and a
 * post-norm transformer encoder whose attention cannot see a token's own neighbourhood rebuilds
 * every token from its context. Trained to map images with synthetic defects to the hint features
 * of their clean versions, its output describes the *normal* version of the input and is the
 * diffusion model's control input.
 *
 * Parameters live in the context's store under `amn.` (`amn.hint.<i>`, `amn.encoder.<l>.…`);
 * every conv and dense layer reports its input to the context's tap, so gradient projection can
 * protect the AMN like the UNet.
 */
import { type Ctx, conv2d, dense, dropout, layerNorm, positionalEmbedding2d, sameShape, scope, silu, tf } from '@ofm/tensor';
import { maskedSelfAttention } from './attention';
import {
  type AmnConfig,
  type HintGeometry,
  gridSize as configGridSize,
  hintConvSpecs,
  hintGeometry,
  resolveAmnConfig,
} from './config';
import { clearNeighbourMaskCache, neighbourMask } from './mask';
import { stopGradient } from './stop-gradient';

/**
 * `1 / sqrt(E[silu(z)^2])` for `z ~ N(0, 1)`: the weight gain that keeps a conv's output at the
 * scale of the conv before the SiLU. With PyTorch's default init each 3x3 conv of the hint
 * encoder shrinks the signal several times (measured: hint features of RMS 2e-4 for 32 px toy
 * images after seven convs), far below the epsilon of any normalisation.
 */
const SILU_GAIN = 1.676;

/** The name scope all AMN parameters live under. */
export const AMN_SCOPE = 'amn';

/** Options of {@link Amn.transform} and {@link Amn.forward}. */
export interface AmnForwardOptions {
  /**
   * Receives each encoder layer's attention weights `[N, heads, T, T]` (softmax output, before
   * dropout). Intermediates of the pass: copy inside the callback.
   */
  onAttention?: (layer: number, weights: tf.Tensor4D) => void;
}

/** What {@link Amn.condition} returns for one training batch. */
export interface AmnCondition {
  /** The control map for the UNet, computed from the (corrupted) input: `[N, hc, wc, dim]`. */
  control: tf.Tensor4D;
  /**
   * MSE between the AMN's rebuild of the corrupted images' features and the clean images' hint
   * features, the latter a constant (no gradient).
   */
  loss: tf.Scalar;
}

/** A configured AMN. Stateless apart from its config: parameters come from the context. */
export interface Amn {
  readonly config: Readonly<AmnConfig>;
  readonly enabled: boolean;
  /** Stride, receptive field and covering mask size of the hint encoder. */
  readonly geometry: HintGeometry;
  /** The token grid `[hc, wc]` for an image size (throws if the stride does not divide it). */
  gridSize(height: number, width: number): [number, number];
  /** Create every parameter in `ctx`'s store (e.g. before loading a checkpoint into it). */
  initialize(ctx: Ctx): void;
  /** Hint-encoder features of images `[N, H, W, inChannels]`: `[N, hc, wc, dim]`. */
  hintFeatures(ctx: Ctx, x: tf.Tensor4D): tf.Tensor4D;
  /** The transformer alone: control map from hint features `[N, hc, wc, dim]`. */
  transform(ctx: Ctx, features: tf.Tensor4D, opts?: AmnForwardOptions): tf.Tensor4D;
  /** The control map for images `[N, H, W, inChannels]`: `[N, hc, wc, dim]`. */
  forward(ctx: Ctx, x: tf.Tensor4D, opts?: AmnForwardOptions): tf.Tensor4D;
  /**
   * One training batch: the control map of `corrupted` and the feature-reconstruction loss
   * against the hint features of `clean` (same shape; the clean images the corruption was applied
   * to). The target goes through {@link stopGradient}, so it is a constant to every optimiser.
   * With `lossTrainsHintEncoder` off (the default) the loss reaches the transformer only (it is
   * computed from a second transformer pass on detached hint features), while `control` carries
   * gradients into the whole AMN, hint encoder included, for the caller's (diffusion) loss.
   */
  condition(ctx: Ctx, corrupted: tf.Tensor4D, clean: tf.Tensor4D): AmnCondition;
  /** Only the loss of {@link Amn.condition}. */
  loss(ctx: Ctx, corrupted: tf.Tensor4D, clean: tf.Tensor4D): tf.Scalar;
}

/** Build an AMN from a (partial) config; see {@link DEFAULT_AMN_CONFIG} for the defaults. */
export function createAmn(options: Partial<AmnConfig> = {}): Amn {
  const config = Object.freeze(resolveAmnConfig(options));
  const geometry = Object.freeze(hintGeometry(config));
  const specs = hintConvSpecs(config);

  const requireEnabled = (what: string) => {
    if (!config.enabled) {
      throw new Error(
        `AMN.${what}: the condition branch is disabled (config.enabled = false); run the diffusion model without a control input`,
      );
    }
  };

  const checkInput = (what: string, x: tf.Tensor): void => {
    if (x.rank !== 4 || x.shape[3] !== config.inChannels) {
      throw new Error(
        `AMN.${what}: expected images [N, H, W, ${config.inChannels}] (NHWC), got [${x.shape.join(', ')}]`,
      );
    }
    configGridSize(config, x.shape[1]!, x.shape[2]!);
  };

  const hint = (ctx: Ctx, x: tf.Tensor4D): tf.Tensor4D => {
    const s = scope(scope(ctx, AMN_SCOPE), 'hint');
    let h = x;
    specs.forEach((spec, i) => {
      if (i > 0) h = silu(h);
      // Created here first (conv2d then finds it) so that the stack keeps its signal's scale.
      const layer = `${s.prefix}.${i}`;
      const fanIn = spec.kernelSize * spec.kernelSize * spec.inChannels;
      s.params.param(
        `${layer}.weight`,
        [spec.kernelSize, spec.kernelSize, spec.inChannels, spec.outChannels],
        { kind: 'normal', std: (i > 0 ? SILU_GAIN : 1) / Math.sqrt(fanIn) },
        { layer, role: 'weight', layerKind: 'conv' },
      );
      h = conv2d(s, String(i), h, { filters: spec.outChannels, kernelSize: spec.kernelSize, stride: spec.stride, bias: false });
    });
    return standardizeTokens(h);
  };

  const encode = (ctx: Ctx, features: tf.Tensor4D, mask: tf.Tensor2D | undefined, opts: AmnForwardOptions): tf.Tensor4D => {
    const [n, hc, wc, c] = features.shape;
    const pos = positionalEmbedding(hc, wc, c);
    let tokens = features.reshape([n, hc * wc, c]) as tf.Tensor3D;
    for (let l = 0; l < config.layers; l++) {
      tokens = encoderLayer(scope(scope(scope(ctx, AMN_SCOPE), 'encoder'), l), tokens, {
        heads: config.heads,
        ffn: config.ffn,
        dropout: config.dropout,
        pos,
        mask,
        onWeights: opts.onAttention ? (w) => opts.onAttention!(l, w) : undefined,
      });
    }
    return tokens.reshape([n, hc, wc, c]) as tf.Tensor4D;
  };

  const transform = (ctx: Ctx, features: tf.Tensor4D, opts: AmnForwardOptions = {}): tf.Tensor4D => {
    requireEnabled('transform');
    if (features.rank !== 4 || features.shape[3] !== config.dim) {
      throw new Error(`AMN.transform: expected hint features [N, hc, wc, ${config.dim}], got [${features.shape.join(', ')}]`);
    }
    const mask = config.useMask ? neighbourMask(features.shape[1]!, features.shape[2]!, config.maskSize) : undefined;
    return encode(ctx, features, mask, opts);
  };

  const forward = (ctx: Ctx, x: tf.Tensor4D, opts: AmnForwardOptions = {}): tf.Tensor4D => {
    requireEnabled('forward');
    checkInput('forward', x);
    return transform(ctx, hint(ctx, x), opts);
  };

  const condition = (ctx: Ctx, corrupted: tf.Tensor4D, clean: tf.Tensor4D): AmnCondition => {
    requireEnabled('condition');
    checkInput('condition', clean);
    if (!sameShape(corrupted.shape, clean.shape)) {
      throw new Error(
        `AMN.condition: corrupted [${corrupted.shape.join(', ')}] and clean [${clean.shape.join(', ')}] images differ in shape`,
      );
    }
    const features = hint(ctx, corrupted);
    const control = transform(ctx, features);
    // The target must be a constant: left attached, its gradient pulls the hint encoder towards
    // whatever the transformer can predict, and it collapses to an input-independent output.
    const target = stopGradient(hint(ctx, clean));
    // Unless configured otherwise the loss trains only the transformer: a second pass on detached
    // features (the control keeps its path into the encoder for the caller's loss).
    const rebuilt = config.lossTrainsHintEncoder ? control : transform(ctx, stopGradient(features));
    const loss = tf.losses.meanSquaredError(target, rebuilt) as tf.Scalar;
    return { control, loss };
  };

  return {
    config,
    enabled: config.enabled,
    geometry,
    gridSize: (height, width) => configGridSize(config, height, width),
    initialize(ctx) {
      requireEnabled('initialize');
      tf.tidy(() => {
        // Parameter shapes do not depend on the image size; the smallest valid image will do.
        const side = geometry.stride;
        encode({ ...ctx, tap: undefined, training: false }, hint({ ...ctx, tap: undefined }, tf.zeros([1, side, side, config.inChannels])), undefined, {});
      });
    },
    hintFeatures(ctx, x) {
      requireEnabled('hintFeatures');
      checkInput('hintFeatures', x);
      return hint(ctx, x);
    },
    transform,
    forward,
    condition,
    loss(ctx, corrupted, clean) {
      const { control, loss } = condition(ctx, corrupted, clean);
      control.dispose();
      return loss;
    },
  };
}

interface EncoderLayerOptions {
  heads: number;
  ffn: number;
  dropout: number;
  pos: tf.Tensor2D;
  mask?: tf.Tensor2D;
  onWeights?: (weights: tf.Tensor4D) => void;
}

/**
 * One post-norm encoder layer: `x = norm1(x + drop(attn(x)))`, `x = norm2(x + drop(ffn2(drop(relu(ffn1(x))))))`.
 */
function encoderLayer(ctx: Ctx, x: tf.Tensor3D, opts: EncoderLayerOptions): tf.Tensor3D {
  const c = x.shape[2];
  const attended = maskedSelfAttention(ctx, 'attn', x, {
    heads: opts.heads,
    pos: opts.pos,
    mask: opts.mask,
    dropout: opts.dropout,
    onWeights: opts.onWeights,
  });
  let h = layerNorm(ctx, 'norm1', tf.add(x, dropout(ctx, attended, opts.dropout)));
  const hidden = dropout(ctx, tf.relu(dense(ctx, 'ffn1', h, { units: opts.ffn })), opts.dropout);
  const out = dense(ctx, 'ffn2', hidden, { units: c });
  h = layerNorm(ctx, 'norm2', tf.add(h, dropout(ctx, out, opts.dropout)));
  return h as tf.Tensor3D;
}

/**
 * Per-token standardisation over channels, without learned parameters: the hint features (the
 * loss target) then live on the same scale as the post-norm transformer's output, and the
 * encoder cannot shrink the target towards zero.
 */
function standardizeTokens(h: tf.Tensor4D, eps = 1e-5): tf.Tensor4D {
  const { mean, variance } = tf.moments(h, -1, true);
  return tf.mul(tf.sub(h, mean), tf.rsqrt(tf.add(variance, eps))) as tf.Tensor4D;
}

const posCache = new Map<string, tf.Tensor2D>();

/** The 2-D sine embedding `[h*w, dim]`, built once per size and kept out of every tidy. */
function positionalEmbedding(h: number, w: number, dim: number): tf.Tensor2D {
  const key = `${h}x${w}/${dim}`;
  const hit = posCache.get(key);
  if (hit && !hit.isDisposed) return hit;
  const pos = tf.keep(positionalEmbedding2d(h, w, dim));
  posCache.set(key, pos);
  return pos;
}

/**
 * Dispose the cached neighbour masks and positional embeddings (each built once per grid and
 * shared by every AMN). They are rebuilt on the next forward pass.
 */
export function clearAmnCaches(): void {
  clearNeighbourMaskCache();
  for (const pos of posCache.values()) if (!pos.isDisposed) pos.dispose();
  posCache.clear();
}

