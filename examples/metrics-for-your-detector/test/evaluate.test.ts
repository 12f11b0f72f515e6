// Runs the example as a user would (a child process) and checks its numbers against an
// independent brute-force computation on the shipped predictions.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeScoreMap } from '@ofm/metrics';
import { afterAll, describe, expect, it } from 'vitest';

interface Fixture {
  width: number;
  height: number;
  images: { file: string; label: number; score: number; map: number[]; mask: number[] }[];
}

const FIXTURE = 'data/predictions.json';
const fixture = JSON.parse(readFileSync(FIXTURE, 'utf8')) as Fixture;
const temp = mkdtempSync(join(tmpdir(), 'ofm-example-metrics-'));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

function run(...args: string[]): string {
  return execFileSync(process.execPath, ['--import', 'tsx', 'src/evaluate.ts', ...args], { encoding: 'utf8' });
}

/** AUROC as the share of (anomalous, normal) pairs ranked correctly, ties counting one half. */
function pairwiseAuroc(scores: number[], labels: number[]): number {
  let wins = 0;
  let pairs = 0;
  scores.forEach((p, i) => {
    if (!labels[i]) return;
    scores.forEach((n, j) => {
      if (labels[j]) return;
      pairs += 1;
      wins += p > n ? 1 : p === n ? 0.5 : 0;
    });
  });
  return wins / pairs;
}

describe('metrics for another detector', () => {
  it('computes image and pixel metrics equal to a brute-force count, and the best-F1 threshold', () => {
    const result = JSON.parse(run(FIXTURE, '--json'));
    const { images } = fixture;
    expect(result.images).toBe(6);
    expect(result.anomalous).toBe(3);
    // 8 of the 9 (anomalous, normal) pairs are ordered correctly.
    expect(result.metrics.image_auroc).toBeCloseTo(8 / 9, 12);
    expect(result.metrics.image_auroc).toBeCloseTo(
      pairwiseAuroc(
        images.map((p) => p.score),
        images.map((p) => p.label),
      ),
      12,
    );
    expect(result.metrics.pixel_auroc).toBeCloseTo(
      pairwiseAuroc(
        images.flatMap((p) => p.map),
        images.flatMap((p) => p.mask),
      ),
      6,
    );
    // Thresholds 0.9, 0.8, 0.5, 0.4, 0.3 give F1 1/2, 4/5, 2/3, 6/7, 3/4: the best is score >= 0.4.
    expect(result.f1Threshold).toBe(0.4);
    expect(result.metrics.image_f1max).toBeCloseTo(6 / 7, 12);
    expect(result.metrics.pixel_aupro).toBeGreaterThan(0);
    expect(result.metrics.pixel_aupro).toBeLessThanOrEqual(1);
  });

  it('reads maps and masks from OFMS files with the same result', () => {
    const { width, height } = fixture;
    const images = fixture.images.map((p) => {
      writeFileSync(join(temp, `${p.file}.map.ofms`), encodeScoreMap({ data: p.map, width, height }));
      writeFileSync(join(temp, `${p.file}.mask.ofms`), encodeScoreMap({ data: p.mask, width, height }));
      return { ...p, map: `${p.file}.map.ofms`, mask: `${p.file}.mask.ofms` };
    });
    writeFileSync(join(temp, 'predictions.json'), JSON.stringify({ images }));
    const fromFiles = JSON.parse(run(join(temp, 'predictions.json'), '--json'));
    const inline = JSON.parse(run(FIXTURE, '--json'));
    for (const key of Object.keys(inline.metrics)) expect(fromFiles.metrics[key]).toBeCloseTo(inline.metrics[key], 6);
  });

  it('prints a readable table by default', () => {
    const text = run(FIXTURE);
    expect(text).toMatch(/^6 images, 3 anomalous$/m);
    expect(text).toMatch(/^image_auroc\s+0\.8889$/m);
    expect(text).toMatch(/^best-F1 threshold: score >= 0\.4$/m);
  });
});
