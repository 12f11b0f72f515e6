/**
 * Code that reads tensor values, written once for synchronous and asynchronous reads.
 *
 * tfjs reads synchronously (`dataSync`) on cpu, wasm and tfjs-node, but the WebGPU backend in
 * Node.js can only read asynchronously (`await data()`). A computation that needs values is
 * written as a generator that yields each tensor it wants read and receives its values;
 * {@link readSync} drives it with `dataSync`, {@link readAsync} with `await data()`. The values are
 * the same either way. A read that fails is thrown into the generator, so its `finally` blocks run.
 */
import type { tf } from './tf';

/** A computation that yields the tensors it reads and receives their values (see the module doc). */
export type Reads<T> = Generator<tf.Tensor, T, Float32Array | Int32Array | Uint8Array>;

type Values = Float32Array | Int32Array | Uint8Array;

/** Run a {@link Reads} computation, reading each tensor with `dataSync`. */
export function readSync<T>(reads: Reads<T>): T {
  let step = reads.next();
  while (!step.done) {
    let values: Values;
    try {
      values = step.value.dataSync() as Values;
    } catch (err) {
      step = reads.throw(err);
      continue;
    }
    step = reads.next(values);
  }
  return step.value;
}

/** Run a {@link Reads} computation, reading each tensor with `await data()` (every backend). */
export async function readAsync<T>(reads: Reads<T>): Promise<T> {
  let step = reads.next();
  while (!step.done) {
    let values: Values;
    try {
      values = (await step.value.data()) as Values;
    } catch (err) {
      step = reads.throw(err);
      continue;
    }
    step = reads.next(values);
  }
  return step.value;
}
