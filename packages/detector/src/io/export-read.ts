/**
 * Exported models: what a browser (or any runtime with fetch) needs to detect, and nothing that only
 * training needs. An export is a checkpoint directory in the `@ofm/tensor` format (a
 * `manifest.json` in the tfjs weights-manifest style plus binary shards, checksummed) whose meta is
 * an {@link ExportMeta}: the config, the weights, the classes learned with their start timestep and
 * calibration, the task history and a format version; no GPM bases, no optimiser state. The run's
 * report may travel with it under `report/`. `exportDetector` (Node, `./export-write`) writes one;
 * {@link loadExportedDetector} here reads one, from a URL in a browser or a directory in Node.
 */
import { CheckpointError, type LoadSourceOptions, loadCheckpoint, tf } from '@ofm/tensor';
import type { DetectorConfig } from '../config/config';
import { ContinualDetector, type LearnedClass, type TaskRecord } from '../model/detector';
import type { FeatureExtractor } from '../model/features';
import { DETECTOR_FORMAT, restoreTasks, withStoredWeightsMode } from './persist';
import { assignWeights } from './weights';

/** The `format` of an exported model's meta. */
export const EXPORT_FORMAT = 'ofm-detector-export';
/** The export format version this code writes and reads. */
export const EXPORT_FORMAT_VERSION = 1;
/** Where an export keeps the run's report (`report.json` and `figures/`), when it carries one. */
export const EXPORT_REPORT_DIR = 'report';

/** The `meta` of an exported model's manifest. */
export interface ExportMeta {
  format: typeof EXPORT_FORMAT;
  version: number;
  exportedAt: string;
  /** The training checkpoint it was exported from: its save time, backend and format version. */
  source: { savedAt: string; backend: string; version: number };
  config: DetectorConfig;
  /** Classes learned, in learning order, each with its start timestep and calibration. */
  classes: LearnedClass[];
  tasks: TaskRecord[];
  /** Scalar parameters of the model (UNet + AMN). */
  parameters: number;
  /** Path of the carried report's JSON inside the export (`report/report.json`), or null. */
  report: string | null;
}

/** Options of {@link loadExportedDetector}: where files come from, checksums, a custom extractor. */
export interface LoadExportedOptions extends LoadSourceOptions {
  /** A feature extractor to use instead of the configured built-in. */
  extractor?: FeatureExtractor;
}

/** Check that a manifest's meta is an export this code reads; the error names the source and the fix. */
export function checkExportMeta(meta: unknown, where: string): ExportMeta {
  const m = (meta ?? {}) as Partial<ExportMeta>;
  const format: unknown = m.format;
  if (format === DETECTOR_FORMAT) {
    throw new CheckpointError(
      'bad-manifest',
      where,
      `${where} is a training checkpoint, not an exported model; make one with 'ofm export <checkpoint> --out <dir>' and load that`,
    );
  }
  if (format !== EXPORT_FORMAT) {
    throw new CheckpointError(
      'bad-manifest',
      where,
      `${where} is not a one-for-more exported model (its manifest has no "${EXPORT_FORMAT}" meta); make one with 'ofm export <checkpoint> --out <dir>'`,
    );
  }
  if (m.version !== EXPORT_FORMAT_VERSION) {
    throw new CheckpointError(
      'version',
      where,
      `${where} holds an exported model of format version ${String(m.version)}, but this version of @ofm/detector reads version ${EXPORT_FORMAT_VERSION}; export the checkpoint again with this release ('ofm export <checkpoint> --out <dir>')`,
    );
  }
  if (!m.config || !Array.isArray(m.classes) || !Array.isArray(m.tasks)) {
    throw new CheckpointError('bad-manifest', where, `${where}: the export's meta lacks its config, classes or tasks; export the checkpoint again`);
  }
  return m as ExportMeta;
}

/**
 * Load an exported model: a URL (relative ones too) in a browser, a directory or URL in Node. The
 * detector detects exactly as the checkpoint it was exported from; it cannot learn further tasks
 * with projection (the bases are not exported). Call `initBackend()` (Node) or pick a tfjs backend
 * (browser) first.
 *
 * @throws CheckpointError naming the source and the fix: missing files, damaged or truncated
 *   shards, a training checkpoint instead of an export, another format version.
 */
export async function loadExportedDetector(
  source: string,
  options: LoadExportedOptions = {},
): Promise<{ detector: ContinualDetector; meta: ExportMeta }> {
  const { extractor, ...loadOptions } = options;
  const ckpt = await loadCheckpoint(source, loadOptions);
  try {
    const meta = checkExportMeta(ckpt.meta, source);
    const detector = new ContinualDetector(withStoredWeightsMode(meta.config), { extractor });
    assignWeights(
      detector,
      ckpt.tensors,
      source,
      (name) => `${source}: the export has no weight '${name}' that its config's model needs; export the checkpoint again`,
    );
    restoreTasks(detector, meta, ckpt.tensors, source);
    return { detector, meta };
  } finally {
    tf.dispose(Object.values(ckpt.tensors));
  }
}
