/** Running one computation on the wasm and the cpu backend, for the kernel tests. */
import { expect } from 'vitest';
import { tf } from '../../src/tf';

/** Data ids the active (wasm) backend holds: a tensor can be freed while its data is not. */
export function wasmDataIds(): number {
  return (tf.backend() as unknown as { numDataIds(): number }).numDataIds();
}

/** One output of {@link runOn}, read back. */
export interface ReadBack {
  values: number[];
  shape: number[];
  dtype: tf.DataType;
}

/**
 * Run `f` (which builds its inputs from plain arrays, so both backends see the same numbers) on
 * one backend and read its outputs; check that nothing leaked (tensors, and wasm data ids). The
 * wasm backend is active again afterwards.
 */
export async function runOn(backend: 'wasm' | 'cpu', f: () => tf.Tensor[]): Promise<ReadBack[]> {
  await tf.setBackend(backend);
  const tensorsBefore = tf.memory().numTensors;
  const idsBefore = backend === 'wasm' ? wasmDataIds() : 0;
  const outs = tf.tidy(f);
  const read = outs.map((t) => ({ values: Array.from(t.dataSync() as ArrayLike<number>), shape: t.shape, dtype: t.dtype }));
  tf.dispose(outs);
  expect(tf.memory().numTensors).toBe(tensorsBefore);
  if (backend === 'wasm') expect(wasmDataIds()).toBe(idsBefore);
  await tf.setBackend('wasm');
  return read;
}
