import { defineConfig } from 'tsup';

export default defineConfig({
  // index: Node (loaders, sharp IO, synth to disk); browser: no Node APIs.
  entry: ['src/index.ts', 'src/browser.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
  external: ['sharp'],
});
