/**
 * Ctrl-C acts within a batch in every phase. A signal handler runs only when the event loop gets a
 * turn, so these tests abort from `setImmediate` (as a SIGINT handler would), never synchronously
 * from a progress callback: a phase that runs to its end without yielding fails them.
 */
import { existsSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { loadMvtec } from '@ofm/datasets';
import { initBackend } from '@ofm/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContinualDetector } from '../src/model/detector';
import { type RunProgress, runContinual } from '../src/run/continual';
import { TINY_CONFIG, tinyDataset } from './tiny';

let root: string;
/** Small batches, four start-timestep candidates: every phase has several units of work. */
const CONFIG = {
  ...TINY_CONFIG,
  training: { ...TINY_CONFIG.training, steps: 2 },
  reconstruction: { ...TINY_CONFIG.reconstruction, tStartCandidates: [20, 40, 80, 120] },
  inferenceBatch: 2,
};

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  root = await tinyDataset(['tiles', 'washer']);
});
afterAll(() => rmSync(dirname(root), { recursive: true, force: true }));

/** Run tiles | washer into a new folder, aborting (on the next turn of the event loop) at the first event `when` picks. */
async function runAborted(name: string, when: (p: RunProgress) => boolean) {
  const controller = new AbortController();
  const events: RunProgress[] = [];
  const out = join(dirname(root), name);
  const detector = new ContinualDetector(CONFIG);
  let scheduled = false;
  const run = runContinual({
    dataset: await loadMvtec(root, { size: 24 }),
    tasks: [['tiles'], ['washer']],
    detector,
    out,
    signal: controller.signal,
    snapshots: false,
    onProgress: (p) => {
      events.push(p);
      if (!scheduled && when(p)) {
        scheduled = true;
        setImmediate(() => controller.abort());
      }
    },
  });
  await expect(run).rejects.toThrow(/interrupted/);
  detector.dispose();
  return { events, out };
}

describe('an abort acts within a batch', () => {
  it('while the start timestep is chosen: the next candidate is not scored', async () => {
    const { events } = await runAborted('select', (p) => p.kind === 'learn' && p.phase === 'select');
    const select = events.filter((p) => p.kind === 'learn' && p.phase === 'select');
    expect(select).toHaveLength(1);
    expect(events.some((p) => p.kind === 'learn' && p.phase === 'consolidate')).toBe(false);
  });

  it('while a class is evaluated: its next batch is not, and no checkpoint is written', async () => {
    const { events, out } = await runAborted('evaluate', (p) => p.kind === 'evaluate');
    const evaluated = events.filter((p) => p.kind === 'evaluate');
    expect(evaluated).toHaveLength(1);
    expect(evaluated[0]!.kind === 'evaluate' && evaluated[0]!.done < evaluated[0]!.total).toBe(true);
    expect(events.some((p) => p.kind === 'saved')).toBe(false);
    expect(existsSync(join(out, 'manifest.json'))).toBe(false);
  });

  it('after a task is saved: the next task does not start loading', async () => {
    const { events, out } = await runAborted('between', (p) => p.kind === 'saved');
    expect(events.filter((p) => p.kind === 'saved')).toHaveLength(1);
    expect(events.some((p) => p.task === 1)).toBe(false);
    expect(existsSync(join(out, 'manifest.json'))).toBe(true);
  });
});
