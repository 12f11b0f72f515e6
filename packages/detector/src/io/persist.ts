/**
 * Detector checkpoints: one directory (written atomically by @ofm/tensor's checkpoint IO) holding
 * the config, the weights, the GPM bases, the classes and tasks learned (with their calibration
 * and metrics at the time), the backend used and a format version; checksummed. Loading it in a new
 * process restores a detector that detects and learns the next task exactly as the saved one would.
 */
import type { GpmMeta } from '@ofm/continual';
import { GradientProjectionMemory } from '@ofm/continual';
import { CheckpointError, loadCheckpoint, readManifest, saveCheckpoint, tf } from '@ofm/tensor';
import { DEFAULT_DETECTOR_CONFIG, type DetectorConfig } from '../config/config';
import type { FeatureExtractor } from '../model/features';
import { ContinualDetector, type LearnedClass, type TaskRecord } from '../model/detector';
import { assignWeights } from './weights';

/** The `format` tag of a detector checkpoint's manifest meta; loading refuses any other. */
export const DETECTOR_FORMAT = 'ofm-detector';
/** The detector checkpoint format version this package writes, and the only one it loads. */
export const DETECTOR_FORMAT_VERSION = 1;

/** The `meta` of a detector checkpoint's manifest. */
export interface DetectorMeta {
  format: typeof DETECTOR_FORMAT;
  version: number;
  savedAt: string;
  /** The tfjs backend the model was trained on. */
  backend: string;
  config: DetectorConfig;
  classes: LearnedClass[];
  tasks: TaskRecord[];
  gpm: GpmMeta;
  /** Free-form results stored with the model (the CLI keeps the evaluation matrix here). */
  results?: unknown;
}

/** Options of {@link saveDetector}. */
export interface SaveDetectorOptions {
  /** Results to store beside the model (e.g. the continual evaluation so far). */
  results?: unknown;
  /** Extra files written into the checkpoint directory in the same atomic save. */
  files?: Record<string, Uint8Array | string>;
}

/**
 * Save a detector as a checkpoint directory, atomically replacing a previous checkpoint there (and
 * any training snapshot inside it). A NaN or infinite weight or basis value is refused (a
 * 'non-finite' CheckpointError naming it) and nothing is written.
 */
export async function saveDetector(detector: ContinualDetector, dir: string, opts: SaveDetectorOptions = {}): Promise<void> {
  const tensors = detector.modelTensors();
  const bases = detector.gpm.toTensors();
  const meta: DetectorMeta = {
    format: DETECTOR_FORMAT,
    version: DETECTOR_FORMAT_VERSION,
    savedAt: new Date().toISOString(),
    backend: tf.getBackend(),
    config: detector.config,
    classes: detector.classes,
    tasks: detector.tasks,
    gpm: detector.gpm.toMeta(),
    results: opts.results,
  };
  try {
    await saveCheckpoint(dir, { ...tensors, ...bases }, meta, { finite: true, ...(opts.files ? { files: opts.files } : {}) });
  } finally {
    tf.dispose(Object.values(bases));
  }
}

function checkMeta(meta: unknown, where: string): DetectorMeta {
  const m = meta as Partial<DetectorMeta> | undefined;
  if (!m || m.format !== DETECTOR_FORMAT) {
    throw new CheckpointError(
      'bad-manifest',
      where,
      `${where} is not a one-for-more detector checkpoint (its manifest has no "${DETECTOR_FORMAT}" meta); point at a directory written by 'ofm train' or saveDetector()`,
    );
  }
  if (m.version !== DETECTOR_FORMAT_VERSION) {
    throw new CheckpointError(
      'version',
      where,
      `${where} holds a detector checkpoint of format version ${m.version}, but this version of @ofm/detector reads version ${DETECTOR_FORMAT_VERSION}; use the matching one-for-more release`,
    );
  }
  return m as DetectorMeta;
}

/** Read only the metadata of a detector checkpoint (no weights), e.g. for `ofm inspect`. */
export async function readDetectorMeta(dir: string): Promise<DetectorMeta> {
  const manifest = await readManifest(dir);
  return checkMeta(manifest.meta, dir);
}

/** What may change when a checkpoint is loaded to learn more tasks (the model itself may not). */
export interface LoadOverrides {
  training?: Partial<DetectorConfig['training']>;
  projection?: DetectorConfig['continual']['projection'];
  /** A feature extractor to use instead of the configured built-in (e.g. a user's backbone). */
  extractor?: FeatureExtractor;
}

/** Load a detector checkpoint saved by {@link saveDetector} (a directory, or a URL in a browser). */
export async function loadDetector(
  source: string,
  overrides: LoadOverrides = {},
): Promise<{ detector: ContinualDetector; meta: DetectorMeta }> {
  const ckpt = await loadCheckpoint(source);
  try {
    const meta = checkMeta(ckpt.meta, source);
    const config = withStoredWeightsMode(structuredClone(meta.config));
    Object.assign(config.training, overrides.training ?? {});
    if (overrides.projection) config.continual.projection = overrides.projection;
    const detector = new ContinualDetector(config, { extractor: overrides.extractor });
    assignWeights(
      detector,
      ckpt.tensors,
      source,
      (name) => `${source}: the checkpoint has no weight '${name}' that its config's model needs; the checkpoint is incomplete`,
    );
    const gpm = GradientProjectionMemory.fromCheckpoint({ meta: meta.gpm, tensors: ckpt.tensors }, detector.params);
    detector.replaceMemory(gpm);
    restoreTasks(detector, meta, ckpt.tensors, source);
    return { detector, meta };
  } finally {
    tf.dispose(Object.values(ckpt.tensors));
  }
}

/**
 * A stored config as it was trained: checkpoints and exports written before per-task weights
 * existed have no `continual.weights` and were trained with shared weights; those written before
 * fused start timesteps have no `reconstruction.fuse` and chose one start per class (and go on
 * doing so for the tasks they learn next); those written before the segmenter have no `segmenter`
 * group and hold no segmenter weights (it stays off for them).
 */
export function withStoredWeightsMode(config: DetectorConfig): DetectorConfig {
  const continual = config.continual as Partial<DetectorConfig['continual']>;
  continual.weights ??= 'shared';
  config.reconstruction.fuse ??= false;
  config.segmenter ??= { ...DEFAULT_DETECTOR_CONFIG.segmenter, enabled: false };
  return config;
}

/** Restore the learned classes, tasks and per-task weights of a loaded file; a gap is a 'missing' CheckpointError. */
export function restoreTasks(
  detector: ContinualDetector,
  meta: { classes: LearnedClass[]; tasks: TaskRecord[] },
  tensors: Readonly<Record<string, tf.Tensor>>,
  source: string,
): void {
  try {
    detector.restore(meta.classes, meta.tasks, tensors);
  } catch (cause) {
    detector.dispose();
    throw new CheckpointError('missing', source, `${source}: ${(cause as Error).message}; the file is incomplete, save or export it again`, { cause });
  }
}
