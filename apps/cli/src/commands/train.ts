import { cpSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { CliError } from '../errors';
import { preflightTrain } from '../checks';
import { resumeCommand } from './train-resume';
import { type DataOptions, FORMATS, openDataset, tasksOf } from '../data';
import { type CommonCliOptions, Progress, integer, interruptExitCode, isAbort, positiveNumber, withInterrupts } from '../util';
import {
  type TrainerSetup,
  checkpointContents,
  describeRunProgress,
  formatCurve,
  initRuntime,
  lockCheckpoint,
  summaryJson,
} from './run-shared';
import { BACKEND_OPTION_HELP } from './info';

interface TrainCliOptions extends DataOptions, CommonCliOptions {
  setting?: string;
  tasks?: string;
  out?: string;
  resume?: string;
  config?: string;
  steps?: string;
  imageSize?: string;
  projection: boolean;
  preset?: string;
  sharedWeights?: boolean;
  keepTasks?: boolean;
  amn: boolean;
  segmenter: boolean;
  eval: boolean;
  seed?: string;
  snapshots: boolean;
  snapshotEvery?: string;
  snapshotSeconds: string;
}

/** Read a `--config` JSON file of detector config fields, with one clear error when it is not one. */
/** The config input of `--preset NAME` (if given) with the `--config FILE` fields merged over it. */
export async function configWithPreset(preset: string | undefined, file: string | undefined): Promise<Record<string, unknown>> {
  const user = file ? readConfigFile(file) : {};
  if (preset === undefined) return user;
  const { mergeConfigInputs, presetConfig } = await import('@ofm/detector');
  try {
    return mergeConfigInputs(presetConfig(preset), user) as Record<string, unknown>;
  } catch (err) {
    throw new CliError(`--preset: ${(err as Error).message}`);
  }
}

export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new CliError(`--config '${path}' cannot be read; give a JSON file with detector config fields (see the @ofm/detector README)`);
  }
  try {
    const parsed = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
    return parsed;
  } catch (err) {
    throw new CliError(`--config '${path}' is not a JSON object: ${(err as Error).message}`);
  }
}

