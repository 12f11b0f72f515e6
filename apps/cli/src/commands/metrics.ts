import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { readMaskFile } from '@ofm/datasets';
import {
  type DetectionMetrics,
  type Map2D,
  MetricsInputError,
  decodeScoreMap,
  evaluateDetections,
} from '@ofm/metrics';
import type { Command } from 'commander';
import { CliError } from '../errors';

interface MetricsCliOptions {
  input: string;
  json?: boolean;
  fprLimit: string;
}

/** `ofm metrics --json`: the flat metrics record; a metric undefined for the data (one class only) is null. */
export type MetricsJson = { [K in keyof DetectionMetrics]: number | null };

const LABELS: Record<keyof DetectionMetrics, string> = {
  image_auroc: 'image AUROC',
  image_ap: 'image AP',
  image_f1max: 'image F1-max',
  pixel_auroc: 'pixel AUROC',
  pixel_ap: 'pixel AP',
  pixel_aupro: 'pixel AUPRO',
  pixel_f1max: 'pixel F1-max',
};

const INPUT_HELP = `
Input file (JSON):
  {
    "image_scores": [0.12, 0.93, ...],          one anomaly score per image
    "image_labels": [0, 1, ...],                0 normal, 1 anomalous
    "pixel_scores": [ [...], "maps/001.ofms" ],  optional: per image, an array of H*W
                                                scores (row-major) or a score-map file
    "pixel_masks":  [ [...], "gt/001.png" ],     optional: per image, an array of H*W
                                                0/1 values or a PNG mask (any non-zero
                                                pixel is a defect)
    "width": 256, "height": 256                 optional: shape of maps given as arrays
                                                (default: square)
  }
  File paths are relative to the JSON file. Masks of normal images are all zeros.

Score-map files (.ofms): the 4 ASCII bytes "OFMS", uint32 width, uint32 height
(little-endian), then width*height float32 scores (little-endian, row-major). From NumPy:
  open(p, 'wb').write(b'OFMS' + struct.pack('<II', w, h) + m.astype('<f4').tobytes())

Metrics: AUROC and AP as in scikit-learn (roc_auc_score, average_precision_score), F1-max
over all thresholds, AUPRO as in MVTec AD (per connected region, integrated to FPR 0.3 and
divided by it). An AUROC below 0.5 is reported as it is.
`;

type Json = unknown;

function isNumberArray(value: Json): value is number[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'number' && Number.isFinite(v));
}

function numbersOrError(value: Json, where: string): number[] {
  if (!isNumberArray(value)) throw new CliError(`${where} must be an array of finite numbers`);
  return value;
}

/** Read the per-image score maps: arrays of numbers or OFMS files. */
async function readScoreMaps(entries: Json[], base: string, file: string): Promise<Array<number[] | Map2D>> {
  return Promise.all(
    entries.map(async (entry, i) => {
      if (typeof entry === 'string') {
        const path = resolve(base, entry);
        let bytes: Uint8Array;
        try {
          bytes = await readFile(path);
        } catch {
          throw new CliError(`${path}: cannot read this score map (listed as pixel_scores[${i}] in ${file})`);
        }
        try {
          return decodeScoreMap(bytes, path);
        } catch (err) {
          throw err instanceof MetricsInputError ? new CliError(err.message) : err;
        }
      }
      return numbersOrError(entry, `${file}: pixel_scores[${i}]`);
    }),
  );
}

/** Read the per-image masks: arrays of 0/1 or PNG files. */
async function readMasks(entries: Json[], base: string, file: string): Promise<Array<number[] | Map2D>> {
  return Promise.all(
    entries.map(async (entry, i) => {
      if (typeof entry === 'string') {
        const mask = await readMaskFile(resolve(base, entry), { threshold: 0 });
        return { data: mask.data, width: mask.width, height: mask.height };
      }
      return numbersOrError(entry, `${file}: pixel_masks[${i}]`);
    }),
  );
}

