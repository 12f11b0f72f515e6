/**
 * Checkpoints read over HTTP(S) with fetch: for the browser demo, and for any runtime with fetch.
 * No Node built-ins. Checksums use Web Crypto (crypto.subtle), which browsers offer on https pages
 * and localhost.
 */
import {
  CheckpointError,
  type CheckpointManifest,
  MANIFEST_FILE,
  checkFile,
  checkManifestSeal,
  decodeArrays,
  manifestDigestInput,
  parseManifest,
} from './format';
import { type LoadedArrays, type LoadedCheckpoint, toTensors } from './tensors';

/** Options of the URL loaders. */
export interface FetchOptions {
  /** Check each file's SHA-256 against the manifest (default true; needs crypto.subtle). */
  verify?: boolean;
  /** The fetch to use (default globalThis.fetch), e.g. one that adds credentials. */
  fetch?: typeof globalThis.fetch;
}

function fileUrl(base: string, file: string): string {
  return `${base.replace(/\/+$/, '')}/${encodeURIComponent(file)}`;
}

async function get(fetchFn: typeof globalThis.fetch, url: string, what: string): Promise<Response> {
  let res: Response;
  try {
    res = await fetchFn(url);
  } catch (cause) {
    throw new CheckpointError('io', url, `could not fetch ${what} ${url}: ${(cause as Error).message}`, { cause });
  }
  if (!res.ok) {
    const missing = res.status === 404 || res.status === 410;
    throw new CheckpointError(
      missing ? (what === MANIFEST_FILE ? 'missing-manifest' : 'missing') : 'io',
      url,
      `${url}: HTTP ${res.status} ${res.statusText}` +
        (missing ? `: no ${what} there; check the checkpoint URL` : '; check the server and the URL'),
    );
  }
  return res;
}

async function sha256Hex(bytes: Uint8Array | string, where: string): Promise<string> {
  const subtle = globalThis.crypto?.subtle;
  if (subtle === undefined) {
    throw new CheckpointError(
      'io',
      where,
      `${where}: cannot check SHA-256 because crypto.subtle is unavailable (a page served over plain http?); ` +
        'serve the app over https or localhost, or load with { verify: false }',
    );
  }
  const data = typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes;
  const digest = new Uint8Array(await subtle.digest('SHA-256', data as Uint8Array<ArrayBuffer>));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Fetch and check the manifest of the checkpoint at `url` (the directory's URL), its seal included unless `verify` is false. */
export async function fetchManifest<M = unknown>(url: string, options: FetchOptions = {}): Promise<CheckpointManifest<M>> {
  const fetchFn = options.fetch ?? globalThis.fetch;
  const murl = fileUrl(url, MANIFEST_FILE);
  const res = await get(fetchFn, murl, MANIFEST_FILE);
  const manifest = parseManifest(await res.text(), murl);
  if (options.verify ?? true) checkManifestSeal(manifest, await sha256Hex(manifestDigestInput(manifest, murl), murl), murl);
  return manifest as CheckpointManifest<M>;
}

/** Fetch a checkpoint as plain typed arrays, checking sizes and (by default) checksums. */
export async function fetchCheckpointArrays<M = unknown>(url: string, options: FetchOptions = {}): Promise<LoadedArrays<M>> {
  const fetchFn = options.fetch ?? globalThis.fetch;
  const manifest = await fetchManifest<M>(url, options);
  const verify = options.verify ?? true;
  const shards = new Map<string, Uint8Array>();
  await Promise.all(
    manifest.files.map(async (entry) => {
      const furl = fileUrl(url, entry.path);
      const res = await get(fetchFn, furl, entry.path);
      const bytes = new Uint8Array(await res.arrayBuffer());
      checkFile(entry, bytes, verify ? await sha256Hex(bytes, furl) : null, furl);
      shards.set(entry.path, bytes);
    }),
  );
  return {
    meta: manifest.meta,
    arrays: decodeArrays(manifest as CheckpointManifest, shards),
    formatVersion: manifest.formatVersion,
    manifest,
  };
}

/** Fetch a checkpoint as tensors (the caller owns and disposes them). */
export async function fetchCheckpoint<M = unknown>(url: string, options: FetchOptions = {}): Promise<LoadedCheckpoint<M>> {
  const { arrays, ...rest } = await fetchCheckpointArrays<M>(url, options);
  return { ...rest, tensors: toTensors(arrays) };
}
