/**
 * Plug a custom backbone into the continual detector: learn one class of the synthetic defect
 * dataset with anomaly maps computed in the backbone's feature space, evaluate on the test split,
 * then save, reload (passing the backbone again) and check that the reloaded model scores the same.
 *
 *   tsx src/main.ts [--out DIR] [--quick]
 *
 * `--quick` uses a tiny model (24 px, a few training steps) so the example finishes in seconds;
 * without it the detector's default model trains (32 px, 150 steps: a few minutes on a CPU).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadMvtec, synth } from '@ofm/datasets';
import { ContinualDetector, type DetectorConfigInput, TINY_DETECTOR_CONFIG, loadDetector, saveDetector } from '@ofm/detector';
import { auroc } from '@ofm/metrics';
import { initBackend } from '@ofm/tensor';
import { RandomConvBackbone } from './backbone.js';

const CLASS = 'washer';
const SEED = 7;

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const outArg = args.indexOf('--out');
const out = outArg >= 0 ? args[outArg + 1]! : await mkdtemp(join(tmpdir(), 'ofm-custom-backbone-'));

const backend = await initBackend();
const config: DetectorConfigInput = quick ? TINY_DETECTOR_CONFIG : {};
const detector = new ContinualDetector(config, { extractor: new RandomConvBackbone(SEED) });
const size = detector.config.imageSize;

// Data: the synthetic defect dataset in the MVTec AD layout (use loadMvtec on real data the same way).
await synth({ out: join(out, 'data'), classes: [CLASS], size, nTrain: quick ? 10 : 40, nTestGood: 4, nTestBad: 4, seed: 1, overwrite: true });
const dataset = await loadMvtec(join(out, 'data'), { size });
const train: Float32Array[] = [];
for await (const s of dataset.train(CLASS)) train.push(s.image);
const test: { image: Float32Array; label: number }[] = [];
for await (const s of dataset.test(CLASS)) test.push({ image: s.image, label: s.label });

const task = await detector.learnTask({ classes: [CLASS], images: new Map([[CLASS, train]]) });
const detections = detector.detect(test.map((t) => t.image));
const scores = detections.map((d) => d.score);
const imageAuroc = auroc(
  scores,
  test.map((t) => t.label),
);

// A checkpoint stores the model, not the backbone: pass the same backbone when loading it.
await saveDetector(detector, join(out, 'model'));
const { detector: reloaded } = await loadDetector(join(out, 'model'), { extractor: new RandomConvBackbone(SEED) });
const reloadedScores = reloaded.detect(test.map((t) => t.image)).map((d) => d.score);

console.log(
  JSON.stringify({
    backend: backend.backend,
    extractor: detector.extractor.name,
    extractorCalls: (detector.extractor as RandomConvBackbone).calls,
    mapSize: detections[0]!.map.length,
    trainImages: train.length,
    trainSeconds: task.trainSeconds,
    imageAuroc,
    scores,
    reloadedScores,
    reloadedExtractor: reloaded.extractor.name,
  }),
);
detector.dispose();
reloaded.dispose();
if (outArg < 0) await rm(out, { recursive: true, force: true });
