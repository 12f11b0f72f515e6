/**
 * The checkpoint format, shared by the Node (directory) and browser (URL) readers: a
 * `manifest.json` in the tfjs weights-manifest style plus little-endian binary shards.
 *
 * ```json
 * {
 *   "manifestSha256": "...",
 *   "format": "ofm-checkpoint",
 *   "formatVersion": 2,
 *   "meta": { ...anything JSON... },
 *   "weightsManifest": [{ "paths": ["group1-shard1of2.bin", "group1-shard2of2.bin"],
 *                         "weights": [{ "name": "unet.conv_in.w", "shape": [3, 3, 4, 64], "dtype": "float32" }] }],
 *   "files": [{ "path": "group1-shard1of2.bin", "bytes": 67108864, "sha256": "..." }, ...]
 * }
 * ```
 *
 * As in tfjs, the weights of a group are concatenated in manifest order and the byte stream is cut
 * into shards (a weight may straddle two shards). `files` is our addition: size and SHA-256 of
 * each shard, checked on load. Since version 2, `manifestSha256` seals the manifest itself: the
 * SHA-256 of its canonical text ({@link manifestDigestInput}), so an edited or damaged manifest is
 * caught like a damaged shard. Version 1 (no seal) is still read.
 */

import { OfmError } from '@ofm/errors';

/** The manifest format version this code writes. */
export const CHECKPOINT_FORMAT_VERSION = 2;
/** The oldest manifest format version this code reads (version 1 has no `manifestSha256`). */
export const OLDEST_READABLE_FORMAT_VERSION = 1;
/** Name of the manifest inside a checkpoint directory. */
export const MANIFEST_FILE = 'manifest.json';
/** Default largest shard size in bytes. */
export const DEFAULT_SHARD_BYTES = 64 * 1024 * 1024;
/** Value of the manifest's `format` field. */
export const CHECKPOINT_FORMAT = 'ofm-checkpoint';

/** Element types a checkpoint stores (4 bytes each, little-endian). */
export type CheckpointDtype = 'float32' | 'int32';

/** One stored array: its elements (row-major) and shape. */
export interface NamedArray {
  data: Float32Array | Int32Array;
  shape: number[];
}

/** Arrays by name: what the raw-array loaders return and what saving accepts besides tensors. */
export type NamedArrays = Record<string, NamedArray>;

/** A weight entry of the manifest (tfjs `WeightsManifestEntry` subset). */
export interface WeightEntry {
  name: string;
  shape: number[];
  dtype: CheckpointDtype;
}

/** A group of weights stored as one byte stream cut into the shards `paths`. */
export interface WeightsGroup {
  paths: string[];
  weights: WeightEntry[];
}

/** Size and checksum of one binary file of the checkpoint. */
export interface FileEntry {
  path: string;
  bytes: number;
  /** Lower-case hex SHA-256 of the file's bytes. */
  sha256: string;
}

/** The parsed `manifest.json`. */
export interface CheckpointManifest<M = unknown> {
  /**
   * SHA-256 of the manifest's canonical text with this field zeroed (format version 2 on; absent in
   * version 1 and in a manifest not yet sealed).
   */
  manifestSha256?: string;
  format: typeof CHECKPOINT_FORMAT;
  formatVersion: number;
  meta: M;
  weightsManifest: WeightsGroup[];
  files: FileEntry[];
  /**
   * Other files saved in the same atomic write (reports, figures), with size and SHA-256. Not read
   * by the loaders; absent when there are none.
   */
  attachments?: FileEntry[];
}

