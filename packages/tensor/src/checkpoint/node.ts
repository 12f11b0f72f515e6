/**
 * Checkpoints as directories on a Node file system, written atomically.
 *
 * Node built-ins (fs, path, crypto) are imported on first use, not at module load, so bundling this
 * module for a browser is harmless as long as these functions are not called there.
 *
 * Saving writes every file into a temporary directory beside the target (same parent, so renames
 * are atomic), syncs it, then swaps: target -> backup, temporary -> target, backup removed. A crash
 * or SIGKILL at any point leaves either the old or the new checkpoint complete: before the swap the
 * target is untouched; inside it, the old checkpoint sits complete under the backup name, which
 * loading falls back to and the next save renames back. One writer per checkpoint at a time.
 */
import type * as Crypto from 'node:crypto';
import type * as Fs from 'node:fs/promises';
import type * as Path from 'node:path';
import {
  CheckpointError,
  type CheckpointManifest,
  DEFAULT_SHARD_BYTES,
  type FileEntry,
  MANIFEST_FILE,
  buildManifest,
  checkFile,
  decodeArrays,
  fillShard,
  parseManifest,
  planShards,
  serializeManifest,
  validateArrays,
} from './format';
import { type CheckpointTensors, type LoadedArrays, type LoadedCheckpoint, toNamedArrays, toTensors } from './tensors';

interface NodeModules {
  fs: typeof Fs;
  path: typeof Path;
  crypto: typeof Crypto;
}

let nodeModules: Promise<NodeModules> | undefined;

function node(): Promise<NodeModules> {
  nodeModules ??= Promise.all([import('node:fs/promises'), import('node:path'), import('node:crypto')]).then(
    ([fs, path, crypto]) => ({ fs, path, crypto }),
  );
  return nodeModules;
}

/** Progress of {@link saveCheckpoint}, in order. */
export type SaveProgress =
  | { phase: 'shard-written'; file: string; index: number; count: number }
  /** All files are written and synced in the temporary directory. */
  | { phase: 'written' }
  /** The old checkpoint has been moved to its backup name; the new one goes in next. */
  | { phase: 'swapping' }
  | { phase: 'done' };

/** Options of {@link saveCheckpoint}. */
export interface SaveOptions {
  /** Largest shard in bytes (default 64 MiB). */
  shardBytes?: number;
  /** Called after each step; a returned promise is awaited before the save goes on. */
  onProgress?: (event: SaveProgress) => void | Promise<void>;
  /**
   * Extra files (relative paths, '/'-separated, inside the checkpoint) written in the same atomic
   * save, e.g. a report; listed with their checksums under `attachments` in the manifest.
   */
  files?: Record<string, Uint8Array | string>;
}

/** Options of the directory loaders. */
export interface LoadOptions {
  /** Check each file's SHA-256 against the manifest (default true). */
  verify?: boolean;
}

/** The paths around a checkpoint directory. */
function siblings(path: typeof Path, dir: string) {
  const target = path.resolve(dir);
  const parent = path.dirname(target);
  const base = path.basename(target);
  return {
    target,
    parent,
    backup: path.join(parent, `.${base}.ofm-old`),
    tmpPrefix: `.${base}.ofm-tmp-`,
  };
}

