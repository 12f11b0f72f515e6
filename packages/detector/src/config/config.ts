/**
 * The detector's configuration: one plain JSON object, stored in every checkpoint, so a model can
 * be rebuilt exactly in another process. Every field has a default measured to work at CPU scale
 * (see the package README); `resolveDetectorConfig` fills and validates a partial config.
 */
import type { AmnConfig } from '@ofm/amn';
import type { FactorizerKind } from '@ofm/continual';
import type { ScheduleKind, UNetConfig } from '@ofm/diffusion';
import type { SegmenterConfig } from '../model/segmenter';
import { parseDetectorConfig } from './config-schema';
import { ConfigError } from '@ofm/tensor';

/**
 * Everything that defines a detector: image size, UNet and AMN shapes, noise schedule, training,
 * reconstruction, anomaly-map, continual-learning and validation settings, and the seed.
 */
export interface DetectorConfig {
  /** Images are resized to this square size (pixels). */
  imageSize: number;
  /** The UNet, in the shared spec's field names (`image_size` is set from `imageSize`). */
  unet: Omit<UNetConfig, 'image_size' | 'control_channels'>;
  /** The condition branch (AMN); `enabled: false` trains and detects without a condition. */
  amn: Partial<AmnConfig> & { enabled: boolean };
  schedule: { kind: ScheduleKind; timesteps: number };
  training: {
    /** Optimiser steps per task. */
    steps: number;
    batchSize: number;
    /** Largest slice of a batch per forward/backward pass (memory; same result). */
    microBatch?: number;
    /**
     * Train on random square crops of this side (pixels) instead of whole images; detection still
     * reconstructs the whole `imageSize` image (the UNet and AMN are convolutional). A training step
     * then costs what a `cropSize` image costs, whatever `imageSize` is: how the `texture` preset
     * sees 64 px detail at the price of 32 px training. Must divide by the UNet's downsampling.
     */
    cropSize?: number;
    lr: number;
    /** Learning rate on later tasks (default: `lr`). */
    laterLr?: number;
    weightDecay: number;
    clipGradNorm: number;
    /**
     * Training timesteps are drawn uniformly from [0, maxTimestep): reconstruction starts at
     * t <= `reconstruction.tStartCandidates`' maximum, so training far above it wastes capacity.
     */
    maxTimestep: number;
    /** Weight of the AMN feature-reconstruction loss. */
    amnWeight: number;
    /** Probability that a training image gets a synthetic anomaly for the AMN input. */
    anomalyProbability: number;
  };
  reconstruction: {
    /**
     * Start timesteps of the reconstruction. With `fuse` (the default) every one is used and the
     * anomaly map is the mean of their maps, each standardised by the class's normal validation
     * pixels at that timestep; without it, the one that scores best on each class's validation
     * split (held-out normals and synthetic anomalies) is kept.
     */
    tStartCandidates: number[];
    /**
     * Fuse every candidate start timestep instead of choosing one (default true). A low start
     * keeps fine detail, a high one repairs larger defects; on real textures no single start suits
     * every class, and a validation split of a few images rarely finds the right one. Detection
     * costs one reconstruction per candidate.
     */
    fuse?: boolean;
    /** DDIM steps per reconstruction. */
    steps: number;
    eta: number;
    /**
     * Reconstructions per image, each with its own noise; the anomaly map is their mean (default 1).
     * Costs that many times the detection time; lowers the map's noise on fine textures.
     */
    samples?: number;
  };
  map: {
    /** Built-in feature space of the anomaly map ('filterbank' or 'pixel'). */
    extractor: 'filterbank' | 'pixel';
    /** Gaussian scales of the filter bank (pixels). */
    sigmas: number[];
    aggregate: 'mean' | 'sum' | 'product';
    /** Final smoothing (pixels). */
    blurSigma: number;
    /**
     * Image score from the map: its 'max', the mean of its top `topFraction` pixels, or
     * 'max-minus-mean' (the peak above the map's own mean; steadiest across tasks).
     */
    score: 'max' | 'topk-mean' | 'max-minus-mean';
    topFraction: number;
  };
  continual: {
    /**
     * How earlier classes are kept. `'per-task'`: every task trains all parameters (starting from
     * the previous task's) and keeps its own copy of them; detection routes each image to a learned
     * class and reconstructs it with that class's task weights, so a later task never changes an
     * earlier class's reconstruction, map, start timestep or calibration (exact, by construction).
     * `'shared'`: one set of weights serves every task, and `projection` keeps later tasks' updates
     * out of the earlier tasks' input spaces (One-for-More's gradient projection; approximate: see
     * the package README for what it forgets on real photographs).
     */
    weights: 'per-task' | 'shared';
    /**
     * With `weights: 'shared'`: gradient projection from the second task on ('update' projects the
     * optimiser's step, 'none' fine-tunes without protection). Ignored with `'per-task'`.
     */
    projection: 'update' | 'gradient' | 'none';
    /** GPM basis-growth energy threshold. */
    threshold: number;
    /** iSVD compression energy. */
    compression: number;
    /**
     * How each layer's representation is factored while a task is collected: `'isvd'` (a running
     * low-rank factor, bounded memory) or `'naive'` (every collected row stacked, one SVD at the
     * end: the original GPM, for comparison).
     */
    factorizer: FactorizerKind;
    /** Largest share of a layer's input space the bases may fill. */
    maxBasisFraction: number;
    /** Rows sampled from each tap matrix per call. */
    maxRowsPerCall: number;
    /** Training images per class whose inference path feeds the bases. */
    collectImages: number;
  };
  /**
   * The per-task segmenter (`model/segmenter.ts`): a small encoder-decoder trained on the task's
   * normal images with synthetic anomalies, whose map is mixed with the reconstruction map.
   */
  segmenter: SegmenterConfig;
  validation: {
    /** Share of each class's normal training images held out for selection and calibration. */
    fraction: number;
    /** At least this many held-out images per class (when the class has enough). */
    minImages: number;
  };
  /** Batch size of reconstruction at detection time. */
  inferenceBatch: number;
  seed: number;
}

