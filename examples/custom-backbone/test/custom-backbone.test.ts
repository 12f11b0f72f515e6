// Runs the example as a user would (a child process, quick config) and checks that the detector
// computed its maps with the user's backbone, and that a reload with the backbone scores the same.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

describe('custom backbone example', () => {
  it('learns and detects with the user-written FeatureExtractor, and reloads with it', () => {
    const out = execFileSync(process.execPath, ['--import', 'tsx', 'src/main.ts', '--quick'], { encoding: 'utf8' });
    const result = JSON.parse(out.trim().split('\n').at(-1)!);
    expect(result.extractor).toBe('random-conv');
    expect(result.reloadedExtractor).toBe('random-conv');
    // Selection scores both candidate start timesteps through the backbone, then detection does.
    expect(result.extractorCalls).toBeGreaterThanOrEqual(3);
    expect(result.mapSize).toBe(24 * 24);
    expect(result.scores).toHaveLength(8);
    expect(result.scores.every(Number.isFinite)).toBe(true);
    expect(result.imageAuroc).toBeGreaterThanOrEqual(0);
    expect(result.imageAuroc).toBeLessThanOrEqual(1);
    // Same weights, same seeded backbone: the reloaded detector scores exactly the same.
    expect(result.reloadedScores).toEqual(result.scores);
  });
});