/** Read and check the input file, then compute the metrics. */
export async function computeMetrics(file: string, fprLimit: number): Promise<DetectionMetrics> {
  const path = resolve(file);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new CliError(`${path}: cannot read the input file; expected a JSON file (see ofm metrics --help)`);
  }
  let input: Record<string, Json>;
  try {
    input = JSON.parse(text);
  } catch (err) {
    throw new CliError(`${path}: not valid JSON (${(err as Error).message})`);
  }
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new CliError(`${path}: expected a JSON object with image_scores and image_labels`);
  }
  const imageScores = numbersOrError(input.image_scores, `${path}: image_scores`);
  const imageLabels = numbersOrError(input.image_labels, `${path}: image_labels`);
  const hasScores = input.pixel_scores !== undefined;
  const hasMasks = input.pixel_masks !== undefined;
  if (hasScores !== hasMasks) throw new CliError(`${path}: pixel metrics need both pixel_scores and pixel_masks`);
  for (const key of ['width', 'height'] as const) {
    const v = input[key];
    if (v !== undefined && !(typeof v === 'number' && Number.isInteger(v) && v > 0)) {
      throw new CliError(`${path}: ${key} must be a positive integer`);
    }
  }
  try {
    let pixelScores: Array<number[] | Map2D> | undefined;
    let pixelMasks: Array<number[] | Map2D> | undefined;
    if (hasScores) {
      if (!Array.isArray(input.pixel_scores) || !Array.isArray(input.pixel_masks)) {
        throw new CliError(`${path}: pixel_scores and pixel_masks must be arrays (one entry per image)`);
      }
      const base = dirname(path);
      pixelScores = await readScoreMaps(input.pixel_scores, base, path);
      pixelMasks = await readMasks(input.pixel_masks, base, path);
      // A file-backed mask knows its shape; a map given as an array takes it from there.
      pixelScores = pixelScores.map((s, i) => {
        const m = pixelMasks![i];
        if (Array.isArray(s) && m && !Array.isArray(m) && s.length === m.width * m.height) {
          return { data: s, width: m.width, height: m.height };
        }
        return s;
      });
      pixelScores.forEach((s, i) => {
        const m = pixelMasks![i];
        if (m && !Array.isArray(s) && !Array.isArray(m) && (s.width !== m.width || s.height !== m.height)) {
          throw new CliError(`${path}: image ${i}: the score map is ${s.width} x ${s.height} but the mask is ${m.width} x ${m.height}`);
        }
      });
    }
    return evaluateDetections({
      imageScores,
      imageLabels,
      pixelScores,
      pixelMasks,
      width: input.width as number | undefined,
      height: input.height as number | undefined,
      fprLimit,
    });
  } catch (err) {
    // @ofm/metrics has no dependencies, so its MetricsInputError is not an @ofm/errors kind: it
    // becomes a CliError here (exit 2). A DatasetError (an unreadable mask) is one (exit 2 too).
    if (err instanceof MetricsInputError) throw new CliError(`${path}: ${err.message}`);
    throw err;
  }
}

/** The flat JSON form: NaN (undefined metric) becomes null. */
export function metricsJson(metrics: DetectionMetrics): MetricsJson {
  const out: MetricsJson = {} as MetricsJson;
  for (const [key, value] of Object.entries(metrics) as Array<[keyof DetectionMetrics, number]>) {
    out[key] = Number.isNaN(value) ? null : value;
  }
  return out;
}

function formatTable(metrics: DetectionMetrics, fprLimit: number): string {
  const rows = (Object.entries(metrics) as Array<[keyof DetectionMetrics, number]>).map(([key, value]) => [
    key === 'pixel_aupro' ? `${LABELS[key]} (FPR <= ${fprLimit})` : LABELS[key],
    Number.isNaN(value) ? 'n/a (needs both classes)' : value.toFixed(4),
  ]);
  const width = Math.max(...rows.map((r) => r[0]!.length), 'metric'.length);
  return `${['metric'.padEnd(width), 'value'].join('  ')}\n${rows.map(([k, v]) => `${k!.padEnd(width)}  ${v}`).join('\n')}\n`;
}

/** `ofm metrics`: image and pixel metrics of saved scores. */
export function registerMetrics(program: Command): void {
  program
    .command('metrics')
    .description('compute image AUROC/AP/F1-max and pixel AUROC/AP/AUPRO/F1-max from saved scores and masks')
    .requiredOption('--input <file>', 'JSON file with image_scores, image_labels and optionally pixel_scores, pixel_masks')
    .option('--fpr-limit <x>', 'FPR limit of AUPRO', '0.3')
    .option('--json', 'print the metrics as one flat JSON object')
    .addHelpText('after', INPUT_HELP)
    .action(async (options: MetricsCliOptions) => {
      const fprLimit = Number(options.fprLimit);
      if (!(fprLimit > 0 && fprLimit <= 1)) throw new CliError(`--fpr-limit must be a number in (0, 1], got "${options.fprLimit}"`);
      const metrics = await computeMetrics(options.input, fprLimit);
      process.stdout.write(options.json ? `${JSON.stringify(metricsJson(metrics), null, 2)}\n` : formatTable(metrics, fprLimit));
    });
}
