import { defineConfig } from 'vite';

export default defineConfig({
  // Relative asset URLs: the built app runs from any path of any static server.
  base: './',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    target: 'es2022',
    // tfjs (with its webgl and cpu backends) is most of the bundle and loads once.
    chunkSizeWarningLimit: 4096,
    rolldownOptions: {
      onLog(level, log, handler) {
        // @ofm/tensor's checkpoint-to-disk code imports Node built-ins lazily; a browser never runs it.
        if (/externalized for browser compatibility, imported by ".*[\\/]tensor[\\/]dist[\\/]/.test(log.message)) return;
        handler(level, log);
      },
      output: {
        // The tfjs code in its own chunk: it changes only with a tfjs upgrade, so browsers keep it cached.
        codeSplitting: { groups: [{ name: 'tfjs', test: /node_modules[\\/]@tensorflow/ }] },
      },
    },
  },
});
