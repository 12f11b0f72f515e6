/**
 * Checks the commands make before any real work: folders that must be (or must not be) there,
 * browser exports given where a training checkpoint is needed, a checkpoint's file sizes, and
 * everything `ofm train` can check of its output folder and data before training starts. Each
 * failure is one clear {@link CliError} (exit code 2); nothing here writes anything.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { DatasetError } from '@ofm/datasets';
import { type DataOptions, openDataset, tasksOf } from './data';
import { CliError } from './errors';

/** The manifest meta `format` of a browser export (`ofm export`). */
const EXPORT_FORMAT = 'ofm-detector-export';
/** The fewest training images of a class the detector learns from (some are held out for validation). */
const MIN_TRAIN_IMAGES = 4;

/** Throw unless `path` is an existing folder; `what` names it in the message ("--ckpt 'x'"). */
export function requireFolder(path: string, what: string): void {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch {
    throw new CliError(`${what} does not exist`);
  }
  if (!isDir) throw new CliError(`${what} is a file, not a folder`);
}

/** The `meta.format` of the manifest in `dir`, or null when there is no readable one. */
function manifestFormat(dir: string): string | null {
  try {
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { meta?: { format?: unknown } };
    return typeof manifest.meta?.format === 'string' ? manifest.meta.format : null;
  } catch {
    return null;
  }
}

/**
 * Throw when `dir` holds a browser export (`ofm export`) where a training checkpoint is needed,
 * saying what to use instead.
 */
export function refuseExport(dir: string, what: string): void {
  if (manifestFormat(dir) !== EXPORT_FORMAT) return;
  throw new CliError(
    `${what} is a browser export (written by ofm export), not a training checkpoint: use the checkpoint it was exported from ` +
      `(the --out of ofm train), or detect in the browser with it (pnpm demo --model ${dir}, or loadExportedDetector from @ofm/detector/browser)`,
  );
}

/** The folder for a command's outputs: new, or an existing folder (never a file). */
export function requireOutputFolder(path: string, flag: string): void {
  if (existsSync(path) && !statSync(path).isDirectory()) {
    throw new CliError(`${flag} '${path}' is a file; give a folder for the outputs (it is created when missing)`);
  }
}

/**
 * The size of every file a checkpoint's manifest lists against the manifest: cheap (no file is
 * read), and it catches truncated, extended and missing files. Contents are checked only by
 * `--verify` (SHA-256).
 */
export function checkListedSizes(dir: string, manifest: { files: { path: string; bytes: number }[]; attachments?: { path: string; bytes: number }[] }): void {
  for (const entry of [...manifest.files, ...(manifest.attachments ?? [])]) {
    const file = join(dir, ...entry.path.split('/'));
    let bytes: number;
    try {
      bytes = statSync(file).size;
    } catch {
      throw new CliError(`${file} is listed in the manifest but missing; the checkpoint is incomplete`);
    }
    if (bytes !== entry.bytes) {
      throw new CliError(`${file} is ${bytes} bytes but the manifest says ${entry.bytes}: the file is damaged (truncated or overwritten)`);
    }
  }
}

/** Names in a folder that a checkpoint folder may hold besides a checkpoint: nested checkpoints (a snapshot) and what an interrupted save leaves (`.<name>.ofm-*`). */
function foreignEntries(dir: string): string[] {
  return readdirSync(dir).filter((name) => {
    if (name.startsWith('.') && name.includes('.ofm-')) return false;
    const p = join(dir, name);
    return !(statSync(p).isDirectory() && existsSync(join(p, 'manifest.json')));
  });
}

/** Whether checkpoint folder `dir` has a lock file beside it (`.<name>.ofm-lock`, see `acquireCheckpointLock`). */
function locked(dir: string): boolean {
  const target = resolve(dir);
  return existsSync(join(dirname(target), `.${basename(target)}.ofm-lock`));
}

/** How many tasks the checkpoint in `dir` holds (0 when none, or unreadable: loading it says why later). */
function tasksHeld(dir: string): number {
  try {
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { meta?: { tasks?: unknown } };
    return Array.isArray(manifest.meta?.tasks) ? manifest.meta.tasks.length : 0;
  } catch {
    return 0;
  }
}

/** What `ofm train` needs to know to check its output folder and data. */
export interface TrainPlan extends DataOptions {
  setting?: string;
  tasks?: string;
  out?: string;
  resume?: string;
  eval: boolean;
  imageSize?: number;
  /** The `--config` file given, and what it holds. */
  config?: string;
  configInput?: Record<string, unknown>;
}

/**
 * Everything `ofm train` can check before the model is built and training starts, so that bad
 * input fails at once (exit 2) with nothing written: the `--config` file (every problem of it, by
 * field), the output folder (a file, or a folder of other files, is refused), `--resume` (missing,
 * or a browser export), the dataset, the task list,
 * the training images of every class still to learn and, when evaluating, the test split of every
 * class. The checks that need the checkpoint's contents follow once its lock is held.
 */
export async function preflightTrain(plan: TrainPlan): Promise<void> {
  const out = plan.out ?? plan.resume;
  if (!out) return;
  if (plan.config !== undefined && plan.configInput) {
    const { resolveDetectorConfig } = await import('@ofm/detector');
    // Every problem of the file, by field: a ConfigError (exit 2).
    resolveDetectorConfig(plan.configInput, `--config '${plan.config}'`);
  }
  const flag = plan.out !== undefined ? '--out' : '--resume';
  // A folder another process is writing (its lock file beside it) is left to the lock, which names
  // that process: what it holds now says nothing.
  if (plan.resume !== undefined && !locked(plan.resume)) {
    requireFolder(plan.resume, `--resume '${plan.resume}'`);
    refuseExport(plan.resume, `--resume '${plan.resume}'`);
  }
  if (existsSync(out) && !locked(out)) {
    if (!statSync(out).isDirectory()) throw new CliError(`${flag} '${out}' is a file; give a new or empty folder for the checkpoint`);
    if (!existsSync(join(out, 'manifest.json'))) {
      const foreign = foreignEntries(out);
      if (foreign.length > 0) {
        const shown = foreign.slice(0, 3).join(', ') + (foreign.length > 3 ? `, … (${foreign.length} in all)` : '');
        throw new CliError(`${flag} '${out}' holds other files (${shown}) and no checkpoint; give a new or empty folder for the checkpoint`);
      }
    }
  }
  const dataset = await openDataset(plan, plan.imageSize ?? 32);
  const tasks = tasksOf(dataset, plan);
  const learned = plan.resume !== undefined ? tasksHeld(plan.resume) : 0;
  const datasetCheck = async (check: () => Promise<void>, hint = '') => {
    try {
      await check();
    } catch (err) {
      if (err instanceof DatasetError) throw new CliError(`${err.message}${hint}`);
      throw err;
    }
  };
  for (const cls of tasks.slice(learned).flat()) {
    await datasetCheck(async () => {
      const files = await dataset.trainFiles(cls);
      if (files.length < MIN_TRAIN_IMAGES) {
        throw new CliError(
          `class '${cls}' has ${files.length} training image(s); at least ${MIN_TRAIN_IMAGES} are needed (some are held out for validation)`,
        );
      }
    });
  }
  if (plan.eval) {
    for (const cls of tasks.flat()) {
      await datasetCheck(async () => void (await dataset.testFiles(cls)), ' (every class learned is evaluated after each task; --no-eval skips that)');
    }
  }
}
