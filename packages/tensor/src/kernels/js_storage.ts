/**
 * Tensor storage for kernels written in JavaScript that run on both the wasm and the cpu backend
 * (the fused group norm, nearest upsampling): a float32 tensor is an array plus the index of its
 * first element (the wasm heap, or the cpu backend's own array), and outputs are made by the
 * backend. The kernel code itself is shared.
 */
import { tf } from '../tf';
import { asWasmBackend, floatOffset, heapF32 } from './wasm_internals';

type TensorInfo = tf.TensorInfo;

/** What a kernel function receives. */
export type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

/** Access to float32 tensor data and new outputs, over one backend's storage. */
export interface Storage {
  /**
   * The array holding `t` and the index of its first element. On wasm a new output can grow
   * (and so replace) the heap: read every array only after making every output.
   */
  read(t: TensorInfo): [Float32Array, number];
  /** A new float32 output of `shape` (contents unspecified). */
  make(shape: number[]): TensorInfo;
  /** A new tensor with the logistic sigmoid of `t` (on wasm XNNPACK's vectorised kernel). */
  sigmoid(t: TensorInfo): TensorInfo;
  /** Free a tensor made by this storage that is not returned. */
  dispose(t: TensorInfo): void;
}

/** {@link Storage} over the tfjs wasm backend's heap. */
export function wasmStorage(backend: unknown): Storage {
  const b = asWasmBackend(backend);
  return {
    read: (t) => [heapF32(b), floatOffset(b, t)],
    make: (shape) => b.makeOutput(shape, 'float32'),
    sigmoid: (t) => {
      const builtin = tf.getKernel('Sigmoid', 'wasm');
      if (builtin == null) throw new Error('@ofm/tensor kernel: the wasm backend has no Sigmoid kernel');
      return builtin.kernelFunc({ inputs: { x: t }, backend: b as unknown as tf.KernelBackend, attrs: {} }) as TensorInfo;
    },
    dispose: (t) => {
      b.disposeData(t.dataId);
    },
  };
}

interface CpuBackendLike {
  data: { get(dataId: object): { values: unknown } | undefined };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values?: Float32Array): TensorInfo;
  disposeIntermediateTensorInfo(t: TensorInfo): void;
}

/** {@link Storage} over the tfjs cpu backend's typed arrays. */
export function cpuStorage(backend: unknown): Storage {
  const b = backend as CpuBackendLike;
  const read = (t: TensorInfo): [Float32Array, number] => {
    const values = b.data.get(t.dataId)?.values;
    if (!(values instanceof Float32Array)) throw new Error('@ofm/tensor kernel: expected float32 data on the cpu backend');
    return [values, 0];
  };
  return {
    read,
    make: (shape) => b.makeTensorInfo(shape, 'float32', new Float32Array(shape.reduce((p, d) => p * d, 1))),
    sigmoid: (t) => {
      const [x] = read(t);
      const out = new Float32Array(x.length);
      for (let i = 0; i < x.length; i++) out[i] = 1 / (1 + Math.exp(-x[i]!));
      return b.makeTensorInfo([...t.shape], 'float32', out);
    },
    dispose: (t) => b.disposeIntermediateTensorInfo(t),
  };
}

/** The backends the JavaScript kernels are registered for, with their storage. */
export const JS_KERNEL_BACKENDS = { wasm: wasmStorage, cpu: cpuStorage } as const;
