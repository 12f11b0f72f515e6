import * as tensor from '@ofm/tensor';
import { tf } from '@ofm/tensor';

/**
 * Switch the tfjs backend for a test file. 'wasm' needs `initBackend` of @ofm/tensor, which
 * registers the gradient kernels the stock wasm backend lacks (Conv2DBackpropFilter).
 */
export async function useBackend(name: 'cpu' | 'wasm'): Promise<void> {
  const init = (tensor as Record<string, unknown>).initBackend as
    | ((o: { backend: string; quiet?: boolean; strict?: boolean }) => Promise<unknown>)
    | undefined;
  if (init) await init({ backend: name, quiet: true, strict: true });
  else if (name === 'cpu') await tf.setBackend('cpu');
  else throw new Error('@ofm/tensor does not export initBackend: rebuild it (pnpm --filter @ofm/tensor build)');
  if (tf.getBackend() !== name) throw new Error(`expected backend ${name}, got ${tf.getBackend()}`);
}

/** A small AMN config for tests: 32 px images give an 8 x 8 token grid. */
export const TINY = {
  hintChannels: [4, 8, 8],
  dim: 16,
  layers: 2,
  heads: 2,
  ffn: 32,
  dropout: 0,
  maskSize: 3,
} as const;

/**
 * Run `fn` and free every tensor it created (like `tf.tidy`, but `fn` may return plain values,
 * such as numbers read from tensors).
 */
export function scoped<T>(fn: () => T): T {
  tf.engine().startScope();
  try {
    return fn();
  } finally {
    tf.engine().endScope();
  }
}
