/**
 * The detector config schema (issue 19, item 15): strict (unknown fields refused, with the likely
 * intended one), every field's type and range, the checks between fields, and one error that names
 * the source and lists every problem by field.
 */
import { describe, expect, it } from 'vitest';
import { gridSize, resolveAmnConfig } from '@ofm/amn';
import { DEFAULT_DETECTOR_CONFIG, DETECTOR_PRESETS, type DetectorConfigInput, presetConfig, resolveDetectorConfig } from '../src/config/config';
import { parseDetectorConfig } from '../src/config/config-schema';
import { TINY_CONFIG } from './tiny';

/** The message `resolveDetectorConfig` throws for `input`, read from `file`. */
function refusal(input: unknown, file = 'my.json'): string {
  try {
    resolveDetectorConfig(input as DetectorConfigInput, `--config '${file}'`);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error(`accepted: ${JSON.stringify(input)}`);
}

describe('resolveDetectorConfig', () => {
  it('accepts the defaults, a partial config and a complete one (a checkpoint\'s), unchanged', () => {
    const resolved = resolveDetectorConfig();
    expect(resolved).toEqual({ ...DEFAULT_DETECTOR_CONFIG, continual: { ...DEFAULT_DETECTOR_CONFIG.continual, weights: 'per-task' } });
    expect(resolveDetectorConfig(resolved)).toEqual(resolved);
    expect(resolveDetectorConfig(TINY_CONFIG).unet.model_channels).toBe(8);
    expect(resolveDetectorConfig({ training: { steps: 3 } }).training).toEqual({ ...DEFAULT_DETECTOR_CONFIG.training, steps: 3 });
  });

  it('continual.weights: per-task by default, or shared; nothing else', () => {
    const weights = (input?: unknown) => (resolveDetectorConfig(input as DetectorConfigInput).continual as { weights?: string }).weights;
    expect(weights()).toBe('per-task');
    expect(weights({ continual: { weights: 'shared' } })).toBe('shared');
    expect(refusal({ continual: { weights: 'global' } })).toBe(`--config 'my.json': continual.weights: must be one of 'per-task', 'shared', got "global"`);
  });

  it.each<[string, unknown, RegExp]>([
    ['a typo', { training: { stpes: 10 } }, /^--config 'my\.json': training\.stpes: unknown field \(did you mean 'steps'\? known: steps, batchSize/],
    ['a negative clip', { training: { clipGradNorm: -1 } }, /^--config 'my\.json': training\.clipGradNorm: must be > 0, got -1$/],
    ['sigmas that are not a list', { map: { sigmas: 'x' } }, /^--config 'my\.json': map\.sigmas: must be a list, got "x"$/],
    ['a share above 1', { map: { topFraction: 7 } }, /^--config 'my\.json': map\.topFraction: must be in \(0, 1\], got 7$/],
    ['no images to collect', { continual: { collectImages: 0 } }, /^--config 'my\.json': continual\.collectImages: must be >= 1, got 0$/],
    ['an unknown group', { trainig: { steps: 1 } }, /^--config 'my\.json': trainig: unknown field \(did you mean 'training'\?/],
    ['an unknown UNet field', { unet: { chanel_mult: [1, 2] } }, /unet\.chanel_mult: unknown field \(did you mean 'channel_mult'\?/],
    ['an unknown AMN field', { amn: { depth: 2 } }, /amn\.depth: unknown field \(known: enabled, inChannels, hintChannels/],
    ['a group that is not an object', { training: 'fast' }, /training: must be an object, got "fast"/],
    ['a float where an integer goes', { training: { steps: 1.5 } }, /training\.steps: must be an integer, got 1\.5/],
    ['a string where a number goes', { imageSize: '32' }, /imageSize: must be a number, got "32"/],
    ['a mode that does not exist', { continual: { projection: 'all' } }, /continual\.projection: must be one of 'update', 'gradient', 'none', got "all"/],
    ['a size the UNet cannot take', { imageSize: 30 }, /imageSize: must be divisible by 4 \(the UNet's 3 levels, unet\.channel_mult\), got 30/],
    ['attention at no level', { unet: { attention_resolutions: [7] } }, /unet: attention resolution 7 is not the size of any level \(levels are 32, 16, 8 px\): set attention_resolutions to level sizes, e.g. \[8\] \(the lowest level\)/],
    ['an AMN width that is not a multiple of 4', { amn: { enabled: true, dim: 30 } }, /amn\.dim: must be divisible by 4/],
    ['an even mask', { amn: { enabled: true, maskSize: 4 } }, /amn\.maskSize: must be odd/],
    ['a start timestep past the schedule', { reconstruction: { tStartCandidates: [10, 1000] } }, /reconstruction\.tStartCandidates\[1\]: must be in \[reconstruction\.steps 5, schedule\.timesteps - 1 = 999\], got 1000/],
    ['training timesteps past the schedule', { training: { maxTimestep: 2000 } }, /training\.maxTimestep: must be at most schedule\.timesteps 1000, got 2000/],
    ['a validation share of 1', { validation: { fraction: 1 } }, /validation\.fraction: must be in \(0, 1\), got 1/],
    ['a negative seed', { seed: -1 }, /seed: must be >= 0, got -1/],
    ['not an object at all', [1, 2], /\(the config\): must be an object/],
  ])('refuses %s, naming the file and the field', (_, input, pattern) => {
    expect(refusal(input)).toMatch(pattern);
  });

  it('lists every problem in one error', () => {
    const message = refusal({
      training: { stpes: 10, clipGradNorm: -1 },
      map: { sigmas: 'x', topFraction: 7 },
      continual: { collectImages: 0 },
    });
    const lines = message.split('\n');
    expect(lines[0]).toBe(`--config 'my.json': 5 problems:`);
    expect(lines.slice(1).map((l) => l.replace(/^ {2}- ([\w.[\]]+):.*$/, '$1')).sort()).toEqual(
      ['continual.collectImages', 'map.sigmas', 'map.topFraction', 'training.clipGradNorm', 'training.stpes'].sort(),
    );
  });

  it('parseDetectorConfig refuses a complete config missing a field', () => {
    const { steps: _, ...training } = DEFAULT_DETECTOR_CONFIG.training;
    expect(() => parseDetectorConfig({ ...DEFAULT_DETECTOR_CONFIG, training }, 'checkpoint x')).toThrow(
      /^checkpoint x: training\.steps: missing \(number expected\)$/,
    );
  });
});

describe('presets', () => {
  it('every preset is a valid config; the GPU presets keep the AMN on a 16 x 16 token grid', () => {
    for (const name of Object.keys(DETECTOR_PRESETS)) {
      const config = resolveDetectorConfig(presetConfig(name), `--preset ${name}`);
      const amn = resolveAmnConfig({ ...config.amn });
      if (name.startsWith('gpu-')) {
        expect(config.imageSize).toBeGreaterThanOrEqual(128);
        expect(gridSize(amn, config.imageSize, config.imageSize)).toEqual([16, 16]);
      }
    }
    expect(() => presetConfig('huge')).toThrow(/unknown preset 'huge'; presets: quick, texture, gpu-128, gpu-256/);
  });
});
