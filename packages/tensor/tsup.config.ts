import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
  // No shims: tsup's ESM shim imports 'path' and 'url' at load time, which breaks browser bundles
  // (the web demo). The code reads `__filename` where it exists (CJS) and `import.meta.url`
  // otherwise, so the CJS build's empty `import.meta` is never read.
  esbuildOptions(options) {
    options.logOverride = { ...options.logOverride, 'empty-import-meta': 'silent' };
  },
});
