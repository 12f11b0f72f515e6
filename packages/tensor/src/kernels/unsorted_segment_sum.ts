/**
 * UnsortedSegmentSum for the wasm backend (tfjs 4.22 has none). It is the gradient of
 * `tf.gather`, so an embedding-table lookup cannot train on wasm without it.
 *
 * out[s, ...] = Σ_{i : segmentIds[i] = s} x[i, ...], over the leading `segmentIds.rank`
 * dimensions of x; ids outside [0, numSegments) are dropped (TensorFlow's semantics).
 */
import type { tf } from '../tf';
import { asWasmBackend, heap32, heapF32, type WasmBackend } from './wasm_internals';

type TensorInfo = tf.TensorInfo;

/** Kernel function registered as 'UnsortedSegmentSum' on the wasm backend. */
export function unsortedSegmentSumWasm(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): TensorInfo {
  const backend = asWasmBackend(args.backend);
  const x = args.inputs.x as TensorInfo;
  const segmentIds = args.inputs.segmentIds as TensorInfo;
  const numSegments = Number(args.attrs?.numSegments);
  if (!Number.isInteger(numSegments) || numSegments < 0) {
    throw new Error(`UnsortedSegmentSum: numSegments must be a non-negative integer, got ${args.attrs?.numSegments}`);
  }
  if (segmentIds.dtype !== 'int32') {
    throw new Error(`UnsortedSegmentSum: segmentIds must be int32, got ${segmentIds.dtype}`);
  }
  if (x.dtype !== 'float32' && x.dtype !== 'int32') {
    throw new Error(`UnsortedSegmentSum: x must be float32 or int32, got ${x.dtype}`);
  }
  const idRank = segmentIds.shape.length;
  if (segmentIds.shape.some((d, i) => d !== x.shape[i])) {
    throw new Error(
      `UnsortedSegmentSum: segmentIds shape [${segmentIds.shape.join(', ')}] must be a prefix of x shape ` +
        `[${x.shape.join(', ')}]`,
    );
  }
  const inner = x.shape.slice(idRank).reduce((p, d) => p * d, 1);
  const count = segmentIds.shape.reduce((p, d) => p * d, 1);
  const out = backend.makeOutput([numSegments, ...x.shape.slice(idRank)], x.dtype);
  const heap = typedHeap(backend, x.dtype);
  const ids = heap32(backend);
  const idOff = offsetOf(backend, segmentIds);
  const xOff = offsetOf(backend, x);
  const outOff = offsetOf(backend, out);
  heap.fill(0, outOff, outOff + numSegments * inner);
  for (let i = 0; i < count; i++) {
    const s = ids[idOff + i];
    if (s < 0 || s >= numSegments) continue;
    const src = xOff + i * inner;
    const dst = outOff + s * inner;
    for (let j = 0; j < inner; j++) heap[dst + j] += heap[src + j];
  }
  return out;
}

function typedHeap(backend: WasmBackend, dtype: string): Float32Array | Int32Array {
  return dtype === 'int32' ? heap32(backend) : heapF32(backend);
}

function offsetOf(backend: WasmBackend, t: TensorInfo): number {
  const data = backend.dataIdMap.get(t.dataId);
  if (data == null) throw new Error('UnsortedSegmentSum: tensor is not on the wasm backend');
  return data.memoryOffset >>> 2;
}
