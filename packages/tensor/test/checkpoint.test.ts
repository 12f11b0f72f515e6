import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rename, rm, truncate, writeFile, mkdir } from 'node:fs/promises';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CHECKPOINT_FORMAT_VERSION,
  CheckpointError,
  type NamedArrays,
  fetchCheckpointArrays,
  loadCheckpoint,
  loadCheckpointArrays,
  readManifest,
  rewriteManifest,
  saveCheckpoint,
  verifyCheckpoint,
} from '../src/checkpoint';
import { Rng } from '../src/rng';
import { tf } from '../src/tf';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'ofm-ckpt-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

let counter = 0;
function freshDir(): string {
  counter += 1;
  return join(root, `ckpt-${counter}`);
}

function sampleArrays(seed: number): NamedArrays {
  const rng = new Rng(seed);
  return {
    'unet.conv_in.w': { data: rng.normalArray(3 * 5 * 7), shape: [3, 5, 7] },
    'unet.scale': { data: Float32Array.of(-0.0 + rng.normal()), shape: [] },
    'counts': { data: Int32Array.of(-2147483648, 2147483647, 0, -1, 7), shape: [5] },
    'empty': { data: new Float32Array(0), shape: [0, 4] },
    'gpm.basis.down.0': { data: rng.normalArray(37 * 11), shape: [37, 11] },
  };
}

