/**
 * A toy "product" for AMN training tests: textured surfaces, each image its own base colour with a
 * faint grain (smoothed noise along an image-specific colour direction). Images differ from one
 * another far more than their parts differ within an image, so a token's normal appearance is
 * predictable from its context — the situation the AMN is built for (MVTec's textures). Defects are
 * the method's NSA patches (`nsaAnomaly` of @ofm/datasets), cut from another image of the family.
 */
import { nsaAnomaly } from '@ofm/datasets';
import { type Rng, tf } from '@ofm/tensor';

/** One HWC RGB image in [0, 1]. */
export function surfaceImage(rng: Rng, size: number): Float32Array {
  const base = [rng.range(0.2, 0.8), rng.range(0.2, 0.8), rng.range(0.2, 0.8)];
  const direction = [rng.range(-1, 1), rng.range(-1, 1), rng.range(-1, 1)];
  const grain = rng.range(0.02, 0.08);
  const padded = size + 2;
  const noise = rng.normalArray(padded * padded);
  const out = new Float32Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let v = 0;
      for (let dy = 0; dy < 3; dy++) for (let dx = 0; dx < 3; dx++) v += noise[(y + dy) * padded + x + dx]!;
      v /= 3;
      for (let c = 0; c < 3; c++) {
        out[(y * size + x) * 3 + c] = Math.min(1, Math.max(0, base[c]! + grain * direction[c]! * v));
      }
    }
  }
  return out;
}

/** Clean images, their NSA-corrupted versions, and the masks of changed pixels. */
export interface ToyBatch {
  clean: tf.Tensor4D;
  corrupted: tf.Tensor4D;
  /** `[N, H, W]`, 1 where the corruption changed the pixel. */
  mask: tf.Tensor3D;
}

/** `n` surfaces of `size x size`, each corrupted by NSA patches from another surface. */
export function toyBatch(rng: Rng, n: number, size: number, areaRange: readonly [number, number] = [0.04, 0.15]): ToyBatch {
  const pixels = size * size;
  const clean = new Float32Array(n * pixels * 3);
  const corrupted = new Float32Array(n * pixels * 3);
  const masks = new Float32Array(n * pixels);
  for (let i = 0; i < n; i++) {
    const image = surfaceImage(rng, size);
    const source = surfaceImage(rng, size);
    const anomaly = nsaAnomaly(
      { data: image, width: size, height: size, channels: 3 },
      { data: source, width: size, height: size, channels: 3 },
      { rng, areaRange },
    );
    clean.set(image, i * pixels * 3);
    corrupted.set(anomaly.image, i * pixels * 3);
    masks.set(anomaly.mask, i * pixels);
  }
  return {
    clean: tf.tensor4d(clean, [n, size, size, 3]),
    corrupted: tf.tensor4d(corrupted, [n, size, size, 3]),
    mask: tf.tensor3d(masks, [n, size, size]),
  };
}

export function disposeBatch(batch: ToyBatch): void {
  batch.clean.dispose();
  batch.corrupted.dispose();
  batch.mask.dispose();
}
