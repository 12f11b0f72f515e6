/**
 * The parts of the tfjs 4.22 wasm backend that the custom kernels use, typed structurally.
 *
 * `@tensorflow/tfjs-backend-wasm` exports `BackendWasm`, but its heap, tensor registry and the
 * Emscripten module are not part of its typed public surface. Everything the kernels touch is
 * declared here once, so the coupling to backend internals is visible in a single file.
 *
 * Two rules keep memory correct:
 * - The wasm heap can grow on any allocation (`_malloc`, `makeOutput`, a kernel call), and a
 *   grown heap has a new `ArrayBuffer`. Always re-read {@link heapF32} after allocating.
 * - A *view* is an extra tensor id registered in the C++ tensor registry over memory that some
 *   other allocation owns. It is released with `tfjs.disposeData(id)` (which also drops the
 *   XNNPACK operator cached on that id), never with `_free`.
 */
import type { tf } from '../tf';

type TensorInfo = tf.TensorInfo;
type DataType = tf.DataType;

/** What the wasm backend keeps per tensor (its `dataIdMap` values). */
export interface WasmTensorData {
  id: number;
  memoryOffset: number;
  shape: number[];
  dtype: DataType;
  refCount: number;
}

/** The Emscripten module of the wasm backend, as far as the kernels use it. */
export interface WasmModule {
  /** The module's memory (exposed by the threaded build; absent in the single-threaded one). */
  wasmMemory?: WebAssembly.Memory;
  HEAPF32: Float32Array;
  HEAP32: Int32Array;
  HEAPU8: Uint8Array;
  _malloc(bytes: number): number;
  _free(pointer: number): void;
  cwrap(name: string, returnType: string | null, argTypes: string[]): (...args: unknown[]) => unknown;
  tfjs: {
    registerTensor(id: number, size: number, memoryOffset: number): void;
    disposeData(id: number): void;
  };
}

/** The `BackendWasm` members the kernels use. */
export interface WasmBackend {
  wasm: WasmModule;
  dataIdMap: {
    get(dataId: object): WasmTensorData | undefined;
    numDataIds(): number;
  };
  makeOutput(shape: number[], dtype: DataType, memoryOffset?: number): TensorInfo;
  disposeData(dataId: object, force?: boolean): boolean;
  incRef(dataId: object): void;
  readSync(dataId: object): unknown;
}

/** Narrow the `backend` a kernel receives to the wasm backend's internals. */
export function asWasmBackend(backend: unknown): WasmBackend {
  const b = backend as Partial<WasmBackend> | null;
  if (b == null || b.wasm == null || b.dataIdMap == null || typeof b.makeOutput !== 'function') {
    throw new Error('@ofm/tensor wasm kernels: called with a backend that is not the tfjs wasm backend');
  }
  return b as WasmBackend;
}

/**
 * The current float view of the wasm heap. Re-read after every allocation. With the threaded
 * build the memory is shared and growing it leaves the old view valid but short; a view that no
 * longer covers the whole memory is replaced.
 */
export function heapF32(backend: WasmBackend): Float32Array {
  const heap = backend.wasm.HEAPF32;
  const memory = backend.wasm.wasmMemory;
  return memory == null || heap.buffer === memory.buffer ? heap : new Float32Array(memory.buffer);
}

/** The current 32-bit integer view of the wasm heap (same rules as {@link heapF32}). */
export function heap32(backend: WasmBackend): Int32Array {
  const heap = backend.wasm.HEAP32;
  const memory = backend.wasm.wasmMemory;
  return memory == null || heap.buffer === memory.buffer ? heap : new Int32Array(memory.buffer);
}

/** The current byte view of the wasm heap (same rules as {@link heapF32}). */
export function heapU8(backend: WasmBackend): Uint8Array {
  const heap = backend.wasm.HEAPU8;
  const memory = backend.wasm.wasmMemory;
  return memory == null || heap.buffer === memory.buffer ? heap : new Uint8Array(memory.buffer);
}

/** Byte offset of a tensor's data in the wasm heap, divided by 4 (an index into HEAPF32). */
export function floatOffset(backend: WasmBackend, t: TensorInfo): number {
  const data = backend.dataIdMap.get(t.dataId);
  if (data == null) throw new Error('@ofm/tensor wasm kernels: tensor is not on the wasm backend');
  return data.memoryOffset >>> 2;
}

/** The C++ registry id of a tensor. */
export function tensorId(backend: WasmBackend, t: TensorInfo): number {
  const data = backend.dataIdMap.get(t.dataId);
  if (data == null) throw new Error('@ofm/tensor wasm kernels: tensor is not on the wasm backend');
  return data.id;
}

/**
 * A fresh id from the backend's own counter, so it never collides with a tensor id.
 * (`dataIdNextNumber` is private in the typings; it is a plain number field at runtime.)
 */
