/**
 * Retention by construction: with per-task weights a later task changes nothing an earlier class's
 * detection depends on (reconstruction, map, score, start timestep, calibration, routing), in
 * memory and after a save and reload; an image's result does not depend on its batch. With
 * shared weights the drift diagnosis measures what moved. Also: averaging several reconstructions.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { loadMvtec } from '@ofm/datasets';
import { initBackend } from '@ofm/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContinualDetector } from '../src/model/detector';
import { measureDrift } from '../src/model/drift';
import { exportDetector } from '../src/io/export-write';
import { loadExportedDetector } from '../src/io/export-read';
import { loadDetector, saveDetector } from '../src/io/persist';
import { TINY_CONFIG, tinyDataset } from './tiny';

let root: string;
const scratch = mkdtempSync(join(tmpdir(), 'ofm-retention-'));

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  root = await tinyDataset(['tiles', 'washer']);
});
afterAll(() => {
  rmSync(dirname(root), { recursive: true, force: true });
  rmSync(scratch, { recursive: true, force: true });
});

async function images(cls: string, split: 'train' | 'test'): Promise<Float32Array[]> {
  const ds = await loadMvtec(root, { size: 24 });
  const out: Float32Array[] = [];
  if (split === 'train') for await (const s of ds.train(cls)) out.push(s.image);
  else for (const ref of await ds.testFiles(cls)) out.push((await ds.load(ref)).image);
  return out;
}

describe('per-task weights', () => {
  it("a later task leaves an earlier class's detections bit-identical, in memory and after reload", async () => {
    const det = new ContinualDetector({ ...TINY_CONFIG, continual: { ...TINY_CONFIG.continual, weights: 'per-task' } });
    await det.learnTask({ classes: ['tiles'], images: new Map([['tiles', await images('tiles', 'train')]]) });
    const before = await loadSaved(det, 'task1');
    const tests = await images('tiles', 'test');
    const first = det.detect(tests, { className: 'tiles', reconstructions: true });
    const tilesState = structuredClone(det.classes[0]);

    const r2 = await det.learnTask({ classes: ['washer'], images: new Map([['washer', await images('washer', 'train')]]) });
    // The second task trained every parameter: the model did change...
    expect(r2.projection).toBe('none');
    expect(r2.basisRank).toBe(0);
    const washerWeights = det.classWeights('washer');
    const tilesWeights = det.classWeights('tiles');
    const name = 'unet.out.2.weight';
    expect(Array.from(washerWeights[name]!.dataSync())).not.toEqual(Array.from(tilesWeights[name]!.dataSync()));
    // So did its segmenter.
    expect(Array.from(washerWeights['seg.head.weight']!.dataSync())).not.toEqual(Array.from(tilesWeights['seg.head.weight']!.dataSync()));
    // ...and tiles is served exactly as before: same start timestep, calibration, maps and scores.
    expect(det.classes[0]).toEqual(tilesState);
    const second = det.detect(tests, { className: 'tiles', reconstructions: true });
    second.forEach((d, i) => {
      expect(d.rawScore).toBe(first[i]!.rawScore);
      expect(d.map).toEqual(first[i]!.map);
      expect(d.reconstruction).toEqual(first[i]!.reconstruction);
    });
    // An image scores the same alone and in any batch (its noise is seeded by its own pixels).
    const alone = det.detect([tests[3]!], { className: 'tiles' })[0]!;
    const inBatch = det.detect([tests[1]!, tests[3]!, tests[3]!], { className: 'tiles' });
    expect(inBatch[1]!.rawScore).toBe(alone.rawScore);
    expect(inBatch[2]!.rawScore).toBe(alone.rawScore);
    expect(alone.rawScore).toBe(first[3]!.rawScore);
    // Detection of washer images in between swaps weights; tiles still comes back identical.
    det.detect(await images('washer', 'test'), { className: 'washer' });
    expect(det.detect(tests.slice(0, 2), { className: 'tiles' }).map((d) => d.rawScore)).toEqual(first.slice(0, 2).map((d) => d.rawScore));

    // The drift diagnosis agrees: nothing that serves tiles moved.
    const drift = measureDrift(before, det, new Map([['tiles', tests]]));
    expect(drift.weights).toBe('per-task');
    expect(drift.classes[0]!.reconstructionChange).toBe(0);
    expect(drift.classes[0]!.mapChange).toBe(0);
    expect(drift.classes[0]!.calibrationChanged).toBe(false);
    expect(drift.parameters.tiles!.every((g) => g.protection === 'per-task' && g.relativeChange === 0)).toBe(true);

    // Saved and reloaded, both tasks' weights come back: detections are the same.
    const reloaded = await loadSaved(det, 'task2');
    const third = reloaded.detect(tests, { className: 'tiles' });
    third.forEach((d, i) => expect(d.rawScore).toBe(first[i]!.rawScore));
    // Training continues from the latest task's weights, not from the last one detection used.
    expect(Array.from(reloaded.classWeights('washer')[name]!.dataSync())).toEqual(Array.from(washerWeights[name]!.dataSync()));
    // An export carries every task's weights (the latest once) and detects the same.
    const summary = await exportDetector(join(scratch, 'task2'), join(scratch, 'export'));
    expect(summary.weightBytes).toBe(2 * 4 * det.parameterCount());
    const { detector: exported } = await loadExportedDetector(join(scratch, 'export'));
    exported.detect(tests, { className: 'tiles' }).forEach((d, i) => expect(d.rawScore).toBe(first[i]!.rawScore));
    exported.dispose();
    before.dispose();
    reloaded.dispose();
    det.dispose();
  });
});

describe('reconstruction.samples', () => {
  it('averages the maps of independent reconstructions: deterministic, and not the single-sample map', async () => {
    const det = new ContinualDetector({ ...TINY_CONFIG, reconstruction: { ...TINY_CONFIG.reconstruction, samples: 3 } });
    await det.learnTask({ classes: ['tiles'], images: new Map([['tiles', await images('tiles', 'train')]]) });
    const tests = (await images('tiles', 'test')).slice(0, 3);
    const a = det.detect(tests, { className: 'tiles' });
    const b = det.detect([...tests].reverse(), { className: 'tiles' }).reverse();
    a.forEach((d, i) => expect(d.map).toEqual(b[i]!.map));
    det.config.reconstruction.samples = 1;
    const single = det.detect(tests, { className: 'tiles' });
    expect(single[0]!.map).not.toEqual(a[0]!.map);
    expect(() => new ContinualDetector({ reconstruction: { samples: 0 } })).toThrow(/reconstruction\.samples/);
    det.dispose();
  });
});

describe('drift diagnosis with shared weights', () => {
  it('measures the parameter change, the uncovered input energy and the reconstruction change of an earlier class', async () => {
    const det = new ContinualDetector({ ...TINY_CONFIG, continual: { ...TINY_CONFIG.continual, weights: 'shared' } });
    await det.learnTask({ classes: ['tiles'], images: new Map([['tiles', await images('tiles', 'train')]]) });
    const before = await loadSaved(det, 'shared1');
    await det.learnTask({ classes: ['washer'], images: new Map([['washer', await images('washer', 'train')]]) });
    const tests = await images('tiles', 'test');
    const drift = measureDrift(before, det, new Map([['tiles', tests]]));
    const c = drift.classes[0]!;
    expect(c.className).toBe('tiles');
    expect(c.reconstructionChange).toBeGreaterThan(0);
    expect(c.reconstructionError).toBeGreaterThan(0);
    const groups = drift.parameters.tiles!;
    // Projected weights moved; frozen biases and norms did not.
    expect(groups.some((g) => g.protection === 'projected' && g.relativeChange > 0)).toBe(true);
    expect(groups.filter((g) => g.protection === 'unprotected').every((g) => g.relativeChange === 0)).toBe(true);
    const coverage = drift.coverage.tiles!;
    expect(coverage.length).toBeGreaterThan(0);
    for (const l of coverage) {
      expect(l.uncoveredEnergy).toBeGreaterThanOrEqual(0);
      expect(l.uncoveredEnergy).toBeLessThanOrEqual(1);
      expect(l.basisFraction).toBeGreaterThan(0);
    }
    expect(() => measureDrift(det, before, new Map([['tiles', tests]]))).toThrow(/has not learned washer/);
    before.dispose();
    det.dispose();
  });
});

async function loadSaved(det: ContinualDetector, name: string): Promise<ContinualDetector> {
  const dir = join(scratch, name);
  await saveDetector(det, dir);
  return (await loadDetector(dir)).detector;
}
