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
import { ContinualDetector, TINY_DETECTOR_CONFIG, saveDetector } from '@ofm/detector';
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
  const detector = new ContinualDetector({ ...TINY_DETECTOR_CONFIG, imageSize: SIZE });
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
