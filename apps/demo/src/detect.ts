/** One detection in the page: the detector's result plus what the page shows about it. */
import type { ContinualDetector } from '@ofm/detector/browser';

export interface PageDetection {
  /** Calibrated image score (standard deviations above the routed class's normal images). */
  score: number;
  rawScore: number;
  /** Calibrated anomaly map, size x size, row-major. */
  map: Float32Array;
  /** Reconstruction, HWC RGB in [0, 1]. */
  reconstruction: Float32Array;
  className: string;
  /** Where the map peaks (model pixels) and its value there. */
  peak: { x: number; y: number; value: number };
  /** Wall time of the detection, in milliseconds. */
  ms: number;
}

/** The position and value of the largest element of a row-major `size`-wide map. */
export function mapPeak(map: Float32Array, size: number): PageDetection['peak'] {
  let best = 0;
  for (let i = 1; i < map.length; i++) if (map[i]! > map[best]!) best = i;
  return { x: best % size, y: Math.floor(best / size), value: map[best]! };
}

/**
 * Detect anomalies in one model-size image (no task id: the detector routes it to a class). Reads
 * the results asynchronously, so the page stays responsive while a GPU backend computes.
 */
export async function detectOne(detector: ContinualDetector, input: Float32Array): Promise<PageDetection> {
  const started = performance.now();
  const [d] = await detector.detectAsync([input], { reconstructions: true });
  const ms = performance.now() - started;
  return {
    score: d!.score,
    rawScore: d!.rawScore,
    map: d!.map,
    reconstruction: d!.reconstruction!,
    className: d!.className,
    peak: mapPeak(d!.map, detector.config.imageSize),
    ms,
  };
}
