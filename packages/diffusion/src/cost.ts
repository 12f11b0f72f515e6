/**
 * What one forward pass of a UNet costs, read from its plan: the distinct conv2d shapes (with how
 * often each occurs) and the forward GFLOP per image, counted as the PyTorch twin counts them.
 * `ofm bench perf` times the shapes and reports GFLOP/s from these counts.
 */
import { tf } from '@ofm/tensor';
import type { UNet } from './unet';

/** One conv2d shape of a UNet: NHWC input `[batch, size, size, cin]`, a `k x k` filter to `cout`. */
export interface ConvShape {
  /** Side of the (square) input feature map. */
  size: number;
  /** Input channels. */
  cin: number;
  /** Output channels. */
  cout: number;
  /** Filter side. */
  k: number;
  /** Stride (2 for a downsampling conv, else 1). */
  stride: number;
  /** How many layers of the UNet have this shape. */
  count: number;
}

/** A layer of a plan as {@link specConvShapes} reads it: its `kind` and channel fields. */
export interface PlanLayerLike {
  /** `'conv-in'`, `'res'`, `'attention'`, `'downsample'` or `'upsample'` (others are skipped). */
  kind: string;
  /** Channel fields of the layer (`inChannels`, `outChannels`, `channels`). */
  [key: string]: unknown;
}

/**
 * The distinct conv2d shapes of a UNet plan (`unet.plan`), with how often each occurs in one
 * forward pass. `config` gives the image size and channels the plan does not hold (the spec's or
 * the UNet's own config). The 1x1 attention projections are dense layers here, not convs.
 */
export function specConvShapes(
  plan: {
    inputBlocks: PlanLayerLike[][];
    middleBlock: PlanLayerLike[];
    outputBlocks: PlanLayerLike[][];
  },
  config: { image_size: number; in_channels: number; out_channels: number; model_channels: number },
): ConvShape[] {
  const shapes = new Map<string, ConvShape>();
  const add = (size: number, cin: number, cout: number, k: number, stride: number) => {
    const key = `${size}/${cin}/${cout}/${k}/${stride}`;
    const known = shapes.get(key);
    if (known) known.count++;
    else shapes.set(key, { size, cin, cout, k, stride, count: 1 });
  };
  let res = config.image_size;
  const visit = (layer: PlanLayerLike) => {
    const n = (key: string) => layer[key] as number;
    switch (layer.kind) {
      case 'conv-in':
        add(res, config.in_channels, n('outChannels'), 3, 1);
        break;
      case 'res':
        add(res, n('inChannels'), n('outChannels'), 3, 1);
        add(res, n('outChannels'), n('outChannels'), 3, 1);
        if (n('inChannels') !== n('outChannels')) add(res, n('inChannels'), n('outChannels'), 1, 1);
        break;
      case 'downsample':
        add(res, n('channels'), n('channels'), 3, 2);
        res /= 2;
        break;
      case 'upsample':
        res *= 2;
        add(res, n('channels'), n('channels'), 3, 1);
        break;
    }
  };
  for (const block of [...plan.inputBlocks, plan.middleBlock, ...plan.outputBlocks]) block.forEach(visit);
  add(config.image_size, config.model_channels, config.out_channels, 3, 1);
  return [...shapes.values()];
}

/** GFLOP (2·MACs) of one conv2d of `shape` over a batch of `batch` images ('same' padding). */
export function convGflop(shape: Omit<ConvShape, 'count'>, batch: number): number {
  const out = Math.ceil(shape.size / shape.stride);
  return (2 * batch * out * out * shape.cout * shape.cin * shape.k * shape.k) / 1e9;
}

/**
 * Forward GFLOP of one image at the UNet's `image_size`, counted as the twin counts: 2·MACs of
 * every conv and dense layer (from the layer taps of one batch-1 pass, which creates missing
 * parameters) plus the two attention matmuls.
 */
export function forwardGflopPerImage(unet: UNet): number {
  const config = unet.config;
  let flops = 0;
  tf.tidy(() => {
    const x = tf.zeros([1, config.image_size, config.image_size, config.in_channels]) as tf.Tensor4D;
    unet.forward(x, [0], {
      tap: (e) => {
        flops += 2 * e.input.shape[0] * e.input.shape[1] * e.weightShape[e.weightShape.length - 1]!;
      },
    });
  });
  let res = config.image_size;
  for (const block of [...unet.plan.inputBlocks, unet.plan.middleBlock, ...unet.plan.outputBlocks]) {
    for (const layer of block) {
      if (layer.kind === 'attention') flops += 2 * 2 * (res * res) ** 2 * layer.channels;
      if (layer.kind === 'downsample') res /= 2;
      if (layer.kind === 'upsample') res *= 2;
    }
  }
  return flops / 1e9;
}
