/**
 * MVTec AD layout:
 *
 * ```
 * <root>/<class>/train/good/*.png
 * <root>/<class>/test/good/*.png
 * <root>/<class>/test/<defect>/<n>.png
 * <root>/<class>/ground_truth/<defect>/<n>_mask.png
 * ```
 *
 * The synthetic dataset (`synth`) writes this layout too.
 */
import { basename, extname, join, resolve } from 'node:path';
import { DatasetError } from '../errors';
import { FileDataset, type LoaderOptions } from './base';
import { exists, listDirs, listImages, requireDir } from './files';
import type { SampleRef } from './types';

/** Options of {@link loadMvtec}. */
export interface MvtecOptions extends LoaderOptions {
  /** Use only these classes (checked against the folders). Default: every class folder. */
  classes?: readonly string[];
}

/** A dataset in the MVTec AD layout. Create with {@link loadMvtec}. */
export class MvtecDataset extends FileDataset {
  readonly format = 'mvtec' as const;
  readonly hasMasks = true;

  async trainFiles(className: string): Promise<SampleRef[]> {
    this.requireClass(className);
    const dir = join(this.root, className, 'train', 'good');
    await requireDir(dir, `the normal training images of class "${className}" in ${dir}`);
    const names = await listImages(dir);
    if (names.length === 0) {
      throw new DatasetError(`no images (.png, .jpg); class "${className}" needs normal training images here`, dir);
    }
    return names.map((n) => ({ path: join(dir, n), label: 0, className, defect: 'good' }));
  }

  async testFiles(className: string): Promise<SampleRef[]> {
    this.requireClass(className);
    const testDir = join(this.root, className, 'test');
    await requireDir(testDir, `test/<defect>/ folders (test/good for normal images) of class "${className}"`);
    const refs: SampleRef[] = [];
    for (const defect of await listDirs(testDir)) {
      const dir = join(testDir, defect);
      const names = await listImages(dir);
      if (defect === 'good') {
        for (const n of names) refs.push({ path: join(dir, n), label: 0, className, defect });
        continue;
      }
      const maskDir = join(this.root, className, 'ground_truth', defect);
      const masks = new Set(names.length > 0 && (await exists(maskDir)) ? await listImages(maskDir) : []);
      for (const n of names) {
        const maskName = `${basename(n, extname(n))}_mask.png`;
        if (!masks.has(maskName)) {
          throw new DatasetError(
            `no ground-truth mask for this anomalous image; expected ${join(maskDir, maskName)}`,
            join(dir, n),
          );
        }
        refs.push({ path: join(dir, n), maskPath: join(maskDir, maskName), label: 1, className, defect });
      }
    }
    if (refs.length === 0) {
      throw new DatasetError('no test images; expected test/good/*.png and test/<defect>/*.png', testDir);
    }
    return refs;
  }
}

/**
 * Open a dataset in the MVTec AD layout. Only folder names are read here; images are decoded
 * when iterated. @throws {DatasetError} when the root is missing or holds no class folder.
 */
export async function loadMvtec(root: string, options: MvtecOptions = {}): Promise<MvtecDataset> {
  const dir = resolve(root);
  await requireDir(dir, 'an MVTec AD folder: <root>/<class>/train/good/*.png');
  const found: string[] = [];
  for (const name of await listDirs(dir)) {
    if (await exists(join(dir, name, 'train'))) found.push(name);
  }
  if (found.length === 0) {
    throw new DatasetError('no MVTec AD class folders; expected <root>/<class>/train/good/*.png', dir);
  }
  let classes = found;
  if (options.classes) {
    const missing = options.classes.filter((c) => !found.includes(c));
    if (missing.length > 0) {
      throw new DatasetError(`no class folder for ${missing.join(', ')}; the classes here are: ${found.join(', ')}`, dir);
    }
    classes = [...options.classes];
  }
  return new MvtecDataset(dir, classes, options);
}