/**
 * CPU-scale defaults: 32 px images, a 1.2 M-parameter UNet and a small AMN, sized so that the
 * quick start (three tasks) trains, selects, consolidates and evaluates in minutes on the wasm
 * backend of a 2-core machine. With tfjs-node or a GPU, raise `imageSize` (64 or more) and the widths.
 */
export const DEFAULT_DETECTOR_CONFIG: Readonly<DetectorConfig> = Object.freeze({
  imageSize: 32,
  unet: {
    in_channels: 3,
    out_channels: 3,
    model_channels: 32,
    channel_mult: [1, 2, 2],
    num_res_blocks: 1,
    attention_resolutions: [8],
    num_heads: 4,
    groupnorm_groups: 8,
    time_embed_dim: 128,
  },
  amn: { enabled: true, hintChannels: [16, 32], dim: 32, layers: 2, heads: 4, ffn: 64, dropout: 0, maskSize: 5 },
  schedule: { kind: 'linear', timesteps: 1000 },
  training: {
    steps: 150,
    batchSize: 8,
    lr: 1e-3,
    weightDecay: 0,
    clipGradNorm: 1,
    maxTimestep: 200,
    amnWeight: 1,
    anomalyProbability: 0.5,
  },
  reconstruction: { tStartCandidates: [10, 100, 300], fuse: true, steps: 5, eta: 0 },
  map: { extractor: 'pixel', sigmas: [1, 2, 4], aggregate: 'mean', blurSigma: 2, score: 'max-minus-mean', topFraction: 0.01 },
  continual: {
    weights: 'per-task',
    projection: 'update',
    threshold: 0.99,
    compression: 0.999,
    factorizer: 'isvd',
    maxBasisFraction: 0.9,
    maxRowsPerCall: 128,
    collectImages: 8,
  },
  segmenter: { enabled: true, channels: [16, 32, 64, 64], steps: 600, batchSize: 8, lr: 1e-3, augment: true, weight: 0.5 },
  validation: { fraction: 0.15, minImages: 6 },
  inferenceBatch: 16,
  seed: 0,
} satisfies DetectorConfig);

