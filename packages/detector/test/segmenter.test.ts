/**
 * The per-task segmenter: it learns to mark synthetic anomalies, trains apart from the diffusion
 * model (neither phase touches the other's weights), its map is mixed into detection's map as
 * documented, and configs and checkpoints that cannot or did not have one are handled.
 */
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { AbortError, ParamStore, Rng, initBackend, tf } from '@ofm/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveDetectorConfig } from '../src/config/config';
import { ContinualDetector } from '../src/model/detector';
import { gaussianBlur } from '../src/model/features';
import { focalLoss, initSegmenter, segmenterMaps, segmenterNames, trainSegmenter } from '../src/model/segmenter';
import { withStoredWeightsMode } from '../src/io/persist';
import { TINY_CONFIG, fusedMapByHand, tinyDataset, tinyImages } from './tiny';

let root: string;
const size = 24;

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  root = await tinyDataset(['tiles']);
});
afterAll(() => rmSync(dirname(root), { recursive: true, force: true }));

const split = (part: 'train' | 'test') => tinyImages(root, 'tiles', part, size);

const PER_TASK = { ...TINY_CONFIG, continual: { ...TINY_CONFIG.continual, weights: 'per-task' as const } };

/** A 16 px grey image with mild noise. */
function plain(rng: Rng): Float32Array {
  return Float32Array.from({ length: 16 * 16 * 3 }, () => 0.4 + 0.05 * rng.uniform());
}

/** A bright 4 x 4 square pasted at a random place, with its mask. */
function square(image: Float32Array, rng: Rng) {
  const out = Float32Array.from(image);
  const mask = new Uint8Array(16 * 16);
  const top = rng.int(12);
  const left = rng.int(12);
  for (let y = top; y < top + 4; y++) {
    for (let x = left; x < left + 4; x++) {
      mask[y * 16 + x] = 1;
      out.fill(0.95, (y * 16 + x) * 3, (y * 16 + x) * 3 + 3);
    }
  }
  return { image: out, mask, area: 16, clean: false };
}

/** Mean probability inside and outside the square of one anomalous image. */
function contrast(params: ParamStore, channels: number[], rng: Rng): { inside: number; outside: number } {
  const a = square(plain(rng), rng);
  const p = segmenterMaps(params, tf.tensor4d(a.image, [1, 16, 16, 3]), channels);
  const values = p.dataSync();
  p.dispose();
  let inside = 0;
  let outside = 0;
  for (let i = 0; i < values.length; i++) {
    if (a.mask[i]) inside += values[i]! / 16;
    else outside += values[i]! / (values.length - 16);
  }
  return { inside, outside };
}

