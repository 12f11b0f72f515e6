import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng, tf } from '@ofm/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FilterBankExtractor, PixelExtractor, gaussianBlur } from '../src/model/features';
import { anomalyMap, imageScores } from '../src/model/maps';
import { TfjsModelExtractor } from '../src/model/model-extractor';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function texture(rng: Rng, n: number, size: number): tf.Tensor4D {
  // Smooth random texture: blurred noise around grey.
  return tf.tidy(() => tf.clipByValue(tf.add(gaussianBlur(rng.randn([n, size, size, 3], 0, 0.6) as tf.Tensor4D, 1.5), 0.5), 0, 1)) as tf.Tensor4D;
}

describe('gaussianBlur', () => {
  it('keeps a constant image constant (reflect padding, normalised kernel)', () => {
    const x = tf.fill([1, 9, 9, 2], 0.7) as tf.Tensor4D;
    const y = gaussianBlur(x, 2);
    expect(y.shape).toEqual([1, 9, 9, 2]);
    expect(tf.max(tf.abs(tf.sub(y, 0.7))).dataSync()[0]).toBeLessThan(1e-6);
  });

  it('spreads an impulse as a symmetric Gaussian with the right width', () => {
    const data = new Float32Array(21 * 21);
    data[10 * 21 + 10] = 1;
    const y = gaussianBlur(tf.tensor4d(data, [1, 21, 21, 1]), 1.5).dataSync();
    const at = (r: number, c: number) => y[r * 21 + c]!;
    expect(at(10, 12)).toBeCloseTo(at(10, 8), 6);
    expect(at(12, 10)).toBeCloseTo(at(10, 12), 6);
    // Ratio of neighbours two pixels apart follows exp(-d^2 / 2 sigma^2) along one axis.
    expect(at(10, 12) / at(10, 10)).toBeCloseTo(Math.exp(-4 / (2 * 1.5 * 1.5)), 2);
    expect(Array.from(y).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
  });

  it('handles images smaller than the kernel', () => {
    const y = gaussianBlur(tf.ones([1, 3, 3, 1]) as tf.Tensor4D, 4);
    expect(y.shape).toEqual([1, 3, 3, 1]);
    expect(tf.max(tf.abs(tf.sub(y, 1))).dataSync()[0]).toBeLessThan(1e-5);
  });
});

describe('anomaly maps', () => {
  const rng = new Rng(3);

  it('is zero where input and reconstruction agree and peaks on the defect', () => {
    const good = texture(rng, 2, 32);
    // The "defect": a bright 5x5 square in image 1 at rows 20-24, cols 6-10.
    const mask = tf.buffer([2, 32, 32, 1]);
    for (let r = 20; r < 25; r++) for (let c = 6; c < 11; c++) mask.set(1, 1, r, c, 0);
    const defective = tf.add(tf.mul(good, tf.sub(1, mask.toTensor())), mask.toTensor()) as tf.Tensor4D;
    for (const extractor of [new FilterBankExtractor(), new PixelExtractor()]) {
      const maps = anomalyMap(extractor, defective, good, { blurSigma: 1 });
      expect(maps.shape).toEqual([2, 32, 32]);
      const m = maps.arraySync();
      expect(Math.max(...m[0]!.flat())).toBeLessThan(1e-3);
      let best = [0, 0];
      let bestV = -1;
      m[1]!.forEach((row, r) => row.forEach((v, c) => {
        if (v > bestV) {
          bestV = v;
          best = [r, c];
        }
      }));
      expect(best[0]).toBeGreaterThanOrEqual(19);
      expect(best[0]).toBeLessThanOrEqual(25);
      expect(best[1]).toBeGreaterThanOrEqual(5);
      expect(best[1]).toBeLessThanOrEqual(11);
      const scores = imageScores(maps);
      expect(scores[1]).toBeGreaterThan(scores[0]! + 0.05);
    }
  });

  it('filter bank gives one 5-channel map per scale', () => {
    const f = new FilterBankExtractor({ sigmas: [1, 3] }).extract(texture(rng, 1, 16));
    expect(f.map((t) => t.shape)).toEqual([
      [1, 16, 16, 5],
      [1, 16, 16, 5],
    ]);
    expect(() => new FilterBankExtractor({ sigmas: [] })).toThrow(/sigmas/);
  });

  it('top-k mean lies between the mean and the max', () => {
    const maps = tf.tensor3d([[[0, 1], [2, 10]]]);
    expect(imageScores(maps)[0]).toBe(10);
    expect(imageScores(maps, { kind: 'topk-mean', fraction: 0.5 })[0]).toBe(6);
  });
});

describe('TfjsModelExtractor', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ofm-model-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('loads a layers model saved on disk and taps named layers', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [16, 16, 3], filters: 4, kernelSize: 3, padding: 'same', name: 'c1', activation: 'relu' }),
        tf.layers.maxPooling2d({ poolSize: 2, name: 'pool' }),
        tf.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'same', name: 'c2' }),
      ],
    });
    await model.save(
      tf.io.withSaveHandler(async (artifacts) => {
        writeFileSync(join(dir, 'weights.bin'), Buffer.from(artifacts.weightData as ArrayBuffer));
        writeFileSync(
          join(dir, 'model.json'),
          JSON.stringify({
            modelTopology: artifacts.modelTopology,
            format: 'layers-model',
            weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
          }),
        );
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    const extractor = await TfjsModelExtractor.load({ path: dir, layers: ['c1', 'c2'], mean: [0, 0, 0], std: [1, 1, 1] });
    const x = tf.randomUniform([2, 16, 16, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const [f1, f2] = extractor.extract(x);
    expect(f1!.shape).toEqual([2, 16, 16, 4]);
    expect(f2!.shape).toEqual([2, 8, 8, 6]);
    const direct = model.predict(x) as tf.Tensor;
    expect(tf.max(tf.abs(tf.sub(direct, f2!))).dataSync()[0]).toBeLessThan(1e-5);
    await expect(TfjsModelExtractor.load({ path: dir, layers: ['nope'] })).rejects.toThrow(/no layer\(s\) nope; it has: c1, pool, c2/);
    await expect(TfjsModelExtractor.load({ path: join(dir, 'missing'), layers: ['c1'] })).rejects.toThrow(/cannot read the model file/);
    extractor.dispose();
  });
});