/** What went wrong, for programs that react to checkpoint errors. */
export type CheckpointErrorCode =
  | 'missing' // directory, URL or file not found
  | 'missing-manifest'
  | 'bad-manifest' // not JSON, or not the expected structure
  | 'version' // format version outside OLDEST_READABLE_FORMAT_VERSION..CHECKPOINT_FORMAT_VERSION
  | 'truncated' // a file is shorter (or longer) than the manifest says
  | 'checksum' // a file's SHA-256 differs from the manifest's
  | 'size-mismatch' // the manifest's shapes do not match the bytes it lists
  | 'bad-input' // what was handed to saveCheckpoint cannot be stored
  | 'non-finite' // saving with `finite: true` met a NaN or infinite value
  | 'not-a-checkpoint' // refusing to replace a directory that is not a checkpoint
  | 'locked' // another process holds the checkpoint's write lock
  | 'io'; // any other file-system or network failure

/**
 * A checkpoint could not be written or read; the message names the file and the fix. Its kind is
 * `'checkpoint'` (an {@link OfmError} of `@ofm/errors`) and its `code` says what went wrong.
 */
export class CheckpointError extends OfmError {
  override readonly name: string = 'CheckpointError';
  /** What went wrong. */
  declare readonly code: CheckpointErrorCode;
  /**
   * @param code what went wrong
   * @param path the directory, URL or file concerned
   * @param message what is wrong and the fix
   * @param options the cause
   */
  constructor(
    code: CheckpointErrorCode,
    /** The directory, URL or file concerned. */
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super('checkpoint', message, { code, cause: options?.cause });
  }
}

const BYTES_PER_ELEMENT = 4;
const DTYPES: readonly CheckpointDtype[] = ['float32', 'int32'];

/** Number of elements of a shape (1 for a scalar). */
export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** The dtype of a stored array. */
export function dtypeOf(data: Float32Array | Int32Array): CheckpointDtype {
  return data instanceof Float32Array ? 'float32' : 'int32';
}

function isShape(x: unknown): x is number[] {
  return Array.isArray(x) && x.every((d) => Number.isInteger(d) && d >= 0);
}

/**
 * Check arrays before they are written: names, shapes, element counts and types. Throws a
 * 'bad-input' CheckpointError that names the offending array.
 */
export function validateArrays(arrays: NamedArrays, where: string): void {
  for (const [name, a] of Object.entries(arrays)) {
    if (name.length === 0) throw new CheckpointError('bad-input', where, `${where}: an array has an empty name`);
    if (a === null || typeof a !== 'object' || !isShape(a.shape)) {
      throw new CheckpointError('bad-input', where, `${where}: array '${name}' needs a shape of non-negative integers`);
    }
    if (!(a.data instanceof Float32Array || a.data instanceof Int32Array)) {
      throw new CheckpointError(
        'bad-input',
        where,
        `${where}: array '${name}' must hold a Float32Array or Int32Array (checkpoints store float32 and int32)`,
      );
    }
    const want = shapeSize(a.shape);
    if (a.data.length !== want) {
      throw new CheckpointError(
        'bad-input',
        where,
        `${where}: array '${name}' has ${a.data.length} elements but its shape [${a.shape}] needs ${want}`,
      );
    }
  }
}

/**
 * Refuse float arrays holding NaN or ±Infinity: a 'non-finite' CheckpointError naming the first
 * such array and element.
 */
export function checkFinite(arrays: NamedArrays, where: string): void {
  for (const [name, a] of Object.entries(arrays)) {
    if (!(a.data instanceof Float32Array)) continue;
    const data = a.data;
    for (let i = 0; i < data.length; i++) {
      if (Number.isFinite(data[i]!)) continue;
      throw new CheckpointError(
        'non-finite',
        where,
        `${where}: array '${name}' holds ${data[i]} (element ${i} of ${data.length}); refusing to write non-finite values ` +
          'into a checkpoint: the model diverged, so keep the previous checkpoint and train again with a lower learning rate',
      );
    }
  }
}

/** Where one shard's bytes come from: `length` bytes starting at `offset` of the group stream. */
export interface ShardPlan {
  path: string;
  offset: number;
  length: number;
}