function bytesOf(a: Float32Array | Int32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

async function expectCheckpointError(p: Promise<unknown>, code: string, pattern: RegExp): Promise<CheckpointError> {
  const err = await p.then(
    () => {
      throw new Error('expected a CheckpointError');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CheckpointError);
  const ce = err as CheckpointError;
  expect(ce.code).toBe(code);
  expect(ce.message).toMatch(pattern);
  return ce;
}

describe('checkpoint round trip', () => {
  it('stores arrays bit-exactly across many shards, with sizes and SHA-256 in the manifest', async () => {
    const dir = freshDir();
    const arrays = sampleArrays(1);
    const meta = { tasks: ['bottle', 'cable'], ranks: { 'down.0': 11 }, note: 'é ✓' };
    // 37-byte shards: weights straddle shard boundaries and the byte count is not a multiple.
    const written = await saveCheckpoint(dir, arrays, meta, { shardBytes: 36 });
    const totalBytes = Object.values(arrays).reduce((s, a) => s + a.data.byteLength, 0);
    expect(written.weightsManifest[0]!.paths.length).toBe(Math.ceil(totalBytes / 36));

    const manifest = await readManifest(dir);
    expect(manifest.formatVersion).toBe(CHECKPOINT_FORMAT_VERSION);
    expect(manifest.meta).toEqual(meta);
    for (const f of manifest.files) {
      const bytes = await readFile(join(dir, f.path));
      expect(bytes.length).toBe(f.bytes);
      expect(bytes.length).toBeLessThanOrEqual(36);
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(f.sha256);
    }

    const loaded = await loadCheckpointArrays(dir);
    expect(Object.keys(loaded.arrays)).toEqual(Object.keys(arrays));
    for (const [name, a] of Object.entries(arrays)) {
      const b = loaded.arrays[name]!;
      expect(b.shape).toEqual(a.shape);
      expect(b.data.constructor).toBe(a.data.constructor);
      expect(bytesOf(b.data)).toEqual(bytesOf(a.data));
    }
    expect(loaded.meta).toEqual(meta);
    expect(loaded.formatVersion).toBe(CHECKPOINT_FORMAT_VERSION);
  });

  it('saves and loads tfjs tensors without leaking any', async () => {
    const dir = freshDir();
    const rng = new Rng(2);
    const tensors = {
      w: rng.randn([4, 3, 2]),
      b: tf.tensor1d([1, -2, 3], 'int32'),
      s: tf.scalar(0.25),
    };
    await saveCheckpoint(dir, tensors, { kind: 'tensors' }, { shardBytes: 40 });
    const before = tf.memory().numTensors;
    const { tensors: loaded, meta } = await loadCheckpoint(dir);
    expect(tf.memory().numTensors).toBe(before + 3);
    expect(meta).toEqual({ kind: 'tensors' });
    for (const [name, t] of Object.entries(tensors)) {
      const l = loaded[name]!;
      expect(l.shape).toEqual(t.shape);
      expect(l.dtype).toBe(t.dtype);
      expect(Array.from(l.dataSync())).toEqual(Array.from(t.dataSync()));
    }
    tf.dispose([...Object.values(tensors), ...Object.values(loaded)]);
  });

  it('replaces an existing checkpoint and leaves no temporary or backup directory', async () => {
    const dir = freshDir();
    await saveCheckpoint(dir, sampleArrays(3), { v: 1 });
    await saveCheckpoint(dir, { only: { data: Float32Array.of(1, 2), shape: [2] } }, { v: 2 });
    const loaded = await loadCheckpointArrays(dir);
    expect(loaded.meta).toEqual({ v: 2 });
    expect(Object.keys(loaded.arrays)).toEqual(['only']);
    expect((await readdir(dir)).sort()).toEqual(['group1-shard1of1.bin', 'manifest.json']);
    const leftovers = (await readdir(root)).filter((n) => n.includes('ofm-'));
    expect(leftovers).toEqual([]);
  });

  it('reads from a file: URL and from an http URL', async () => {
    const dir = freshDir();
    const arrays = sampleArrays(4);
    await saveCheckpoint(dir, arrays, { served: true }, { shardBytes: 1000 });
    const viaFileUrl = await loadCheckpointArrays(pathToFileURL(dir).href);
    expect(bytesOf(viaFileUrl.arrays['gpm.basis.down.0']!.data)).toEqual(bytesOf(arrays['gpm.basis.down.0']!.data));

    // Serve the directory over loopback HTTP, with one shard altered on request.
    let alter: string | null = null;
    const server: Server = createServer(async (req, res) => {
      const name = decodeURIComponent((req.url ?? '/').split('/').pop() ?? '');
      try {
        const body = await readFile(join(dir, name));
        if (name === alter) body[3] ^= 0xff;
        res.writeHead(200).end(body);
      } catch {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/ckpt`;
    try {
      const viaHttp = await loadCheckpointArrays(url);
      expect(viaHttp.meta).toEqual({ served: true });
      for (const [name, a] of Object.entries(arrays)) {
        expect(bytesOf(viaHttp.arrays[name]!.data)).toEqual(bytesOf(a.data));
      }
      const { tensors } = await loadCheckpoint(url);
      expect(tensors.counts!.dtype).toBe('int32');
      tf.dispose(Object.values(tensors));

      alter = 'group1-shard2of3.bin';
      await expectCheckpointError(fetchCheckpointArrays(url), 'checksum', /group1-shard2of3\.bin fails its SHA-256 check/);
      await expectCheckpointError(
        fetchCheckpointArrays(`${url.replace('/ckpt', '/nothing')}/`, { fetch: async () => new Response(null, { status: 404 }) }),
        'missing-manifest',
        /HTTP 404.*no manifest\.json there/,
      );
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

describe('checkpoint errors', () => {
  it('rejects another format version, naming the path and what to do', async () => {
    const dir = freshDir();
    await saveCheckpoint(dir, sampleArrays(5), {});
    const mpath = join(dir, 'manifest.json');
    const m = JSON.parse(await readFile(mpath, 'utf8'));
    m.formatVersion = CHECKPOINT_FORMAT_VERSION + 1;
    await writeFile(mpath, JSON.stringify(m));
    const err = await expectCheckpointError(
      loadCheckpoint(dir),
      'version',
      new RegExp(`format version ${CHECKPOINT_FORMAT_VERSION + 1}, but this build reads versions 1 to ${CHECKPOINT_FORMAT_VERSION}; .*upgrade`),
    );
    expect(err.path).toBe(mpath);
    m.formatVersion = 0;
    await writeFile(mpath, JSON.stringify(m));
    await expectCheckpointError(readManifest(dir), 'version', /older one-for-more/);
  });

  it('names a shard whose bytes were altered, or that was truncated or removed', async () => {
    const dir = freshDir();
    const arrays = sampleArrays(6);
    const { files } = await saveCheckpoint(dir, arrays, {}, { shardBytes: 1000 });
    expect(files.map((f) => f.path)).toEqual(['group1-shard1of3.bin', 'group1-shard2of3.bin', 'group1-shard3of3.bin']);
    const shard = join(dir, 'group1-shard2of3.bin');
    const original = await readFile(shard);
    const altered = Buffer.from(original);
    altered[10] ^= 1;
    await writeFile(shard, altered);
    const err = await expectCheckpointError(loadCheckpointArrays(dir), 'checksum', /group1-shard2of3\.bin fails its SHA-256 check/);
    expect(err.path).toBe(shard);
    // Without verification the altered data loads (so the check above is what caught it).
    const unverified = await loadCheckpointArrays(dir, { verify: false });
    expect(bytesOf(unverified.arrays['gpm.basis.down.0']!.data)).not.toEqual(bytesOf(arrays['gpm.basis.down.0']!.data));

    await writeFile(shard, original);
    await truncate(shard, 150);
    await expectCheckpointError(loadCheckpointArrays(dir), 'truncated', /group1-shard2of3\.bin has 150 bytes but the manifest lists 1000: the file is truncated/);
    await rm(shard);
    await expectCheckpointError(loadCheckpointArrays(dir), 'missing', /group1-shard2of3\.bin is listed in the manifest but missing/);
  });

  it('explains a missing directory, a missing manifest, bad JSON and shapes that do not fit the data', async () => {
    const dir = freshDir();
    await expectCheckpointError(loadCheckpoint(dir), 'missing', /does not exist/);
    await mkdir(dir);
    await expectCheckpointError(loadCheckpoint(dir), 'missing-manifest', /has no manifest\.json/);
    await writeFile(join(dir, 'manifest.json'), '{"format": "ofm-checkpoint", ');
    await expectCheckpointError(readManifest(dir), 'bad-manifest', /manifest\.json is not valid JSON/);
    await writeFile(join(dir, 'manifest.json'), '{"hello": 1}');
    await expectCheckpointError(readManifest(dir), 'bad-manifest', /"format" is undefined/);

    const good = freshDir();
    await saveCheckpoint(good, sampleArrays(7), {});
    const mpath = join(good, 'manifest.json');
    const m = JSON.parse(await readFile(mpath, 'utf8'));
    m.weightsManifest[0].weights[0].shape = [3, 5, 8];
    await writeFile(mpath, JSON.stringify(m));
    await expectCheckpointError(loadCheckpointArrays(good), 'size-mismatch', /unet\.conv_in\.w \[3,5,8\].*need 2132 bytes but .* hold 2072/);
  });

  it('rejects arrays that do not match their shapes and tensors it cannot store', async () => {
    const dir = freshDir();
    await expectCheckpointError(
      saveCheckpoint(dir, { bad: { data: new Float32Array(5), shape: [2, 3] } }, {}),
      'bad-input',
      /array 'bad' has 5 elements but its shape \[2,3\] needs 6/,
    );
    const flags = tf.tensor1d([1, 0], 'bool');
    await expectCheckpointError(saveCheckpoint(dir, { flags }, {}), 'bad-input', /tensor 'flags' has dtype bool/);
    flags.dispose();
  });

  it('refuses to replace a directory that is not a checkpoint', async () => {
    const dir = freshDir();
    await mkdir(dir);
    await writeFile(join(dir, 'notes.txt'), 'precious');
    await expectCheckpointError(saveCheckpoint(dir, sampleArrays(8), {}), 'not-a-checkpoint', /refusing to replace/);
    expect(await readFile(join(dir, 'notes.txt'), 'utf8')).toBe('precious');
  });

  it('falls back to the backup of an interrupted swap, and the next save restores order', async () => {
    const dir = freshDir();
    const arrays = sampleArrays(9);
    await saveCheckpoint(dir, arrays, { v: 'old' });
    // What a crash between the two renames of a swap leaves: only the backup.
    const backup = join(root, `.${dir.split('/').pop()}.ofm-old`);
    await rename(dir, backup);
    const loaded = await loadCheckpointArrays(dir);
    expect(loaded.meta).toEqual({ v: 'old' });
    await saveCheckpoint(dir, { x: { data: Int32Array.of(1), shape: [1] } }, { v: 'new' });
    expect((await loadCheckpointArrays(dir)).meta).toEqual({ v: 'new' });
    expect((await readdir(root)).filter((n) => n.includes('ofm-'))).toEqual([]);
  });

  it('seals the manifest: an edited or damaged manifest is caught and named, a rewritten one loads', async () => {
    const dir = freshDir();
    await saveCheckpoint(dir, sampleArrays(10), { classes: ['tiles'] });
    const mpath = join(dir, 'manifest.json');
    const text = await readFile(mpath, 'utf8');
    expect(text.startsWith('{\n  "manifestSha256": "')).toBe(true);
    // Whitespace is not content: the seal covers the canonical text.
    await writeFile(mpath, JSON.stringify(JSON.parse(text)));
    expect((await readManifest(dir)).meta).toEqual({ classes: ['tiles'] });
    // One character of meta changed: still valid JSON, caught by the seal.
    await writeFile(mpath, text.replace('"tiles"', '"tilez"'));
    const err = await expectCheckpointError(loadCheckpointArrays(dir), 'checksum', /manifest\.json fails its SHA-256 check .*edited or damaged/);
    expect(err.path).toBe(mpath);
    // The seal itself removed: refused (a version-2 manifest must carry it).
    const { manifestSha256: _, ...unsealed } = JSON.parse(text);
    await writeFile(mpath, JSON.stringify(unsealed));
    await expectCheckpointError(readManifest(dir), 'bad-manifest', /"manifestSha256" .* is missing/);
    // A tool that edits meta on purpose reseals.
    unsealed.meta = { classes: ['tiles', 'washer'] };
    await rewriteManifest(dir, unsealed);
    expect((await loadCheckpointArrays(dir)).meta).toEqual({ classes: ['tiles', 'washer'] });
  });

  it('still reads version-1 manifests, which have no seal', async () => {
    const dir = freshDir();
    const arrays = sampleArrays(11);
    await saveCheckpoint(dir, arrays, { old: true });
    const mpath = join(dir, 'manifest.json');
    const { manifestSha256: _, ...m } = JSON.parse(await readFile(mpath, 'utf8'));
    await writeFile(mpath, JSON.stringify({ ...m, formatVersion: 1 }, null, 2));
    const loaded = await loadCheckpointArrays(dir);
    expect(loaded.formatVersion).toBe(1);
    expect(bytesOf(loaded.arrays['unet.conv_in.w']!.data)).toEqual(bytesOf(arrays['unet.conv_in.w']!.data));
  });

  it('verifyCheckpoint checks every listed file, attachments included, and names the first bad one', async () => {
    const dir = freshDir();
    await saveCheckpoint(dir, sampleArrays(12), {}, { files: { 'report/report.md': '# report\n' } });
    expect((await verifyCheckpoint(dir)).attachments).toHaveLength(1);
    const report = join(dir, 'report', 'report.md');
    await writeFile(report, '# r3port\n');
    // Loading the weights does not read attachments; verifying does.
    await loadCheckpointArrays(dir);
    await expectCheckpointError(verifyCheckpoint(dir), 'checksum', /report\/report\.md fails its SHA-256 check/);
    await rm(report);
    await expectCheckpointError(verifyCheckpoint(dir), 'missing', /report\/report\.md is listed in the manifest but missing/);
  });

  it('with finite: true, refuses NaN or infinite values and writes nothing', async () => {
    const dir = freshDir();
    await saveCheckpoint(dir, sampleArrays(13), { v: 'good' });
    const bad = sampleArrays(14);
    bad['gpm.basis.down.0']!.data[5] = Number.NaN;
    await expectCheckpointError(
      saveCheckpoint(dir, bad, { v: 'bad' }, { finite: true }),
      'non-finite',
      /array 'gpm\.basis\.down\.0' holds NaN \(element 5 of 407\); refusing/,
    );
    bad['gpm.basis.down.0']!.data[5] = Number.POSITIVE_INFINITY;
    await expectCheckpointError(saveCheckpoint(dir, bad, {}, { finite: true }), 'non-finite', /holds Infinity/);
    expect((await loadCheckpointArrays(dir)).meta).toEqual({ v: 'good' });
    expect((await readdir(root)).filter((n) => n.includes('ofm-tmp'))).toEqual([]);
  });

  it('a checkpoint may hold nested checkpoints; saving the outer one replaces them', async () => {
    const dir = freshDir();
    // A first task's snapshot, before any checkpoint of the outer directory exists.
    await saveCheckpoint(join(dir, 'snapshot'), sampleArrays(15), { step: 3 });
    await saveCheckpoint(dir, sampleArrays(16), { tasks: 1 });
    expect(await readdir(dir)).not.toContain('snapshot');
    await saveCheckpoint(join(dir, 'snapshot'), sampleArrays(17), { step: 5 });
    expect((await loadCheckpointArrays(dir)).meta).toEqual({ tasks: 1 });
    expect((await loadCheckpointArrays(join(dir, 'snapshot'))).meta).toEqual({ step: 5 });
    await saveCheckpoint(dir, sampleArrays(18), { tasks: 2 });
    expect((await readdir(dir)).sort()).toEqual(['group1-shard1of1.bin', 'manifest.json']);
  });
});
