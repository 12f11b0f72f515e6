/**
 * Conversion between tfjs tensors and the typed arrays a checkpoint stores.
 */
import { tf } from '../tf';
import { type CheckpointManifest, CheckpointError, type NamedArrays } from './format';

/** A loaded checkpoint with tensors. */
export interface LoadedCheckpoint<M = unknown> {
  meta: M;
  tensors: Record<string, tf.Tensor>;
  formatVersion: number;
  manifest: CheckpointManifest<M>;
}

/** A loaded checkpoint with plain arrays (large bases need not become tensors). */
export interface LoadedArrays<M = unknown> {
  meta: M;
  arrays: NamedArrays;
  formatVersion: number;
  manifest: CheckpointManifest<M>;
}

/** What saving accepts: tensors by name, or plain arrays by name. */
export type CheckpointTensors = Record<string, tf.Tensor> | NamedArrays;

/** Read tensors (float32 or int32) into arrays; plain arrays pass through. */
export async function toNamedArrays(source: CheckpointTensors, where: string): Promise<NamedArrays> {
  const out: NamedArrays = {};
  for (const [name, value] of Object.entries(source)) {
    if (value instanceof tf.Tensor) {
      if (value.isDisposed) {
        throw new CheckpointError('bad-input', where, `${where}: tensor '${name}' is already disposed`);
      }
      if (value.dtype !== 'float32' && value.dtype !== 'int32') {
        throw new CheckpointError(
          'bad-input',
          where,
          `${where}: tensor '${name}' has dtype ${value.dtype}; checkpoints store float32 and int32 (cast it first)`,
        );
      }
      const data = (await value.data()) as Float32Array | Int32Array;
      out[name] = { data, shape: [...value.shape] };
    } else {
      out[name] = value;
    }
  }
  return out;
}

/** Make tensors of loaded arrays. */
export function toTensors(arrays: NamedArrays): Record<string, tf.Tensor> {
  const out: Record<string, tf.Tensor> = {};
  for (const [name, a] of Object.entries(arrays)) {
    out[name] = tf.tensor(a.data, a.shape, a.data instanceof Float32Array ? 'float32' : 'int32');
  }
  return out;
}
