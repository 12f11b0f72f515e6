/**
 * Writing a photo defect set to disk in the MVTec AD layout (Node-only), atomically: into a
 * temporary folder next to the target, renamed into place at the end.
 */
import { join, resolve } from 'node:path';
import { AbortError } from '@ofm/errors';
import { writeDatasetAtomically } from '../io/dataset-writer';
import type { PhotoClassSource, PhotoOrientations, PhotoRegion } from './crop';
import { PHOTO_DEFECT_AREA, PHOTO_DEFECT_KINDS, PHOTO_MASK_TOLERANCE, type PhotoDefectKind } from './defects';
import { type PhotoGeometry, photoSplit, renderPhotoImage } from './render';

/** Options of {@link writePhotoDataset}. */
export interface PhotoDatasetOptions extends PhotoGeometry {
  /** Target folder; must not exist or be empty (unless {@link overwrite}). */
  out: string;
  /** Seed; default 0. Same sources and options, same bytes. */
  seed?: number;
  /** Normal training images per class; default 60. */
  trainCount?: number;
  /** Normal test images per class; default 20. */
  testGood?: number;
  /** Defective test images per class, spread evenly over {@link defects}; default 20. */
  testDefect?: number;
  /** Defect kinds; default all (`scratch`, `stain`, `patch`, `hole`). */
  defects?: readonly PhotoDefectKind[];
  /** Replace a non-empty `out` folder; default false. */
  overwrite?: boolean;
  /** Called after every image. */
  onProgress?: (progress: { done: number; total: number; className: string }) => void;
  /** Abort the run (the temporary folder is removed). */
  signal?: AbortSignal;
  /** Anything to record in `photos.json` under `sources` (for instance where each photograph came from). */
  provenance?: Record<string, unknown>;
}

/** What {@link writePhotoDataset} wrote for one class. */
export interface PhotoClassSummary {
  name: string;
  train: number;
  testGood: number;
  /** Defective test images per defect kind. */
  testDefect: Partial<Record<PhotoDefectKind, number>>;
  /** Size of the class's photograph as given, its scale and orientations. */
  sourceSize: { width: number; height: number };
  scale: number;
  orientations: PhotoOrientations;
  /** Where training and test crops were cut (pixels of the photograph as given): disjoint. */
  trainParts: PhotoRegion[];
  testParts: PhotoRegion[];
}

/** The result of {@link writePhotoDataset}; also written to `<out>/photos.json` (without `out`). */
export interface PhotoDatasetSummary {
  out: string;
  imageSize: number;
  seed: number;
  trainFraction: number;
  images: number;
  defects: PhotoDefectKind[];
  /** Mask area range of each defect kind, as a fraction of the image. */
  defectArea: Partial<Record<PhotoDefectKind, readonly [number, number]>>;
  /** A pixel belongs to a mask when it changed by more than this many 8-bit levels. */
  maskTolerance: number;
  classes: PhotoClassSummary[];
  sources?: Record<string, unknown>;
  generator: string;
}

const GENERATOR = '@ofm/datasets photos v1';

function count(name: string, value: number | undefined, fallback: number, min: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min) throw new RangeError(`writePhotoDataset: ${name} must be an integer >= ${min}, got ${v}`);
  return v;
}

/**
 * Cut an anomaly-detection set in the MVTec AD layout from photographs of surfaces:
 * `<out>/<class>/train/good/000.png`, `<out>/<class>/test/good/000.png`,
 * `<out>/<class>/test/<defect>/000.png`, `<out>/<class>/ground_truth/<defect>/000_mask.png` (0/255,
 * the image's size), plus `<out>/photos.json`. Training and test crops come from disjoint parts
 * of each class's regions (see `photoSplit`), so test images are not copies of training ones.
 * @throws {DatasetError} when `out` exists and is not empty (without `overwrite`).
 * @throws {RangeError} for bad options, or regions too small for a crop.
 */
