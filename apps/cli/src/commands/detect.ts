import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { CliError } from '../errors';
import { removeOnInterrupt } from '../util';
import { loadForInference } from './run-shared';

interface DetectCliOptions {
  ckpt: string;
  out: string;
  threshold: string;
  backend?: string;
  json?: boolean;
}

/** One image's entry in `scores.json` and in `--json` output. */
export interface DetectJsonImage {
  path: string;
  score: number;
  raw_score: number;
  anomalous: boolean;
  class: string;
  overlay: string;
}

/** `ofm detect`: scores and heatmap overlays for images, with no task id. */
export function registerDetect(program: Command): void {
  program
    .command('detect')
    .description('detect anomalies in images with a trained checkpoint: heatmap overlays (PNG) and scores (JSON)')
    .argument('<images...>', 'image files (PNG, JPEG, ...)')
    .requiredOption('--ckpt <dir>', 'checkpoint directory written by ofm train')
    .requiredOption('--out <dir>', 'output directory for <name>_overlay.png files and scores.json')
    .option('--threshold <z>', 'calibrated score above which an image is called anomalous (standard deviations above the normal validation scores of its class)', '3')
    .option('--backend <name>', 'tfjs backend (default $OFM_BACKEND, else auto)')
    .option('--json', 'print the scores as JSON on stdout')
    .addHelpText(
      'after',
      `
The score is calibrated: 0 is the mean of the class's held-out normal images, 1 one standard deviation
above. Each image is routed to the nearest learned class; no task id is needed. Outputs appear only
when every image was processed (a bad file leaves nothing behind).`,
    )
    .action(async (images: string[], o: DetectCliOptions) => {
      const threshold = Number(o.threshold);
      if (!Number.isFinite(threshold)) throw new CliError(`--threshold must be a number, got "${o.threshold}"`);
      for (const p of images) if (!existsSync(p)) throw new CliError(`image '${p}' does not exist`);
      const { detector, det } = await loadForInference(o.backend, o.ckpt);
      try {
        const { readImage, DatasetError } = await import('@ofm/datasets');
        const size = detector.config.imageSize;
        const inputs: Float32Array[] = [];
        for (const p of images) {
          try {
            inputs.push((await readImage(p, { size })).data);
          } catch (err) {
            if (err instanceof DatasetError) throw new CliError(err.message);
            throw err;
          }
        }
        const detections = detector.detect(inputs);
        const sharp = (await import('sharp')).default;
        const outDir = resolve(o.out);
        const tmp = join(dirname(outDir), `.${basename(outDir)}.tmp-${process.pid}`);
        await rm(tmp, { recursive: true, force: true });
        // Ctrl-C or SIGTERM while the outputs are written removes them: nothing half-written stays.
        const release = removeOnInterrupt(tmp);
        await mkdir(tmp, { recursive: true });
        const used = new Set<string>();
        const entries: DetectJsonImage[] = [];
        try {
          for (let i = 0; i < images.length; i++) {
            const d = detections[i]!;
            let stem = basename(images[i]!, extname(images[i]!));
            while (used.has(stem)) stem = `${stem}_${i}`;
            used.add(stem);
            const overlay = det.overlayHeatmap(inputs[i]!, d.map, size, size, { range: [0, Math.max(threshold * 2, 1)] });
            const file = `${stem}_overlay.png`;
            await sharp(Buffer.from(overlay), { raw: { width: size, height: size, channels: 3 } })
              .resize(Math.max(size, 256), Math.max(size, 256))
              .png()
              .toFile(join(tmp, file));
            entries.push({
              path: resolve(images[i]!),
              score: round(d.score),
              raw_score: round(d.rawScore),
              anomalous: d.score > threshold,
              class: d.className,
              overlay: join(outDir, file),
            });
          }
          const result = { checkpoint: resolve(o.ckpt), threshold, images: entries };
          await writeFile(join(tmp, 'scores.json'), `${JSON.stringify(result, null, 2)}\n`);
          if (existsSync(outDir)) {
            for (const f of await readdir(tmp)) await rename(join(tmp, f), join(outDir, f));
          } else {
            // A new output folder appears whole, in one rename.
            await rename(tmp, outDir);
          }
          if (o.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
          else {
            for (const e of entries) {
              process.stdout.write(`${e.anomalous ? 'ANOMALOUS' : 'normal   '}  score ${e.score.toFixed(2).padStart(7)}  class ${e.class.padEnd(12)}  ${e.path}\n`);
            }
            process.stdout.write(`wrote ${entries.length} overlay(s) and scores.json to ${outDir}\n`);
          }
        } finally {
          await rm(tmp, { recursive: true, force: true });
          release();
        }
      } finally {
        detector.dispose();
      }
    });
}

function round(v: number): number {
  return Math.round(v * 1e4) / 1e4;
}
