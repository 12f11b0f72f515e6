#!/usr/bin/env node
/**
 * What a detection batch costs per image, in one process (no HTTP): the measurement behind the
 * `ofm serve --max-batch` default (docs/benchmarks.md, "Serving"). Detects the first 16 PNGs
 * below IMAGES with MODEL in batches of 1, 4 and 16, each size `--reps` times.
 *
 *   node apps/cli/scripts/detect-batch-cost.mjs MODEL IMAGES [--reps 3] [--backend wasm]
 *
 * Build first (`pnpm build`).
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readImage } from '@ofm/datasets';
import { loadDetector } from '@ofm/detector';
import { initBackend } from '@ofm/tensor';

const [model, imagesDir, ...rest] = process.argv.slice(2);
if (!model || !imagesDir) {
  console.error('usage: node apps/cli/scripts/detect-batch-cost.mjs MODEL IMAGES [--reps 3] [--backend wasm]');
  process.exit(2);
}
const flag = (name, fallback) => {
  const i = rest.indexOf(`--${name}`);
  return i >= 0 ? rest[i + 1] : fallback;
};
const reps = Number(flag('reps', '3'));
const backend = await initBackend({ backend: flag('backend', undefined) });
const { detector } = await loadDetector(model);
const pngs = (dir) => readdirSync(dir).sort().flatMap((n) => (statSync(join(dir, n)).isDirectory() ? pngs(join(dir, n)) : n.endsWith('.png') ? [join(dir, n)] : []));
const files = pngs(imagesDir).slice(0, 16);
if (files.length < 16) throw new Error(`${imagesDir} holds ${files.length} PNGs; 16 are needed`);
const images = [];
for (const f of files) images.push((await readImage(f, { size: detector.config.imageSize })).data);
detector.detect(images.slice(0, 2)); // warm-up: kernels compile on first use
console.log(`backend ${backend.backend}, ${detector.config.imageSize} px, ${images.length} images`);
for (const batch of [1, 4, 16]) {
  const perImage = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    for (let i = 0; i < images.length; i += batch) detector.detect(images.slice(i, i + batch));
    perImage.push((performance.now() - t0) / images.length);
  }
  console.log(`batch ${String(batch).padStart(2)}: ${perImage.map((ms) => ms.toFixed(1)).join(', ')} ms per image`);
}
detector.dispose();
