import { defineConfig } from 'tsup';

export default defineConfig({
  // index: Node (training runs, reports, saving, export); browser: no Node APIs.
  entry: ['src/index.ts', 'src/browser.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
});
