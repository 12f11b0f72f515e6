/**
 * @ofm/datasets for browsers and workers: everything that needs no Node API. Continual settings,
 * synthetic anomalies, in-memory rendering of the synthetic dataset, pixel helpers and image
 * decoding through createImageBitmap. (The file loaders and `synth` to disk live in the main,
 * Node entry point.)
 */
export { type AnomalyOptions, type SyntheticAnomaly, finalizeChange } from './anomalies/common';
export { type CutPasteOptions, cutPasteAnomaly } from './anomalies/cutpaste';
export { type NsaOptions, nsaAnomaly } from './anomalies/nsa';
export { type PerlinOptions, perlinAnomaly, proceduralTexture } from './anomalies/perlin';
export {
  type ContinualSetting,
  type ContinualSettingName,
  MVTEC_CLASSES,
  type Tasks,
  VISA_CLASSES,
  classesSeen,
  continualSettings,
  formatTasks,
  isContinualSettingName,
  oneClassPerTask,
  parseTasks,
  resolveTasks,
  validateTasks,
} from './continual';
export { DatasetError } from './errors';
export {
  type BinaryMask,
  type RgbImage,
  type SizeOption,
  binariseMask,
  maskArea,
  resolveSize,
  rgbFromBytes,
  rgbToBytes,
} from './image';
export { type EncodedImage, decodeImageInBrowser, decodeMaskInBrowser, fetchImage } from './io/browser';
export { parseCsv } from './loaders/csv';
export type { AnomalyDataset, IterateOptions, Sample, SampleRef } from './loaders/types';
export { PerlinNoise } from './noise';
export { type RandomSource, createRandom, hashSeed, shuffleInPlace } from './random';
export type { SynthClassInfo } from './synth/classes';
export { DEFECT_KINDS, type DefectKind } from './synth/defects';
export { MASK_TOLERANCE, type RenderedImage, SYNTH_CLASSES, type SynthImage, type SynthImageSpec, renderSynthImage } from './synth/render';
