import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { CliError, EXIT } from '../errors';
import { FORMATS, openDataset, tasksOf } from '../data';
import { Progress, integer, isAbort, withInterrupts } from '../util';
import { type TrainerSetup, describeRunProgress, initRuntime, summaryJson, formatCurve } from './run-shared';

interface TrainCliOptions {
  data: string;
  format: string;
  setting?: string;
  tasks?: string;
  out?: string;
  resume?: string;
  config?: string;
  steps?: string;
  imageSize?: string;
  projection: boolean;
  amn: boolean;
  eval: boolean;
  seed?: string;
  backend?: string;
  json?: boolean;
  quiet?: boolean;
  normalDir?: string;
  abnormalDir?: string;
  maskDir?: string;
}

function readConfigFile(path: string): Record<string, unknown> {
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
    .option('--config <file>', 'detector config JSON (partial; defaults fill the rest)')
    .option('--steps <n>', 'training steps per task (overrides the config)')
    .option('--image-size <n>', 'image size in pixels (overrides the config)')
    .option('--no-projection', 'ablation: no gradient projection (shows the forgetting it prevents)')
    .option('--no-amn', 'ablation: no condition network')
    .option('--no-eval', 'skip the evaluation after each task')
    .option('--seed <n>', 'random seed (overrides the config)')
    .option('--backend <name>', 'tfjs backend: auto, tensorflow-gpu, tensorflow, wasm, cpu (default $OFM_BACKEND, else auto)')
    .option('--normal-dir <dir>', 'folder format: normal images (default <data>/normal)')
    .option('--abnormal-dir <dir>', 'folder format: anomalous test images (default <data>/abnormal)')
    .option('--mask-dir <dir>', 'folder format: masks named like the anomalous images (default <data>/mask)')
    .option('--json', 'print the final summary as one JSON object on stdout')
    .option('--quiet', 'no progress on stderr')
    .addHelpText(
      'after',
      `
Exit codes: 0 done, 2 bad input, 1 failure, 130 interrupted (the last complete checkpoint stays intact;
continue with --resume). The report (report.md, report.json, figures/) is written inside the checkpoint
directory, under report/.

Example:
  ofm synth --out data && ofm train --data data --tasks "tiles|washer|chip" --out model`,
    )
    .action(async (o: TrainCliOptions) => {
      const started = Date.now();
      const out = o.out ?? o.resume;
      if (!out) throw new CliError('give --out CKPT (a new checkpoint directory) or --resume CKPT');
      const configInput: Record<string, unknown> = o.config ? readConfigFile(o.config) : {};
      const overrides = {
        steps: o.steps !== undefined ? integer('--steps', o.steps, 1) : undefined,
        imageSize: o.imageSize !== undefined ? integer('--image-size', o.imageSize, 8, 1024) : undefined,
        seed: o.seed !== undefined ? integer('--seed', o.seed, 0) : undefined,
        projection: o.projection,
        amn: o.amn,
      };
      if (o.resume && (o.config || overrides.imageSize !== undefined || !o.amn || overrides.seed !== undefined)) {
        throw new CliError('--resume keeps the checkpoint\'s model: --config, --image-size, --seed and --no-amn cannot change it');
      }
      if (o.resume && !existsSync(join(o.resume, 'manifest.json'))) {
        throw new CliError(`--resume '${o.resume}' is not a checkpoint directory (no manifest.json there)`);
      }
      const progress = new Progress('train', o.quiet || o.json === true);
      const runtime: TrainerSetup = await initRuntime(o.backend, progress);
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
        let lastSaved = detector.tasks.length;
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
              onProgress: (p) => {
                if (p.kind === 'saved') {
                  lastSaved = p.task + 1;
                  const c = p.report.curve[p.report.curve.length - 1]!;
                  progress.note(
                    `task ${p.task + 1}/${p.tasks} saved to ${p.path}` +
                      (o.eval ? ` · avg image AUROC ${c.avg_image_auroc.toFixed(3)}, pixel AUROC ${c.avg_pixel_auroc.toFixed(3)}` : ''),
                  );
                } else describeRunProgress(progress, p);
              },
            }),
          () => progress.note('interrupt: stopping after the current step (press Ctrl-C again to quit at once)'),
        ).catch((err) => {
          if (isAbort(err)) {
            throw new CliError(
              lastSaved > 0
                ? `interrupted; the checkpoint with ${lastSaved} task(s) is intact at ${out}; continue with: ofm train --resume ${out} ...`
                : 'interrupted before the first task finished; nothing was written',
              EXIT.interrupted,
            );
          }
          throw err;
        });
        const seconds = (Date.now() - started) / 1000;
        if (o.json) {
          process.stdout.write(`${JSON.stringify(summaryJson(result.report, resolve(out), seconds), null, 2)}\n`);
        } else {
          process.stdout.write(formatCurve(result.report, resolve(out), seconds));
        }
      } finally {
        detector.dispose();
      }
    });
}
