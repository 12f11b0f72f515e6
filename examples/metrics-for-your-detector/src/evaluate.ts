/**
 * Evaluate the outputs of any anomaly detector with @ofm/metrics alone (no tensors, no native
 * code): image AUROC / AP / F1-max, pixel AUROC / AP / AUPRO / F1-max, and the score threshold that
 * gives the best F1.
 *
 *   tsx src/evaluate.ts data/predictions.json [--json]
 *
 * The predictions file lists one entry per image: its label (0 normal, 1 anomalous), its score,
 * and optionally its anomaly map and ground-truth mask, each either inline (`width * height`
 * numbers, row-major) or as the path of an OFMS score-map file (relative to the predictions file;
 * any language can write one, see the README).
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { type DetectionMetrics, bestF1, decodeScoreMap, evaluateDetections } from '@ofm/metrics';

/** One image's prediction as another detector exported it. */
interface Prediction {
  file: string;
  label: 0 | 1;
  score: number;
  /** Anomaly map: inline values, or the path of an `.ofms` file. */
  map?: number[] | string;
  /** Ground truth: inline 0/1 values, or the path of an `.ofms` file (non-zero = defect). */
  mask?: number[] | string;
}

interface PredictionsFile {
  detector?: string;
  /** Size of inline maps. */
  width?: number;
  height?: number;
  images: Prediction[];
}

interface Evaluation {
  images: number;
  anomalous: number;
  metrics: DetectionMetrics;
  /** Predict "anomalous" when `score >= threshold` for the best image-level F1. */
  f1Threshold: number;
}

/** A map or mask given inline or as an OFMS file, as flat row-major values. */
async function loadMap(value: number[] | string, base: string, what: string): Promise<ArrayLike<number>> {
  if (typeof value !== 'string') return value;
  const path = resolve(base, value);
  return decodeScoreMap(new Uint8Array(await readFile(path)), `${what} ${path}`).data;
}

async function evaluate(path: string): Promise<Evaluation> {
  const input = JSON.parse(await readFile(path, 'utf8')) as PredictionsFile;
  if (!Array.isArray(input.images) || input.images.length === 0) {
    throw new Error(`${path}: expected {"images": [{"file", "label", "score", "map"?, "mask"?}, ...]}`);
  }
  const base = dirname(path);
  const images = input.images;
  const withMaps = images.every((p) => p.map !== undefined && p.mask !== undefined);
  const metrics = evaluateDetections({
    imageScores: images.map((p) => p.score),
    imageLabels: images.map((p) => p.label),
    ...(withMaps && {
      pixelScores: await Promise.all(images.map((p) => loadMap(p.map!, base, `map of ${p.file}:`))),
      pixelMasks: await Promise.all(images.map((p) => loadMap(p.mask!, base, `mask of ${p.file}:`))),
      width: input.width,
      height: input.height,
    }),
  });
  const { threshold } = bestF1(
    images.map((p) => p.score),
    images.map((p) => p.label),
  );
  return { images: images.length, anomalous: images.filter((p) => p.label !== 0).length, metrics, f1Threshold: threshold };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const path = args.find((a) => !a.startsWith('--'));
  if (!path) {
    console.error('usage: tsx src/evaluate.ts PREDICTIONS.json [--json]');
    process.exit(2);
  }
  const result = await evaluate(path);
  if (args.includes('--json')) {
    console.log(JSON.stringify(result));
    return;
  }
  console.log(`${result.images} images, ${result.anomalous} anomalous`);
  for (const [name, value] of Object.entries(result.metrics)) console.log(`${name.padEnd(12)} ${value.toFixed(4)}`);
  console.log(`best-F1 threshold: score >= ${result.f1Threshold}`);
}

await main();
