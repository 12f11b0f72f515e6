/** A tiny detector config and synthetic data for fast end-to-end tests (24 px, a few steps). */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { synth } from '@ofm/datasets';
import type { DetectorConfigInput } from '../src/config';

export const TINY_CONFIG: DetectorConfigInput = {
  imageSize: 24,
  unet: {
    in_channels: 3,
    out_channels: 3,
    model_channels: 8,
    channel_mult: [1, 2],
    num_res_blocks: 1,
    attention_resolutions: [12],
    num_heads: 2,
    groupnorm_groups: 4,
    time_embed_dim: 16,
  },
  amn: { enabled: true, hintChannels: [8, 8], dim: 8, layers: 1, heads: 2, ffn: 16, dropout: 0, maskSize: 3 },
  training: { steps: 6, batchSize: 4, lr: 2e-3, maxTimestep: 200 },
  reconstruction: { tStartCandidates: [40, 80], steps: 2, eta: 0 },
  // Shared weights: most detector tests exercise gradient projection (retention.test.ts covers per-task weights).
  continual: { weights: 'shared', collectImages: 4, maxRowsPerCall: 32 },
  validation: { fraction: 0.25, minImages: 2 },
  inferenceBatch: 8,
  seed: 3,
};

/** Write a small synthetic MVTec-layout dataset (24 px) and return its root. */
export async function tinyDataset(classes = ['tiles', 'washer', 'chip']): Promise<string> {
  const root = join(mkdtempSync(join(tmpdir(), 'ofm-det-')), 'data');
  await synth({ out: root, classes, size: 24, nTrain: 10, nTestGood: 3, nTestBad: 3, seed: 1 });
  return root;
}