/**
 * A deliberately tiny detector for tests and examples: 24 px images, a two-level UNet 8 channels
 * wide, a one-layer AMN, 6 training steps per task, two start-timestep candidates, 2 DDIM steps. A
 * task trains, selects and consolidates in seconds on the wasm backend; it is there to exercise
 * the code paths, not to detect well. Spread it and override what a test needs (images must be
 * 24 px, or change `imageSize`). Not a preset of `ofm train`: a config file can hold it.
 */
export const TINY_DETECTOR_CONFIG: Readonly<DetectorConfigInput> = deepFreeze({
  imageSize: 24,
  unet: { model_channels: 8, channel_mult: [1, 2], attention_resolutions: [12], num_heads: 2, groupnorm_groups: 4, time_embed_dim: 16 },
  amn: { hintChannels: [8, 8], dim: 8, layers: 1, heads: 2, ffn: 16, maskSize: 3 },
  training: { steps: 6, batchSize: 4, lr: 2e-3, maxTimestep: 200 },
  reconstruction: { tStartCandidates: [40, 80], steps: 2 },
  continual: { collectImages: 4, maxRowsPerCall: 32 },
  segmenter: { channels: [8, 8], steps: 4, batchSize: 4 },
  validation: { fraction: 0.25, minImages: 2 },
} satisfies DetectorConfigInput);

function deepFreeze<T extends object>(value: T): T {
  for (const v of Object.values(value)) if (typeof v === 'object' && v !== null) deepFreeze(v);
  return Object.freeze(value);
}

/**
 * Merge partial configs left to right: a later input's group fields replace an earlier one's,
 * field by field (one level deep, as {@link resolveDetectorConfig} fills groups); other values are
 * replaced whole.
 */
export function mergeConfigInputs(...inputs: DetectorConfigInput[]): DetectorConfigInput {
  const out: Record<string, unknown> = {};
  const isGroup = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
  for (const input of inputs) {
    for (const [key, value] of Object.entries(input)) {
      const prev = out[key];
      out[key] = isGroup(prev) && isGroup(value) ? { ...(prev as object), ...(value as object) } : value;
    }
  }
  return out as DetectorConfigInput;
}

/** A named starting point for the config: what it is for, what it costs, and its fields. */
export interface DetectorPreset {
  description: string;
  config: DetectorConfigInput;
}

/**
 * The presets (`ofm train --preset NAME`; a `--config` file is merged over the preset). `quick` is
 * the defaults. `texture` sees textures at 64 px while training on 32 px crops, so a training step
 * costs what a default one does; detection reconstructs whole 64 px images (about 4 times the
 * default's evaluation time). Measured on real photographs in docs/benchmarks.md.
 */
