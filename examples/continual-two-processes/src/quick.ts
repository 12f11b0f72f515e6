import type { DetectorConfigInput } from '@ofm/detector';

/**
 * A deliberately tiny model (24 px, an 8-channel UNet, 6 training steps per task) so the example
 * runs in seconds; without `--quick` the detector's default model trains (32 px, 150 steps).
 */
export const QUICK: DetectorConfigInput = {
  imageSize: 24,
  unet: { model_channels: 8, channel_mult: [1, 2], attention_resolutions: [12], num_heads: 2, groupnorm_groups: 4, time_embed_dim: 16 },
  amn: { hintChannels: [8, 8], dim: 8, layers: 1, heads: 2, ffn: 16, maskSize: 3 },
  training: { steps: 6, batchSize: 4, lr: 2e-3, maxTimestep: 200 },
  reconstruction: { tStartCandidates: [40, 80], steps: 2 },
  continual: { collectImages: 4, maxRowsPerCall: 32 },
  validation: { fraction: 0.25, minImages: 2 },
};