function nextId(backend: WasmBackend): number {
  const counter = backend as unknown as { dataIdNextNumber: number };
  return counter.dataIdNextNumber++;
}

/**
 * Register a view: a tensor id in the C++ registry over `size` floats starting at float index
 * `floatIndex` of the heap. Returns the id; release it with {@link releaseView}.
 */
export function registerView(backend: WasmBackend, floatIndex: number, size: number): number {
  const id = nextId(backend);
  backend.wasm.tfjs.registerTensor(id, size, floatIndex * 4);
  return id;
}

/** Release a view made by {@link registerView} (also drops any XNNPACK operator cached on it). */
export function releaseView(backend: WasmBackend, id: number): void {
  backend.wasm.tfjs.disposeData(id);
}

/**
 * A scratch buffer of `size` floats on the wasm heap, owned by the caller. Returns its float
 * index; release it with {@link freeScratch}.
 */
export function allocScratch(backend: WasmBackend, size: number): number {
  const pointer = backend.wasm._malloc(Math.max(1, size) * 4) >>> 0;
  if (pointer === 0) throw new Error(`@ofm/tensor wasm kernels: out of wasm memory allocating ${size} floats`);
  return pointer >>> 2;
}

/** Free a scratch buffer made by {@link allocScratch}. */
export function freeScratch(backend: WasmBackend, floatIndex: number): void {
  backend.wasm._free(floatIndex * 4);
}

type BatchMatMulEntry = (
  aId: number,
  aShape: Uint8Array,
  aRank: number,
  bId: number,
  bShape: Uint8Array,
  bRank: number,
  transposeA: boolean,
  transposeB: boolean,
  outId: number,
) => void;

const gemmEntries = new WeakMap<WasmModule, BatchMatMulEntry>();

function batchMatMulEntry(backend: WasmBackend): BatchMatMulEntry {
  let entry = gemmEntries.get(backend.wasm);
  if (entry == null) {
    // The C entry point behind the built-in BatchMatMul kernel; with rank-3 shapes of batch 1
    // and no transposes it runs XNNPACK's fully-connected GEMM (the fast path).
    entry = backend.wasm.cwrap('BatchMatMul', null, [
      'number',
      'array',
      'number',
      'number',
      'array',
      'number',
      'number',
      'number',
      'number',
    ]) as BatchMatMulEntry;
    gemmEntries.set(backend.wasm, entry);
  }
  return entry;
}

function shapeBytes(shape: number[]): Uint8Array {
  return new Uint8Array(new Int32Array(shape).buffer);
}

/**
 * out[m×n] = a[m×k] · b[k×n], row-major, on XNNPACK's fast GEMM. `aId`, `bId` and `outId` are
 * registry ids (tensors or views). XNNPACK packs `b` once per id and caches the packed copy on
 * that id, so `b` must not change while its id lives: reuse an id only for unchanged data.
 */
export function gemm(
  backend: WasmBackend,
  aId: number,
  bId: number,
  outId: number,
  m: number,
  k: number,
  n: number,
): void {
  batchMatMulEntry(backend)(aId, shapeBytes([1, m, k]), 3, bId, shapeBytes([1, k, n]), 3, false, false, outId);
}

/**
 * Transpose `batch` row-major matrices of `rows`×`cols` floats from `src` to `dst` (float
 * indices into `heap`, non-overlapping). Eight source rows are read together so that each
 * destination row receives 8 contiguous floats per pass; about 1 ns per element in V8, roughly
 * ten times faster than the wasm backend's generic Transpose kernel.
 */
export function transposeMatrices(
  heap: Float32Array,
  src: number,
  dst: number,
  batch: number,
  rows: number,
  cols: number,
): void {
  const size = rows * cols;
  for (let m = 0; m < batch; m++) {
    const s0 = src + m * size;
    const d0 = dst + m * size;
    let r = 0;
    for (; r + 8 <= rows; r += 8) {
      const s = s0 + r * cols;
      for (let c = 0; c < cols; c++) {
        const d = d0 + c * rows + r;
        const e = s + c;
        heap[d] = heap[e];
        heap[d + 1] = heap[e + cols];
        heap[d + 2] = heap[e + 2 * cols];
        heap[d + 3] = heap[e + 3 * cols];
        heap[d + 4] = heap[e + 4 * cols];
        heap[d + 5] = heap[e + 5 * cols];
        heap[d + 6] = heap[e + 6 * cols];
        heap[d + 7] = heap[e + 7 * cols];
      }
    }
    for (; r < rows; r++) {
      const s = s0 + r * cols;
      for (let c = 0; c < cols; c++) heap[d0 + c * rows + r] = heap[s + c];
    }
  }
}
