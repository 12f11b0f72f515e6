/**
 * Reliability of training (issue: interrupts, corrupt files, bad numbers and long runs lose
 * nothing), in process on the tiny config: a run interrupted mid-task continues from its snapshot
 * to the same bits as an uninterrupted run; a NaN gradient is refused and the model keeps its last
 * good state; NaN weights never reach a checkpoint; tensor memory stays flat over many steps.
 */
import { rmSync } from 'node:fs';
import { readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { type AnomalyDataset, loadMvtec } from '@ofm/datasets';
import type { DiffusionTrainer, DiffusionTrainerOptions } from '@ofm/diffusion';
import { CheckpointError, initBackend, loadCheckpointArrays, tf } from '@ofm/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DetectorConfigInput } from '../src/config/config';
import { ContinualDetector, type TrainingFault, TrainingFaultError } from '../src/model/detector';
import { loadDetector, readDetectorMeta, saveDetector } from '../src/io/persist';
import { type RunProgress, type RunResults, runContinual } from '../src/run/continual';
import { loadTrainSnapshot } from '../src/io/snapshot';
import { TINY_CONFIG, tinyDataset } from './tiny';

let root: string;
let dataset: AnomalyDataset;

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  root = await tinyDataset(['tiles', 'washer']);
  dataset = await loadMvtec(root, { size: 24 });
});
afterAll(() => rmSync(dirname(root), { recursive: true, force: true }));

const STEPS = 10;
const config: DetectorConfigInput = { ...TINY_CONFIG, training: { ...TINY_CONFIG.training, steps: STEPS } };

async function images(cls: string): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for await (const s of dataset.train(cls)) out.push(s.image);
  return out;
}

/** Every weight and basis of a checkpoint as bytes, by name. */
async function arraysOf(dir: string): Promise<Map<string, Buffer>> {
  const { arrays } = await loadCheckpointArrays(dir);
  return new Map(Object.entries(arrays).map(([name, a]) => [name, Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength)]));
}

type Poison = (grads: Readonly<Record<string, tf.Tensor>>, step: number) => Record<string, tf.Tensor> | undefined;

/** A detector whose trainer passes every gradient through `poison` first (a NaN injector). */
class FaultyDetector extends ContinualDetector {
  constructor(
    cfg: DetectorConfigInput,
    public poison: Poison,
  ) {
    super(cfg);
  }

  protected override makeTrainer(options: DiffusionTrainerOptions): DiffusionTrainer {
    const trainer = super.makeTrainer(options);
    trainer.transformGradients = (grads, info) => this.poison(grads, info.step);
    return trainer;
  }
}

function paramsBytes(det: ContinualDetector): Map<string, Buffer> {
  return new Map(det.params.entries().map(([n, v]) => [n, Buffer.from((v.dataSync() as Float32Array).slice().buffer)]));
}

