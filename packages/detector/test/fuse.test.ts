/**
 * Fused start timesteps (`reconstruction.fuse`, the default): detection's map is the mean of the
 * maps of every candidate start, each standardised by the class's normal validation pixels at that
 * start; the calibration is of that fused map; older checkpoints keep choosing one start.
 */
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { initBackend, tf } from '@ofm/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveDetectorConfig } from '../src/config/config';
import { ContinualDetector } from '../src/model/detector';
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

// The reconstruction maps alone (the segmenter's mix is tested in segmenter.test.ts).
const PER_TASK = { ...TINY_CONFIG, continual: { ...TINY_CONFIG.continual, weights: 'per-task' as const }, segmenter: { enabled: false } };

describe('fused start timesteps', () => {
  it('are the default, and a config or checkpoint that predates them chooses one start', () => {
    expect(resolveDetectorConfig({}).reconstruction.fuse).toBe(true);
    // A config stored before the field existed: no `fuse` key at all.
    const { fuse: _, ...reconstruction } = resolveDetectorConfig({}).reconstruction;
    const old = { ...resolveDetectorConfig({}), reconstruction };
    expect('fuse' in old.reconstruction).toBe(false);
    expect(withStoredWeightsMode(old).reconstruction.fuse).toBe(false);
  });

  it('detection maps are the mean of the per-start standardised maps, calibrated by the fused normals', async () => {
    const det = new ContinualDetector(PER_TASK);
    await det.learnTask({ classes: ['tiles'], images: new Map([['tiles', await split('train')]]) });
    const cls = det.classes[0]!;
    expect(cls.fused?.map((f) => f.tStart)).toEqual(TINY_CONFIG.reconstruction!.tStartCandidates);
    for (const f of cls.fused!) {
      expect(Number.isFinite(f.pixelMean)).toBe(true);
      expect(f.pixelStd).toBeGreaterThan(0);
    }

    const test = (await split('test')).slice(0, 3);
    const found = det.detect(test);
    // The same map by hand, from the public pieces: reconstruct at each start, map, standardise, average.
    const x = tf.tensor4d(Float32Array.from(test.flatMap((t) => Array.from(t))), [test.length, size, size, 3]);
    const byHand = fusedMapByHand(det, cls, x);
    x.dispose();
    const cal = cls.calibration;
    found.forEach((d, j) => {
      expect(d.className).toBe('tiles');
      let worst = 0;
      for (let p = 0; p < size * size; p++) worst = Math.max(worst, Math.abs(d.map[p]! - (byHand[j * size * size + p]! - cal.pixelMean) / cal.pixelStd));
      expect(worst).toBeLessThan(1e-3);
    });
    // Calibrated on the fused maps of held-out normals: their scores centre near 0, not at a raw scale.
    expect(Math.abs(cal.pixelMean)).toBeLessThan(1);
    det.dispose();
  });

  it('with fuse: false, one start per class, chosen among the candidates', async () => {
    const det = new ContinualDetector({ ...PER_TASK, reconstruction: { ...TINY_CONFIG.reconstruction!, fuse: false } });
    await det.learnTask({ classes: ['tiles'], images: new Map([['tiles', await split('train')]]) });
    expect(det.classes[0]!.fused).toBeUndefined();
    expect(TINY_CONFIG.reconstruction!.tStartCandidates).toContain(det.classes[0]!.tStart);
    det.dispose();
  });
});
