// Shared tsup preset: every package ships ESM + CJS + types with source maps for Node 20. A package
// passes only what differs (its entry points, externals, esbuild options).
import { defineConfig } from 'tsup';

/** @param {import('tsup').Options} [overrides] */
export function ofmTsup(overrides = {}) {
  return defineConfig({
    entry: ['src/index.ts'],
    format: ['esm', 'cjs'],
    dts: true,
    clean: true,
    sourcemap: true,
    target: 'node20',
    ...overrides,
  });
}