/** `ofm train`: learn tasks in order, evaluating every class seen after each, checkpointing each task. */
export function registerTrain(program: Command): void {
  program
    .command('train')
    .description('learn classes task after task (continual), evaluate after each task, write checkpoint + report')
    .requiredOption('--data <dir>', 'dataset root')
    .option('--format <name>', `dataset layout: ${FORMATS.join(', ')}`, 'mvtec')
    .option('--setting <name>', 'a continual setting of the paper, e.g. mvtec-14-1, mvtec-3x5, visa-8-1x4')
    .option('--tasks <spec>', 'tasks as "a,b|c": "," joins classes into one task, "|" separates tasks')
    .option('--out <ckpt>', 'checkpoint directory to write (rewritten atomically after each task)')
    .option('--resume <ckpt>', 'continue from this checkpoint (the tasks it holds must start the task list)')
    .option('--preset <name>', 'start from a preset config: quick (the defaults, 32 px), texture (64 px images, 32 px training crops), gpu-128 or gpu-256 (for a GPU backend)')
    .option('--config <file>', 'detector config JSON (partial; merged over the preset; defaults fill the rest)')
    .option('--steps <n>', 'training steps per task (overrides the config)')
    .option('--image-size <n>', 'image size in pixels (overrides the config)')
    .option('--shared-weights', 'one set of weights for every task, protected by gradient projection (One-for-More as published) instead of per-task weights')
    .option('--no-projection', 'ablation: shared weights without gradient projection (shows the forgetting it prevents)')
    .option('--no-amn', 'ablation: no condition network')
    .option('--no-segmenter', 'ablation: no per-task segmenter (the anomaly map is the reconstruction map alone)')
    .option('--no-eval', 'skip the evaluation after each task')
    .option('--keep-tasks', 'also keep a copy of the checkpoint after each task, <ckpt>.task<N> (for ofm inspect --drift)')
    .option('--seed <n>', 'random seed (overrides the config)')
    .option('--backend <name>', BACKEND_OPTION_HELP)
    .option('--normal-dir <dir>', 'folder format: normal images (default <data>/normal)')
    .option('--abnormal-dir <dir>', 'folder format: anomalous test images (default <data>/abnormal)')
    .option('--mask-dir <dir>', 'folder format: masks named like the anomalous images (default <data>/mask)')
    .option('--snapshot-every <steps>', 'also snapshot the task in training every <steps> steps')
    .option('--snapshot-seconds <s>', 'snapshot the task in training at least every <s> seconds', '60')
    .option('--no-snapshots', 'no mid-task snapshots: an interrupted task restarts from its beginning')
    .option('--json', 'print the final summary as one JSON object on stdout')
    .option('--quiet', 'no progress on stderr')
    .addHelpText(
      'after',
      `
Exit codes: 0 done, 2 bad input (or the checkpoint is locked by another process), 1 failure (e.g.
training diverged), 130 interrupted by Ctrl-C (SIGINT), 143 terminated (SIGTERM). Interrupted or killed
(even with SIGKILL), the last complete checkpoint stays intact, and the task in training keeps its
latest snapshot (<ckpt>/snapshot/, taken every --snapshot-seconds, on interrupt and at the end of
training): --resume continues the task from there. One process writes a checkpoint at a time.
The report (report.md, report.json, figures/) is written inside the checkpoint directory, under report/.

Each task keeps its own copy of the weights (continual.weights: per-task), so a later task never
changes how an earlier class is detected; --shared-weights trains one set of weights protected by
gradient projection instead (One-for-More as published; it forgets on real photographs, see
docs/benchmarks.md). Presets: quick (the defaults, 32 px), texture (64 px images trained on 32 px
crops: better defect localisation on real textures at about the same time, docs/benchmarks.md),
gpu-128 and gpu-256 (128 / 256 px, a wider UNet, 1000 steps per task: for --backend webgpu or
tensorflow-gpu; far too slow for a CPU, see the cost per step in the README).

Example:
  ofm synth --out data && ofm train --data data --tasks "tiles|washer|chip" --out model`,
    )
    .action(async (o: TrainCliOptions) => {
      const started = Date.now();
      const out = o.out ?? o.resume;
      if (!out) throw new CliError('give --out CKPT (a new checkpoint directory) or --resume CKPT');
      const configInput = await configWithPreset(o.preset, o.config);
      const overrides = {
        steps: o.steps !== undefined ? integer('--steps', o.steps, 1) : undefined,
        imageSize: o.imageSize !== undefined ? integer('--image-size', o.imageSize, 8, 1024) : undefined,
        seed: o.seed !== undefined ? integer('--seed', o.seed, 0) : undefined,
        projection: o.projection,
        sharedWeights: o.sharedWeights,
        amn: o.amn,
        segmenter: o.segmenter,
      };
      if (o.resume && (o.config || o.preset || overrides.imageSize !== undefined || !o.amn || !o.segmenter || overrides.seed !== undefined || o.sharedWeights)) {
        throw new CliError('--resume keeps the checkpoint\'s model: --preset, --config, --image-size, --seed, --shared-weights, --no-amn and --no-segmenter cannot change it');
      }
      const snapshots = o.snapshots && {
        everySteps: o.snapshotEvery !== undefined ? integer('--snapshot-every', o.snapshotEvery, 1) : undefined,
        everySeconds: positiveNumber('--snapshot-seconds', o.snapshotSeconds),
      };
      // The output folder and the data, checked before anything is built or written.
      await preflightTrain({ ...o, out: o.out, imageSize: overrides.imageSize, configInput });
      const progress = new Progress('train', o.quiet || o.json === true);
      // Training and evaluation read asynchronously, so WebGPU in Node.js can run them.
      const runtime: TrainerSetup = await initRuntime(o.backend, progress, { asyncReads: true });
      // Held from before the checkpoint is read until the command ends: one writer at a time.
      const lock = await lockCheckpoint(resolve(out), 'ofm train', progress);
      try {
        await train(o, { out, configInput, overrides, snapshots, progress, runtime, started });
      } finally {
        await lock.release();
      }
    });
}

interface TrainSetup {
  out: string;
  configInput: Record<string, unknown>;
  overrides: Parameters<TrainerSetup['makeDetector']>[0]['overrides'];
  snapshots: { everySteps?: number; everySeconds: number } | false;
  progress: Progress;
  runtime: TrainerSetup;
  started: number;
}

