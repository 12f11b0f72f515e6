/**
 * The neighbour mask of the AMN's attention: on an `h x w` token grid (tokens row-major), token
 * `q` may not attend to any token `k` with `|row(q) - row(k)| <= r` and `|col(q) - col(k)| <= r`,
 * `r = floor(size / 2)` — its own `size x size` neighbourhood, itself included, clipped at the
 * borders. Everything else is allowed.
 */
import { ConfigError, tf } from '@ofm/tensor';

/**
 * Additive value of a blocked entry. Finite, so a row can never turn into NaN; after adding it to
 * logits of any sane magnitude, `exp` underflows to exactly 0 in float32.
 */
export const MASK_BLOCKED = -1e9;

function checkArgs(h: number, w: number, size: number): void {
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1) {
    throw new ConfigError(`neighbourMask: grid must be positive integers, got ${h}x${w}`);
  }
  if (!Number.isInteger(size) || size < 1 || size % 2 === 0) {
    throw new ConfigError(`neighbourMask: size must be an odd positive integer, got ${size}`);
  }
  // The most constrained token is the grid centre: if even it has nothing left, attention is undefined.
  const r = (size - 1) / 2;
  if (r >= Math.ceil((h - 1) / 2) && r >= Math.ceil((w - 1) / 2)) {
    throw new ConfigError(
      `neighbourMask: a ${size}x${size} neighbourhood blocks every token of a ${h}x${w} grid for its centre token; ` +
        `use a smaller 'maskSize' or a larger grid (fewer downsamplings or larger images)`,
    );
  }
}

/**
 * The mask as bits, `[T * T]` row-major with `T = h * w`: 1 where query row may NOT attend to key
 * column. For tests and inspection; the model uses {@link neighbourMask}.
 */
export function neighbourMaskBits(h: number, w: number, size: number): Uint8Array {
  checkArgs(h, w, size);
  const t = h * w;
  const r = (size - 1) / 2;
  const bits = new Uint8Array(t * t);
  for (let qy = 0; qy < h; qy++) {
    for (let qx = 0; qx < w; qx++) {
      const row = (qy * w + qx) * t;
      for (let ky = Math.max(0, qy - r); ky <= Math.min(h - 1, qy + r); ky++) {
        for (let kx = Math.max(0, qx - r); kx <= Math.min(w - 1, qx + r); kx++) bits[row + ky * w + kx] = 1;
      }
    }
  }
  return bits;
}

const cache = new Map<string, tf.Tensor2D>();

/**
 * The additive mask `[T, T]` (0 = attend, {@link MASK_BLOCKED} = blocked) for an `h x w` grid and
 * an odd neighbourhood side `size`. Built once per `(h, w, size)` and cached: the returned tensor
 * is shared, kept out of every `tf.tidy`, and must not be disposed by the caller (use
 * {@link clearNeighbourMaskCache}).
 */
export function neighbourMask(h: number, w: number, size: number): tf.Tensor2D {
  const key = `${h}x${w}/${size}`;
  const hit = cache.get(key);
  if (hit && !hit.isDisposed) return hit;
  const bits = neighbourMaskBits(h, w, size);
  const values = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) values[i] = bits[i] ? MASK_BLOCKED : 0;
  const mask = tf.keep(tf.tensor2d(values, [h * w, h * w]));
  cache.set(key, mask);
  return mask;
}

/** Dispose every cached mask (e.g. before switching backends for good, or in tests). */
export function clearNeighbourMaskCache(): void {
  for (const m of cache.values()) if (!m.isDisposed) m.dispose();
  cache.clear();
}

/** How many masks are cached (for tests of the cache). */
export function neighbourMaskCacheSize(): number {
  return cache.size;
}
