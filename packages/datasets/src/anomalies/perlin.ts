/**
 * Perlin-shaped anomalies (Zavrtanik et al., "DRAEM", ICCV 2021): a region shaped by thresholded
 * Perlin noise is filled with a foreign texture, blended with the image by a random opacity.
 */
import type { RgbImage } from '../image';
import { PerlinNoise } from '../noise';
import type { RandomSource } from '../random';
import { type AnomalyOptions, type SyntheticAnomaly, checkImage, generateWithin, resolveAnomalyOptions } from './common';

/** Options of {@link perlinAnomaly}. */
export interface PerlinOptions extends AnomalyOptions {
  /**
   * Foreign texture (any size; stretched over the image). DRAEM draws it from a texture dataset
   * (DTD); by default a random procedural texture (two colours, noise and stripes) is drawn.
   */
  texture?: RgbImage;
  /** Range of the texture's opacity inside the region; default [0.4, 1]. */
  opacityRange?: readonly [number, number];
  /** Range of log2 of the noise period in lattice cells across the image; default [0, 3] (1 to 8 blobs across). */
  scaleRange?: readonly [number, number];
}

/** Corrupt a Perlin-noise-shaped region of `image` with a foreign texture; the mask area lies in `areaRange`. */
export function perlinAnomaly(image: RgbImage, options: PerlinOptions): SyntheticAnomaly {
  const o = resolveAnomalyOptions(image, options, 'perlinAnomaly');
  if (options.texture) checkImage(options.texture, 'perlinAnomaly (texture)');
  const [opMin, opMax] = options.opacityRange ?? [0.4, 1];
  const [scMin, scMax] = options.scaleRange ?? [0, 3];
  const { width: w, height: h } = image;
  const n = w * h;
  const field = new Float32Array(n);
  const sorted = new Float32Array(n);

  return generateWithin(image, o, (targetPixels) => {
    const noise = new PerlinNoise(o.rng);
    const cellsX = 2 ** (scMin + o.rng.uniform() * (scMax - scMin));
    const cellsY = 2 ** (scMin + o.rng.uniform() * (scMax - scMin));
    const angle = o.rng.uniform() * Math.PI;
    const cos = Math.cos(angle);
    const sin = Math.sin(angle);
    const ox = o.rng.uniform() * 64;
    const oy = o.rng.uniform() * 64;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const u = (x + 0.5) / w - 0.5;
        const v = (y + 0.5) / h - 0.5;
        field[y * w + x] = noise.fractal(ox + (u * cos - v * sin) * cellsX, oy + (u * sin + v * cos) * cellsY, 3);
      }
    }
    // The threshold that selects exactly `targetPixels` of the highest noise values.
    sorted.set(field);
    sorted.sort();
    const keep = Math.max(1, Math.min(n, Math.round(targetPixels)));
    const threshold = sorted[n - keep]!;
    const texture = options.texture ?? proceduralTexture(o.rng, w, h);
    const opacity = opMin + o.rng.uniform() * (opMax - opMin);
    const out = Float32Array.from(image.data);
    for (let y = 0; y < h; y++) {
      const ty = Math.min(texture.height - 1, Math.floor(((y + 0.5) / h) * texture.height));
      for (let x = 0; x < w; x++) {
        const i = y * w + x;
        if (field[i]! < threshold) continue;
        const tx = Math.min(texture.width - 1, Math.floor(((x + 0.5) / w) * texture.width));
        const t = (ty * texture.width + tx) * 3;
        for (let c = 0; c < 3; c++) out[3 * i + c] = out[3 * i + c]! * (1 - opacity) + texture.data[t + c]! * opacity;
      }
    }
    return out;
  });
}

/** A random texture: two random colours mixed by fractal noise, with optional stripes. */
export function proceduralTexture(rng: RandomSource, width: number, height: number): RgbImage {
  const noise = new PerlinNoise(rng);
  const a = [rng.uniform(), rng.uniform(), rng.uniform()];
  const b = [rng.uniform(), rng.uniform(), rng.uniform()];
  const frequency = 3 + rng.uniform() * 12;
  const stripes = rng.uniform() < 0.5 ? 4 + rng.uniform() * 12 : 0;
  const angle = rng.uniform() * Math.PI;
  const data = new Float32Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const u = x / width;
      const v = y / height;
      let t = 0.5 + 0.5 * noise.fractal(u * frequency, v * frequency, 4);
      if (stripes) t = 0.5 * t + 0.25 * (1 + Math.sin(2 * Math.PI * stripes * (u * Math.cos(angle) + v * Math.sin(angle))));
      const i = (y * width + x) * 3;
      for (let c = 0; c < 3; c++) data[i + c] = a[c]! * (1 - t) + b[c]! * t;
    }
  }
  return { data, width, height, channels: 3 };
}
