/**
 * PatchKnnDetector, the PatchCore-style reference: on 32 px synthetic images a bank of normal
 * patches ranks images with a pasted anomaly above normal ones and peaks inside the pasted area;
 * a second class's bank leaves the first class's scores exactly as they were; the coreset covers
 * the candidates; clear errors.
 */
import { renderSynthImage } from '@ofm/datasets';
import { auroc } from '@ofm/metrics';
import { Rng, initBackend, tf } from '@ofm/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import { PatchKnnDetector, greedyKCenter } from '../src/model/knn';

const SIZE = 32;

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

function render(className: string, split: 'train' | 'test', index: number): Float32Array {
  const r = renderSynthImage({ className, split, index, size: SIZE, seed: 5 });
  return Float32Array.from(r.image, (v) => v / 255);
}

/** `image` with an 8 x 8 square of `source` (another class) pasted at (x, y); and its mask. */
function pasted(image: Float32Array, source: Float32Array, x: number, y: number): { image: Float32Array; mask: Uint8Array } {
  const out = Float32Array.from(image);
  const mask = new Uint8Array(SIZE * SIZE);
  for (let r = y; r < y + 8; r++) {
    for (let c = x; c < x + 8; c++) {
      mask[r * SIZE + c] = 1;
      for (let ch = 0; ch < 3; ch++) out[(r * SIZE + c) * 3 + ch] = source[(r * SIZE + c) * 3 + ch]!;
    }
  }
  return { image: out, mask };
}

const train = (cls: string) => Array.from({ length: 16 }, (_, i) => render(cls, 'train', i));
const normals = Array.from({ length: 6 }, (_, i) => render('tiles', 'test', i));
const anomalies = Array.from({ length: 6 }, (_, i) => pasted(render('tiles', 'test', 10 + i), render('washer', 'train', 40 + i), 3 + 4 * i, 20 - 3 * i));
const OPTS = { imageSize: SIZE, bankSize: 512, seed: 1 };

