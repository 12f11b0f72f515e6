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
 * loading falls back to and the next save renames back. One writer per checkpoint at a time: hold
 * its lock ({@link acquireCheckpointLock} in `lock.ts`) around a run of saves.
 *
 * A checkpoint directory may hold other checkpoints in sub-directories (a training run keeps its
 * mid-task snapshot in `<checkpoint>/snapshot/`); saving the outer checkpoint replaces them too.
 */
import type * as Crypto from 'node:crypto';
import type * as Fs from 'node:fs/promises';
import type * as Path from 'node:path';
import {
  CHECKPOINT_FORMAT_VERSION,
  CheckpointError,
  type CheckpointManifest,
  DEFAULT_SHARD_BYTES,
  type FileEntry,
  MANIFEST_FILE,
  buildManifest,
  checkFile,
  checkFinite,
  checkManifestSeal,
  decodeArrays,
  fillShard,
  manifestDigestInput,
  parseManifest,
  planShards,
  serializeManifest,
  validateArrays,
} from './format';
import { type CheckpointTensors, type LoadedArrays, type LoadedCheckpoint, toNamedArrays, toTensors } from './tensors';

/** The Node built-ins this module and `lock.ts` use. */
export interface NodeModules {
  fs: typeof Fs;
  path: typeof Path;
  crypto: typeof Crypto;
}

let nodeModules: Promise<NodeModules> | undefined;

/** Import the Node built-ins (once). */
export function node(): Promise<NodeModules> {
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
  /**
   * Refuse to write float arrays holding NaN or ±Infinity (a 'non-finite' error naming the array;
   * nothing is written). Default false.
   */
  finite?: boolean;
}

/** Options of the directory loaders. */
export interface LoadOptions {
  /** Check each file's SHA-256 against the manifest (default true). */
  verify?: boolean;
}

/** The paths around a checkpoint directory (its lock file among them). */
export function siblings(path: typeof Path, dir: string) {
  const target = path.resolve(dir);
  const parent = path.dirname(target);
  const base = path.basename(target);
  return {
    target,
    parent,
    backup: path.join(parent, `.${base}.ofm-old`),
    tmpPrefix: `.${base}.ofm-tmp-`,
    lock: path.join(parent, `.${base}.ofm-lock`),
  };
}

