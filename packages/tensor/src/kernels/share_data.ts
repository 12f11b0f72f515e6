/**
 * Identity and same-dtype Cast for the wasm backend without a copy.
 *
 * tfjs saves every tensor a gradient needs with `keep(clone(t))`, and `clone` runs the Identity
 * kernel. The cpu backend shares the data (a reference count); tfjs 4.22's wasm backend copies it,
 * so every activation kept for the backward pass existed twice and was copied once. Tensors are
 * immutable (kernels write only their fresh outputs; `Variable.assign` swaps the data id), so
 * sharing is safe, as Reshape on wasm already does. Cast to the tensor's own dtype (the gradients
 * of Multiply and others cast their operands to float32) is the same thing.
 *
 * Cast to bool is also fixed here: the built-in stores the numbers into bytes modulo 256
 * (-2 became 254, 256 became 0); a cast to bool is `x != 0`, as on the cpu backend.
 */
import type { tf } from '../tf';
import { asWasmBackend, heap32, heapF32, heapU8 } from './wasm_internals';

type TensorInfo = tf.TensorInfo;

function share(backend: unknown, x: TensorInfo): TensorInfo {
  asWasmBackend(backend).incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
}

/** The Identity kernel: a new tensor over the same data. */
export function identityWasm(args: { inputs: tf.NamedTensorInfoMap; backend: unknown }): TensorInfo {
  return share(args.backend, args.inputs.x as TensorInfo);
}

/** The Cast kernel: shares the data when the dtype does not change, else converts. */
export function createCastWasm(builtin: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const x = args.inputs.x as TensorInfo;
    const dtype = (args.attrs as { dtype?: tf.DataType } | undefined)?.dtype;
    if (dtype === x.dtype) return share(args.backend, x);
    if (dtype === 'bool' && (x.dtype === 'float32' || x.dtype === 'int32')) return castToBool(args.backend, x);
    return builtin(args);
  };
}

function castToBool(backend: unknown, x: TensorInfo): TensorInfo {
  const b = asWasmBackend(backend);
  const out = b.makeOutput([...x.shape], 'bool');
  const n = x.shape.reduce((p, d) => p * d, 1);
  const src = b.dataIdMap.get(x.dataId)!.memoryOffset >>> 2;
  const dst = b.dataIdMap.get(out.dataId)!.memoryOffset;
  const values = x.dtype === 'float32' ? heapF32(b) : heap32(b);
  const bytes = heapU8(b);
  for (let i = 0; i < n; i++) bytes[dst + i] = values[src + i] !== 0 ? 1 : 0;
  return out;
}