async function exists(fs: typeof Fs, p: string): Promise<boolean> {
  try {
    await fs.lstat(p);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

async function writeSynced(fs: typeof Fs, file: string, data: Uint8Array | string): Promise<void> {
  const h = await fs.open(file, 'wx');
  try {
    await h.writeFile(data);
    await h.sync();
  } finally {
    await h.close();
  }
}

/** fsync a directory so renames and new entries in it are durable (not possible on Windows). */
async function syncDir(fs: typeof Fs, dir: string): Promise<void> {
  let h: Fs.FileHandle | undefined;
  try {
    h = await fs.open(dir, 'r');
    await h.sync();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EBADF') throw e;
  } finally {
    await h?.close();
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function ioError(where: string, action: string, cause: unknown): CheckpointError {
  if (cause instanceof CheckpointError) return cause;
  const e = cause as NodeJS.ErrnoException;
  return new CheckpointError('io', where, `${where}: could not ${action}: ${e.code ?? ''} ${e.message}`.trim(), { cause });
}

/**
 * Before a save: put back a backup left by an interrupted swap, drop a stale backup and the temporary
 * directories of dead saves, and refuse to replace a directory that is not a checkpoint.
 */
async function prepareTarget(m: NodeModules, s: ReturnType<typeof siblings>): Promise<void> {
  const { fs, path } = m;
  const targetExists = await exists(fs, s.target);
  if (await exists(fs, s.backup)) {
    if (targetExists) await fs.rm(s.backup, { recursive: true, force: true });
    else await fs.rename(s.backup, s.target);
  }
  for (const name of await fs.readdir(s.parent)) {
    if (!name.startsWith(s.tmpPrefix)) continue;
    const pid = Number(name.slice(s.tmpPrefix.length).split('-')[0]);
    if (Number.isInteger(pid) && pid !== process.pid && !processAlive(pid)) {
      await fs.rm(path.join(s.parent, name), { recursive: true, force: true });
    }
  }
  if (await exists(fs, s.target)) {
    const st = await fs.stat(s.target);
    if (!st.isDirectory()) {
      throw new CheckpointError('not-a-checkpoint', s.target, `${s.target} is a file, not a checkpoint directory; choose another path`);
    }
    const entries = await fs.readdir(s.target);
    if (entries.length > 0 && !entries.includes(MANIFEST_FILE)) {
      throw new CheckpointError(
        'not-a-checkpoint',
        s.target,
        `${s.target} exists and holds files but no ${MANIFEST_FILE}: refusing to replace a directory that is not ` +
          'a checkpoint; choose an empty or new directory',
      );
    }
  }
}

/**
 * Save named tensors (float32/int32) or arrays plus a JSON `meta` object as a checkpoint directory,
 * atomically replacing any checkpoint already there. Returns the manifest written.
 */
export async function saveCheckpoint(
  dir: string,
  tensors: CheckpointTensors,
  meta: unknown = {},
  options: SaveOptions = {},
): Promise<CheckpointManifest> {
  const m = await node();
  const { fs, path, crypto } = m;
  const s = siblings(path, dir);
  const where = s.target;
  const arrays = await toNamedArrays(tensors, where);
  validateArrays(arrays, where);
  const list = Object.values(arrays).map((a) => a.data);
  const total = list.reduce((acc, a) => acc + a.byteLength, 0);
  const plans = planShards(total, options.shardBytes ?? DEFAULT_SHARD_BYTES);
  const progress = async (e: SaveProgress) => {
    await options.onProgress?.(e);
  };

  try {
    await fs.mkdir(s.parent, { recursive: true });
    await prepareTarget(m, s);
  } catch (e) {
    throw ioError(where, 'prepare the checkpoint directory', e);
  }
  const tmp = path.join(s.parent, `${s.tmpPrefix}${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
  try {
    await fs.mkdir(tmp);
    const files: FileEntry[] = [];
    const buffer = new Uint8Array(plans.length > 0 ? plans[0]!.length : 0);
    for (let i = 0; i < plans.length; i++) {
      const plan = plans[i]!;
      const shard = buffer.subarray(0, plan.length);
      fillShard(shard, plan.offset, list);
      const sha256 = crypto.createHash('sha256').update(shard).digest('hex');
      await writeSynced(fs, path.join(tmp, plan.path), shard);
      files.push({ path: plan.path, bytes: plan.length, sha256 });
      await progress({ phase: 'shard-written', file: plan.path, index: i, count: plans.length });
    }
    const manifest = buildManifest(arrays, meta, files);
    const attachments: FileEntry[] = [];
    for (const [rel, content] of Object.entries(options.files ?? {})) {
      const parts = rel.split('/');
      if (rel === MANIFEST_FILE || parts.some((p) => p === '' || p === '.' || p === '..') || path.isAbsolute(rel) || plans.some((p) => p.path === rel)) {
        throw new CheckpointError('bad-input', where, `${where}: cannot attach a file named '${rel}' (use a relative path that is not a shard or the manifest)`);
      }
      const bytes = typeof content === 'string' ? new TextEncoder().encode(content) : content;
      await fs.mkdir(path.join(tmp, ...parts.slice(0, -1)), { recursive: true });
      await writeSynced(fs, path.join(tmp, ...parts), bytes);
      attachments.push({ path: rel, bytes: bytes.byteLength, sha256: crypto.createHash('sha256').update(bytes).digest('hex') });
    }
    if (attachments.length) manifest.attachments = attachments;
    await writeSynced(fs, path.join(tmp, MANIFEST_FILE), serializeManifest(manifest, where));
    await syncDir(fs, tmp);
    await progress({ phase: 'written' });
    if (await exists(fs, s.target)) {
      await fs.rename(s.target, s.backup);
      await progress({ phase: 'swapping' });
      await fs.rename(tmp, s.target);
      await syncDir(fs, s.parent);
      await fs.rm(s.backup, { recursive: true, force: true });
    } else {
      await fs.rename(tmp, s.target);
      await syncDir(fs, s.parent);
    }
    await progress({ phase: 'done' });
    return manifest;
  } catch (e) {
    await fs.rm(tmp, { recursive: true, force: true }).catch(() => {});
    if (!(await exists(fs, s.target).catch(() => true)) && (await exists(fs, s.backup).catch(() => false))) {
      await fs.rename(s.backup, s.target).catch(() => {});
    }
    throw ioError(where, 'save the checkpoint', e);
  }
}

/**
 * The directory to read: the checkpoint itself, or its backup when an interrupted save left only
 * that (reading does not rename anything; the next save does).
 */
async function readableDir(m: NodeModules, dir: string): Promise<string> {
  const s = siblings(m.path, dir);
  if (await exists(m.fs, s.target)) return s.target;
  if (await exists(m.fs, s.backup)) return s.backup;
  throw new CheckpointError('missing', s.target, `checkpoint directory ${s.target} does not exist; check the path`);
}

async function readManifestAt(m: NodeModules, d: string): Promise<CheckpointManifest> {
  const file = m.path.join(d, MANIFEST_FILE);
  let text: string;
  try {
    text = await m.fs.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new CheckpointError(
        'missing-manifest',
        file,
        `${d} has no ${MANIFEST_FILE}: it is not a checkpoint directory (or an interrupted copy of one)`,
      );
    }
    throw ioError(file, 'read the manifest', e);
  }
  return parseManifest(text, file);
}

/** Read and check a checkpoint's manifest without loading any weights. */
export async function readManifest<M = unknown>(dir: string): Promise<CheckpointManifest<M>> {
  const m = await node();
  return (await readManifestAt(m, await readableDir(m, dir))) as CheckpointManifest<M>;
}

/** Load a checkpoint directory as plain typed arrays, checking sizes and (by default) checksums. */
export async function loadCheckpointArraysFromDir<M = unknown>(dir: string, options: LoadOptions = {}): Promise<LoadedArrays<M>> {
  const m = await node();
  const d = await readableDir(m, dir);
  const manifest = await readManifestAt(m, d);
  const verify = options.verify ?? true;
  const shards = new Map<string, Uint8Array>();
  for (const entry of manifest.files) {
    const file = m.path.join(d, entry.path);
    let bytes: Uint8Array;
    try {
      bytes = await m.fs.readFile(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new CheckpointError('missing', file, `${file} is listed in the manifest but missing; the checkpoint is incomplete, save it again`);
      }
      throw ioError(file, 'read the shard', e);
    }
    const sha = verify ? m.crypto.createHash('sha256').update(bytes).digest('hex') : null;
    checkFile(entry, bytes, sha, file);
    shards.set(entry.path, bytes);
  }
  return {
    meta: manifest.meta as M,
    arrays: decodeArrays(manifest, shards),
    formatVersion: manifest.formatVersion,
    manifest: manifest as CheckpointManifest<M>,
  };
}

/** Load a checkpoint directory as tensors (the caller owns and disposes them). */
export async function loadCheckpointFromDir<M = unknown>(dir: string, options: LoadOptions = {}): Promise<LoadedCheckpoint<M>> {
  const { arrays, ...rest } = await loadCheckpointArraysFromDir<M>(dir, options);
  return { ...rest, tensors: toTensors(arrays) };
}
