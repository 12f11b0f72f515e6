/**
 * The segmenter: a small encoder-decoder that marks anomalous pixels of an image, trained per task
 * on the task's normal images with synthetic anomalies pasted in (the discriminative half of DRAEM,
 * Zavrtanik et al., ICCV 2021, trained from scratch and on the image alone). Its map is mixed with
 * the reconstruction map: the reconstruction finds what the diffusion model cannot rebuild, the
 * segmenter what it has learned does not belong to the class's images, which includes defects the
 * reconstruction keeps. Its parameters live in the detector's parameter store under
 * {@link SEGMENTER_SCOPE}, so per-task weights, checkpoints and exports carry them. Browser-safe.
 */
import { AdamW } from '@ofm/diffusion';
import { type Ctx, NumericError, type ParamStore, type Rng, conv2d, context, scope, tf } from '@ofm/tensor';
import type { SyntheticAnomaly } from '@ofm/datasets';
import { throwIfAborted, yieldToEventLoop } from './abort';

/** Name prefix of the segmenter's parameters in the detector's store. */
export const SEGMENTER_SCOPE = 'seg';

/** The `segmenter` group of the detector config. */
export interface SegmenterConfig {
  /**
   * Train a segmenter per task and mix its map into the anomaly map (default: on with per-task
   * weights; shared weights cannot keep a per-task segmenter, so it is off there).
   */
  enabled: boolean;
  /** Channels per level of the encoder (each further level halves the resolution); the image size must divide by `2 ** (levels - 1)`. */
  channels: number[];
  /** Optimiser steps per task. */
  steps: number;
  batchSize: number;
  lr: number;
  /**
   * Flip the training images left-right and top-bottom at random (default true). Turn it off for
   * classes whose orientation is part of being normal (a part mounted the wrong way round must
   * stand out).
   */
  augment: boolean;
  /** Share of the segmenter's standardised map in the anomaly map (0 to 1; the reconstruction map has the rest). */
  weight: number;
}

/** Progress of {@link trainSegmenter}. */
export interface SegmenterProgress {
  done: number;
  total: number;
  loss: number;
  elapsed: number;
}

/** Options of {@link trainSegmenter}. */
export interface TrainSegmenterOptions {
  /** A synthetic anomaly on `image`, a (possibly flipped) copy of training image `index`. */
  anomaly: (index: number, image: Float32Array, rng: Rng) => SyntheticAnomaly;
  rng: Rng;
  signal?: AbortSignal;
  onProgress?: (p: SegmenterProgress) => void;
}

/**
 * Logits `[N, H, W, 1]` of the segmenter for images `[N, H, W, 3]` in [-1, 1]: a U-shaped stack of
 * two 3x3 conv + ReLU per level, average pooling down, nearest-neighbour upsampling and skip
 * connections up, and a 1x1 head. Its parameters are created in `ctx`'s store on first use, with
 * He initialisation (normal weights, zero biases) rather than PyTorch's uniform default: with it
 * and its own anomaly mix (detector.ts) the detector scored higher on real photographs
 * (docs/benchmarks.md, "The segmenter's initialisation and anomaly mix").
 */
export function segmenterLogits(ctx: Ctx, x: tf.Tensor4D, channels: readonly number[]): tf.Tensor4D {
  const root = scope(ctx, SEGMENTER_SCOPE);
  const block = (name: string, h: tf.Tensor4D, filters: number) => {
    const s = scope(root, name);
    return tf.relu(conv2d(s, 'conv2', tf.relu(conv2d(s, 'conv1', h, { filters, init: 'he' })), { filters, init: 'he' })) as tf.Tensor4D;
  };
  const skips: tf.Tensor4D[] = [];
  let h = x;
  channels.forEach((filters, level) => {
    if (level > 0) h = tf.avgPool(h, 2, 2, 'valid');
    h = block(`down${level}`, h, filters);
    skips.push(h);
  });
  for (let level = channels.length - 2; level >= 0; level--) {
    const skip = skips[level]!;
    h = tf.image.resizeNearestNeighbor(h, [skip.shape[1], skip.shape[2]]);
    h = block(`up${level}`, tf.concat([h, skip], 3) as tf.Tensor4D, channels[level]!);
  }
  return conv2d(root, 'head', h, { filters: 1, kernelSize: 1, init: 'he' });
}

/** Anomaly probabilities `[N, H, W]` of images `[N, H, W, 3]` in [0, 1]. */
export function segmenterMaps(params: ParamStore, images01: tf.Tensor4D, channels: readonly number[]): tf.Tensor3D {
  return tf.tidy(() => {
    const x = tf.sub(tf.mul(images01, 2), 1) as tf.Tensor4D;
    return tf.sigmoid(tf.squeeze(segmenterLogits(context(params), x, channels), [3])) as tf.Tensor3D;
  });
}

