/**
 * One image of a photo defect set, in memory (no Node APIs). Each image depends only on (seed,
 * class, split, defect, index) and the source photographs: a crop of the class's training part
 * (train) or test part (test), and for defective images a defect drawn into that crop.
 */
import { rgbToBytes } from '../image';
import type { RenderedImage } from '../synth/render';
import { type RandomSource, createRandom, hashSeed, intBelow } from '../random';
import { type PhotoClassSource, type PhotoCrop, type PhotoSplit, drawCropWindow, renderCrop, splitPhotoRegions } from './crop';
import { type PhotoDefectKind, drawPhotoDefect, quantize } from './defects';

/** Geometry shared by every image of a set. */
export interface PhotoGeometry {
  /** Side of the square images in pixels; default 128. */
  imageSize?: number;
  /** Share of each region's longer side that goes to training crops; default 0.6 (the rest to test crops). */
  trainFraction?: number;
}

/** Which image to render. */
export interface PhotoImageSpec extends PhotoGeometry {
  className: string;
  split: 'train' | 'test';
  /** `good` (default) or a defect kind (test split only). */
  defect?: PhotoDefectKind | 'good';
  /** Index of the image within its (split, defect) folder. */
  index: number;
  /** Set seed; default 0. */
  seed?: number;
}

/**
 * A rendered photo image (its mask marks changes of more than `PHOTO_MASK_TOLERANCE` levels), with
 * where it was cut.
 */
export interface PhotoImage extends RenderedImage<PhotoDefectKind> {
  split: 'train' | 'test';
  /** Where the crop was cut from the class's photograph. */
  crop: PhotoCrop;
  /** For `patch`: the class whose photograph the pasted piece was cut from. */
  patchFrom?: string;
}

function resolveGeometry(g: PhotoGeometry): { imageSize: number; trainFraction: number } {
  const imageSize = g.imageSize ?? 128;
  if (!Number.isInteger(imageSize) || imageSize < 16) throw new RangeError(`imageSize must be an integer >= 16, got ${imageSize}`);
  return { imageSize, trainFraction: g.trainFraction ?? 0.6 };
}

/** The training and test parts of a class's regions at this geometry (see `splitPhotoRegions`). */
export function photoSplit(source: PhotoClassSource, geometry: PhotoGeometry = {}): PhotoSplit {
  const { imageSize, trainFraction } = resolveGeometry(geometry);
  return splitPhotoRegions(source, imageSize, trainFraction);
}

/**
 * Render one image of the set made from `sources`: a crop of the class's training or test part,
 * with a random position, scale jitter and orientation, and (for a defect) the defect drawn into
 * it. A `patch` pastes a piece of another class's test part (a procedural texture when there is
 * only one class).
 */
export function renderPhotoImage(sources: readonly PhotoClassSource[], spec: PhotoImageSpec): PhotoImage {
  const { imageSize, trainFraction } = resolveGeometry(spec);
  const source = sources.find((s) => s.name === spec.className);
  if (!source) throw new RangeError(`unknown photo class "${spec.className}"; the classes are: ${sources.map((s) => s.name).join(', ')}`);
  const defect = spec.defect ?? 'good';
  if (defect !== 'good' && spec.split !== 'test') throw new RangeError('defective images belong to the test split');
  const seed = spec.seed ?? 0;
  const rng = createRandom(hashSeed(seed, 'photo', spec.className, spec.split, defect, spec.index));
  const split = splitPhotoRegions(source, imageSize, trainFraction);
  const crop = pickCrop(rng, source, split, spec.split, imageSize);
  const clean = { data: quantize(renderCrop(source.image, crop, imageSize).data), width: imageSize, height: imageSize, channels: 3 as const };
  const good = rgbToBytes(clean);
  if (defect === 'good') {
    return { width: imageSize, height: imageSize, image: good, good, mask: new Uint8Array(imageSize * imageSize), className: source.name, split: spec.split, defect, crop };
  }
  let foreign: PhotoClassSource | undefined;
  let foreignImage: { data: Float32Array; width: number; height: number; channels: 3 } | undefined;
  if (defect === 'patch') {
    const others = sources.filter((s) => s.name !== source.name);
    if (others.length > 0) {
      foreign = others[intBelow(rng, others.length)]!;
      const foreignSplit = splitPhotoRegions(foreign, imageSize, trainFraction);
      const foreignCrop = pickCrop(rng, foreign, foreignSplit, 'test', imageSize);
      foreignImage = renderCrop(foreign.image, foreignCrop, imageSize);
    }
  }
  const result = drawPhotoDefect(clean, defect, { rng, foreign: foreignImage });
  return {
    width: imageSize,
    height: imageSize,
    image: rgbToBytes({ data: result.image, width: imageSize, height: imageSize, channels: 3 }),
    good,
    mask: result.mask,
    className: source.name,
    split: spec.split,
    defect,
    crop,
    ...(foreign ? { patchFrom: foreign.name } : {}),
  };
}

function pickCrop(
  rng: RandomSource,
  source: PhotoClassSource,
  split: PhotoSplit,
  which: 'train' | 'test',
  imageSize: number,
): PhotoCrop {
  const parts = which === 'train' ? split.train : split.test;
  const regionOf = which === 'train' ? split.trainRegion : split.testRegion;
  return drawCropWindow(rng, parts, regionOf, imageSize, source.scale ?? 1, source.orientations ?? 'any');
}