/** True when `p` exists (a broken link counts). */
export async function exists(fs: typeof Fs, p: string): Promise<boolean> {
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

/** True when process `pid` runs on this host (one we may not signal counts as running). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A file-system failure as a CheckpointError naming `where` (CheckpointErrors pass through). */
export function ioError(where: string, action: string, cause: unknown): CheckpointError {
  if (cause instanceof CheckpointError) return cause;
  const e = cause as NodeJS.ErrnoException;
  return new CheckpointError('io', where, `${where}: could not ${action}: ${e.code ?? ''} ${e.message}`.trim(), { cause });
}

/**
 * Tidy what killed saves left around a checkpoint: put back a backup left by an interrupted swap
 * (or drop it when the swap finished), and remove the temporary directories of dead writers.
 */
export async function repairCheckpoint(m: NodeModules, s: ReturnType<typeof siblings>): Promise<void> {
  const { fs, path } = m;
  const targetExists = await exists(fs, s.target);
  if (await exists(fs, s.backup)) {
    if (targetExists) await fs.rm(s.backup, { recursive: true, force: true });
    else await fs.rename(s.backup, s.target);
  }
  let names: string[];
  try {
    names = await fs.readdir(s.parent);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  for (const name of names) {
    if (!name.startsWith(s.tmpPrefix)) continue;
    const pid = Number(name.slice(s.tmpPrefix.length).split('-')[0]);
    if (Number.isInteger(pid) && pid !== process.pid && !processAlive(pid)) {
      await fs.rm(path.join(s.parent, name), { recursive: true, force: true });
    }
  }
}

/**
 * True for what a checkpoint directory may hold besides its own files: a nested checkpoint (a
 * directory with a manifest) or what a save of one leaves beside it (`.<name>.ofm-*`).
 */
async function isNestedCheckpoint(m: NodeModules, dir: string, name: string): Promise<boolean> {
  const p = m.path.join(dir, name);
  if (!(await m.fs.stat(p)).isDirectory()) return false;
  return (name.startsWith('.') && name.includes('.ofm-')) || (await exists(m.fs, m.path.join(p, MANIFEST_FILE)));
}

/**
 * Before a save: repair what killed saves left, and refuse to replace a directory that is not a
 * checkpoint (one holding only nested checkpoints is fine: a first task's snapshot, say).
 */
async function prepareTarget(m: NodeModules, s: ReturnType<typeof siblings>): Promise<void> {
  const { fs } = m;
  await repairCheckpoint(m, s);
  if (await exists(fs, s.target)) {
    const st = await fs.stat(s.target);
    if (!st.isDirectory()) {
      throw new CheckpointError('not-a-checkpoint', s.target, `${s.target} is a file, not a checkpoint directory; choose another path`);
    }
    const entries = await fs.readdir(s.target);
    if (entries.includes(MANIFEST_FILE)) return;
    for (const name of entries) {
      if (await isNestedCheckpoint(m, s.target, name)) continue;
      throw new CheckpointError(
        'not-a-checkpoint',
        s.target,
        `${s.target} exists and holds files (${name}) but no ${MANIFEST_FILE}: refusing to replace a directory that is not ` +
          'a checkpoint; choose an empty or new directory',
      );
    }
  }
}

/** Seal a manifest: its text with `manifestSha256` set (see `manifestDigestInput`). */
function sealedManifestText(m: NodeModules, manifest: CheckpointManifest, where: string): string {
  const sha = m.crypto.createHash('sha256').update(manifestDigestInput(manifest, where)).digest('hex');
  return serializeManifest(manifest, sha, where);
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
  if (options.finite) checkFinite(arrays, where);
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
    await writeSynced(fs, path.join(tmp, MANIFEST_FILE), sealedManifestText(m, manifest, where));
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
  const manifest = parseManifest(text, file);
  checkManifestSeal(manifest, m.crypto.createHash('sha256').update(manifestDigestInput(manifest, file)).digest('hex'), file);
  return manifest;
}

/** Read and check a checkpoint's manifest without loading any weights. */
export async function readManifest<M = unknown>(dir: string): Promise<CheckpointManifest<M>> {
  const m = await node();
  return (await readManifestAt(m, await readableDir(m, dir))) as CheckpointManifest<M>;
}

/** Read a file the manifest lists, checking its size and (when `verify`) its SHA-256. */
async function readListedFile(m: NodeModules, d: string, entry: FileEntry, verify: boolean): Promise<Uint8Array> {
  const file = m.path.join(d, ...entry.path.split('/'));
  let bytes: Uint8Array;
  try {
    bytes = await m.fs.readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new CheckpointError('missing', file, `${file} is listed in the manifest but missing; the checkpoint is incomplete, save it again`);
    }
    throw ioError(file, 'read the file', e);
  }
  checkFile(entry, bytes, verify ? m.crypto.createHash('sha256').update(bytes).digest('hex') : null, file);
  return bytes;
}

/**
 * Check a whole checkpoint directory without decoding it: the manifest's seal, then the size and
 * SHA-256 of every file it lists, shards and attachments alike. Throws the first problem as a
 * CheckpointError naming the file; returns the manifest when all is well.
 */
export async function verifyCheckpoint<M = unknown>(dir: string): Promise<CheckpointManifest<M>> {
  const m = await node();
  const d = await readableDir(m, dir);
  const manifest = await readManifestAt(m, d);
  for (const entry of [...manifest.files, ...(manifest.attachments ?? [])]) await readListedFile(m, d, entry, true);
  return manifest as CheckpointManifest<M>;
}

/**
 * Replace a checkpoint's manifest with `manifest`, sealed afresh (for migration tools that edit
 * `meta`). The binary files are not touched, so the weights and files it lists must stay as they
 * are. The manifest file is swapped in atomically, at the current format version.
 */
export async function rewriteManifest(dir: string, manifest: CheckpointManifest): Promise<void> {
  const m = await node();
  const d = await readableDir(m, dir);
  const file = m.path.join(d, MANIFEST_FILE);
  const tmp = `${file}.ofm-tmp-${process.pid}`;
  const text = sealedManifestText(m, { ...manifest, formatVersion: CHECKPOINT_FORMAT_VERSION }, file);
  parseManifest(text, file); // the same checks a reader makes
  try {
    await m.fs.rm(tmp, { force: true });
    await writeSynced(m.fs, tmp, text);
    await m.fs.rename(tmp, file);
    await syncDir(m.fs, d);
  } catch (e) {
    await m.fs.rm(tmp, { force: true }).catch(() => {});
    throw ioError(file, 'rewrite the manifest', e);
  }
}

/** Load a checkpoint directory as plain typed arrays, checking sizes and (by default) checksums. */
export async function loadCheckpointArraysFromDir<M = unknown>(dir: string, options: LoadOptions = {}): Promise<LoadedArrays<M>> {
  const m = await node();
  const d = await readableDir(m, dir);
  const manifest = await readManifestAt(m, d);
  const verify = options.verify ?? true;
  const shards = new Map<string, Uint8Array>();
  for (const entry of manifest.files) shards.set(entry.path, await readListedFile(m, d, entry, verify));
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