/** Check what the checkpoint directories hold, build or load the detector, and run. */
async function train(o: TrainCliOptions, { out, configInput, overrides, snapshots, progress, runtime, started }: TrainSetup): Promise<void> {
  // Never overwrite a checkpoint by accident: --out is new, or the checkpoint being continued.
  const target = await checkpointContents(out);
  const inPlace = o.resume !== undefined && resolve(o.resume) === resolve(out);
  if (!o.resume && (target.tasks !== null || target.snapshot)) {
    throw new CliError(
      `--out '${out}' already holds ${target.tasks !== null ? `a checkpoint with ${target.tasks} task(s)` : 'the snapshot of an unfinished first task'}; ` +
        `continue it with --resume ${out}, or choose another --out`,
    );
  }
  if (o.resume && !inPlace && target.tasks !== null) {
    throw new CliError(`--out '${out}' already holds a checkpoint with ${target.tasks} task(s); choose a new --out, or continue it with --resume ${out}`);
  }
  const source = o.resume && !inPlace ? await checkpointContents(o.resume) : target;
  if (o.resume && source.tasks === null) {
    if (!source.snapshot) {
      throw new CliError(`--resume '${o.resume}' is not a checkpoint directory (no manifest.json and no training snapshot there)`);
    }
    if (source.snapshot.base.length > 0) {
      throw new CliError(
        `--resume '${o.resume}' holds only the snapshot of task ${source.snapshot.task + 1}, taken on a checkpoint of ${source.snapshot.base.length} task(s) kept elsewhere; ` +
          `continue with --resume <that checkpoint> --out ${o.resume}`,
      );
    }
  }
  const { detector, previous } = await runtime.makeDetector({ configInput, overrides, resume: o.resume });
  try {
    const dataset = await openDataset(o, detector.config.imageSize);
    const tasks = tasksOf(dataset, o);
    detector.tasks.forEach((t, i) => {
      const want = tasks[i];
      if (!want || want.join(',') !== t.classes.join(',')) {
        throw new CliError(
          `the checkpoint learned task ${i + 1} as "${t.classes.join(',')}" but the task list has "${want?.join(',') ?? '(nothing)'}" there; give the same tasks, extended at the end`,
        );
      }
    });
    if (detector.tasks.length >= tasks.length) {
      throw new CliError(`the checkpoint already holds all ${tasks.length} tasks; add tasks to learn after them`);
    }
    progress.note(
      `${detector.tasks.length ? `resuming after task ${detector.tasks.length}: ` : ''}learning ${tasks.length - detector.tasks.length} task(s) on ${runtime.backend} (${(detector.parameterCount() / 1e6).toFixed(2)} M parameters, ${detector.config.imageSize} px, ${detector.config.training.steps} steps per task)`,
    );
    const before = detector.tasks.length;
    let lastSaved = detector.tasks.length;
    let snapshot: { task: number; step: number; steps: number } | null = null;
    const result = await withInterrupts(
      (signal) =>
        runtime.run({
          dataset,
          tasks,
          detector,
          out: resolve(out),
          previous,
          evaluate: o.eval,
          signal,
          snapshots,
          onProgress: (p) => {
            if (p.kind === 'saved') {
              lastSaved = p.task + 1;
              snapshot = null;
              if (o.keepTasks) keepTaskCopy(p.path, p.task);
              const c = p.report.curve[p.report.curve.length - 1]!;
              progress.note(
                `task ${p.task + 1}/${p.tasks} saved to ${p.path}` +
                  (c.avg_image_auroc !== null ? ` · avg image AUROC ${c.avg_image_auroc.toFixed(3)}` : '') +
                  (c.avg_pixel_auroc !== null ? `, pixel AUROC ${c.avg_pixel_auroc.toFixed(3)}` : ''),
              );
            } else {
              if (p.kind === 'snapshot' || p.kind === 'resume') snapshot = { task: p.task, step: p.step, steps: p.steps };
              describeRunProgress(progress, p);
            }
          },
        }),
      (signal) => progress.warn(`${signal}: stopping after the current step (${signal === 'SIGINT' ? 'press Ctrl-C again' : 'send it again'} to quit at once)`),
    ).catch((err) => {
      if (!isAbort(err)) throw err;
      const kept: string[] = [];
      // Until this run saves a task, the checkpoint continued is still the one --resume named.
      const checkpoint = lastSaved > before || !o.resume ? out : o.resume;
      if (lastSaved > 0) kept.push(`the checkpoint with ${lastSaved} task(s) is intact at ${checkpoint}`);
      const snap = snapshot as { task: number; step: number; steps: number } | null;
      if (snap) kept.push(`task ${snap.task + 1}'s training is kept at step ${snap.step}/${snap.steps} in ${out}/snapshot`);
      throw new CliError(
        kept.length
          ? `interrupted; ${kept.join('; ')}; continue with:\n  ${resumeCommand(o, checkpoint, out)}`
          : 'interrupted before anything was saved; nothing was written',
        interruptExitCode(err),
      );
    });
    const seconds = (Date.now() - started) / 1000;
    if (o.json) {
      process.stdout.write(`${JSON.stringify(summaryJson(result.report, resolve(out), seconds, result.report.tasks.length - before), null, 2)}\n`);
    } else {
      process.stdout.write(formatCurve(result.report, resolve(out), seconds, result.report.tasks.length - before));
    }
  } finally {
    detector.dispose();
  }
}

/** Copy the checkpoint just saved to `<ckpt>.task<N>` (replacing an earlier copy), atomically. */
function keepTaskCopy(ckpt: string, task: number): void {
  const dest = `${ckpt}.task${task + 1}`;
  const tmp = `${dest}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  cpSync(ckpt, tmp, { recursive: true, filter: (src) => !src.endsWith('/snapshot') });
  rmSync(dest, { recursive: true, force: true });
  renameSync(tmp, dest);
}
