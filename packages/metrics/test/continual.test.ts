import { describe, expect, it } from 'vitest';
import {
  MetricsInputError,
  averageIncremental,
  backwardTransfer,
  continualSummary,
  finalAverage,
  forgetting,
  forgettingPerTask,
} from '../src/index';

// R[i][j]: metric on task j after learning task i.
const R = [
  [0.9, null, null],
  [0.8, 0.95, null],
  [0.7, 0.9, 0.85],
];

describe('continual summaries', () => {
  it('computes forgetting as best earlier result minus final result', () => {
    const per = forgettingPerTask(R);
    expect(per[0]).toBeCloseTo(0.2, 12); // max(0.9, 0.8) - 0.7
    expect(per[1]).toBeCloseTo(0.05, 12); // 0.95 - 0.9
    expect(per[2]).toBeNaN(); // learned last: nothing to forget
    expect(forgetting(R)).toBeCloseTo(0.125, 12);
  });

  it('uses the best earlier result, not the first one', () => {
    const rising = [
      [0.6, null, null],
      [0.9, 0.8, null],
      [0.7, 0.8, 0.9],
    ];
    expect(forgettingPerTask(rising)[0]).toBeCloseTo(0.2, 12);
  });

  it('reports final average, average incremental and backward transfer', () => {
    expect(finalAverage(R)).toBeCloseTo((0.7 + 0.9 + 0.85) / 3, 12);
    expect(averageIncremental(R)).toBeCloseTo((0.9 + (0.8 + 0.95) / 2 + (0.7 + 0.9 + 0.85) / 3) / 3, 12);
    expect(backwardTransfer(R)).toBeCloseTo((0.7 - 0.9 + (0.9 - 0.95)) / 2, 12);
    expect(continualSummary(R)).toEqual({
      final_average: finalAverage(R),
      average_incremental: averageIncremental(R),
      forgetting: forgetting(R),
      backward_transfer: backwardTransfer(R),
    });
  });

  it('handles per-class columns learned in multi-class tasks', () => {
    // Task 0 learns classes a, b; task 1 learns c.
    const perClass = [
      [0.9, 0.8, Number.NaN],
      [0.85, 0.6, 0.7],
    ];
    const learnedAt = [0, 0, 1];
    expect(forgettingPerTask(perClass, { learnedAt }).slice(0, 2).map((v) => +v.toFixed(12))).toEqual([0.05, 0.2]);
    expect(forgetting(perClass, { learnedAt })).toBeCloseTo(0.125, 12);
    expect(averageIncremental(perClass, { learnedAt })).toBeCloseTo((0.85 + (0.85 + 0.6 + 0.7) / 3) / 2, 12);
  });

  it('is NaN for forgetting after a single task, and rejects missing results', () => {
    expect(forgetting([[0.9]])).toBeNaN();
    expect(finalAverage([[0.9]])).toBe(0.9);
    expect(() => forgetting([[0.9, null], [null, 0.8]])).toThrow(/R\[1\]\[0\] is null/);
    expect(() => forgetting([])).toThrow(MetricsInputError);
    expect(() => forgetting([[1], [1]], { learnedAt: [0, 5] })).toThrow(/learnedAt\[1\] = 5/);
  });
});
