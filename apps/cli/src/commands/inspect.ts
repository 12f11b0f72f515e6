import type { Command } from 'commander';
import { CliError } from '../errors';
import { checkListedSizes, refuseExport, requireFolder } from '../checks';
import { integer } from '../util';
import { BACKEND_OPTION_HELP } from './info';

interface InspectCliOptions {
  json?: boolean;
  verify?: boolean;
  drift?: string;
  data?: string;
  format: string;
  images: string;
  backend?: string;
}

/** `ofm inspect`: what a checkpoint holds, read from its manifest alone (no weights loaded). */
export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('show a checkpoint: tasks and classes learned, basis ranks and bytes per layer, config, results')
    .argument('<ckpt>', 'checkpoint directory')
    .option('--json', 'print one JSON object')
    .option('--verify', 'also check the SHA-256 of every file (weights, bases, report), and of a training snapshot (without it, only their sizes)')
    .option('--drift <earlier>', "what the tasks learned since checkpoint <earlier> changed for its classes (needs --data; keep a checkpoint per task with 'ofm train --keep-tasks')")
    .option('--data <dir>', '--drift: the dataset the checkpoints were trained on (normal training images of each earlier class)')
    .option('--format <name>', '--drift: dataset layout (mvtec, visa, folder)', 'mvtec')
    .option('--images <n>', '--drift: normal images per class', '16')
    .option('--backend <name>', `--drift: ${BACKEND_OPTION_HELP}`)
    .addHelpText(
      'after',
      `
Without --verify, every file the manifest lists is checked for its size (missing, truncated or
extended files are caught at once); --verify reads every file and checks its SHA-256 too (a byte
changed in place). Exit codes: 0 fine, 2 not a checkpoint, damaged (the file at fault is named) or of
another version.`,
    )
    .action(async (ckpt: string, o: InspectCliOptions) => {
      requireFolder(ckpt, `'${ckpt}'`);
      refuseExport(ckpt, `'${ckpt}'`);
      if (o.drift !== undefined) {
        if (!o.data) throw new CliError('--drift needs --data DIR: the dataset the checkpoints were trained on');
        const { inspectDrift } = await import('./drift');
        await inspectDrift(ckpt, o.drift, { data: o.data, format: o.format, images: integer('--images', o.images, 1), backend: o.backend, json: o.json });
        return;
      }
      const { readDetectorMeta, readSnapshotMeta, snapshotDir } = await import('@ofm/detector');
      const { readManifest, verifyCheckpoint } = await import('@ofm/tensor');
      // A missing, damaged or foreign checkpoint is a CheckpointError (exit 2).
      const snapshot = await readSnapshotMeta(ckpt);
      if (snapshot && o.verify) await verifyCheckpoint(snapshotDir(ckpt));
      else if (snapshot) checkListedSizes(snapshotDir(ckpt), await readManifest(snapshotDir(ckpt)));
      if (snapshot && snapshot.base.length === 0 && (await readManifest(ckpt).catch(() => null)) === null) {
        // Interrupted during its first task: nothing but the snapshot yet.
        const unfinished = { task: 1, classes: snapshot.classes, step: snapshot.step, steps: snapshot.steps, saved_at: snapshot.savedAt };
        process.stdout.write(
          o.json
            ? `${JSON.stringify({ checkpoint: ckpt, tasks: [], unfinished, verified: o.verify === true }, null, 2)}\n`
            : `${ckpt}: no task completed yet; task 1 (${unfinished.classes.join(',')}) trained to step ${unfinished.step}/${unfinished.steps} (snapshot of ${unfinished.saved_at}); ofm train --resume continues it\n`,
        );
        return;
      }
      const manifest = o.verify ? await verifyCheckpoint(ckpt) : await readManifest(ckpt);
      if (!o.verify) checkListedSizes(ckpt, manifest);
      const meta = await readDetectorMeta(ckpt);
      const weights = manifest.weightsManifest.flatMap((g) => g.weights);
      const size = (w: { shape: number[] }) => w.shape.reduce((a, b) => a * b, 1);
      // The model's parameters (the latest task's weights); earlier tasks' copies (per-task weights) apart.
      const parameters = weights.filter((w) => !w.name.startsWith('gpm.') && !w.name.startsWith('tasks.')).reduce((n, w) => n + size(w), 0);
      const taskWeightBytes = weights.filter((w) => w.name.startsWith('tasks.')).reduce((n, w) => n + 4 * size(w), 0);
      const weightsMode = (meta.config.continual as { weights?: string }).weights ?? 'shared';
      const layers = Object.entries(meta.gpm.layers)
        .map(([layer, l]) => ({ layer, kind: l.kind, rank: l.rank, in_dim: l.inDim, fraction: l.inDim ? l.rank / l.inDim : 0, bytes: l.rank * l.inDim * 4 }))
        .sort((a, b) => b.bytes - a.bytes);
      const results = meta.results as { rows?: unknown[] } | undefined;
      const info = {
        checkpoint: ckpt,
        format_version: meta.version,
        saved_at: meta.savedAt,
        backend: meta.backend,
        image_size: meta.config.imageSize,
        parameters,
        /** 'per-task' (each task keeps its weights) or 'shared' (one set, gradient projection). */
        weights_mode: weightsMode,
        /** Bytes of the earlier tasks' own weights (per-task; 0 with shared weights). */
        task_weight_bytes: taskWeightBytes,
        tasks: meta.tasks.map((t) => ({
          index: t.index + 1,
          classes: t.classes,
          steps: t.steps,
          train_seconds: Math.round(t.trainSeconds * 10) / 10,
          final_loss: t.finalLoss,
          /** The segmenter's training time and final focal loss; null for a model without a segmenter. */
          segmenter_seconds: t.segmenterSeconds !== undefined ? Math.round(t.segmenterSeconds * 10) / 10 : null,
          segmenter_loss: t.segmenterLoss ?? null,
          projection: t.projection,
          basis_rank: t.basisRank,
          basis_bytes: t.basisBytes,
        })),
        classes: meta.classes.map((c) => ({
          class: c.className,
          task: c.task + 1,
          t_start: c.tStart,
          /** The start timesteps whose maps detection fuses; null where it uses `t_start` alone. */
          fused_t_starts: c.fused ? c.fused.map((f) => f.tStart) : null,
          train_images: c.trainImages,
          validation_images: c.validationImages,
          score_mean: c.calibration.scoreMean,
          score_std: c.calibration.scoreStd,
        })),
        basis_total_rank: layers.reduce((a, l) => a + l.rank, 0),
        basis_total_bytes: layers.reduce((a, l) => a + l.bytes, 0),
        layers,
        evaluated_tasks: results?.rows?.length ?? 0,
        /** A task interrupted in training, which `ofm train --resume` continues. */
        unfinished: snapshot ? { task: snapshot.task + 1, classes: snapshot.classes, step: snapshot.step, steps: snapshot.steps, saved_at: snapshot.savedAt } : null,
        verified: o.verify === true,
        config: meta.config,
      };
      if (o.json) {
        process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
        return;
      }
      const lines = [
        `checkpoint ${ckpt} (format ${info.format_version}, saved ${info.saved_at} on ${info.backend})`,
        `model: ${(parameters / 1e6).toFixed(2)} M parameters, ${info.image_size} px images, AMN ${meta.config.amn.enabled ? 'on' : 'off'}, ` +
          (weightsMode === 'per-task'
            ? `per-task weights (${info.tasks.length} task(s); earlier tasks' copies ${(taskWeightBytes / 2 ** 20).toFixed(1)} MiB)`
            : `shared weights, projection ${meta.config.continual.projection}`),
        info.verified
          ? `verified: every file matches its size and SHA-256 in the manifest${snapshot ? ' (snapshot included)' : ''}`
          : `checked: every file has the size the manifest gives${snapshot ? ' (snapshot included)' : ''}; contents (SHA-256) only with --verify`,
        ...(info.unfinished
          ? [
              `unfinished: task ${info.unfinished.task} (${info.unfinished.classes.join(',')}) trained to step ${info.unfinished.step}/${info.unfinished.steps} (snapshot of ${info.unfinished.saved_at}); ofm train --resume continues it`,
            ]
          : []),
        '',
        'task  classes                       steps  train s  final loss  basis rank  basis KiB',
        ...info.tasks.map(
          (t) =>
            `${String(t.index).padEnd(4)}  ${t.classes.join(',').padEnd(28).slice(0, 28)}  ${String(t.steps).padStart(5)}  ${t.train_seconds.toFixed(0).padStart(7)}  ${t.final_loss.toFixed(4).padStart(10)}  ${String(t.basis_rank).padStart(10)}  ${(t.basis_bytes / 1024).toFixed(0).padStart(9)}`,
        ),
        '',
        'class         task  t_start      train  validation',
        ...info.classes.map(
          (c) =>
            `${c.class.padEnd(12)}  ${String(c.task).padStart(4)}  ${(c.fused_t_starts ? c.fused_t_starts.join('+') : String(c.t_start)).padStart(11)}  ${String(c.train_images).padStart(5)}  ${String(c.validation_images).padStart(10)}`,
        ),
        '',
        ...(info.basis_total_rank === 0
          ? [`GPM bases: none${weightsMode === 'per-task' ? ' (per-task weights need no projection)' : ''}`]
          : [
              `GPM bases: total rank ${info.basis_total_rank}, ${(info.basis_total_bytes / 1024).toFixed(0)} KiB over ${layers.length} layers; largest:`,
              'layer                                          kind   rank  in dim  used   KiB',
              ...layers.slice(0, 12).map(
                (l) =>
                  `${l.layer.padEnd(45).slice(0, 45)}  ${l.kind.padEnd(5)}  ${String(l.rank).padStart(4)}  ${String(l.in_dim).padStart(6)}  ${(100 * l.fraction).toFixed(0).padStart(3)}%  ${(l.bytes / 1024).toFixed(0).padStart(4)}`,
              ),
            ]),
        '',
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
