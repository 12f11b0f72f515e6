import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { CliError } from '../errors';
import { ofmCommand, shellQuote } from '../invocation';
import { Progress, integer, interruptExitCode, isAbort, withInterrupts } from '../util';
import { describeRunProgress, formatCurve, initRuntime, summaryJson } from './run-shared';
import { BACKEND_OPTION_HELP } from './info';

/** The three classes of the quick start: one texture and two objects of the synthetic dataset. */
export const QUICKSTART_CLASSES = ['tiles', 'washer', 'chip'];

interface QuickstartCliOptions {
  out: string;
  steps?: string;
  imageSize?: string;
  backend?: string;
  json?: boolean;
  quiet?: boolean;
}

/** `ofm quickstart`: synthetic data, three classes learned as three tasks, evaluation and report. */
export function registerQuickstart(program: Command): void {
  program
    .command('quickstart')
    .description(`generate the synthetic dataset, learn ${QUICKSTART_CLASSES.join(', ')} as three tasks, evaluate, and write the report`)
    .option('--out <dir>', 'working directory (data/ and model/ inside)', 'ofm-quickstart')
    .option('--steps <n>', 'training steps per task (default: the detector default)')
    .option('--image-size <n>', 'image size in pixels (default: the detector default); smaller is faster, larger sees finer defects')
    .option('--backend <name>', BACKEND_OPTION_HELP)
    .option('--json', 'print the final summary as JSON')
    .option('--quiet', 'no progress on stderr')
    .action(async (o: QuickstartCliOptions) => {
      const started = Date.now();
      const root = resolve(o.out);
      const data = join(root, 'data');
      const model = join(root, 'model');
      const progress = new Progress('quickstart', o.quiet || o.json === true);
      // Options first: a typo fails at once, before the dataset is generated.
      const steps = o.steps !== undefined ? integer('--steps', o.steps, 1) : undefined;
      const imageSize = o.imageSize !== undefined ? integer('--image-size', o.imageSize, 8, 1024) : undefined;
      if (existsSync(join(model, 'manifest.json'))) {
        throw new CliError(`${model} already holds a checkpoint; choose another --out or remove it`);
      }
      // The same training and evaluation as `ofm train`: asynchronous reads, so WebGPU can run it.
      const runtime = await initRuntime(o.backend, progress, { asyncReads: true });
      // The model is built first: a size it cannot take is refused before anything is written.
      const { detector } = await runtime.makeDetector({ overrides: { steps, imageSize } });
      try {
        const { loadMvtec, synth } = await import('@ofm/datasets');
        if (!existsSync(join(data, 'synth.json'))) {
          progress.note(`generating the synthetic dataset in ${data}`);
          // Drawn at 64 px, or at the model's size when larger (the loader resizes to the model's size).
          await synth({ out: data, classes: QUICKSTART_CLASSES, seed: 0, size: Math.max(64, detector.config.imageSize) });
        }
        const dataset = await loadMvtec(data, { size: detector.config.imageSize });
        progress.note(
          `learning ${QUICKSTART_CLASSES.join(' → ')} on ${runtime.backend} (${(detector.parameterCount() / 1e6).toFixed(2)} M parameters, ${detector.config.imageSize} px, ${detector.config.training.steps} steps per task)`,
        );
        const result = await withInterrupts((signal) =>
          runtime.run({
            dataset,
            tasks: QUICKSTART_CLASSES.map((c) => [c]),
            detector,
            out: model,
            signal,
            onProgress: (p) => {
              if (p.kind === 'saved') progress.note(`task ${p.task + 1}/${p.tasks} saved to ${p.path}`);
              else describeRunProgress(progress, p);
            },
          }),
        ).catch((err) => {
          if (isAbort(err)) {
            throw new CliError(
              `interrupted; completed tasks (and a snapshot of the task in training) are kept in ${model}; continue with:\n  ` +
                [ofmCommand(), 'train', '--resume', model, '--data', data, '--tasks', QUICKSTART_CLASSES.join('|'), ...(o.backend ? ['--backend', o.backend] : [])]
                  .map((a, i) => (i === 0 ? a : shellQuote(a)))
                  .join(' '),
              interruptExitCode(err),
            );
          }
          throw err;
        });
        const seconds = (Date.now() - started) / 1000;
        if (o.json) process.stdout.write(`${JSON.stringify(summaryJson(result.report, model, seconds), null, 2)}\n`);
        else process.stdout.write(formatCurve(result.report, model, seconds));
      } finally {
        detector.dispose();
      }
    });
}
