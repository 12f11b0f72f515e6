/** Opening a user's dataset for `ofm train` / `ofm eval`, with one clear error on bad input. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type AnomalyDataset, continualSettings, isContinualSettingName, loadFolder, loadMvtec, loadVisa, resolveTasks } from '@ofm/datasets';
import { CliError } from './errors';

export const FORMATS = ['mvtec', 'visa', 'folder'] as const;
export type Format = (typeof FORMATS)[number];

export interface DataOptions {
  data: string;
  format: string;
  /** Folder format: sub-folders of `data` (defaults normal, abnormal, mask). */
  normalDir?: string;
  abnormalDir?: string;
  maskDir?: string;
}

/** Open the dataset at the model's image size. */
export async function openDataset(opts: DataOptions, size: number): Promise<AnomalyDataset> {
  if (!(FORMATS as readonly string[]).includes(opts.format)) {
    throw new CliError(`--format '${opts.format}' is not a dataset format; use one of: ${FORMATS.join(', ')}`);
  }
  if (!existsSync(opts.data)) {
    throw new CliError(`--data '${opts.data}' does not exist; point it at a dataset root (for the synthetic one: ofm synth --out DIR)`);
  }
  // A dataset that is not in the layout of its format is a DatasetError (exit 2).
  switch (opts.format as Format) {
    case 'mvtec':
      return await loadMvtec(opts.data, { size });
    case 'visa':
      return await loadVisa(opts.data, { size });
    case 'folder': {
      const maskDir = opts.maskDir ?? join(opts.data, 'mask');
      return await loadFolder({
        root: opts.data,
        normalDir: opts.normalDir ?? join(opts.data, 'normal'),
        abnormalDir: opts.abnormalDir ?? join(opts.data, 'abnormal'),
        maskDir: existsSync(maskDir) ? maskDir : undefined,
        size,
      });
    }
  }
}

/** Resolve `--setting NAME` or `--tasks "a,b|c"` against the dataset's classes. */
export function tasksOf(dataset: AnomalyDataset, opts: { setting?: string; tasks?: string }): string[][] {
  if (opts.setting && opts.tasks) throw new CliError('give either --setting or --tasks, not both');
  const spec = opts.setting ?? opts.tasks;
  if (!spec) {
    throw new CliError(
      `say which classes to learn: --tasks "a,b|c" (',' joins classes into a task, '|' separates tasks) or --setting NAME (${Object.keys(continualSettings).join(', ')}); this dataset has: ${dataset.classes.join(', ')}`,
    );
  }
  if (opts.setting !== undefined && !isContinualSettingName(opts.setting)) {
    throw new CliError(
      `--setting '${opts.setting}' is not a continual setting; the settings are: ${Object.keys(continualSettings).join(', ')} (or give your own with --tasks "a,b|c")`,
    );
  }
  // A malformed list is a ConfigError, a class the dataset lacks a DatasetError (both exit 2).
  return resolveTasks(spec, { classes: dataset.classes, root: dataset.root });
}
