// Shared vitest preset: every package writes a machine-readable report to .vitest/results.json,
// which `.ci/run` sums into the single "N passed, N failed" line the CI reader understands.
import { defineConfig } from 'vitest/config';

/** @param {import('vitest/config').UserConfig['test']} [overrides] */
export function ofmVitest(overrides = {}) {
  return defineConfig({
    test: {
      include: ['test/**/*.test.ts'],
      testTimeout: 120_000,
      hookTimeout: 120_000,
      pool: 'forks',
      // Two cores: files of one package run one after another, so wasm-heavy tests do not fight.
      fileParallelism: false,
      reporters: ['default', 'json'],
      outputFile: { json: '.vitest/results.json' },
      ...overrides,
    },
  });
}