export const DETECTOR_PRESETS: Readonly<Record<'quick' | 'texture' | 'gpu-128' | 'gpu-256', DetectorPreset>> = Object.freeze({
  quick: { description: 'the defaults: 32 px, 150 steps per task (the quick start)', config: {} },
  texture: {
    description: '64 px images, trained on 32 px crops (same cost per step), attention at 16x16: fine textures and small defects',
    config: { imageSize: 64, unet: { ...DEFAULT_DETECTOR_CONFIG.unet, attention_resolutions: [16] }, training: { cropSize: 32 } },
  },
  'gpu-128': {
    description: 'for a GPU (--backend webgpu or tensorflow-gpu): 128 px, a 4-level UNet 64-256 channels wide, 1000 steps per task',
    config: {
      imageSize: 128,
      unet: {
        ...DEFAULT_DETECTOR_CONFIG.unet,
        model_channels: 64,
        channel_mult: [1, 2, 4, 4],
        num_res_blocks: 2,
        attention_resolutions: [16],
        groupnorm_groups: 32,
        time_embed_dim: 256,
      },
      // A 16 x 16 token grid, as at the defaults' scale: three downsamplings in the hint encoder.
      amn: { ...DEFAULT_DETECTOR_CONFIG.amn, hintChannels: [16, 32, 64, 64], dim: 64, ffn: 128 },
      training: { steps: 1000 },
    },
  },
  'gpu-256': {
    description: 'for a GPU: 256 px, a 5-level UNet 64-256 channels wide, 1000 steps per task',
    config: {
      imageSize: 256,
      unet: {
        ...DEFAULT_DETECTOR_CONFIG.unet,
        model_channels: 64,
        channel_mult: [1, 1, 2, 4, 4],
        num_res_blocks: 2,
        attention_resolutions: [16],
        groupnorm_groups: 32,
        time_embed_dim: 256,
      },
      amn: { ...DEFAULT_DETECTOR_CONFIG.amn, hintChannels: [16, 32, 64, 64, 64], dim: 64, ffn: 128 },
      training: { steps: 1000 },
    },
  },
});

/** The names of {@link DETECTOR_PRESETS}. */
export type DetectorPresetName = keyof typeof DETECTOR_PRESETS;

/** A preset's config by name; an unknown name throws, listing the presets. */
export function presetConfig(name: string): DetectorConfigInput {
  const preset = (DETECTOR_PRESETS as Record<string, DetectorPreset>)[name];
  if (!preset) throw new ConfigError(`unknown preset '${name}'; presets: ${Object.keys(DETECTOR_PRESETS).join(', ')}`);
  return structuredClone(preset.config);
}

/** A partial config: every group may be given in part. */
export type DetectorConfigInput = {
  [K in keyof DetectorConfig]?: DetectorConfig[K] extends (infer _U)[] ? DetectorConfig[K] : DetectorConfig[K] extends object ? Partial<DetectorConfig[K]> : DetectorConfig[K];
};

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Fill a partial config with the defaults (each group merged one level deep) and validate it
 * against the strict schema of `./config-schema`: one error naming `source` (a config file, say)
 * and listing every problem, unknown fields included.
 */
export function resolveDetectorConfig(input: DetectorConfigInput = {}, source = 'detector config'): DetectorConfig {
  const base = structuredClone(DEFAULT_DETECTOR_CONFIG) as unknown as Record<string, unknown>;
  if (!isPlainObject(input)) return parseDetectorConfig(input, source) as DetectorConfig;
  for (const [key, value] of Object.entries(input)) {
    if (value === undefined) continue;
    const group = base[key];
    // Anything else (a group that is not an object, an unknown field) goes to the schema as given.
    if (isPlainObject(group) && isPlainObject(value)) {
      for (const [field, v] of Object.entries(value)) if (v !== undefined) group[field] = v;
    } else base[key] = value;
  }
  // A per-task segmenter cannot serve shared weights: off there unless the input asks for it
  // (which the schema then refuses with the fix).
  const asked = isPlainObject(input.segmenter) ? input.segmenter.enabled : undefined;
  if (asked === undefined && isPlainObject(input.continual) && input.continual.weights === 'shared') {
    (base.segmenter as { enabled: boolean }).enabled = false;
  }
  return parseDetectorConfig(base, source) as DetectorConfig;
}

/** The UNet config the detector builds (control channels follow the AMN's output width). */
export function unetConfigOf(config: DetectorConfig, amnDim: number | undefined): UNetConfig {
  return {
    ...config.unet,
    image_size: config.imageSize,
    ...(amnDim !== undefined ? { control_channels: amnDim } : {}),
  };
}
