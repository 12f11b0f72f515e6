/** All detection metrics of one evaluation in one call, as a flat record for tables and JSON. */
import { binaryMetricsOfRanked } from './binary';
import { type Labels, type MaskMap, MetricsInputError, type ScoreMap, type Scores, mapData } from './input';
import { aupro } from './pro';
import { rankScores } from './ranking';

/** Inputs of {@link evaluateDetections}. */
export interface DetectionInput {
  /** One anomaly score per image. */
  imageScores: Scores;
  /** One label per image: 0 normal, non-zero anomalous. */
  imageLabels: Labels;
  /** Optional per-pixel anomaly maps, one per image, in the same order. */
  pixelScores?: ReadonlyArray<ScoreMap>;
  /** Ground-truth masks for {@link pixelScores}; all zeros for normal images. */
  pixelMasks?: ReadonlyArray<MaskMap>;
  /** Shape of maps given as flat arrays (else they must be square). */
  width?: number;
  height?: number;
  /** FPR limit of AUPRO; default 0.3. */
  fprLimit?: number;
}

/**
 * Image- and pixel-level metrics. Pixel metrics are present only when maps and masks were
 * given. A metric that is undefined for the data (e.g. AUROC with a single class) is NaN.
 */
export interface DetectionMetrics {
  image_auroc: number;
  image_ap: number;
  image_f1max: number;
  pixel_auroc?: number;
  pixel_ap?: number;
  pixel_aupro?: number;
  pixel_f1max?: number;
}

/** Compute every detection metric: image AUROC / AP / F1-max, and pixel AUROC / AP / AUPRO / F1-max. */
export function evaluateDetections(input: DetectionInput): DetectionMetrics {
  const image = binaryMetricsOfRanked(rankScores(input.imageScores, input.imageLabels, 'evaluateDetections (image)'));
  const result: DetectionMetrics = { image_auroc: image.auroc, image_ap: image.ap, image_f1max: image.f1max };
  const { pixelScores, pixelMasks } = input;
  if (pixelScores === undefined && pixelMasks === undefined) return result;
  if (pixelScores === undefined || pixelMasks === undefined) {
    throw new MetricsInputError('evaluateDetections: pixel metrics need both pixelScores and pixelMasks');
  }
  if (pixelScores.length !== input.imageScores.length || pixelMasks.length !== input.imageScores.length) {
    throw new MetricsInputError(
      `evaluateDetections: ${input.imageScores.length} image scores but ${pixelScores.length} anomaly maps and ${pixelMasks.length} masks; give one map and one mask per image`,
    );
  }
  const pixel = binaryMetricsOfRanked(
    rankScores(pixelScores.map(mapData), pixelMasks.map(mapData), 'evaluateDetections (pixel)'),
  );
  result.pixel_auroc = pixel.auroc;
  result.pixel_ap = pixel.ap;
  result.pixel_aupro = aupro(pixelScores, pixelMasks, {
    fprLimit: input.fprLimit,
    width: input.width,
    height: input.height,
  });
  result.pixel_f1max = pixel.f1max;
  return result;
}
