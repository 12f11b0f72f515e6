/**
 * The folder format anomalib users know: a folder of normal images, optionally a folder of
 * anomalous images and a folder of their masks (matched by file name: `<name>.png` or
 * `<name>_mask.png`), optionally a folder of normal test images. Without one, a seeded share
 * of the normal images is held out for testing.
 */
import { basename, extname, isAbsolute, join, resolve } from 'node:path';
import { DatasetError } from '../errors';
import { createRandom, shuffleInPlace } from '../random';
import { FileDataset, type LoaderOptions } from './base';
import { listImages, requireDir } from './files';
import type { SampleRef } from './types';

/** Options of {@link loadFolder}. */
export interface FolderOptions extends LoaderOptions {
  /** Folder the other folders are relative to; default the working directory. */
  root?: string;
  /** Normal images (for training, and testing unless `normalTestDir` is given). */
  normalDir: string;
  /** Anomalous test images. */
  abnormalDir?: string;
  /** Masks of the anomalous images, matched by file name. */
  maskDir?: string;
  /** Normal test images; when absent, `normalSplitRatio` of `normalDir` is held out. */
  normalTestDir?: string;
  /** Share of the normal images held out for testing when there is no `normalTestDir`; default 0.2. */
  normalSplitRatio?: number;
  /** Seed of the held-out split; default 0. */
  seed?: number;
  /** Class name; default "folder". */
  className?: string;
}

/** A dataset in the folder format (one class). Create with {@link loadFolder}. */
export class FolderDataset extends FileDataset {
  readonly format = 'folder' as const;

  constructor(
    root: string,
    className: string,
    options: LoaderOptions,
    readonly hasMasks: boolean,
    private readonly trainRefs: SampleRef[],
    private readonly testRefs: SampleRef[],
  ) {
    super(root, [className], options);
  }

  async trainFiles(className: string): Promise<SampleRef[]> {
    this.requireClass(className);
    return [...this.trainRefs];
  }

  async testFiles(className: string): Promise<SampleRef[]> {
    this.requireClass(className);
    if (this.testRefs.length === 0) {
      throw new DatasetError('no test images; give abnormalDir, normalTestDir or a normalSplitRatio above 0', this.root);
    }
    return [...this.testRefs];
  }
}

/** Open a folder-format dataset. @throws {DatasetError} for missing or empty folders and missing masks. */
export async function loadFolder(options: FolderOptions): Promise<FolderDataset> {
  const root = resolve(options.root ?? '.');
  const at = (p: string) => (isAbsolute(p) ? p : join(root, p));
  const className = options.className ?? 'folder';
  const ratio = options.normalSplitRatio ?? 0.2;
  if (!(ratio >= 0 && ratio < 1)) throw new RangeError(`loadFolder: normalSplitRatio must be in [0, 1), got ${ratio}`);

  const imagesIn = async (dir: string, what: string): Promise<string[]> => {
    await requireDir(dir, what);
    const names = await listImages(dir);
    if (names.length === 0) throw new DatasetError(`no images (.png, .jpg); expected ${what} here`, dir);
    return names.map((n) => join(dir, n));
  };

  const normalDir = at(options.normalDir);
  const normals = await imagesIn(normalDir, 'the normal images');
  const normalRef = (path: string): SampleRef => ({ path, label: 0, className, defect: 'good' });
  let train: SampleRef[];
  let test: SampleRef[];
  if (options.normalTestDir) {
    train = normals.map(normalRef);
    test = (await imagesIn(at(options.normalTestDir), 'the normal test images')).map(normalRef);
  } else {
    const order = shuffleInPlace(createRandom(options.seed ?? 0), normals.map((_, i) => i));
    const held = new Set(order.slice(0, Math.round(normals.length * ratio)));
    train = normals.filter((_, i) => !held.has(i)).map(normalRef);
    test = normals.filter((_, i) => held.has(i)).map(normalRef);
    if (train.length === 0) {
      throw new DatasetError(`only ${normals.length} normal image(s): none left for training after holding out ${ratio}`, normalDir);
    }
  }

  let hasMasks = false;
  if (options.abnormalDir) {
    const abnormalDir = at(options.abnormalDir);
    const abnormal = await imagesIn(abnormalDir, 'the anomalous images');
    const defect = basename(abnormalDir);
    let maskFor: (image: string) => string | undefined = () => undefined;
    if (options.maskDir) {
      const maskDir = at(options.maskDir);
      const masks = new Map((await imagesIn(maskDir, 'the masks of the anomalous images')).map((p) => [basename(p), p]));
      maskFor = (image) => {
        const stem = basename(image, extname(image));
        for (const name of [basename(image), `${stem}.png`, `${stem}_mask.png`]) {
          const m = masks.get(name);
          if (m) return m;
        }
        throw new DatasetError(`no mask for this image; expected ${join(maskDir, `${stem}.png`)} or ${stem}_mask.png`, image);
      };
      hasMasks = true;
    }
    for (const path of abnormal) {
      const maskPath = maskFor(path);
      test.push({ path, label: 1, className, defect, ...(maskPath ? { maskPath } : {}) });
    }
  }
  return new FolderDataset(root, className, options, hasMasks, train, test);
}
