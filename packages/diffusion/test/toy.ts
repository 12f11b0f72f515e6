/**
 * The two-pattern toy problem shared by the training test and `bench/toy-curve.ts`: a tiny UNet
 * learns 8x8 single-channel images that are one of two edges.
 */
import { ParamStore, Rng, tf } from '@ofm/tensor';
import { DiffusionTrainer, NoiseSchedule, UNet, type UNetConfig } from '../src/index';

export const TOY_SIZE = 8;

export const TOY_CONFIG: UNetConfig = {
  image_size: TOY_SIZE,
  in_channels: 1,
  out_channels: 1,
  model_channels: 16,
  channel_mult: [1, 2],
  num_res_blocks: 1,
  attention_resolutions: [4],
  num_heads: 2,
  groupnorm_groups: 4,
  time_embed_dim: 64,
};

/** Two images in [-1, 1]: a vertical and a horizontal edge (1.13 apart, RMS). */
export const TOY_PATTERNS = [0, 1].map((k) =>
  Float32Array.from({ length: TOY_SIZE * TOY_SIZE }, (_, i) => {
    const y = Math.floor(i / TOY_SIZE);
    const x = i % TOY_SIZE;
    return (k === 0 ? x < TOY_SIZE / 2 : y < TOY_SIZE / 2) ? 0.8 : -0.8;
  }),
);

export interface ToyRun {
  store: ParamStore;
  unet: UNet;
  schedule: NoiseSchedule;
  trainer: DiffusionTrainer;
  losses: number[];
  seconds: number;
}

/** Train the toy model for `steps` steps of batch 8; `onStep` sees every loss. */
export function trainToy(steps: number, onStep?: (step: number, loss: number) => void): ToyRun {
  const store = new ParamStore(0);
  const unet = new UNet(store, TOY_CONFIG).init();
  const schedule = new NoiseSchedule();
  const trainer = new DiffusionTrainer({ unet, schedule, optimizer: { lr: 3e-3, weightDecay: 0 }, clipGradNorm: 1, seed: 1 });
  const rng = new Rng(2);
  const batch = 8;
  const size = TOY_SIZE * TOY_SIZE;
  const losses: number[] = [];
  const start = performance.now();
  for (let i = 0; i < steps; i++) {
    const data = new Float32Array(batch * size);
    for (let b = 0; b < batch; b++) data.set(TOY_PATTERNS[rng.int(2)]!, b * size);
    const x = tf.tensor4d(data, [batch, TOY_SIZE, TOY_SIZE, 1]);
    const loss = trainer.step(x).loss;
    x.dispose();
    losses.push(loss);
    onStep?.(i, loss);
  }
  return { store, unet, schedule, trainer, losses, seconds: (performance.now() - start) / 1000 };
}

/** RMS distance of each image to its nearest pattern, and which pattern that is. */
export function nearestPattern(images: tf.Tensor4D): { dist: number; pattern: number }[] {
  const d = images.dataSync();
  const size = TOY_SIZE * TOY_SIZE;
  return Array.from({ length: images.shape[0] }, (_, b) => {
    const dists = TOY_PATTERNS.map((p) => Math.sqrt(p.reduce((acc, v, i) => acc + (v - d[b * size + i]!) ** 2, 0) / size));
    const pattern = dists[0]! <= dists[1]! ? 0 : 1;
    return { dist: dists[pattern]!, pattern };
  });
}

export const mean = (a: readonly number[]): number => a.reduce((s, v) => s + v, 0) / a.length;