describe('mid-task snapshots', () => {
  it('an interrupted second task continues from its snapshot to the same bits as an uninterrupted run', async () => {
    const tasks = [['tiles'], ['washer']];
    const refDir = join(dirname(root), 'ref');
    const ref = new ContinualDetector(config);
    await runContinual({ dataset, tasks, detector: ref, out: refDir, snapshots: false });
    ref.dispose();

    // Interrupt task 2 after step 5 (snapshots every 2 steps, and one on abort).
    const dir = join(dirname(root), 'interrupted');
    const first = new ContinualDetector(config);
    const controller = new AbortController();
    const events: RunProgress[] = [];
    await expect(
      runContinual({
        dataset,
        tasks,
        detector: first,
        out: dir,
        signal: controller.signal,
        snapshots: { everySteps: 2 },
        onProgress: (p) => {
          events.push(p);
          if (p.kind === 'learn' && p.task === 1 && p.phase === 'train' && p.done === 5) controller.abort();
        },
      }),
    ).rejects.toThrow(/interrupted/);
    first.dispose();
    const snapSteps = events.filter((e) => e.kind === 'snapshot').map((e) => (e.kind === 'snapshot' ? `${e.task}:${e.step}` : ''));
    // Task 1: every 2 steps and at its end; task 2: steps 2 and 4, and 5 on abort.
    expect(snapSteps).toEqual(['0:2', '0:4', '0:6', '0:8', '0:10', '1:2', '1:4', '1:5']);
    // The consolidated checkpoint holds task 1 only; the snapshot is of task 2 at step 5.
    expect((await readDetectorMeta(dir)).tasks).toHaveLength(1);
    const snap = await loadTrainSnapshot(dir);
    expect(snap?.meta).toMatchObject({ task: 1, classes: ['washer'], step: 5, steps: STEPS });
    expect(snap?.snapshot.losses).toHaveLength(5);

    // A new process, as `ofm train --resume` would: load the checkpoint and go on.
    const { detector, meta } = await loadDetector(dir);
    const resumed: RunProgress[] = [];
    await runContinual({ dataset, tasks, detector, out: dir, previous: meta.results as RunResults, onProgress: (p) => resumed.push(p) });
    expect(resumed.find((p) => p.kind === 'resume')).toMatchObject({ task: 1, step: 5, steps: STEPS });
    expect(resumed.find((p) => p.kind === 'learn' && p.phase === 'train')).toMatchObject({ done: 6 });
    detector.dispose();

    const want = await arraysOf(refDir);
    const got = await arraysOf(dir);
    expect([...got.keys()]).toEqual([...want.keys()]);
    for (const [name, bytes] of want) expect(got.get(name)!.equals(bytes), name).toBe(true);
    const [a, b] = [await readDetectorMeta(refDir), await readDetectorMeta(dir)];
    expect(b.tasks.map((t) => [t.finalLoss, t.lossCurve])).toEqual(a.tasks.map((t) => [t.finalLoss, t.lossCurve]));
    expect(b.classes.map((c) => [c.tStart, c.calibration])).toEqual(a.classes.map((c) => [c.tStart, c.calibration]));
    // The consolidated save replaced the snapshot.
    expect(await readdir(dir)).not.toContain('snapshot');
  });

  it('does not continue from a damaged snapshot or one taken with another config, and says why', async () => {
    const dir = join(dirname(root), 'not-continued');
    /** Run task 1 until step 3, leaving the snapshot taken on abort. */
    const interrupted = async () => {
      const det = new ContinualDetector(config);
      const controller = new AbortController();
      await expect(
        runContinual({
          dataset,
          tasks: [['tiles']],
          detector: det,
          out: dir,
          signal: controller.signal,
          onProgress: (p) => p.kind === 'learn' && p.done === 3 && controller.abort(),
        }),
      ).rejects.toThrow(/interrupted/);
      det.dispose();
      expect((await loadTrainSnapshot(dir))?.meta.step).toBe(3);
    };
    const notices = async (cfg: DetectorConfigInput) => {
      const out: string[] = [];
      const det = new ContinualDetector(cfg);
      await runContinual({ dataset, tasks: [['tiles']], detector: det, out: dir, onProgress: (p) => p.kind === 'notice' && out.push(p.message) });
      det.dispose();
      await rm(dir, { recursive: true });
      return out.join('\n');
    };
    await interrupted();
    const shard = join(dir, 'snapshot', 'group1-shard1of1.bin');
    const bytes = await readFile(shard);
    bytes[100] ^= 0xff;
    await writeFile(shard, bytes);
    expect(await notices(config)).toMatch(/ignoring the training snapshot in .*: .*snapshot\/group1-shard1of1\.bin fails its SHA-256 check/);
    await interrupted();
    expect(await notices({ ...config, training: { ...config.training, steps: STEPS + 1 } })).toMatch(
      /not continuing from the training snapshot .*another config.*task 1 starts from its beginning/,
    );
  });
});