describe('segmenter', () => {
  it('learns to mark the synthetic anomalies it is trained on', async () => {
    const channels = [8, 16];
    const params = new ParamStore(1);
    initSegmenter(params, 16, channels);
    expect(segmenterNames(params).length).toBe(params.names().length);
    expect(segmenterNames(params).every((n) => n.startsWith('seg.'))).toBe(true);
    // He initialisation: zero biases, weights of variance 2 / fanIn (the first conv sees 3 x 3 x 3 inputs).
    const biases = segmenterNames(params).filter((n) => n.endsWith('.bias'));
    expect(biases.length).toBe(7);
    expect(biases.every((n) => params.get(n).dataSync().every((v) => v === 0))).toBe(true);
    const first = Array.from(params.get('seg.down0.conv1.weight').dataSync());
    expect(first.reduce((a, v) => a + v * v, 0) / first.length).toBeGreaterThan(0.7 * (2 / 27));
    const rng = new Rng(2);
    const images = Array.from({ length: 8 }, () => plain(rng));
    const untrained = contrast(params, channels, new Rng(9));
    const seen: number[] = [];
    const result = await trainSegmenter(params, images, 16, { enabled: true, channels, steps: 80, batchSize: 8, lr: 3e-3, augment: true, weight: 0.5 }, {
      rng: new Rng(3),
      anomaly: (_i, image, r) => square(image, r),
      onProgress: (p) => seen.push(p.done),
    });
    expect(seen).toEqual(Array.from({ length: 80 }, (_, i) => i + 1));
    expect(Number.isFinite(result.finalLoss)).toBe(true);
    const trained = contrast(params, channels, new Rng(9));
    // Before training the square barely shows; after, it stands far above its surroundings.
    expect(Math.abs(untrained.inside - untrained.outside)).toBeLessThan(0.1);
    expect(trained.inside - trained.outside).toBeGreaterThan(0.4);
    params.dispose();
  });

  it('focal loss is lower for confident right answers than for confident wrong ones', () => {
    const y = tf.tensor4d([1, 0, 0, 0], [1, 2, 2, 1]);
    const right = focalLoss(tf.tensor4d([4, -4, -4, -4], [1, 2, 2, 1]), y).dataSync()[0]!;
    const wrong = focalLoss(tf.tensor4d([-4, 4, 4, 4], [1, 2, 2, 1]), y).dataSync()[0]!;
    expect(right).toBeLessThan(1e-3);
    expect(wrong).toBeGreaterThan(1);
  });

  it('stops between steps when aborted', async () => {
    const params = new ParamStore(1);
    initSegmenter(params, 16, [4]);
    const controller = new AbortController();
    const rng = new Rng(1);
    const run = trainSegmenter(params, [plain(rng)], 16, { enabled: true, channels: [4], steps: 1000, batchSize: 2, lr: 1e-3, augment: false, weight: 0.5 }, {
      rng,
      signal: controller.signal,
      anomaly: (_i, image, r) => square(image, r),
      onProgress: (p) => {
        if (p.done === 3) controller.abort();
      },
    });
    await expect(run).rejects.toBeInstanceOf(AbortError);
    params.dispose();
  });

  it('trains apart from the diffusion model: the UNet and AMN weights are those of a detector without it', async () => {
    const train = await split('train');
    const withSeg = new ContinualDetector(PER_TASK);
    const without = new ContinualDetector({ ...PER_TASK, segmenter: { enabled: false } });
    expect(withSeg.trainableNames(0).some((n) => n.startsWith('seg.'))).toBe(false);
    await withSeg.learnTask({ classes: ['tiles'], images: new Map([['tiles', train]]) });
    await without.learnTask({ classes: ['tiles'], images: new Map([['tiles', train]]) });
    const a = withSeg.modelTensors();
    const b = without.modelTensors();
    expect(Object.keys(a).filter((n) => !n.startsWith('seg.'))).toEqual(Object.keys(b));
    for (const name of Object.keys(b)) expect(Array.from(a[name]!.dataSync()), name).toEqual(Array.from(b[name]!.dataSync()));
    expect(withSeg.tasks[0]!.segmenterSeconds).toBeGreaterThan(0);
    expect(without.classes[0]!.segmenter).toBeUndefined();
    withSeg.dispose();
    without.dispose();
  });

  it("detection's map mixes the standardised reconstruction and segmenter maps, calibrated on the mixed normals", async () => {
    const det = new ContinualDetector(PER_TASK);
    await det.learnTask({ classes: ['tiles'], images: new Map([['tiles', await split('train')]]) });
    const cls = det.classes[0]!;
    const s = cls.segmenter!;
    expect(s.reconStd).toBeGreaterThan(0);
    // The spread the segmenter's map is divided by is floored, so a flat map's float noise is not amplified.
    expect(s.segmenterStd).toBeGreaterThanOrEqual(0.01);

    const test = (await split('test')).slice(0, 3);
    const found = det.detect(test);
    const x = tf.tensor4d(Float32Array.from(test.flatMap((t) => Array.from(t))), [test.length, size, size, 3]);
    const recon = fusedMapByHand(det, cls, x);
    const probs = segmenterMaps(det.params, x, det.config.segmenter.channels);
    const seg = gaussianBlur(tf.expandDims(probs, 3) as tf.Tensor4D, det.config.map.blurSigma).dataSync();
    tf.dispose([x, probs]);
    const w = det.config.segmenter.weight;
    const cal = cls.calibration;
    found.forEach((d, j) => {
      let worst = 0;
      for (let p = 0; p < size * size; p++) {
        const i = j * size * size + p;
        const mixed = (1 - w) * ((recon[i]! - s.reconMean) / s.reconStd) + (w * (seg[i]! - s.segmenterMean)) / s.segmenterStd;
        worst = Math.max(worst, Math.abs(d.map[p]! - (mixed - cal.pixelMean) / cal.pixelStd));
      }
      expect(worst).toBeLessThan(1e-3);
    });
    det.dispose();
  });

  it('is on with per-task weights, off with shared ones, and refused where it cannot work', () => {
    expect(resolveDetectorConfig({}).segmenter.enabled).toBe(true);
    expect(resolveDetectorConfig({ continual: { weights: 'shared' } }).segmenter.enabled).toBe(false);
    expect(() => resolveDetectorConfig({ continual: { weights: 'shared' }, segmenter: { enabled: true } })).toThrow(/segmenter\.enabled.*per-task/);
    expect(() => resolveDetectorConfig({ imageSize: 36, unet: { channel_mult: [1, 2], attention_resolutions: [] } })).toThrow(/segmenter\.channels.*divisible by 8/);
    expect(() => resolveDetectorConfig({ segmenter: { weight: 1.5 } })).toThrow(/segmenter\.weight/);
    // A config stored before the segmenter existed: off, so its weights are not looked for.
    const { segmenter: _, ...old } = resolveDetectorConfig({});
    expect(withStoredWeightsMode(old as never).segmenter.enabled).toBe(false);
  });
});
