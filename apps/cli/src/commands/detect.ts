import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import type { Command } from 'commander';
import { refuseExport, requireFolder, requireOutputFolder } from '../checks';
import { CliError } from '../errors';
import { detectionOverlay, expandImageArgs, outputStems } from '../images';
import { removeOnInterrupt } from '../util';
import { loadForInference } from './run-shared';
import { BACKEND_OPTION_HELP } from './info';

interface DetectCliOptions {
  ckpt: string;
  out?: string;
  glob?: string;
  threshold: string;
  backend?: string;
  json?: boolean;
}

/** One image's entry in `scores.json` and in `--json` output. */
export interface DetectJsonImage {
  /** The image, absolute. */
  path: string;
  score: number;
  raw_score: number;
  anomalous: boolean;
  class: string;
  /** Its heatmap overlay, absolute; null without --out. */
  overlay: string | null;
}

/** Images decoded, detected and written at a time: memory stays bounded on large folders. */
const CHUNK = 64;

/** Move everything in folder `from` into folder `to` (merging subfolders, replacing files). */
async function moveInto(from: string, to: string): Promise<void> {
  for (const name of await readdir(from)) {
    const src = join(from, name);
    const dst = join(to, name);
    if ((await stat(src)).isDirectory() && existsSync(dst) && (await stat(dst)).isDirectory()) await moveInto(src, dst);
    else {
      await rm(dst, { recursive: true, force: true });
      await rename(src, dst);
    }
  }
}

/** `ofm detect`: scores and heatmap overlays for images, with no task id. */
export function registerDetect(program: Command): void {
  program
    .command('detect')
    .description('detect anomalies in images with a trained checkpoint: scores, and heatmap overlays (PNG) with --out')
    .argument('<images...>', 'image files (PNG, JPEG, WebP, TIFF), folders (searched recursively) or quoted globs (\'data/**/test/*/*.png\')')
    .requiredOption('--ckpt <dir>', 'checkpoint directory written by ofm train')
    .option('--out <dir>', 'write a heatmap overlay per image and scores.json here (without it, only the scores are printed)')
    .option('--glob <pattern>', "in folders, only images whose path below the folder matches, e.g. '**/*.png', 'test/*/0*.png'")
    .option('--threshold <z>', 'calibrated score above which an image is called anomalous (standard deviations above the normal validation scores of its class)', '3' /* = DEFAULT_SCORE_THRESHOLD of @ofm/detector */)
    .option('--backend <name>', BACKEND_OPTION_HELP)
    .option('--json', 'print the scores as JSON on stdout')
    .addHelpText(
      'after',
      `
The score is calibrated: 0 is the mean of the class's held-out normal images, 1 one standard deviation
above. Each image is routed to the nearest learned class; no task id is needed.

With --out, each image gets <name>_overlay.png, where <name> is the image's name (below the folder it
was found in, e.g. good/000_overlay.png), with parent folders added where names would clash;
scores.json and the printed lines say which overlay belongs to which image. Outputs appear only when
every image was processed (a bad file leaves nothing behind).

Examples:
  ofm detect photo.png --ckpt model --json
  ofm detect shots/ --glob '**/*.jpg' --ckpt model --out detections`,
    )
    .action(async (args: string[], o: DetectCliOptions) => {
      const threshold = Number(o.threshold);
      if (!Number.isFinite(threshold)) throw new CliError(`--threshold must be a number, got "${o.threshold}"`);
      const images = expandImageArgs(args, o.glob);
      requireFolder(o.ckpt, `--ckpt '${o.ckpt}'`);
      refuseExport(o.ckpt, `--ckpt '${o.ckpt}'`);
      if (o.out !== undefined) requireOutputFolder(o.out, '--out');
      const { detector, det } = await loadForInference(o.backend, o.ckpt);
      const outDir = o.out !== undefined ? resolve(o.out) : null;
      const tmp = outDir ? join(dirname(outDir), `.${basename(outDir)}.tmp-${process.pid}`) : null;
      // Ctrl-C or SIGTERM while the outputs are made removes them: nothing half-written stays.
      const release = tmp ? removeOnInterrupt(tmp) : () => {};
      try {
        const { decodeImage, DatasetError } = await import('@ofm/datasets');
        const size = detector.config.imageSize;
        const stems = outputStems(images);
        if (tmp) {
          await rm(tmp, { recursive: true, force: true });
          await mkdir(tmp, { recursive: true });
        }
        const entries: DetectJsonImage[] = [];
        for (let start = 0; start < images.length; start += CHUNK) {
          const chunk = images.slice(start, start + CHUNK);
          const inputs: Float32Array[] = [];
          const sources: { width: number; height: number }[] = [];
          // Each file is read once: decoded at the model's size here, drawn again for its overlay.
          const files: Uint8Array[] = [];
          for (const image of chunk) {
            try {
              const bytes = await readFile(image.path);
              const decoded = await decodeImage(bytes, { size, source: image.path });
              inputs.push(decoded.data);
              sources.push({ width: decoded.sourceWidth, height: decoded.sourceHeight });
              if (tmp) files.push(bytes);
            } catch (err) {
              // An undecodable image is a DatasetError (exit 2); a file that cannot be read, a system error.
              if (err instanceof DatasetError) throw err;
              if ((err as NodeJS.ErrnoException).code) throw new CliError(`cannot read ${image.path}: ${(err as Error).message}`);
              throw err;
            }
          }
          const detections = await detector.detectAsync(inputs);
          for (let j = 0; j < chunk.length; j++) {
            const d = detections[j]!;
            let overlayPath: string | null = null;
            if (tmp && outDir) {
              const file = `${stems[start + j]}_overlay.png`;
              // The map goes back onto the image at the image's own aspect ratio (within 256-1024 px).
              const png = await detectionOverlay(files[j]!, sources[j]!, d, size, threshold);
              await mkdir(dirname(join(tmp, file)), { recursive: true });
              await writeFile(join(tmp, file), png);
              overlayPath = join(outDir, file);
            }
            entries.push({
              path: resolve(chunk[j]!.path),
              score: round(d.score),
              raw_score: round(d.rawScore),
              anomalous: d.score > threshold,
              class: d.className,
              overlay: overlayPath,
            });
          }
        }
        const result = { checkpoint: resolve(o.ckpt), threshold, images: entries };
        if (tmp && outDir) {
          await writeFile(join(tmp, 'scores.json'), `${JSON.stringify(result, null, 2)}\n`);
          if (existsSync(outDir)) await moveInto(tmp, outDir);
          // A new output folder appears whole, in one rename.
          else await rename(tmp, outDir);
        }
        if (o.json) {
          process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
          return;
        }
        entries.forEach((e, i) => {
          const overlay = e.overlay && outDir ? `  ->  ${relative(outDir, e.overlay)}` : '';
          process.stdout.write(
            `${e.anomalous ? 'ANOMALOUS' : 'normal   '}  score ${e.score.toFixed(2).padStart(7)}  class ${e.class.padEnd(12)}  ${images[i]!.shown}${overlay}\n`,
          );
        });
        process.stdout.write(
          outDir
            ? `wrote ${entries.length} overlay(s) and scores.json (which overlay is which image) to ${outDir}\n`
            : `${entries.length} image(s) scored; --out DIR also writes a heatmap overlay of each and scores.json\n`,
        );
      } finally {
        if (tmp) await rm(tmp, { recursive: true, force: true });
        release();
        detector.dispose();
      }
    });
}

function round(v: number): number {
  return Math.round(v * 1e4) / 1e4;
}
