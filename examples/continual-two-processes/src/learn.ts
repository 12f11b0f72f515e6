/**
 * Learn the classes of one dataset folder as the next task of a model on disk. The first run
 * creates the model; every later run (a new process, another day) loads the checkpoint, learns
 * the new classes as a new task (starting from the latest weights, keeping each task's own copy,
 * so earlier classes are detected exactly as before), and saves it again. Earlier tasks' images
 * are never needed: the checkpoint carries their weights, calibration and routing keys.
 *
 *   tsx src/learn.ts --data DIR --model DIR [--quick]
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadMvtec } from '@ofm/datasets';
import { ContinualDetector, TINY_DETECTOR_CONFIG, loadDetector, saveDetector } from '@ofm/detector';
import { initBackend } from '@ofm/tensor';

const { values } = parseArgs({ options: { data: { type: 'string' }, model: { type: 'string' }, quick: { type: 'boolean' } } });
if (!values.data || !values.model) {
  console.error('usage: tsx src/learn.ts --data DIR --model DIR [--quick]');
  process.exit(2);
}
await initBackend();
const resumed = existsSync(values.model);
// --quick: a deliberately tiny model (24 px, an 8-channel UNet, 6 training steps per task) that runs
// in seconds; without it the detector's default model trains (32 px, 150 steps).
const detector = resumed
  ? (await loadDetector(values.model)).detector
  : new ContinualDetector(values.quick ? TINY_DETECTOR_CONFIG : {});

const dataset = await loadMvtec(values.data, { size: detector.config.imageSize });
const images = new Map<string, Float32Array[]>();
for (const cls of dataset.classes) {
  const list: Float32Array[] = [];
  for await (const s of dataset.train(cls)) list.push(s.image);
  images.set(cls, list);
}
const record = await detector.learnTask({ classes: [...dataset.classes], images });
await saveDetector(detector, values.model);

console.log(
  JSON.stringify({
    resumed,
    task: record.index + 1,
    learned: dataset.classes,
    classes: detector.classNames(),
    weights: detector.config.continual.weights,
    projection: record.projection,
    basisRank: record.basisRank,
    trainSeconds: record.trainSeconds,
  }),
);
detector.dispose();