/** Cut a byte stream of `total` bytes into shards of at most `shardBytes`. */
export function planShards(total: number, shardBytes: number): ShardPlan[] {
  if (!(Number.isInteger(shardBytes) && shardBytes >= BYTES_PER_ELEMENT)) {
    throw new RangeError(`checkpoint: shardBytes must be an integer >= 4, got ${shardBytes}`);
  }
  const count = Math.ceil(total / shardBytes);
  const plans: ShardPlan[] = [];
  for (let i = 0; i < count; i++) {
    const offset = i * shardBytes;
    plans.push({ path: `group1-shard${i + 1}of${count}.bin`, offset, length: Math.min(shardBytes, total - offset) });
  }
  return plans;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** The little-endian bytes of an array (a view when the platform is little-endian). */
export function littleEndianBytes(data: Float32Array | Int32Array): Uint8Array {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return LITTLE_ENDIAN ? bytes : swap4(bytes);
}

function swap4(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i += 4) {
    out[i] = bytes[i + 3]!;
    out[i + 1] = bytes[i + 2]!;
    out[i + 2] = bytes[i + 1]!;
    out[i + 3] = bytes[i]!;
  }
  return out;
}

/**
 * Fill `shard` with bytes [offset, offset + shard.length) of the concatenation of `arrays` (in the
 * given order).
 */
export function fillShard(shard: Uint8Array, offset: number, arrays: readonly (Float32Array | Int32Array)[]): void {
  let pos = 0; // start of the current array in the stream
  let written = 0;
  for (const a of arrays) {
    const len = a.byteLength;
    const end = pos + len;
    if (end > offset && pos < offset + shard.length) {
      const from = Math.max(offset, pos) - pos;
      const to = Math.min(offset + shard.length, end) - pos;
      shard.set(littleEndianBytes(a).subarray(from, to), written);
      written += to - from;
    }
    pos = end;
    if (pos >= offset + shard.length) break;
  }
}

/** Build the manifest for arrays written as the given shards. */
export function buildManifest(
  arrays: NamedArrays,
  meta: unknown,
  files: FileEntry[],
): CheckpointManifest {
  const weights: WeightEntry[] = Object.entries(arrays).map(([name, a]) => ({
    name,
    shape: [...a.shape],
    dtype: dtypeOf(a.data),
  }));
  return {
    format: CHECKPOINT_FORMAT,
    formatVersion: CHECKPOINT_FORMAT_VERSION,
    meta: meta ?? {},
    weightsManifest: [{ paths: files.map((f) => f.path), weights }],
    files,
  };
}

const UNSEALED = '0'.repeat(64);

/** JSON text of a manifest with `manifestSha256` first and set to `seal` (two-space indent). */
function manifestText(manifest: CheckpointManifest, seal: string, where: string): string {
  const { manifestSha256: _, ...rest } = manifest;
  try {
    return `${JSON.stringify({ manifestSha256: seal, ...rest }, null, 2)}\n`;
  } catch (cause) {
    throw new CheckpointError('bad-input', where, `${where}: meta cannot be written as JSON (${String(cause)})`, { cause });
  }
}

/**
 * The text `manifestSha256` is the SHA-256 of: the manifest's canonical JSON (two-space indent, key
 * order as parsed) with `manifestSha256` zeroed. Canonical, so the seal checks the content whatever
 * the file's whitespace; a manifest parsed from its file gives back the text its writer hashed.
 */
export function manifestDigestInput(manifest: CheckpointManifest, where: string): string {
  return manifestText(manifest, UNSEALED, where);
}

/** JSON text of a manifest sealed with `sha256`, the digest of {@link manifestDigestInput}. */
export function serializeManifest(manifest: CheckpointManifest, sha256: string, where: string): string {
  return manifestText(manifest, sha256, where);
}

/**
 * Check a manifest's seal (format version 2 on): `sha256` is the digest of its
 * {@link manifestDigestInput}. Version 1 manifests have no seal and pass.
 */
