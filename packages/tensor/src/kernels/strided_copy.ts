/**
 * Slice, SplitV and Transpose for the wasm backend, as block copies on the heap.
 *
 * tfjs 4.22's wasm Slice first copies the *whole* input out of the heap (`readSync`), then
 * assembles the slice row by row from `subarray` views; SplitV (the gradient of every concat)
 * does that once per output. Its Transpose is a generic per-element loop (~0.3 GB/s). Here all
 * three are one "strided copy": the output, in row-major order, reads the input at an affine
 * index. The trailing dimensions over which the input is contiguous merge into one run, copied
 * with `copyWithin` (a memmove); only the outer dimensions are iterated in JS.
 *
 * Only 4-byte dtypes (float32, int32) are handled; others go to the built-in kernel. Elements
 * are copied as raw 32-bit words, so int32 values are never routed through float arithmetic.
 */
import { tf } from '../tf';
import { asWasmBackend, heap32, heapF32, transposeMatrices, type WasmBackend } from './wasm_internals';

type TensorInfo = tf.TensorInfo;
type KernelFunc = tf.KernelFunc;

/** Runs shorter than this are copied element by element (cheaper than a copyWithin call). */
const MIN_MEMMOVE_RUN = 24;

function wordSized(dtype: tf.DataType): boolean {
  return dtype === 'float32' || dtype === 'int32';
}

/** Row-major strides of `shape`. */
export function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i]!;
  }
  return strides;
}

/**
 * Write the row-major tensor of `shape` at word index `dst` of `heap`, whose element
 * `(i0, …, ik)` is `heap[src + Σ ij·srcStrides[j]]`. Source and destination must not overlap.
 */
export function stridedCopy(
  heap: Int32Array,
  src: number,
  srcStrides: readonly number[],
  dst: number,
  shape: readonly number[],
): void {
  // Drop size-1 dimensions, then merge trailing dimensions that are contiguous in the source.
  const dims: number[] = [];
  const strides: number[] = [];
  for (let j = 0; j < shape.length; j++) {
    if (shape[j] === 0) return;
    if (shape[j] !== 1) {
      dims.push(shape[j]!);
      strides.push(srcStrides[j]!);
    }
  }
  let run = 1;
  let runStride = 1;
  while (dims.length > 0 && strides[strides.length - 1] === run) {
    run *= dims.pop()!;
    strides.pop();
  }
  if (run === 1 && dims.length > 0) {
    // The innermost output dimension is strided in the source: it becomes the element loop.
    run = dims.pop()!;
    runStride = strides.pop()!;
  }
  const outer = dims.reduce((a, b) => a * b, 1);
  const index = new Array<number>(dims.length).fill(0);
  let s = src;
  let d = dst;
  for (let o = 0; o < outer; o++) {
    if (runStride !== 1) {
      for (let i = 0; i < run; i++) heap[d + i] = heap[s + i * runStride]!;
    } else if (run >= MIN_MEMMOVE_RUN) {
      heap.copyWithin(d, s, s + run);
    } else {
      for (let i = 0; i < run; i++) heap[d + i] = heap[s + i]!;
    }
    d += run;
    // Odometer over the outer dimensions, keeping the source offset in step.
    for (let j = dims.length - 1; j >= 0; j--) {
      s += strides[j]!;
      if (++index[j]! < dims[j]!) break;
      s -= strides[j]! * dims[j]!;
      index[j] = 0;
    }
  }
}

function wordOffset(backend: WasmBackend, t: TensorInfo): number {
  const data = backend.dataIdMap.get(t.dataId);
  if (data == null) throw new Error('@ofm/tensor wasm kernels: tensor is not on the wasm backend');
  return data.memoryOffset >>> 2;
}

function sliceInto(backend: WasmBackend, x: TensorInfo, begin: number[], size: number[]): TensorInfo {
  const out = backend.makeOutput(size, x.dtype);
  const strides = stridesOf(x.shape);
  let src = wordOffset(backend, x);
  for (let j = 0; j < begin.length; j++) src += begin[j]! * strides[j]!;
  // Read the heap only now: makeOutput may have grown it.
  stridedCopy(heap32(backend), src, strides, wordOffset(backend, out), size);
  return out;
}