export async function writePhotoDataset(sources: readonly PhotoClassSource[], options: PhotoDatasetOptions): Promise<PhotoDatasetSummary> {
  const out = resolve(options.out);
  const imageSize = options.imageSize ?? 128;
  const trainFraction = options.trainFraction ?? 0.6;
  const trainCount = count('trainCount', options.trainCount, 60, 1);
  const testGood = count('testGood', options.testGood, 20, 0);
  const testDefect = count('testDefect', options.testDefect, 20, 0);
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new RangeError(`writePhotoDataset: seed must be an integer in [0, 2^32), got ${seed}`);
  const defects = [...(options.defects ?? PHOTO_DEFECT_KINDS)];
  if (defects.length === 0 && testDefect > 0) throw new RangeError('writePhotoDataset: give at least one defect kind');
  for (const d of defects) {
    if (!PHOTO_DEFECT_KINDS.includes(d)) throw new RangeError(`writePhotoDataset: unknown defect kind "${d}"; the kinds are: ${PHOTO_DEFECT_KINDS.join(', ')}`);
  }
  if (new Set(defects).size !== defects.length) throw new RangeError(`writePhotoDataset: a defect kind is listed twice in ${defects.join(', ')}`);
  if (sources.length === 0) throw new RangeError('writePhotoDataset: give at least one class');
  const names = sources.map((s) => s.name);
  if (new Set(names).size !== names.length) throw new RangeError(`writePhotoDataset: a class is listed twice in ${names.join(', ')}`);
  for (const name of names) {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) throw new RangeError(`writePhotoDataset: class name "${name}" is not a plain folder name`);
  }
  // Check every class's regions before writing anything.
  const splits = sources.map((s) => photoSplit(s, { imageSize, trainFraction }));

  const perClass = trainCount + testGood + testDefect;
  const total = perClass * sources.length;
  const digits = Math.max(3, String(Math.max(trainCount, testGood, testDefect) - 1).length);
  const fileName = (i: number) => String(i).padStart(digits, '0');
  const geometry = { imageSize, trainFraction, seed };

  return writeDatasetAtomically(out, { overwrite: options.overwrite }, async (writer) => {
    const summary: PhotoDatasetSummary = {
      out,
      imageSize,
      seed,
      trainFraction,
      images: total,
      defects,
      defectArea: Object.fromEntries(defects.map((d) => [d, PHOTO_DEFECT_AREA[d]])),
      maskTolerance: PHOTO_MASK_TOLERANCE,
      classes: [],
      ...(options.provenance ? { sources: options.provenance } : {}),
      generator: GENERATOR,
    };
    let done = 0;
    const step = (className: string) => {
      done++;
      options.onProgress?.({ done, total, className });
      if (options.signal?.aborted) throw options.signal.reason ?? new AbortError('writePhotoDataset: aborted');
    };
    const rgb = (data: Uint8Array) => ({ data, width: imageSize, height: imageSize, channels: 3 as const });
    for (const [k, source] of sources.entries()) {
      const name = source.name;
      for (let i = 0; i < trainCount; i++) {
        const s = renderPhotoImage(sources, { ...geometry, className: name, split: 'train', index: i });
        await writer.png(join(name, 'train', 'good', `${fileName(i)}.png`), rgb(s.image));
        step(name);
      }
      for (let i = 0; i < testGood; i++) {
        const s = renderPhotoImage(sources, { ...geometry, className: name, split: 'test', index: i });
        await writer.png(join(name, 'test', 'good', `${fileName(i)}.png`), rgb(s.image));
        step(name);
      }
      const perKind: Partial<Record<PhotoDefectKind, number>> = {};
      for (let j = 0; j < testDefect; j++) {
        const defect = defects[j % defects.length]!;
        const index = Math.floor(j / defects.length);
        const s = renderPhotoImage(sources, { ...geometry, className: name, split: 'test', defect, index });
        await writer.png(join(name, 'test', defect, `${fileName(index)}.png`), rgb(s.image));
        const mask = Uint8Array.from(s.mask, (m) => (m ? 255 : 0));
        await writer.png(join(name, 'ground_truth', defect, `${fileName(index)}_mask.png`), { data: mask, width: imageSize, height: imageSize, channels: 1 });
        perKind[defect] = (perKind[defect] ?? 0) + 1;
        step(name);
      }
      summary.classes.push({
        name,
        train: trainCount,
        testGood,
        testDefect: perKind,
        sourceSize: { width: source.image.width, height: source.image.height },
        scale: source.scale ?? 1,
        orientations: source.orientations ?? 'any',
        trainParts: splits[k]!.train,
        testParts: splits[k]!.test,
      });
    }
    // Without the target folder, so that the same set written elsewhere has the same bytes.
    const { out: _out, ...file } = summary;
    await writer.text('photos.json', `${JSON.stringify(file, null, 2)}\n`);
    return summary;
  });
}
