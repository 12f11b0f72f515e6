import { existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { type Sample, loadMvtec } from '@ofm/datasets';
import { auroc } from '@ofm/metrics';
import { initBackend, tf } from '@ofm/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContinualDetector } from '../src/model/detector';
import { loadDetector, readDetectorMeta, saveDetector } from '../src/io/persist';
import { runContinual } from '../src/run/continual';
import { TINY_CONFIG, tinyDataset } from './tiny';

let root: string;

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  root = await tinyDataset();
});
afterAll(() => rmSync(dirname(root), { recursive: true, force: true }));

async function images(cls: string): Promise<Float32Array[]> {
  const ds = await loadMvtec(root, { size: 24 });
  const out: Float32Array[] = [];
  for await (const s of ds.train(cls)) out.push(s.image);
  return out;
}

describe('ContinualDetector', () => {
  it('learns two tasks; the second task moves protected weights only outside the first task\'s bases', async () => {
    const det = new ContinualDetector(TINY_CONFIG);
    const r1 = await det.learnTask({ classes: ['tiles'], images: new Map([['tiles', await images('tiles')]]) });
    expect(r1.projection).toBe('none');
    expect(r1.basisRank).toBeGreaterThan(0);
    expect(det.classNames()).toEqual(['tiles']);
    expect(TINY_CONFIG.reconstruction!.tStartCandidates).toContain(det.classes[0]!.tStart);
    expect(det.classes[0]!.selection).toHaveLength(2);

    // Pick a protected layer with a basis and remember its weight.
    const layer = det.gpm.memoryReport().find((m) => m.rank > 0 && m.rank < m.inDim)!;
    const name = `${layer.layer}.weight`;
    const before = tf.clone(det.params.get(name));
    const frozenBias = det.params.names().find((n) => n.startsWith('unet.') && n.endsWith('.bias'))!;
    const biasBefore = tf.clone(det.params.get(frozenBias));
    const u1 = tf.tensor2d(Float32Array.from(det.gpm.basis(layer.layer)!.data), [layer.inDim, layer.rank]);

    const r2 = await det.learnTask({ classes: ['washer'], images: new Map([['washer', await images('washer')]]) });
    expect(r2.projection).toBe('update');
    const after = det.params.get(name);
    const delta = tf.sub(after, before).reshape([layer.inDim, -1]) as tf.Tensor2D;
    const along = tf.norm(tf.matMul(u1, delta, true, false)).dataSync()[0]!;
    const total = tf.norm(delta).dataSync()[0]!;
    expect(total).toBeGreaterThan(0);
    expect(along / total).toBeLessThan(1e-3);
    // Biases are frozen after the first task.
    expect(tf.max(tf.abs(tf.sub(det.params.get(frozenBias), biasBefore))).dataSync()[0]).toBe(0);

    const dets = det.detect((await images('tiles')).slice(0, 3));
    expect(dets).toHaveLength(3);
    for (const d of dets) {
      expect(d.map).toHaveLength(24 * 24);
      expect(Number.isFinite(d.score)).toBe(true);
      expect(['tiles', 'washer']).toContain(d.className);
    }
    expect(() => det.detect([new Float32Array(5)])).toThrow(/24x24 RGB/);
    await expect(det.learnTask({ classes: ['tiles'], images: new Map([['tiles', await images('tiles')]]) })).rejects.toThrow(
      /already learned/,
    );
    det.dispose();
  });

  it('saves and reloads bit-exact, and detects the same', async () => {
    const det = new ContinualDetector(TINY_CONFIG);
    await det.learnTask({ classes: ['chip'], images: new Map([['chip', await images('chip')]]) });
    const dir = join(dirname(root), 'ckpt-a');
    await saveDetector(det, dir);
    const meta = await readDetectorMeta(dir);
    expect(meta.classes.map((c) => c.className)).toEqual(['chip']);
    const { detector: again } = await loadDetector(dir);
    for (const name of det.params.names()) {
      expect(Buffer.from(again.params.get(name).dataSync().buffer).equals(Buffer.from(det.params.get(name).dataSync().buffer))).toBe(true);
    }
    expect(again.gpm.memoryReport().map((m) => m.rank)).toEqual(det.gpm.memoryReport().map((m) => m.rank));
    const imgs = (await images('chip')).slice(0, 2);
    const a = det.detect(imgs);
    const b = again.detect(imgs);
    expect(b.map((d) => d.score)).toEqual(a.map((d) => d.score));

    // evaluate(): the class's metrics from its detections, the task's mean, routing.
    const ds = await loadMvtec(root, { size: 24 });
    const tests: Sample[] = [];
    for await (const s of ds.test('chip')) tests.push(s);
    const evaluation = again.evaluate(new Map([['chip', tests]]));
    const scores = again.detect(tests.map((t) => t.image)).map((d) => d.score);
    expect(evaluation.classes.chip!.image_auroc).toBe(auroc(scores, tests.map((t) => t.label)));
    expect(evaluation.classes.chip!.pixel_auroc).toBeGreaterThan(0);
    expect(evaluation.tasks).toEqual([{ index: 0, classes: ['chip'], metrics: evaluation.classes.chip }]);
    expect(evaluation.routingAccuracy).toBe(1);
    expect(det.evaluate(new Map([['chip', tests]]))).toEqual(evaluation);
    expect(() => again.evaluate(new Map([['tiles', tests]]))).toThrow(/'tiles' was never learned \(learned: chip\)/);
    det.dispose();
    again.dispose();
  });

  it('a continual run writes the checkpoint with results and report, and stops cleanly on abort', async () => {
    const ds = await loadMvtec(root, { size: 24 });
    const out = join(dirname(root), 'run');
    const det = new ContinualDetector(TINY_CONFIG);
    const { report, results } = await runContinual({ dataset: ds, tasks: [['tiles'], ['washer']], detector: det, out });
    expect(results.rows).toHaveLength(2);
    expect(Object.keys(results.rows[1]!)).toEqual(['tiles', 'washer']);
    expect(report.curve).toHaveLength(2);
    expect(report.curve[0]!.image_auroc_forgetting).toBeNull();
    expect(typeof report.curve[1]!.image_auroc_forgetting).toBe('number');
    for (const f of ['report/report.md', 'report/report.json', 'report/figures/curve.png', 'report/figures/samples.png']) {
      expect(existsSync(join(out, f))).toBe(true);
    }
    expect(JSON.parse(readFileSync(join(out, 'report/report.json'), 'utf8')).classes).toEqual(['tiles', 'washer']);

    // Resume: a third task from the checkpoint, aborted at once: the 2-task checkpoint stays intact.
    const { detector: resumed, meta } = await loadDetector(out);
    const controller = new AbortController();
    controller.abort();
    await expect(
      runContinual({
        dataset: ds,
        tasks: [['tiles'], ['washer'], ['chip']],
        detector: resumed,
        out,
        previous: meta.results as never,
        signal: controller.signal,
      }),
    ).rejects.toThrow(/interrupted/);
    expect((await readDetectorMeta(out)).tasks).toHaveLength(2);
    det.dispose();
    resumed.dispose();
  });
});