/** The Slice kernel: block copies for float32/int32, the built-in otherwise. */
export function createSliceWasm(builtin: KernelFunc): KernelFunc {
  return (args) => {
    const x = args.inputs.x as TensorInfo;
    if (!wordSized(x.dtype)) return builtin(args);
    const attrs = args.attrs as unknown as { begin: number | number[]; size: number | number[] };
    const [begin, size] = tf.slice_util.parseSliceParams(x as tf.Tensor, attrs.begin, attrs.size);
    return sliceInto(asWasmBackend(args.backend), x, begin, size);
  };
}

/** The SplitV kernel (the gradient of concat): one block copy per piece. */
export function createSplitVWasm(builtin: KernelFunc): KernelFunc {
  return (args) => {
    const x = args.inputs.x as TensorInfo;
    if (!wordSized(x.dtype)) return builtin(args);
    const attrs = args.attrs as unknown as { numOrSizeSplits: number | number[]; axis: number | number[] };
    const axis = tf.util.parseAxisParam(attrs.axis, x.shape)[0]!;
    const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, attrs.numOrSizeSplits, axis);
    const backend = asWasmBackend(args.backend);
    const begin = new Array<number>(x.shape.length).fill(0);
    const outs: TensorInfo[] = [];
    try {
      for (const s of sizes) {
        const size = [...x.shape];
        size[axis] = s;
        outs.push(sliceInto(backend, x, [...begin], size));
        begin[axis]! += s;
      }
    } catch (err) {
      for (const o of outs) backend.disposeData(o.dataId);
      throw err;
    }
    return outs;
  };
}

/**
 * The Transpose kernel: a block copy when the innermost dimension stays innermost (e.g. the
 * head split of attention, [n, t, h, d] -> [n, h, t, d]), a tiled matrix transpose when the
 * permutation swaps the last two groups of dimensions, the built-in otherwise.
 */
export function createTransposeWasm(builtin: KernelFunc): KernelFunc {
  return (args) => {
    const x = args.inputs.x as TensorInfo;
    if (!wordSized(x.dtype)) return builtin(args);
    const perm = (args.attrs as unknown as { perm: number[] }).perm;
    const rank = x.shape.length;
    const outShape = perm.map((p) => x.shape[p]!);
    const inStrides = stridesOf(x.shape);
    const backend = asWasmBackend(args.backend);
    if (rank > 0 && perm[rank - 1] === rank - 1) {
      const out = backend.makeOutput(outShape, x.dtype);
      stridedCopy(heap32(backend), wordOffset(backend, x), perm.map((p) => inStrides[p]!), wordOffset(backend, out), outShape);
      return out;
    }
    const swap = batchedMatrixSwap(x.shape, perm);
    if (swap != null && x.dtype === 'float32') {
      const out = backend.makeOutput(outShape, x.dtype);
      transposeMatrices(heapF32(backend), wordOffset(backend, x), wordOffset(backend, out), swap.batch, swap.rows, swap.cols);
      return out;
    }
    return builtin(args);
  };
}

/**
 * When `perm` keeps a leading block of dimensions in place and swaps the two blocks after it
 * (perm = [0..b-1, b+k..r-1, b..b+k-1]), the transpose is `batch` independent rows x cols matrix
 * transposes.
 */
function batchedMatrixSwap(shape: readonly number[], perm: readonly number[]): { batch: number; rows: number; cols: number } | null {
  const r = perm.length;
  let b = 0;
  while (b < r && perm[b] === b) b++;
  if (b === r) return null;
  const k = perm[b]! - b; // the first moved output dim is input dim b + k
  if (k <= 0) return null;
  for (let j = 0; j < r - b - k; j++) if (perm[b + j] !== b + k + j) return null;
  for (let j = 0; j < k; j++) if (perm[r - k + j] !== b + j) return null;
  const prod = (from: number, to: number) => shape.slice(from, to).reduce((p, d) => p * d, 1);
  return { batch: prod(0, b), rows: prod(b, b + k), cols: prod(b + k, r) };
}
