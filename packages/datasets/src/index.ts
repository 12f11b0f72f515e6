/**
 * @ofm/datasets (Node entry point): MVTec AD, VisA and folder loaders that stream decoded
 * samples; the continual settings of One-for-More; synthetic anomalies for training (NSA,
 * CutPaste, Perlin); `synth`, a procedural defect dataset written in the MVTec AD layout; and
 * `writePhotoDataset`, a defect set in the same layout cut from real photographs of surfaces.
 *
 * Browsers and workers import `@ofm/datasets/browser`, which leaves out fs and sharp.
 */
export * from './browser';
export {
  type DecodedImage,
  type DecodedMask,
  type EncodablePixels,
  type ReadImageOptions,
  type ReadMaskOptions,
  decodeImage,
  decodeMask,
  encodePng,
  readImage,
  readMask,
  readMaskFile,
  writePng,
} from './io/node';
export { FileDataset, type LoaderOptions } from './loaders/base';
export { IMAGE_EXTENSIONS } from './loaders/files';
export { FolderDataset, type FolderOptions, loadFolder } from './loaders/folder';
export { MvtecDataset, type MvtecOptions, loadMvtec } from './loaders/mvtec';
export { VisaDataset, type VisaOptions, loadVisa } from './loaders/visa';
export {
  PHOTO_SCALE_JITTER,
  type PhotoClassSource,
  type PhotoCrop,
  type PhotoOrientations,
  type PhotoRegion,
  type PhotoSplit,
} from './photos/crop';
export {
  PHOTO_DEFECT_AREA,
  PHOTO_DEFECT_KINDS,
  PHOTO_MASK_TOLERANCE,
  type PhotoDefectKind,
  type PhotoDefectOptions,
  drawPhotoDefect,
} from './photos/defects';
export { type PhotoGeometry, type PhotoImage, type PhotoImageSpec, photoSplit, renderPhotoImage } from './photos/render';
export { type PhotoClassSummary, type PhotoDatasetOptions, type PhotoDatasetSummary, writePhotoDataset } from './photos/write';
export { type SynthClassSummary, type SynthOptions, type SynthProgress, type SynthSummary, synth } from './synth/write';
