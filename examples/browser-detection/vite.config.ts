import { defineConfig } from 'vite';

export default defineConfig({
  // Relative asset URLs: the built page runs from any path of any static server.
  base: './',
  build: { target: 'es2022', chunkSizeWarningLimit: 4096 },
});
