/**
 * The UNet configuration: a plain JSON object whose field names are those of the shared benchmark
 * spec (`shared/peers/unet_spec.json`), so the same file configures this model and its PyTorch twin.
 */

import { ConfigError } from '@ofm/tensor';

/** Architecture of the ADM / latent-diffusion UNet. All sizes are in pixels or channels. */
export interface UNetConfig {
  /** Side of the (square) training images. Decides at which levels attention runs. */
  image_size: number;
  in_channels: number;
  out_channels: number;
  /** Channels of the first level; level i has `model_channels * channel_mult[i]`. */
  model_channels: number;
  /** One multiplier per resolution level; every level but the last ends in a 2x downsample. */
  channel_mult: number[];
  /** Residual blocks per level on the way down (the way up has one more per level). */
  num_res_blocks: number;
  /**
   * Spatial sizes (not downsampling factors) at which an attention block follows each residual
   * block: with `image_size` 64, `[16]` means the 16x16 level. Must be sizes some level has.
   */
  attention_resolutions: number[];
  num_heads: number;
  /** GroupNorm groups; every channel count in the network must be divisible by it. */
  groupnorm_groups: number;
  /** Width of the time-embedding MLP and of the per-block time projections. */
  time_embed_dim: number;
  /**
   * Channels of the control (condition) map added after the first input block. Absent: the model
   * has no control branch and no control parameters.
   */
  control_channels?: number;
}

/**
 * Fields of the benchmark spec that describe training or sampling rather than the architecture.
 * They may appear in a config file and are ignored by the UNet.
 */
export const NON_ARCHITECTURE_FIELDS = ['batch_size', 'ddim_steps', 'optimizer', 'lr'] as const;

const REQUIRED_FIELDS = [
  'image_size',
  'in_channels',
  'out_channels',
  'model_channels',
  'channel_mult',
  'num_res_blocks',
  'attention_resolutions',
  'num_heads',
  'groupnorm_groups',
  'time_embed_dim',
] as const;

const KNOWN_FIELDS = new Set<string>([...REQUIRED_FIELDS, 'control_channels', ...NON_ARCHITECTURE_FIELDS]);

/**
 * Validate a config (e.g. parsed from `unet_spec.json`) and return only its architecture fields.
 * Throws one message listing every problem, naming `source` (a file path, say) and the fix.
 */
export function parseUNetConfig(raw: unknown, source = 'UNet config'): UNetConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(`${source}: expected a JSON object with the fields ${REQUIRED_FIELDS.join(', ')}`);
  }
  const obj = raw as Record<string, unknown>;
  const problems: string[] = [];
  const positiveInt = (key: string): number => {
    const v = obj[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
      problems.push(`'${key}' must be a positive integer (got ${JSON.stringify(v)})`);
      return 1;
    }
    return v;
  };
  const intList = (key: string, allowEmpty: boolean): number[] => {
    const v = obj[key];
    if (!Array.isArray(v) || (!allowEmpty && v.length === 0) || !v.every((x) => Number.isInteger(x) && x >= 1)) {
      problems.push(`'${key}' must be ${allowEmpty ? 'a' : 'a non-empty'} list of positive integers (got ${JSON.stringify(v)})`);
      return [];
    }
    return v as number[];
  };
  for (const key of Object.keys(obj)) {
    if (!KNOWN_FIELDS.has(key)) problems.push(`unknown field '${key}' (known: ${[...KNOWN_FIELDS].join(', ')})`);
  }
  const config: UNetConfig = {
    image_size: positiveInt('image_size'),
    in_channels: positiveInt('in_channels'),
    out_channels: positiveInt('out_channels'),
    model_channels: positiveInt('model_channels'),
    channel_mult: intList('channel_mult', false),
    num_res_blocks: positiveInt('num_res_blocks'),
    attention_resolutions: intList('attention_resolutions', true),
    num_heads: positiveInt('num_heads'),
    groupnorm_groups: positiveInt('groupnorm_groups'),
    time_embed_dim: positiveInt('time_embed_dim'),
  };
  if (obj.control_channels !== undefined) config.control_channels = positiveInt('control_channels');
  if (problems.length === 0) problems.push(...architectureProblems(config));
  if (problems.length > 0) throw new ConfigError(`${source}: ${problems.join('; ')}`);
  return config;
}

/** Consistency checks between fields; an empty list when the config describes a buildable UNet. */
export function architectureProblems(config: UNetConfig): string[] {
  const problems: string[] = [];
  const levels = config.channel_mult.length;
  const factor = 2 ** (levels - 1);
  if (config.image_size % factor !== 0) {
    problems.push(
      `image_size ${config.image_size} must be divisible by 2^(levels-1) = ${factor} for ${levels} levels (channel_mult)`,
    );
  }
  const g = config.groupnorm_groups;
  for (const mult of config.channel_mult) {
    const ch = config.model_channels * mult;
    if (ch % g !== 0) problems.push(`level width ${ch} (model_channels x ${mult}) is not divisible by groupnorm_groups ${g}`);
  }
  if (config.model_channels % g !== 0) {
    problems.push(`model_channels ${config.model_channels} is not divisible by groupnorm_groups ${g}`);
  }
  const resolutions = levelResolutions(config);
  for (const r of config.attention_resolutions) {
    if (!resolutions.includes(r)) {
      // The usual cause: image_size changed and attention_resolutions kept the old size.
      problems.push(
        `attention resolution ${r} is not the size of any level (levels are ${resolutions.join(', ')} px): ` +
          `set attention_resolutions to level sizes, e.g. [${resolutions[resolutions.length - 1]}] (the lowest level), or [] for none`,
      );
    }
  }
  config.channel_mult.forEach((mult, i) => {
    const ch = config.model_channels * mult;
    if (config.attention_resolutions.includes(resolutions[i]!) && ch % config.num_heads !== 0) {
      problems.push(`attention at level ${i} has ${ch} channels, not divisible by num_heads ${config.num_heads}`);
    }
  });
  return problems;
}

/** Spatial size of each level for `image_size` inputs: `image_size / 2^i`. */
export function levelResolutions(config: UNetConfig): number[] {
  return config.channel_mult.map((_, i) => config.image_size / 2 ** i);
}
