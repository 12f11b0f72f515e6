/**
 * The detector config as a zod schema: every field's type and range, the UNet and AMN groups, and
 * the checks between fields. It is strict: an unknown field (a typo such as `training.stpes`) is
 * refused rather than ignored. `resolveDetectorConfig` fills a partial config with the defaults
 * and validates the result here; every problem is listed in one error that names the source (the
 * config file) and the field.
 */
import { architectureProblems } from '@ofm/diffusion';
import { type ZodIssue, z } from 'zod';
import type { DetectorConfig } from './config';
import { ConfigError } from '@ofm/tensor';

const integer = (min: number) => z.number().int().min(min);
const positive = () => z.number().positive().finite();
/** A number in (0, 1], or [0, 1], (0, 1) or [0, 1) as `zero` and `one` say. */
const share = ({ zero = false, one = true } = {}) =>
  z.number().superRefine((v, ctx) => {
    if (!((zero ? v >= 0 : v > 0) && (one ? v <= 1 : v < 1))) {
      ctx.addIssue({ code: 'custom', message: `must be in ${zero ? '[' : '('}0, 1${one ? ']' : ')'}, got ${v}` });
    }
  });

/** The UNet group (the shared spec's field names; `image_size` comes from `imageSize`). */
export const unetSchema = z
  .object({
    in_channels: integer(1),
    out_channels: integer(1),
    model_channels: integer(1),
    channel_mult: z.array(integer(1)).min(1),
    num_res_blocks: integer(1),
    attention_resolutions: z.array(integer(1)),
    num_heads: integer(1),
    groupnorm_groups: integer(1),
    time_embed_dim: integer(1),
  })
  .strict();

/** The AMN group: `enabled`, and any of the AMN's own fields (its defaults fill the rest). */
export const amnSchema = z
  .object({
    enabled: z.boolean(),
    inChannels: integer(1).optional(),
    hintChannels: z.array(integer(1)).min(1).optional(),
    dim: integer(1).optional(),
    layers: integer(1).optional(),
    heads: integer(1).optional(),
    ffn: integer(1).optional(),
    dropout: share({ zero: true, one: false }).optional(),
    maskSize: integer(1).optional(),
    useMask: z.boolean().optional(),
    lossTrainsHintEncoder: z.boolean().optional(),
  })
  .strict()
  .superRefine((a, ctx) => {
    if (a.dim !== undefined && a.dim % 4 !== 0) {
      ctx.addIssue({ code: 'custom', path: ['dim'], message: `must be divisible by 4 (2-D sine positional embedding), got ${a.dim}` });
    }
    if (a.dim !== undefined && a.heads !== undefined && a.dim % a.heads !== 0) {
      ctx.addIssue({ code: 'custom', path: ['heads'], message: `must divide amn.dim ${a.dim}, got ${a.heads}` });
    }
    if (a.maskSize !== undefined && a.maskSize % 2 === 0) {
      ctx.addIssue({ code: 'custom', path: ['maskSize'], message: `must be odd (a neighbourhood centred on the token), got ${a.maskSize}` });
    }
  });

