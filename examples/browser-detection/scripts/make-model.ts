/**
 * Train the model the page loads, in Node: one class of the synthetic defect dataset with a tiny
 * detector (a few seconds on a CPU), saved as a checkpoint directory under `DIR/model`, plus a good
 * and a defective test image under `DIR/samples` to try in the page. Vite serves `public/` as is.
 *
 *   tsx scripts/make-model.ts DIR
 */
import { copyFile, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadMvtec, synth } from '@ofm/datasets';
import { ContinualDetector, saveDetector } from '@ofm/detector';
import { initBackend } from '@ofm/tensor';

const out = process.argv[2];
if (!out) {
  console.error('usage: tsx scripts/make-model.ts DIR');
  process.exit(2);
}
const CLASS = 'washer';
const SIZE = 24;

await initBackend();
const data = await mkdtemp(join(tmpdir(), 'ofm-browser-example-'));
try {
  await synth({ out: data, classes: [CLASS], size: SIZE, nTrain: 12, nTestGood: 1, nTestBad: 1, seed: 1 });
  const dataset = await loadMvtec(data, { size: SIZE });
  const train: Float32Array[] = [];
  for await (const s of dataset.train(CLASS)) train.push(s.image);
  const detector = new ContinualDetector({
    imageSize: SIZE,
    unet: { model_channels: 8, channel_mult: [1, 2], attention_resolutions: [12], num_heads: 2, groupnorm_groups: 4, time_embed_dim: 16 },
    amn: { hintChannels: [8, 8], dim: 8, layers: 1, heads: 2, ffn: 16, maskSize: 3 },
    training: { steps: 6, batchSize: 4, lr: 2e-3, maxTimestep: 200 },
    reconstruction: { tStartCandidates: [40, 80], steps: 2 },
    continual: { collectImages: 4, maxRowsPerCall: 32 },
    validation: { fraction: 0.25, minImages: 2 },
  });
  await detector.learnTask({ classes: [CLASS], images: new Map([[CLASS, train]]) });
  await saveDetector(detector, join(out, 'model'));
  detector.dispose();

  await mkdir(join(out, 'samples'), { recursive: true });
  for (const kind of await readdir(join(data, CLASS, 'test'))) {
    const [first] = (await readdir(join(data, CLASS, 'test', kind))).sort();
    await copyFile(join(data, CLASS, 'test', kind, first!), join(out, 'samples', `${kind === 'good' ? 'good' : 'defect'}.png`));
  }
  console.log(`wrote ${join(out, 'model')} and ${join(out, 'samples')}`);
} finally {
  await rm(data, { recursive: true, force: true });
}
