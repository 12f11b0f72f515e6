import { resolve } from 'node:path';
import type { Command } from 'commander';

interface ExportCliOptions {
  out: string;
  json?: boolean;
}

/** `ofm export --json`: what was written. */
export interface ExportJson {
  checkpoint: string;
  out: string;
  format_version: number;
  bytes: number;
  weight_bytes: number;
  weight_files: number;
  report_bytes: number;
  checkpoint_bytes: number;
  parameters: number;
  image_size: number;
  classes: string[];
  tasks: string[][];
  report: string | null;
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
}

/** `ofm export`: a training checkpoint as a static model for the browser (no GPM bases). */
export function registerExport(program: Command): void {
  program
    .command('export')
    .description('export a checkpoint as a static, browser-loadable model (weights, config, classes and calibration; no GPM bases)')
    .argument('<ckpt>', 'checkpoint directory written by ofm train')
    .requiredOption('--out <dir>', 'export directory (an earlier export there is replaced atomically)')
    .option('--json', 'print one JSON object')
    .addHelpText(
      'after',
      `
The export is a manifest.json (tfjs weights-manifest style, with the config, the classes learned with
their start timestep and calibration, and a format version) plus binary weight shards of at most
4 MiB, checksummed; the run's report (report/) comes along when the checkpoint has one. Serve the
folder as static files and open it in the web demo (pnpm demo --model DIR), or load it with
loadExportedDetector(url) from @ofm/detector/browser. It detects exactly as the checkpoint does;
learning more tasks needs the checkpoint itself.`,
    )
    .action(async (ckpt: string, o: ExportCliOptions) => {
      const { initBackend } = await import('@ofm/tensor');
      const { exportDetector } = await import('@ofm/detector');
      await initBackend();
      // A missing, damaged or foreign checkpoint is a CheckpointError (exit 2).
      const summary = await exportDetector(ckpt, o.out);
      const { meta } = summary;
      const info: ExportJson = {
        checkpoint: resolve(ckpt),
        out: resolve(o.out),
        format_version: meta.version,
        bytes: summary.bytes,
        weight_bytes: summary.weightBytes,
        weight_files: summary.weightFiles,
        report_bytes: summary.reportBytes,
        checkpoint_bytes: summary.checkpointBytes,
        parameters: meta.parameters,
        image_size: meta.config.imageSize,
        classes: meta.classes.map((c) => c.className),
        tasks: meta.tasks.map((t) => t.classes),
        report: meta.report,
      };
      if (o.json) {
        process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
        return;
      }
      const shards = `${info.weight_files} shard${info.weight_files === 1 ? '' : 's'}`;
      const report = info.report ? `, report ${size(info.report_bytes)}` : ', no report';
      process.stdout.write(
        [
          `exported ${info.checkpoint} to ${info.out}: ${size(info.bytes)} (weights ${size(info.weight_bytes)} in ${shards}${report})`,
          `the checkpoint's weights and GPM bases: ${size(info.checkpoint_bytes)}`,
          `model: ${(info.parameters / 1e6).toFixed(2)} M parameters, ${info.image_size} px, classes by task: ${info.tasks.map((t) => t.join(', ')).join(' | ')}`,
          `open it in the web demo: pnpm demo --model ${info.out}`,
          '',
        ].join('\n'),
      );
    });
}
