// Shared vitest preset: every package writes a machine-readable report to .vitest/results.json,
// which `.ci/run` sums into the single "N passed, N failed" line the CI reader understands.
//
// Workspace packages (`@ofm/tensor`, `@ofm/detector/browser`, `@ofm/detector/experiments`, ...)
// resolve to their TypeScript sources, so a change in one package is tested by every package that
// uses it without a rebuild.
// The examples pass `{ packages: 'dist' }`: they test what a user installs. Child processes (the
// CLI's `ofm` bin) still run the built `dist`.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Subpath entries a package may have (`@ofm/detector/browser` -> packages/detector/src/browser.ts). */
const SUBPATH_ENTRIES = ['browser', 'experiments'];

/** Aliases from each workspace package name (and its subpath entries) to its sources. */
export function sourceAliases() {
  const names = ['amn', 'continual', 'datasets', 'detector', 'diffusion', 'errors', 'isvd', 'metrics', 'tensor'];
  const aliases = [];
  for (const name of names) {
    const src = join(root, 'packages', name, 'src');
    for (const entry of SUBPATH_ENTRIES) {
      if (existsSync(join(src, `${entry}.ts`))) aliases.push({ find: `@ofm/${name}/${entry}`, replacement: join(src, `${entry}.ts`) });
    }
    aliases.push({ find: new RegExp(`^@ofm/${name}$`), replacement: join(src, 'index.ts') });
  }
  return aliases;
}

/**
 * @param {import('vitest/config').UserConfig['test']} [overrides]
 * @param {{ packages?: 'src' | 'dist' }} [options]
 */
export function ofmVitest(overrides = {}, options = {}) {
  return defineConfig({
    resolve: { alias: options.packages === 'dist' ? [] : sourceAliases() },
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
