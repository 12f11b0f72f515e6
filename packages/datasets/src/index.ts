/**
 * @ofm/datasets (Node entry point): MVTec AD, VisA and folder loaders that stream decoded
 * samples; the continual settings of One-for-More; synthetic anomalies for training (NSA,
 * CutPaste, Perlin); and `synth`, a procedural defect dataset written in the MVTec AD layout.
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
export { type SynthClassSummary, type SynthOptions, type SynthProgress, type SynthSummary, synth } from './synth/write';