describe('PatchKnnDetector', () => {
  it('scores pasted anomalies above normal images and peaks inside them', async () => {
    const det = new PatchKnnDetector(OPTS);
    expect(det.gridSize).toBe(32); // stride 1 at 32 px
    const record = await det.learnTask({ classes: ['tiles'], images: new Map([['tiles', train('tiles')]]) });
    expect(record.classes).toEqual(['tiles']);
    expect(det.classes[0]).toMatchObject({ className: 'tiles', task: 0, trainImages: 16, candidates: 16 * 32 * 32, bankSize: 512 });
    // 15 filter-bank channels (3 sigmas x RGB, gradient, LoG), float32.
    expect(det.bankBytes()).toBe(512 * 15 * 4);
    expect(record.bankBytes).toBe(det.bankBytes());

    const before = tf.memory().numTensors;
    const dets = det.detect([...normals, ...anomalies.map((a) => a.image)]);
    expect(tf.memory().numTensors).toBe(before);
    for (const d of dets) {
      expect(d.map).toHaveLength(SIZE * SIZE);
      expect(d.score).toBe(Math.max(...d.map));
      expect(d.rawScore).toBe(d.score);
      expect(d.className).toBe('tiles');
    }
    const labels = [...normals.map(() => 0), ...anomalies.map(() => 1)];
    expect(auroc(dets.map((d) => d.score), labels)).toBeGreaterThan(0.9);
    anomalies.forEach((a, i) => {
      const map = dets[normals.length + i]!.map;
      const peak = map.indexOf(Math.max(...map));
      expect(a.mask[peak], `anomaly ${i}: peak at (${peak % SIZE}, ${Math.floor(peak / SIZE)})`).toBe(1);
    });
    det.dispose();
  });

  it("learning a second class leaves the first class's bank and scores exactly as they were", async () => {
    const det = new PatchKnnDetector(OPTS);
    await det.learnTask({ classes: ['tiles'], images: new Map([['tiles', train('tiles')]]) });
    const test = [...normals, ...anomalies.map((a) => a.image)];
    const first = det.detect(test);
    const bank = det.bank('tiles');
    await det.learnTask({ classes: ['washer'], images: new Map([['washer', train('washer')]]) });
    expect(det.classNames()).toEqual(['tiles', 'washer']);
    expect(det.tasks.map((t) => t.classes)).toEqual([['tiles'], ['washer']]);
    expect(det.bank('tiles')).toEqual(bank);

    const tilesOnly = det.detect(test, { classes: ['tiles'] });
    tilesOnly.forEach((d, i) => {
      expect(d.score).toBe(first[i]!.score);
      expect(d.map).toEqual(first[i]!.map);
      expect(d.classDistances.tiles).toBe(first[i]!.classDistances.tiles);
    });
    // Task-agnostic: the union of both banks can only bring patches closer; routing finds the class.
    const union = det.detect(test);
    union.forEach((d, i) => {
      expect(d.score).toBeLessThanOrEqual(first[i]!.score + 1e-6);
      expect(d.className).toBe('tiles');
      expect(Object.keys(d.classDistances)).toEqual(['tiles', 'washer']);
    });
    expect(det.detect(Array.from({ length: 4 }, (_, i) => render('washer', 'test', i))).map((d) => d.className)).toEqual(Array(4).fill('washer'));
    det.dispose();
  });

  it('k > 1, a random coreset and a coarser grid give finite maps of the image size', async () => {
    const det = new PatchKnnDetector({ ...OPTS, k: 3, coreset: 'random', stride: 2, blurSigma: 0 });
    expect(det.gridSize).toBe(16);
    await det.learnTask({ classes: ['tiles'], images: new Map([['tiles', train('tiles').slice(0, 4)]]) });
    const [d] = det.detect([anomalies[0]!.image]);
    expect(d!.map).toHaveLength(SIZE * SIZE);
    expect(d!.map.every(Number.isFinite)).toBe(true);
    expect(d!.score).toBeGreaterThan(0);
    det.dispose();
  });

  it('greedy k-center takes one centre per well-separated cluster, with and without a projection', () => {
    const rng = new Rng(4);
    const rows: number[] = [];
    for (let c = 0; c < 3; c++) for (let i = 0; i < 50; i++) for (let j = 0; j < 8; j++) rows.push((j === c ? 100 : 0) + rng.normal());
    const x = tf.tensor2d(rows, [150, 8]);
    for (const projectDim of [0, 4]) {
      const idx = greedyKCenter(x, 3, new Rng(9), projectDim);
      const clusters = [...idx.dataSync()].map((i) => Math.floor(i / 50)).sort();
      expect(clusters).toEqual([0, 1, 2]);
      idx.dispose();
    }
    x.dispose();
  });

  it('fails with clear errors', async () => {
    expect(() => new PatchKnnDetector({ imageSize: 30, stride: 4 })).toThrow(/stride 4 does not divide imageSize 30/);
    expect(() => new PatchKnnDetector({ patch: 2 })).toThrow(/patch must be odd/);
    expect(() => new PatchKnnDetector({ k: 0 })).toThrow(/k must be an integer >= 1/);
    const det = new PatchKnnDetector(OPTS);
    expect(() => det.detect([normals[0]!])).toThrow(/no class learned yet/);
    await expect(det.learnTask({ classes: ['tiles'], images: new Map([['tiles', [new Float32Array(24 * 24 * 3)]]]) })).rejects.toThrow(
      /training image 0 of class 'tiles' has 1728 values; expected 3072 \(HWC RGB at 32 x 32\)/,
    );
    await expect(det.learnTask({ classes: ['tiles'], images: new Map() })).rejects.toThrow(/no training images for class 'tiles'/);
    await det.learnTask({ classes: ['tiles'], images: new Map([['tiles', train('tiles').slice(0, 2)]]) });
    await expect(det.learnTask({ classes: ['tiles'], images: new Map([['tiles', train('tiles')]]) })).rejects.toThrow(/'tiles' already has a bank/);
    expect(() => det.detect([new Float32Array(10)])).toThrow(/image 0 has 10 values; expected 3072/);
    expect(() => det.detect([normals[0]!], { classes: ['chip'] })).toThrow(/class 'chip' was never learned \(learned: tiles\)/);
    det.dispose();
  });
});