export function checkManifestSeal(manifest: CheckpointManifest, sha256: string, where: string): void {
  if (manifest.formatVersion < 2 || manifest.manifestSha256 === sha256) return;
  throw new CheckpointError(
    'checksum',
    where,
    `${where} fails its SHA-256 check (sealed ${manifest.manifestSha256!.slice(0, 12)}..., content ${sha256.slice(0, 12)}...): ` +
      'the manifest was edited or damaged; copy or save the checkpoint again (tools that edit a manifest must rewrite it with rewriteManifest)',
  );
}

/**
 * Parse and check manifest text: JSON, structure, format version, and that every group's shapes
 * add up to the bytes of its files. `where` names the manifest in errors.
 */
export function parseManifest(text: string, where: string): CheckpointManifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new CheckpointError(
      'bad-manifest',
      where,
      `${where} is not valid JSON (${(cause as Error).message}); the checkpoint is damaged: save it again or restore a copy`,
      { cause },
    );
  }
  const bad = (what: string): CheckpointError =>
    new CheckpointError('bad-manifest', where, `${where}: ${what}; the checkpoint is damaged or not a one-for-more checkpoint`);
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw bad('expected a JSON object');
  const m = json as Record<string, unknown>;
  if (m.format !== CHECKPOINT_FORMAT) throw bad(`"format" is ${JSON.stringify(m.format)}, expected "${CHECKPOINT_FORMAT}"`);
  if (typeof m.formatVersion !== 'number') throw bad('"formatVersion" is missing');
  if (!(m.formatVersion >= OLDEST_READABLE_FORMAT_VERSION && m.formatVersion <= CHECKPOINT_FORMAT_VERSION)) {
    const fix =
      m.formatVersion > CHECKPOINT_FORMAT_VERSION
        ? 'it was written by a newer one-for-more: upgrade @ofm/tensor to read it'
        : 'it was written by an older one-for-more: load it with that version and save it again, or convert it';
    throw new CheckpointError(
      'version',
      where,
      `${where}: checkpoint format version ${m.formatVersion}, but this build reads versions ` +
        `${OLDEST_READABLE_FORMAT_VERSION} to ${CHECKPOINT_FORMAT_VERSION}; ${fix}`,
    );
  }
  if (m.formatVersion >= 2 && !(typeof m.manifestSha256 === 'string' && /^[0-9a-f]{64}$/.test(m.manifestSha256))) {
    throw bad(`"manifestSha256" (the manifest's own checksum, required since format version 2) is missing or not hex`);
  }
  if (!Array.isArray(m.weightsManifest)) throw bad('"weightsManifest" must be an array');
  if (!Array.isArray(m.files)) throw bad('"files" must be an array');
  const files = new Map<string, FileEntry>();
  for (const f of m.files as unknown[]) {
    const e = f as Record<string, unknown>;
    if (
      e === null ||
      typeof e !== 'object' ||
      typeof e.path !== 'string' ||
      !Number.isInteger(e.bytes) ||
      (e.bytes as number) < 0 ||
      typeof e.sha256 !== 'string' ||
      !/^[0-9a-f]{64}$/.test(e.sha256)
    ) {
      throw bad(`file entry ${JSON.stringify(f)} needs "path", "bytes" and a hex "sha256"`);
    }
    if (e.path.includes('/') || e.path.includes('\\') || e.path.startsWith('.')) {
      throw bad(`file path ${JSON.stringify(e.path)} must be a plain file name inside the checkpoint`);
    }
    files.set(e.path, { path: e.path, bytes: e.bytes as number, sha256: e.sha256 });
  }
  const names = new Set<string>();
  const listed = new Set<string>();
  for (const g of m.weightsManifest as unknown[]) {
    const group = g as Record<string, unknown>;
    if (group === null || typeof group !== 'object' || !Array.isArray(group.paths) || !Array.isArray(group.weights)) {
      throw bad('each weightsManifest group needs "paths" and "weights" arrays');
    }
    let need = 0;
    for (const w of group.weights as unknown[]) {
      const e = w as Record<string, unknown>;
      if (e === null || typeof e !== 'object' || typeof e.name !== 'string' || !isShape(e.shape)) {
        throw bad(`weight entry ${JSON.stringify(w)} needs a "name" and a "shape" of non-negative integers`);
      }
      if (!DTYPES.includes(e.dtype as CheckpointDtype)) {
        throw bad(`weight '${e.name}' has dtype ${JSON.stringify(e.dtype)}; supported: ${DTYPES.join(', ')}`);
      }
      if (names.has(e.name)) throw bad(`weight '${e.name}' appears twice`);
      names.add(e.name);
      need += shapeSize(e.shape) * BYTES_PER_ELEMENT;
    }
    let have = 0;
    for (const p of group.paths as unknown[]) {
      const f = typeof p === 'string' ? files.get(p) : undefined;
      if (f === undefined) throw bad(`shard ${JSON.stringify(p)} has no entry in "files"`);
      listed.add(f.path);
      have += f.bytes;
    }
    if (need !== have) {
      const which = (group.weights as WeightEntry[]).map((w) => `${w.name} [${w.shape}]`).join(', ');
      throw new CheckpointError(
        'size-mismatch',
        where,
        `${where}: the weights ${which} need ${need} bytes but their shards ${(group.paths as string[]).join(', ')} ` +
          `hold ${have}; a shape in the manifest does not match the stored data: the checkpoint is damaged, save it again`,
      );
    }
  }
  for (const path of files.keys()) {
    if (!listed.has(path)) throw bad(`file ${path} is listed but belongs to no weights group`);
  }
  return m as unknown as CheckpointManifest;
}

