/**
 * VisA layout: a split file `<root>/split_csv/1cls.csv` with the columns
 * `object,split,label,image,mask` (split: train/test; label: normal/anomaly; image and mask paths
 * relative to the root; JPG images, PNG masks whose non-zero pixels are defects).
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DatasetError } from '../errors';
import { FileDataset, type LoaderOptions } from './base';
import { compareNames, requireDir } from './files';
import { parseCsv } from './csv';
import type { SampleRef } from './types';

/** Options of {@link loadVisa}. */
export interface VisaOptions extends LoaderOptions {
  /** The split file, relative to the root; default `split_csv/1cls.csv`. */
  csv?: string;
  /** Use only these classes (checked against the split file). */
  classes?: readonly string[];
}

const COLUMNS = ['object', 'split', 'label', 'image', 'mask'] as const;

/** A dataset in the VisA layout. Create with {@link loadVisa}. */
export class VisaDataset extends FileDataset {
  readonly format = 'visa' as const;
  readonly hasMasks = true;

  constructor(
    root: string,
    classes: readonly string[],
    options: LoaderOptions,
    private readonly splits: ReadonlyMap<string, { train: SampleRef[]; test: SampleRef[] }>,
    private readonly csvPath: string,
  ) {
    super(root, classes, options);
    this.maskThreshold = 0; // VisA masks store defect ids 1, 2, ...: any non-zero pixel is a defect
  }

  async trainFiles(className: string): Promise<SampleRef[]> {
    this.requireClass(className);
    const refs = this.splits.get(className)?.train ?? [];
    if (refs.length === 0) throw new DatasetError(`no train rows for class "${className}"`, this.csvPath);
    return [...refs];
  }

  async testFiles(className: string): Promise<SampleRef[]> {
    this.requireClass(className);
    const refs = this.splits.get(className)?.test ?? [];
    if (refs.length === 0) throw new DatasetError(`no test rows for class "${className}"`, this.csvPath);
    return [...refs];
  }
}

/**
 * Open a dataset in the VisA layout by reading its split file. @throws {DatasetError} when the
 * root or the CSV is missing, a column is missing, or a row has an unknown split or label.
 */
export async function loadVisa(root: string, options: VisaOptions = {}): Promise<VisaDataset> {
  const dir = resolve(root);
  await requireDir(dir, 'a VisA folder with split_csv/1cls.csv');
  const csvPath = join(dir, options.csv ?? join('split_csv', '1cls.csv'));
  let text: string;
  try {
    text = await readFile(csvPath, 'utf8');
  } catch {
    throw new DatasetError('split file not found; expected a CSV with the columns object,split,label,image,mask', csvPath);
  }
  const rows = parseCsv(text);
  const header = (rows[0] ?? []).map((h) => h.trim().toLowerCase());
  const missing = COLUMNS.filter((c) => !header.includes(c));
  if (missing.length > 0) {
    throw new DatasetError(
      `missing column${missing.length > 1 ? 's' : ''} ${missing.join(', ')}; expected a header with object,split,label,image,mask (found: ${header.join(',') || 'nothing'})`,
      csvPath,
    );
  }
  const col = Object.fromEntries(COLUMNS.map((c) => [c, header.indexOf(c)])) as Record<(typeof COLUMNS)[number], number>;
  const splits = new Map<string, { train: SampleRef[]; test: SampleRef[] }>();
  for (let r = 1; r < rows.length; r++) {
    const row = rows[r]!;
    const line = `line ${r + 1}`;
    const value = (c: (typeof COLUMNS)[number]) => (row[col[c]] ?? '').trim();
    const className = value('object');
    const split = value('split').toLowerCase();
    const label = value('label').toLowerCase();
    if (!className || !value('image')) throw new DatasetError(`${line}: empty object or image field`, csvPath);
    if (split !== 'train' && split !== 'test') {
      throw new DatasetError(`${line}: split is "${value('split')}"; expected train or test`, csvPath);
    }
    if (label !== 'normal' && label !== 'anomaly') {
      throw new DatasetError(`${line}: label is "${value('label')}"; expected normal or anomaly`, csvPath);
    }
    if (label === 'anomaly' && !value('mask')) {
      throw new DatasetError(`${line}: an anomaly row needs a mask path`, csvPath);
    }
    if (split === 'train' && label === 'anomaly') {
      throw new DatasetError(`${line}: an anomaly in the train split; train images must be normal`, csvPath);
    }
    const ref: SampleRef = {
      path: join(dir, value('image')),
      label: label === 'anomaly' ? 1 : 0,
      className,
      defect: label === 'anomaly' ? 'anomaly' : 'good',
      ...(label === 'anomaly' ? { maskPath: join(dir, value('mask')) } : {}),
    };
    let entry = splits.get(className);
    if (!entry) {
      entry = { train: [], test: [] };
      splits.set(className, entry);
    }
    (split === 'train' ? entry.train : entry.test).push(ref);
  }
  const found = [...splits.keys()].sort(compareNames);
  if (found.length === 0) throw new DatasetError('no data rows below the header', csvPath);
  let classes = found;
  if (options.classes) {
    const unknown = options.classes.filter((c) => !found.includes(c));
    if (unknown.length > 0) {
      throw new DatasetError(`no rows for ${unknown.join(', ')}; the classes here are: ${found.join(', ')}`, csvPath);
    }
    classes = [...options.classes];
  }
  return new VisaDataset(dir, classes, options, splits, csvPath);
}