/** The whole detector config, every group complete (after the defaults are filled in). */
export const detectorConfigSchema = z
  .object({
    imageSize: integer(8),
    unet: unetSchema,
    amn: amnSchema,
    schedule: z.object({ kind: z.enum(['linear', 'scaled-linear', 'cosine']), timesteps: integer(2) }).strict(),
    training: z
      .object({
        steps: integer(1),
        batchSize: integer(1),
        microBatch: integer(1).optional(),
        cropSize: integer(1).optional(),
        lr: positive(),
        laterLr: positive().optional(),
        weightDecay: z.number().min(0).finite(),
        clipGradNorm: positive(),
        maxTimestep: integer(1),
        amnWeight: z.number().min(0).finite(),
        anomalyProbability: share({ zero: true }),
      })
      .strict(),
    reconstruction: z
      .object({
        tStartCandidates: z.array(integer(1)).min(1),
        fuse: z.boolean().optional(),
        steps: integer(1),
        eta: share({ zero: true }),
        samples: integer(1).optional(),
      })
      .strict(),
    map: z
      .object({
        extractor: z.enum(['filterbank', 'pixel']),
        sigmas: z.array(positive()).min(1),
        aggregate: z.enum(['mean', 'sum', 'product']),
        blurSigma: z.number().min(0).finite(),
        score: z.enum(['max', 'topk-mean', 'max-minus-mean']),
        topFraction: share(),
      })
      .strict(),
    continual: z
      .object({
        projection: z.enum(['update', 'gradient', 'none']),
        threshold: share(),
        compression: share(),
        factorizer: z.enum(['isvd', 'naive']),
        maxBasisFraction: share(),
        maxRowsPerCall: integer(1),
        collectImages: integer(1),
        /** One set of weights per task learned ('per-task'), or one set shared by every task. */
        weights: z.enum(['per-task', 'shared']).default('per-task'),
      })
      .strict(),
    segmenter: z
      .object({
        enabled: z.boolean(),
        channels: z.array(integer(1)).min(1),
        steps: integer(1),
        batchSize: integer(1),
        lr: positive(),
        augment: z.boolean(),
        weight: share({ zero: true }),
      })
      .strict(),
    validation: z.object({ fraction: share({ one: false }), minImages: integer(1) }).strict(),
    inferenceBatch: integer(1),
    seed: integer(0),
  })
  .strict()
  .superRefine((c, ctx) => {
    const levels = c.unet.channel_mult.length;
    if (c.imageSize % 2 ** (levels - 1) !== 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['imageSize'],
        message: `must be divisible by ${2 ** (levels - 1)} (the UNet's ${levels} levels, unet.channel_mult), got ${c.imageSize}`,
      });
    } else {
      for (const problem of architectureProblems({ ...c.unet, image_size: c.imageSize })) ctx.addIssue({ code: 'custom', path: ['unet'], message: problem });
    }
    c.reconstruction.tStartCandidates.forEach((t, i) => {
      if (t < c.reconstruction.steps || t >= c.schedule.timesteps) {
        ctx.addIssue({
          code: 'custom',
          path: ['reconstruction', 'tStartCandidates', i],
          message: `must be in [reconstruction.steps ${c.reconstruction.steps}, schedule.timesteps - 1 = ${c.schedule.timesteps - 1}], got ${t}`,
        });
      }
    });
    const crop = c.training.cropSize;
    if (crop !== undefined && (crop > c.imageSize || crop % 2 ** (levels - 1) !== 0)) {
      ctx.addIssue({
        code: 'custom',
        path: ['training', 'cropSize'],
        message: `must be at most imageSize ${c.imageSize} and divisible by ${2 ** (levels - 1)} (the UNet's downsampling), got ${crop}`,
      });
    }
    const seg = c.segmenter;
    if (seg.enabled && c.continual.weights === 'shared') {
      ctx.addIssue({
        code: 'custom',
        path: ['segmenter', 'enabled'],
        message: "a segmenter is trained per task and needs continual.weights 'per-task'; set segmenter.enabled to false for shared weights",
      });
    }
    if (seg.enabled && c.imageSize % 2 ** (seg.channels.length - 1) !== 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['segmenter', 'channels'],
        message: `${seg.channels.length} levels halve imageSize ${c.imageSize} ${seg.channels.length - 1} times, which needs it divisible by ${2 ** (seg.channels.length - 1)}; use fewer levels`,
      });
    }
    if (c.training.maxTimestep > c.schedule.timesteps) {
      ctx.addIssue({
        code: 'custom',
        path: ['training', 'maxTimestep'],
        message: `must be at most schedule.timesteps ${c.schedule.timesteps}, got ${c.training.maxTimestep}`,
      });
    }
  });

/** The config the schema returns: every field present and checked. */
export type ParsedDetectorConfig = z.output<typeof detectorConfigSchema>;

/** Compiles only while what the schema returns is a {@link DetectorConfig}. */
export type SchemaMatchesConfig = ParsedDetectorConfig extends DetectorConfig ? true : never;
const schemaMatchesConfig: SchemaMatchesConfig = true;
void schemaMatchesConfig;

/** The value at `path` in `value`, for messages. */
function at(value: unknown, path: readonly (string | number)[]): unknown {
  let v = value;
  for (const key of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<string | number, unknown>)[key];
  }
  return v;
}

