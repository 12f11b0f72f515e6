/**
 * Checkpoint IO: named tensors plus a JSON manifest, saved atomically to a directory (Node) and
 * loaded from a directory (Node) or a URL (any runtime with fetch).
 *
 * `node.ts` holds the file-system code (its Node built-ins load lazily), `lock.ts` the one-writer
 * lock, `browser.ts` the fetch code, `format.ts` what both share. {@link loadCheckpoint} picks one by the source it is given.
 */
import { type FetchOptions, fetchCheckpoint, fetchCheckpointArrays } from './browser';
import { type LoadOptions, loadCheckpointArraysFromDir, loadCheckpointFromDir } from './node';
import type { LoadedArrays, LoadedCheckpoint } from './tensors';

export {
  CHECKPOINT_FORMAT,
  CHECKPOINT_FORMAT_VERSION,
  OLDEST_READABLE_FORMAT_VERSION,
  DEFAULT_SHARD_BYTES,
  MANIFEST_FILE,
  CheckpointError,
  type CheckpointErrorCode,
  type CheckpointDtype,
  type CheckpointManifest,
  type FileEntry,
  type NamedArray,
  type NamedArrays,
  type WeightEntry,
  type WeightsGroup,
} from './format';
export {
  type LoadOptions,
  type SaveOptions,
  type SaveProgress,
  saveCheckpoint,
  readManifest,
  loadCheckpointFromDir,
  loadCheckpointArraysFromDir,
  verifyCheckpoint,
  rewriteManifest,
} from './node';
export { type CheckpointLock, type LockHolder, type LockOptions, acquireCheckpointLock } from './lock';
export { type FetchOptions, fetchCheckpoint, fetchCheckpointArrays, fetchManifest } from './browser';
export type { CheckpointTensors, LoadedArrays, LoadedCheckpoint } from './tensors';

/** Options of {@link loadCheckpoint}: those of the directory and the URL loaders. */
export type LoadSourceOptions = LoadOptions & FetchOptions;

const IN_NODE = typeof process !== 'undefined' && typeof process.versions?.node === 'string';

/** True when `source` should be fetched rather than read from the file system. */
function isRemote(source: string): boolean {
  if (!IN_NODE) return true;
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(source) && !/^file:/i.test(source);
}

async function localPath(source: string): Promise<string> {
  if (!/^file:/i.test(source)) return source;
  const { fileURLToPath } = await import('node:url');
  return fileURLToPath(source);
}

/**
 * Load a checkpoint as tensors from a directory path or `file:` URL (Node), or from an http(s) URL
 * (in a browser, every source is a URL, relative ones included).
 */
export async function loadCheckpoint<M = unknown>(source: string, options: LoadSourceOptions = {}): Promise<LoadedCheckpoint<M>> {
  return isRemote(source) ? fetchCheckpoint<M>(source, options) : loadCheckpointFromDir<M>(await localPath(source), options);
}

/** {@link loadCheckpoint}, returning plain typed arrays instead of tensors. */
export async function loadCheckpointArrays<M = unknown>(source: string, options: LoadSourceOptions = {}): Promise<LoadedArrays<M>> {
  return isRemote(source)
    ? fetchCheckpointArrays<M>(source, options)
    : loadCheckpointArraysFromDir<M>(await localPath(source), options);
}
