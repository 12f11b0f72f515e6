/**
 * Exported models: `exportDetector` keeps exactly the weights the model needs (no GPM bases), the
 * classes with their calibration and the report; `loadExportedDetector` detects bit-exactly as the
 * training checkpoint does; foreign, mistaken and other-version inputs fail with a clear message.
 */
import { existsSync, rmSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { loadMvtec } from '@ofm/datasets';
import { CheckpointError, initBackend, loadCheckpointArrays, readManifest, saveCheckpoint } from '@ofm/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContinualDetector } from '../src/model/detector';
import { EXPORT_SHARD_BYTES, exportDetector } from '../src/io/export-write';
import { EXPORT_FORMAT, type ExportMeta, loadExportedDetector } from '../src/io/export-read';
import { loadDetector, saveDetector } from '../src/io/persist';
import { TINY_CONFIG, tinyDataset } from './tiny';

let root: string;
let work: string;
let tiles: Float32Array[];
const ckpt = () => join(work, 'checkpoint');
const out = () => join(work, 'export');

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  root = await tinyDataset(['tiles']);
  work = join(dirname(root), 'work');
  const ds = await loadMvtec(root, { size: 24 });
  tiles = [];
  for await (const s of ds.train('tiles')) tiles.push(s.image);
  const det = new ContinualDetector(TINY_CONFIG);
  await det.learnTask({ classes: ['tiles'], images: new Map([['tiles', tiles]]) });
  await saveDetector(det, ckpt(), { files: { 'report/report.json': '{"formatVersion":1}\n', 'notes.txt': 'not carried' } });
  det.dispose();
});
afterAll(() => rmSync(dirname(root), { recursive: true, force: true }));

describe('exportDetector / loadExportedDetector', () => {
  it('writes the weights without bases, the classes and the report, and detects exactly as the checkpoint', async () => {
    const summary = await exportDetector(ckpt(), out());
    const manifest = await readManifest<ExportMeta>(out());
    const names = manifest.weightsManifest.flatMap((g) => g.weights.map((w) => w.name));
    const { detector: full } = await loadDetector(ckpt());
    expect(names.sort()).toEqual([...full.params.names()].sort());
    expect(names.some((n) => n.startsWith('gpm.'))).toBe(false);
    expect(manifest.meta).toMatchObject({ format: EXPORT_FORMAT, version: 1, report: 'report/report.json', parameters: full.parameterCount() });
    expect(manifest.meta.classes.map((c) => [c.className, c.tStart])).toEqual(full.classes.map((c) => [c.className, c.tStart]));
    expect(manifest.attachments?.map((a) => a.path)).toEqual(['report/report.json']);
    expect(manifest.files.every((f) => f.bytes <= EXPORT_SHARD_BYTES)).toBe(true);
    expect(summary.weightBytes).toBe(4 * full.parameterCount());
    expect(summary.checkpointBytes).toBeGreaterThan(summary.weightBytes); // the bases stayed behind

    const { detector: exported, meta } = await loadExportedDetector(out());
    expect(meta.classes).toEqual(full.classes);
    const sample = tiles.slice(0, 3);
    const a = full.detect(sample, { reconstructions: true });
    const b = exported.detect(sample, { reconstructions: true });
    for (let i = 0; i < sample.length; i++) {
      expect(b[i]!.score).toBe(a[i]!.score);
      expect(b[i]!.className).toBe(a[i]!.className);
      expect(Array.from(b[i]!.map)).toEqual(Array.from(a[i]!.map));
      expect(Array.from(b[i]!.reconstruction!)).toEqual(Array.from(a[i]!.reconstruction!));
    }
    full.dispose();
    exported.dispose();
  });

  it('refuses an export as the source, and a training checkpoint or a foreign folder as the target', async () => {
    await expect(exportDetector(out(), join(work, 'again'))).rejects.toThrow(/is already an exported model; export a training checkpoint/);
    const other = join(work, 'other-checkpoint');
    await saveCheckpoint(other, {}, { format: 'ofm-detector' });
    await expect(exportDetector(ckpt(), other)).rejects.toThrow(/holds a checkpoint that is not an exported model; refusing to replace it/);
    const foreign = join(work, 'photos');
    await mkdir(foreign, { recursive: true });
    await writeFile(join(foreign, 'cat.jpg'), 'jpeg');
    await expect(exportDetector(ckpt(), foreign)).rejects.toBeInstanceOf(CheckpointError);
    expect(existsSync(join(foreign, 'cat.jpg'))).toBe(true);
    await expect(exportDetector(join(work, 'missing'), join(work, 'x'))).rejects.toThrow(/missing/);
  });

  it('loads nothing but an export of its format version, naming the fix', async () => {
    await expect(loadExportedDetector(ckpt())).rejects.toThrow(/is a training checkpoint, not an exported model; make one with 'ofm export/);
    const { arrays, meta } = await loadCheckpointArrays<Record<string, unknown>>(out());
    const v2 = join(work, 'export-v2');
    await saveCheckpoint(v2, arrays, { ...meta, version: 2 });
    const err = await loadExportedDetector(v2).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointError);
    expect((err as CheckpointError).code).toBe('version');
    expect((err as Error).message).toMatch(/format version 2, but this version of @ofm\/detector reads version 1; export the checkpoint again/);
    const foreign = join(work, 'foreign');
    await saveCheckpoint(foreign, arrays, { format: 'something-else' });
    await expect(loadExportedDetector(foreign)).rejects.toThrow(/is not a one-for-more exported model/);
  });
});