/** Create the segmenter's parameters in `params` (in a fixed order, from the store's generator). */
export function initSegmenter(params: ParamStore, size: number, channels: readonly number[]): void {
  tf.tidy(() => {
    segmenterLogits(context(params), tf.zeros([1, size, size, 3]), channels);
  });
}

/** Names of the segmenter's parameters in `params`. */
export function segmenterNames(params: ParamStore): string[] {
  return params.names().filter((n) => n.startsWith(`${SEGMENTER_SCOPE}.`));
}

/**
 * Train the segmenter in `params` from its current weights on `images` (HWC RGB in [0, 1], side
 * `size`): each batch takes random images (flipped at random with `config.augment`) and gives half of them a synthetic
 * anomaly; the loss is the focal loss (gamma 2) of every pixel against the anomaly's mask.
 * Progress after every step; `signal` is checked between steps (an `AbortError`).
 */
export async function trainSegmenter(
  params: ParamStore,
  images: readonly Float32Array[],
  size: number,
  config: SegmenterConfig,
  opts: TrainSegmenterOptions,
): Promise<{ seconds: number; finalLoss: number }> {
  const names = segmenterNames(params);
  const vars = new Map(names.map((n) => [n, params.get(n)]));
  const optimizer = new AdamW({ lr: config.lr, weightDecay: 0 });
  const { rng } = opts;
  const started = Date.now();
  const plane = size * size;
  const losses: number[] = [];
  try {
    for (let step = 0; step < config.steps; step++) {
      await yieldToEventLoop();
      throwIfAborted(opts.signal);
      const xs = new Float32Array(config.batchSize * plane * 3);
      const ys = new Float32Array(config.batchSize * plane);
      for (let b = 0; b < config.batchSize; b++) {
        const index = rng.int(images.length);
        const image = config.augment ? flipped(images[index]!, size, rng.uniform() < 0.5, rng.uniform() < 0.5) : images[index]!;
        if (rng.uniform() < 0.5) {
          const a = opts.anomaly(index, image, rng);
          xs.set(a.image, b * plane * 3);
          for (let p = 0; p < plane; p++) ys[b * plane + p] = a.mask[p]!;
        } else xs.set(image, b * plane * 3);
      }
      const { value, grads } = tf.tidy(() => {
        const x = tf.sub(tf.mul(tf.tensor4d(xs, [config.batchSize, size, size, 3]), 2), 1) as tf.Tensor4D;
        const y = tf.tensor4d(ys, [config.batchSize, size, size, 1]);
        return tf.variableGrads(() => focalLoss(segmenterLogits(context(params, { training: true }), x, config.channels), y), [...vars.values()]);
      });
      const loss = (await value.data())[0]!;
      value.dispose();
      if (!Number.isFinite(loss)) {
        tf.dispose(Object.values(grads));
        throw new NumericError(`segmenter training: the loss became ${loss} at step ${step + 1}; lower segmenter.lr (now ${config.lr})`, { code: 'training-fault' });
      }
      // variableGrads keys gradients by the variables' engine names; the optimiser takes store names.
      const byName: Record<string, tf.Tensor> = {};
      for (const [name, v] of vars) byName[name] = grads[v.name]!;
      optimizer.update(vars, byName);
      tf.dispose(Object.values(grads));
      losses.push(loss);
      opts.onProgress?.({ done: step + 1, total: config.steps, loss, elapsed: (Date.now() - started) / 1000 });
    }
  } finally {
    optimizer.dispose();
  }
  const tail = losses.slice(-Math.max(1, Math.ceil(losses.length / 10)));
  return { seconds: (Date.now() - started) / 1000, finalLoss: tail.reduce((a, b) => a + b, 0) / Math.max(1, tail.length) };
}

/** Mean focal loss (gamma 2; Lin et al. 2017) of logits against 0/1 targets of the same shape. */
export function focalLoss(logits: tf.Tensor4D, targets: tf.Tensor4D): tf.Scalar {
  return tf.tidy(() => {
    const p = tf.sigmoid(logits);
    const agree = tf.add(tf.mul(targets, p), tf.mul(tf.sub(1, targets), tf.sub(1, p)));
    const ce = tf.losses.sigmoidCrossEntropy(targets, logits, undefined, 0, tf.Reduction.NONE);
    return tf.mean(tf.mul(tf.square(tf.sub(1, agree)), ce)) as tf.Scalar;
  });
}

/** An HWC RGB image of side `size`, mirrored left-right and/or top-bottom (the input itself when neither). */
function flipped(image: Float32Array, size: number, horizontal: boolean, vertical: boolean): Float32Array {
  if (!horizontal && !vertical) return image;
  const out = new Float32Array(image.length);
  for (let y = 0; y < size; y++) {
    const sy = vertical ? size - 1 - y : y;
    for (let x = 0; x < size; x++) {
      const sx = horizontal ? size - 1 - x : x;
      out.set(image.subarray((sy * size + sx) * 3, (sy * size + sx) * 3 + 3), (y * size + x) * 3);
    }
  }
  return out;
}
