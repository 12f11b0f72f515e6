/**
 * Writing a generated dataset atomically (Node-only): every file goes into a temporary folder
 * next to the target, which is renamed into place at the end, so a failed or interrupted run
 * never leaves a half-written dataset behind. PNG encoding runs on sharp's thread pool with a few
 * writes in flight while the caller renders the next image. Shared by `synth` and
 * `writePhotoDataset`.
 */
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { DatasetError } from '../errors';
import { type EncodablePixels, encodePng } from './node';

/** True when `path` does not exist or is an empty folder. */
export async function isEmptyOrMissing(path: string): Promise<boolean> {
  try {
    const s = await stat(path);
    if (!s.isDirectory()) return false;
    return (await readdir(path)).length === 0;
  } catch {
    return true;
  }
}

/** Writes files into the temporary folder of {@link writeDatasetAtomically}. */
export interface DatasetWriter {
  /** The temporary folder (renamed to the target at the end). */
  readonly root: string;
  /** Encode `pixels` as PNG at `relativePath` (below the root); resolves once the write is queued. */
  png(relativePath: string, pixels: EncodablePixels): Promise<void>;
  /** Write a text file at `relativePath` (below the root). */
  text(relativePath: string, content: string): Promise<void>;
}

/** Most PNG writes in flight at once. */
const IN_FLIGHT = 8;

/**
 * Run `fill` with a writer into a temporary folder next to `out`, then rename the folder to
 * `out`. On any error (or abort thrown by `fill`) the temporary folder is removed and the error
 * rethrown. `out` must not exist or be empty unless `overwrite`.
 * @throws {DatasetError} when `out` exists and is not empty (without `overwrite`).
 */
export async function writeDatasetAtomically<T>(
  out: string,
  options: { overwrite?: boolean },
  fill: (writer: DatasetWriter) => Promise<T>,
): Promise<T> {
  if (!options.overwrite && !(await isEmptyOrMissing(out))) {
    throw new DatasetError('already exists and is not empty; choose another folder or overwrite it', out);
  }
  const temp = join(dirname(out), `.${basename(out)}.partial-${process.pid}-${Date.now().toString(36)}`);
  await mkdir(dirname(out), { recursive: true });
  await mkdir(temp);

  const inFlight = new Set<Promise<void>>();
  const failures: unknown[] = [];
  const writer: DatasetWriter = {
    root: temp,
    async png(relativePath, pixels) {
      const path = join(temp, relativePath);
      const task: Promise<void> = (async () => {
        await mkdir(dirname(path), { recursive: true });
        await writeFile(path, await encodePng(pixels));
      })()
        .catch((error: unknown) => {
          failures.push(error);
        })
        .finally(() => inFlight.delete(task));
      inFlight.add(task);
      if (inFlight.size >= IN_FLIGHT) await Promise.race(inFlight);
      if (failures.length > 0) throw failures[0];
    },
    async text(relativePath, content) {
      const path = join(temp, relativePath);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, content);
    },
  };
  try {
    const result = await fill(writer);
    await Promise.all(inFlight);
    if (failures.length > 0) throw failures[0];
    if (!(await isEmptyOrMissing(out))) {
      if (!options.overwrite) throw new DatasetError('appeared while generating; not replacing it', out);
      const old = `${temp}.old`;
      await rename(out, old);
      await rename(temp, out);
      await rm(old, { recursive: true, force: true });
    } else {
      await rm(out, { recursive: true, force: true });
      await rename(temp, out);
    }
    return result;
  } catch (err) {
    await Promise.allSettled(inFlight);
    await rm(temp, { recursive: true, force: true });
    throw err;
  }
}
