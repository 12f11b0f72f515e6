/**
 * `exportDetector`: a training checkpoint in, a static inference-only model out (see
 * `./export-read` for the format and the loader). Node only: it reads and writes directories.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CheckpointError, type CheckpointManifest, MANIFEST_FILE, readManifest, saveCheckpoint, type tf } from '@ofm/tensor';
import { EXPORT_FORMAT, EXPORT_FORMAT_VERSION, EXPORT_REPORT_DIR, type ExportMeta } from './export-read';
import { loadDetector } from './persist';

/** Largest shard of an export: small files cache and download in parallel in a browser. */
export const EXPORT_SHARD_BYTES = 4 * 1024 * 1024;

/** What {@link exportDetector} wrote. */
export interface ExportSummary {
  /** The export directory. */
  out: string;
  meta: ExportMeta;
  /** Bytes of the whole export: manifest, weight shards and report files. */
  bytes: number;
  weightBytes: number;
  weightFiles: number;
  /** Bytes of the report files carried along (0 without a report). */
  reportBytes: number;
  /** Bytes of the training checkpoint's weights and bases, for comparison. */
  checkpointBytes: number;
}

function listedBytes(manifest: CheckpointManifest): { shards: number; attachments: number } {
  const sum = (entries: { bytes: number }[] | undefined) => (entries ?? []).reduce((n, e) => n + e.bytes, 0);
  return { shards: sum(manifest.files), attachments: sum(manifest.attachments) };
}

/**
 * Export the training checkpoint `checkpoint` as a static model in `out` (replaced atomically if
 * it is an earlier export): the weights in shards of at most {@link EXPORT_SHARD_BYTES}, an
 * {@link ExportMeta} manifest, and the run's report under `report/` when the checkpoint has one.
 * Call `initBackend()` first (the weights pass through tfjs to be checked against the config).
 *
 * @throws CheckpointError naming the directory and the fix: a missing or damaged checkpoint, an
 *   export or foreign directory given as the checkpoint, another format version.
 */
export async function exportDetector(checkpoint: string, out: string): Promise<ExportSummary> {
  const source = await readManifest(checkpoint);
  if ((source.meta as { format?: unknown } | null)?.format === EXPORT_FORMAT) {
    throw new CheckpointError(
      'bad-manifest',
      checkpoint,
      `${checkpoint} is already an exported model; export a training checkpoint (a directory written by 'ofm train')`,
    );
  }
  // Replace an earlier export, never a training checkpoint (or anything else) that happens to be there.
  const existing = await readManifest(out).catch(() => null);
  if (existing && (existing.meta as { format?: unknown } | null)?.format !== EXPORT_FORMAT) {
    throw new CheckpointError(
      'not-a-checkpoint',
      out,
      `${out} holds a checkpoint that is not an exported model; refusing to replace it: choose another output directory`,
    );
  }
  const { detector, meta } = await loadDetector(checkpoint);
  try {
    const files: Record<string, Uint8Array> = {};
    for (const entry of source.attachments ?? []) {
      if (!entry.path.startsWith(`${EXPORT_REPORT_DIR}/`)) continue;
      try {
        files[entry.path] = new Uint8Array(await readFile(join(checkpoint, entry.path)));
      } catch (cause) {
        throw new CheckpointError('missing', checkpoint, `${checkpoint}: its report file ${entry.path} cannot be read; train or evaluate again to rewrite the report`, { cause });
      }
    }
    const reportJson = `${EXPORT_REPORT_DIR}/report.json`;
    const exportMeta: ExportMeta = {
      format: EXPORT_FORMAT,
      version: EXPORT_FORMAT_VERSION,
      exportedAt: new Date().toISOString(),
      source: { savedAt: meta.savedAt, backend: meta.backend, version: meta.version },
      config: detector.config,
      classes: detector.classes,
      tasks: detector.tasks,
      parameters: detector.parameterCount(),
      report: reportJson in files ? reportJson : null,
    };
    const manifest = await saveCheckpoint(out, detector.modelTensors(), exportMeta, { files, shardBytes: EXPORT_SHARD_BYTES });
    const written = listedBytes(manifest);
    const manifestBytes = (await stat(join(out, MANIFEST_FILE))).size;
    return {
      out,
      meta: exportMeta,
      bytes: manifestBytes + written.shards + written.attachments,
      weightBytes: written.shards,
      weightFiles: manifest.files.length,
      reportBytes: written.attachments,
      checkpointBytes: listedBytes(source).shards,
    };
  } finally {
    detector.dispose();
  }
}
