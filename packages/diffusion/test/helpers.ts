import { readFileSync } from 'node:fs';
import { initBackend, tf } from '@ofm/tensor';
import type { UNetConfig } from '../src/index';

/** Switch the global tfjs backend for a test file (wasm gets the training kernels of @ofm/tensor). */
export async function useBackend(name: 'cpu' | 'wasm'): Promise<void> {
  await initBackend({ backend: name, strict: true, quiet: true });
  if (tf.getBackend() !== name) throw new Error(`expected backend ${name}, got ${tf.getBackend()}`);
}

export function fixturePath(name: string): string {
  return new URL(`./fixtures/${name}`, import.meta.url).pathname;
}

export function readFixture(name: string): string {
  return readFileSync(fixturePath(name), 'utf8');
}

/** A UNet small enough for gradient and training tests on the cpu backend. */
export const TINY: UNetConfig = {
  image_size: 8,
  in_channels: 1,
  out_channels: 1,
  model_channels: 8,
  channel_mult: [1, 2],
  num_res_blocks: 1,
  attention_resolutions: [4],
  num_heads: 2,
  groupnorm_groups: 4,
  time_embed_dim: 16,
};

/** Largest absolute difference between two tensors of the same shape. */
export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}
