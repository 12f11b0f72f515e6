import type { Command } from 'commander';
import { AbortError } from '@ofm/errors';
import { CliError } from '../errors';
import { refuseExport, requireFolder } from '../checks';
import { type DataOptions, FORMATS, openDataset } from '../data';
import { type CommonCliOptions, Progress, withInterrupts } from '../util';
import { loadForInference } from './run-shared';
import { BACKEND_OPTION_HELP } from './info';

interface EvalCliOptions extends DataOptions, CommonCliOptions {
  ckpt: string;
  classes?: string;
}

const METRICS = ['image_auroc', 'image_ap', 'pixel_auroc', 'pixel_ap', 'pixel_aupro'] as const;

/** `ofm eval`: metrics of a checkpoint on the test split of classes it learned, with no task id. */
export function registerEval(program: Command): void {
  program
    .command('eval')
    .description('evaluate a checkpoint on the test split of the classes it learned (no task id)')
    .requiredOption('--ckpt <dir>', 'checkpoint directory written by ofm train')
    .requiredOption('--data <dir>', 'dataset root')
    .option('--format <name>', `dataset layout: ${FORMATS.join(', ')}`, 'mvtec')
    .option('--classes <list>', 'comma-separated classes to evaluate (default: every class the checkpoint learned)')
    .option('--backend <name>', BACKEND_OPTION_HELP)
    .option('--normal-dir <dir>', 'folder format: normal images (default <data>/normal)')
    .option('--abnormal-dir <dir>', 'folder format: anomalous test images (default <data>/abnormal)')
    .option('--mask-dir <dir>', 'folder format: masks (default <data>/mask)')
    .option('--json', 'print one JSON object: per-class metrics and their averages')
    .option('--quiet', 'no progress on stderr')
    .action(async (o: EvalCliOptions) => {
      requireFolder(o.ckpt, `--ckpt '${o.ckpt}'`);
      refuseExport(o.ckpt, `--ckpt '${o.ckpt}'`);
      const { detector, det } = await loadForInference(o.backend, o.ckpt);
      try {
        const learned = detector.classNames();
        const classes = o.classes ? o.classes.split(',').map((s) => s.trim()).filter(Boolean) : learned;
        const unknown = classes.filter((c) => !learned.includes(c));
        if (unknown.length) {
          throw new CliError(`the checkpoint has not learned ${unknown.join(', ')}; it knows: ${learned.join(', ')}`);
        }
        const dataset = await openDataset(o, detector.config.imageSize);
        const missing = classes.filter((c) => !dataset.classes.includes(c));
        if (missing.length) throw new CliError(`the dataset at ${o.data} has no class ${missing.join(', ')}; it has: ${dataset.classes.join(', ')}`);
        const progress = new Progress('eval', o.quiet || o.json === true);
        const perClass: Record<string, Record<string, number | null>> = {};
        await withInterrupts(async (signal) => {
          for (const cls of classes) {
            if (signal.aborted) throw new AbortError();
            const r = await det.evaluateClass(detector, dataset, cls, (done, total) => progress.update(cls, `evaluating ${cls}`, done, total), signal);
            perClass[cls] = r.metrics;
          }
        });
        const average: Record<string, number | null> = {};
        for (const m of METRICS) {
          const vals = classes.map((c) => perClass[c]![m]).filter((v): v is number => typeof v === 'number');
          average[m] = vals.length ? vals.reduce((a, b) => a + b, 0) / vals.length : null;
        }
        if (o.json) {
          process.stdout.write(`${JSON.stringify({ checkpoint: o.ckpt, classes: perClass, average }, null, 2)}\n`);
          return;
        }
        const f = (v: number | null | undefined) => (typeof v === 'number' ? v.toFixed(3) : '  –  ');
        const lines = ['class         image AUROC  image AP  pixel AUROC  pixel AP  AUPRO'];
        for (const c of [...classes, 'average']) {
          const r = c === 'average' ? average : perClass[c]!;
          lines.push(`${c.padEnd(12)}  ${f(r.image_auroc).padStart(11)}  ${f(r.image_ap).padStart(8)}  ${f(r.pixel_auroc).padStart(11)}  ${f(r.pixel_ap).padStart(8)}  ${f(r.pixel_aupro).padStart(5)}`);
        }
        process.stdout.write(`${lines.join('\n')}\n`);
      } finally {
        detector.dispose();
      }
    });
}
