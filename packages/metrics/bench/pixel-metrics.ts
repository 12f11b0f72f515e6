/**
 * Pixel metrics at evaluation scale: 100 images of 256 x 256 (6.5 M pixels), each anomalous
 * image with a few blob defects. Prints one JSON line of timings (milliseconds).
 *
 *   pnpm --filter @ofm/metrics bench
 */
import { aupro, auroc, evaluateDetections } from '../src/index';

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const images = Number(process.env.BENCH_IMAGES ?? 100);
const size = Number(process.env.BENCH_SIZE ?? 256);
const rnd = mulberry32(7);
const pixelScores: Float32Array[] = [];
const pixelMasks: Uint8Array[] = [];
const imageScores: number[] = [];
const imageLabels: number[] = [];
for (let m = 0; m < images; m++) {
  const mask = new Uint8Array(size * size);
  const anomalous = m % 2 === 1;
  if (anomalous) {
    for (let b = 0; b < 3; b++) {
      const cx = rnd() * size;
      const cy = rnd() * size;
      const r = 4 + rnd() * size * 0.08;
      for (let y = Math.max(0, Math.floor(cy - r)); y < Math.min(size, cy + r); y++) {
        for (let x = Math.max(0, Math.floor(cx - r)); x < Math.min(size, cx + r); x++) {
          if ((x - cx) ** 2 + (y - cy) ** 2 < r * r) mask[y * size + x] = 1;
        }
      }
    }
  }
  const map = new Float32Array(size * size);
  let max = 0;
  for (let i = 0; i < map.length; i++) {
    map[i] = rnd() + (mask[i] ? 0.6 : 0);
    max = Math.max(max, map[i]!);
  }
  pixelScores.push(map);
  pixelMasks.push(mask);
  imageScores.push(max);
  imageLabels.push(anomalous ? 1 : 0);
}

/** Wall time, and CPU time of this process (steadier than wall time on a busy machine). */
function time<T>(f: () => T): { ms: number; cpuMs: number; value: T } {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const value = f();
  const c = process.cpuUsage(c0);
  return { ms: Math.round(performance.now() - t0), cpuMs: Math.round((c.user + c.system) / 1000), value };
}

const pixelAuroc = time(() => auroc(pixelScores, pixelMasks));
const pixelAupro = time(() => aupro(pixelScores, pixelMasks));
const all = time(() => evaluateDetections({ imageScores, imageLabels, pixelScores, pixelMasks }));
const memory = Math.round(process.memoryUsage().rss / 2 ** 20);
console.log(
  JSON.stringify({
    images,
    size,
    pixels: images * size * size,
    pixel_auroc_ms: pixelAuroc.ms,
    pixel_aupro_ms: pixelAupro.ms,
    evaluate_detections_ms: all.ms,
    evaluate_detections_cpu_ms: all.cpuMs,
    rss_mib: memory,
    metrics: all.value,
  }),
);
