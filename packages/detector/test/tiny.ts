/** A tiny detector config and synthetic data for fast end-to-end tests (24 px, a few steps). */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadMvtec, synth } from '@ofm/datasets';
import { tf } from '@ofm/tensor';
import { type DetectorConfigInput, TINY_DETECTOR_CONFIG } from '../src/config/config';
import type { ContinualDetector, LearnedClass } from '../src/model/detector';
import { anomalyMap } from '../src/model/maps';

export const TINY_CONFIG: DetectorConfigInput = {
  ...TINY_DETECTOR_CONFIG,
  // Shared weights: most detector tests exercise gradient projection (retention.test.ts covers per-task weights).
  continual: { ...TINY_DETECTOR_CONFIG.continual, weights: 'shared' },
  inferenceBatch: 8,
  seed: 3,
};

/** Write a small synthetic MVTec-layout dataset (24 px) and return its root. */
export async function tinyDataset(classes = ['tiles', 'washer', 'chip']): Promise<string> {
  const root = join(mkdtempSync(join(tmpdir(), 'ofm-det-')), 'data');
  await synth({ out: root, classes, size: 24, nTrain: 10, nTestGood: 3, nTestBad: 3, seed: 1 });
  return root;
}

/** One class's normal training images, or all its test images, from a dataset root (HWC RGB in [0, 1]). */
export async function tinyImages(root: string, cls: string, part: 'train' | 'test', size = 24): Promise<Float32Array[]> {
  const ds = await loadMvtec(root, { size });
  const out: Float32Array[] = [];
  for await (const s of part === 'train' ? ds.train(cls) : ds.test(cls)) out.push(s.image);
  return out;
}

/**
 * A fused class's reconstruction map of `x` (`[N, H, W, 3]` in [0, 1]) recomputed from the public
 * pieces, as a reference: reconstruct at each fused start, map, standardise by the start's normal
 * statistics, average. Flattened `[N * H * W]`.
 */
export function fusedMapByHand(det: ContinualDetector, cls: LearnedClass, x: tf.Tensor4D): Float32Array {
  const mapOptions = { aggregate: det.config.map.aggregate, blurSigma: det.config.map.blurSigma };
  const out = new Float32Array(x.shape[0] * x.shape[1] * x.shape[2]);
  for (const f of cls.fused!) {
    const recon = det.reconstructBatch(x, f.tStart);
    const maps = anomalyMap(det.extractor, x, recon, mapOptions);
    const raw = maps.dataSync();
    for (let i = 0; i < raw.length; i++) out[i]! += (raw[i]! - f.pixelMean) / f.pixelStd / cls.fused!.length;
    tf.dispose([recon, maps]);
  }
  return out;
}