function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  const text = JSON.stringify(v);
  return text === undefined ? String(v) : text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** Edit distance (a swap of two neighbours counts one), case aside: for "did you mean" on unknown fields. */
function distance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  const d = Array.from({ length: x.length + 1 }, (_, i) => [i, ...Array<number>(y.length).fill(0)]);
  for (let j = 1; j <= y.length; j++) d[0]![j] = j;
  for (let i = 1; i <= x.length; i++) {
    for (let j = 1; j <= y.length; j++) {
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && x[i - 1] === y[j - 2] && x[i - 2] === y[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[x.length]![y.length]!;
}

/** The fields the object schema at `path` knows. */
function knownFields(path: readonly (string | number)[]): string[] {
  let schema: z.ZodTypeAny = detectorConfigSchema;
  const unwrap = (s: z.ZodTypeAny): z.ZodTypeAny =>
    s instanceof z.ZodEffects ? unwrap(s.innerType()) : s instanceof z.ZodOptional || s instanceof z.ZodDefault ? unwrap(s._def.innerType) : s;
  for (const key of path) {
    const obj = unwrap(schema);
    if (!(obj instanceof z.ZodObject)) return [];
    schema = obj.shape[key as string];
    if (!schema) return [];
  }
  const obj = unwrap(schema);
  return obj instanceof z.ZodObject ? Object.keys(obj.shape) : [];
}

/** One readable line per problem: `field: what is wrong, got what`. */
function describeIssue(issue: ZodIssue, input: unknown): string[] {
  const name = (path: readonly (string | number)[]) =>
    path.reduce<string>((s, k) => (typeof k === 'number' ? `${s}[${k}]` : s ? `${s}.${k}` : k), '') || '(the config)';
  const got = `got ${show(at(input, issue.path))}`;
  switch (issue.code) {
    case 'unrecognized_keys': {
      const known = knownFields(issue.path);
      return issue.keys.map((key) => {
        const close = known.filter((k) => distance(k, key) <= Math.max(1, Math.floor(k.length / 4)));
        const hint = close.length ? `did you mean '${close[0]}'? known: ${known.join(', ')}` : `known: ${known.join(', ')}`;
        return `${name([...issue.path, key])}: unknown field (${hint})`;
      });
    }
    case 'invalid_type':
      if (issue.received === 'undefined') return [`${name(issue.path)}: missing (${issue.expected} expected)`];
      if (issue.expected === 'integer') return [`${name(issue.path)}: must be an integer, ${got}`];
      return [`${name(issue.path)}: must be ${issue.expected === 'object' ? 'an object' : issue.expected === 'array' ? 'a list' : `a ${issue.expected}`}, ${got}`];
    case 'invalid_enum_value':
      return [`${name(issue.path)}: must be one of ${issue.options.map((o) => `'${String(o)}'`).join(', ')}, ${got}`];
    case 'too_small':
      if (issue.type === 'array') return [`${name(issue.path)}: must list at least ${issue.minimum} value(s), ${got}`];
      return [`${name(issue.path)}: must be ${issue.inclusive ? '>=' : '>'} ${issue.minimum}, ${got}`];
    case 'too_big':
      return [`${name(issue.path)}: must be ${issue.inclusive ? '<=' : '<'} ${issue.maximum}, ${got}`];
    case 'not_finite':
      return [`${name(issue.path)}: must be a finite number, ${got}`];
    default:
      return [`${name(issue.path)}: ${issue.message}`];
  }
}

/**
 * Check a complete config (defaults filled in) against the schema. Returns it with the schema's
 * own defaults applied, or throws one Error naming `source` and listing every problem.
 */
export function parseDetectorConfig(config: unknown, source = 'detector config'): ParsedDetectorConfig {
  const result = detectorConfigSchema.safeParse(config);
  if (result.success) return result.data;
  const problems = result.error.issues.flatMap((issue) => describeIssue(issue, config));
  throw new ConfigError(problems.length === 1 ? `${source}: ${problems[0]}` : `${source}: ${problems.length} problems:\n  - ${problems.join('\n  - ')}`);
}