/**
 * Check one loaded file against its manifest entry (size first, then checksum). `sha256` is the hex
 * digest of `bytes`, or null to skip the checksum.
 */
export function checkFile(entry: FileEntry, bytes: Uint8Array, sha256: string | null, where: string): void {
  if (bytes.length !== entry.bytes) {
    throw new CheckpointError(
      'truncated',
      where,
      `${where} has ${bytes.length} bytes but the manifest lists ${entry.bytes}: the file is ` +
        `${bytes.length < entry.bytes ? 'truncated' : 'too long'} (an interrupted copy or download?); copy or save the checkpoint again`,
    );
  }
  if (sha256 !== null && sha256 !== entry.sha256) {
    throw new CheckpointError(
      'checksum',
      where,
      `${where} fails its SHA-256 check (manifest ${entry.sha256.slice(0, 12)}..., file ${sha256.slice(0, 12)}...): ` +
        'its contents were altered or damaged; copy or save the checkpoint again',
    );
  }
}

/** Cut the arrays of every group out of its shards' bytes (each array a fresh copy). */
export function decodeArrays(manifest: CheckpointManifest, shards: Map<string, Uint8Array>): NamedArrays {
  const out: NamedArrays = {};
  for (const group of manifest.weightsManifest) {
    const total = group.paths.reduce((s, p) => s + shards.get(p)!.length, 0);
    const stream = new Uint8Array(total);
    let pos = 0;
    for (const p of group.paths) {
      const b = shards.get(p)!;
      stream.set(b, pos);
      pos += b.length;
    }
    let offset = 0;
    for (const w of group.weights) {
      const n = shapeSize(w.shape);
      const bytes = stream.slice(offset, offset + n * BYTES_PER_ELEMENT);
      const le = LITTLE_ENDIAN ? bytes : swap4(bytes);
      const data = w.dtype === 'float32' ? new Float32Array(le.buffer, 0, n) : new Int32Array(le.buffer, 0, n);
      out[w.name] = { data, shape: [...w.shape] };
      offset += n * BYTES_PER_ELEMENT;
    }
  }
  return out;
}
