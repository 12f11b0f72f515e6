/** A tiny detector config and synthetic data for fast end-to-end tests (24 px, a few steps). */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { synth } from '@ofm/datasets';
import { type DetectorConfigInput, TINY_DETECTOR_CONFIG } from '../src/config/config';

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