describe('non-finite values', () => {
  it('a NaN gradient refuses the step, keeps the last good weights, and training goes on with the next batch', async () => {
    const victim = 'unet.input_blocks.1.0.out_layers.3.weight';
    let attempts = 0;
    const det = new FaultyDetector(config, (grads, step) => {
      if (step !== 3) return undefined;
      attempts += 1;
      return attempts === 1 ? { [victim]: tf.fill(grads[victim]!.shape, Number.NaN) } : undefined;
    });
    expect(det.params.names()).toContain(victim);
    let atStep3: Map<string, Buffer> | undefined;
    let atFault: Map<string, Buffer> | undefined;
    const faults: TrainingFault[] = [];
    const record = await det.learnTask(
      { classes: ['tiles'], images: new Map([['tiles', await images('tiles')]]) },
      {
        onProgress: (p) => {
          if (p.phase === 'train' && p.done === 3) atStep3 = paramsBytes(det);
        },
        onFault: (f) => {
          faults.push(f);
          atFault = paramsBytes(det);
        },
      },
    );
    expect(faults).toEqual([{ task: 0, step: 4, kind: 'gradient', loss: expect.any(Number), layer: victim, consecutive: 1, limit: 3 }]);
    expect(Number.isFinite(faults[0]!.loss)).toBe(true);
    // Rolled back: the weights right after the refused step are those after step 3, bit for bit.
    for (const [name, bytes] of atStep3!) expect(atFault!.get(name)!.equals(bytes), name).toBe(true);
    expect(record).toMatchObject({ faults: 1, steps: STEPS });
    expect(record.lossCurve.every(Number.isFinite)).toBe(true);
    for (const [, v] of det.params.entries()) expect(tf.all(tf.isFinite(v)).dataSync()[0]).toBe(1);
    det.dispose();
  });

  it('stops after 3 refused steps in a row, naming the step, the loss, the layer and the options to change', async () => {
    const victim = 'unet.middle_block.1.qkv.weight';
    const det = new FaultyDetector(config, (grads, step) =>
      step >= 2 ? { [victim]: tf.fill(grads[victim]!.shape, Number.POSITIVE_INFINITY) } : undefined,
    );
    let atStep2: Map<string, Buffer> | undefined;
    const err = await det
      .learnTask(
        { classes: ['tiles'], images: new Map([['tiles', await images('tiles')]]) },
        {
          onProgress: (p) => {
            if (p.phase === 'train' && p.done === 2) atStep2 = paramsBytes(det);
          },
        },
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TrainingFaultError);
    expect((err as TrainingFaultError).fault).toMatchObject({ step: 3, consecutive: 3, kind: 'gradient', layer: victim });
    expect((err as Error).message).toMatch(
      /^task 1, step 3: 3 steps in a row had non-finite values \(last: gradient, loss [\d.]+, first non-finite gradient in unet\.middle_block\.1\.qkv\.weight\); .*Lower training\.lr \(now 0\.002\) or training\.clipGradNorm \(now 1\)/,
    );
    const now = paramsBytes(det);
    for (const [name, bytes] of atStep2!) expect(now.get(name)!.equals(bytes), name).toBe(true);
    det.dispose();
  });

  it('refuses training images with NaN, naming the class and the image', async () => {
    const det = new ContinualDetector(config);
    const imgs = await images('tiles');
    imgs[2] = Float32Array.from(imgs[2]!);
    imgs[2]![7] = Number.NaN;
    await expect(det.learnTask({ classes: ['tiles'], images: new Map([['tiles', imgs]]) })).rejects.toThrow(
      /class 'tiles': training image 2 holds NaN at value 7/,
    );
    det.dispose();
  });

  it('never writes NaN weights into a checkpoint: the save is refused and the previous checkpoint stays', async () => {
    const det = new ContinualDetector(config);
    const dir = join(dirname(root), 'nan-save');
    await saveDetector(det, dir);
    const before = await arraysOf(dir);
    const name = det.params.names()[4]!;
    const v = det.params.get(name);
    v.assign(tf.fill(v.shape, Number.NaN));
    const err = await saveDetector(det, dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointError);
    expect((err as CheckpointError).code).toBe('non-finite');
    expect((err as Error).message).toContain(`array '${name}' holds NaN`);
    const after = await arraysOf(dir);
    for (const [n, bytes] of before) expect(after.get(n)!.equals(bytes)).toBe(true);
    det.dispose();
  });
});

describe('long runs', () => {
  it('keep tensor count and bytes flat over 200 steps of a projected task with snapshots', async () => {
    const steps = 200;
    const first = new ContinualDetector(config);
    await first.learnTask({ classes: ['tiles'], images: new Map([['tiles', await images('tiles')]]) }); // bases for projection
    const dir = join(dirname(root), 'long');
    await saveDetector(first, dir);
    first.dispose();
    const { detector: det } = await loadDetector(dir, { training: { steps, batchSize: 2 } });
    const memory: { numTensors: number; numBytes: number }[] = [];
    let snapshots = 0;
    await det.learnTask(
      { classes: ['washer'], images: new Map([['washer', await images('washer')]]) },
      {
        onProgress: (p) => {
          if (p.phase === 'train') memory[p.done] = { numTensors: tf.memory().numTensors, numBytes: tf.memory().numBytes };
        },
        snapshots: {
          everySteps: 40,
          save: async () => {
            snapshots += 1;
          },
        },
      },
    );
    expect(det.tasks[1]!.projection).toBe('update');
    expect(snapshots).toBe(steps / 40);
    // After warm-up (step 20), not one tensor or byte more at any later step.
    for (let s = 21; s <= steps; s++) expect(memory[s], `step ${s}`).toEqual(memory[20]);
    det.dispose();
  });
});
