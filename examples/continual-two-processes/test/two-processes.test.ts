// Runs the example as a user would: one process learns task A and saves; a second process loads
// the checkpoint and learns task B from day 2's data only; a third detects on both classes.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'ofm-example-continual-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(script: string, ...args: string[]) {
  const out = execFileSync(process.execPath, ['--import', 'tsx', `src/${script}.ts`, ...args], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

describe('continual learning across two processes', () => {
  it('learns task A, then task B in a new process from the checkpoint, and detects both classes', () => {
    execFileSync(process.execPath, ['--import', 'tsx', 'src/make-data.ts', join(dir, 'data'), '--size', '24']);
    const model = join(dir, 'model');
    const day1 = run('learn', '--data', join(dir, 'data', 'day1'), '--model', model, '--quick');
    expect(day1).toMatchObject({ resumed: false, task: 1, learned: ['tiles'], classes: ['tiles'], weights: 'per-task' });
    const afterDay1 = run('detect', '--model', model, '--data', join(dir, 'data', 'day1'));

    const day2 = run('learn', '--data', join(dir, 'data', 'day2'), '--model', model);
    // The second process continued the saved model: task 2, both classes, per-task weights (no
    // projection bases needed).
    expect(day2).toMatchObject({ resumed: true, task: 2, learned: ['washer'], classes: ['tiles', 'washer'], weights: 'per-task', basisRank: 0 });

    const detected = run('detect', '--model', model, '--data', join(dir, 'data', 'day1'), '--data', join(dir, 'data', 'day2'));
    expect(detected.classes).toEqual(['tiles', 'washer']);
    for (const cls of ['tiles', 'washer']) {
      expect(detected.perClass[cls].images).toBe(8);
      expect(detected.perClass[cls].imageAuroc).toBeGreaterThanOrEqual(0);
      expect(detected.perClass[cls].imageAuroc).toBeLessThanOrEqual(1);
    }
    // tiles and washer look nothing alike: every test image is routed to its own class.
    expect(detected.perClass.tiles.routedToOwnClass).toBe(1);
    // tiles kept its own weights, start timestep and calibration: its scores did not move.
    expect(detected.perClass.tiles.imageAuroc).toBe(afterDay1.perClass.tiles.imageAuroc);
    expect(detected.perClass.washer.routedToOwnClass).toBe(1);
  });
});
