/**
 * Conv2DBackpropFilter for the wasm backend (tfjs 4.22 has none).
 *
 * dW[kh,kw,ci,co] = Σ_rows cols[row, (kh,kw,ci)] · dy[row, co], over the rows = (b, oh, ow) of
 * all B·Ho·Wo output pixels, i.e. dW = colsᵀ · dy as one GEMM of [kh·kw·ci, rows] x [rows, co].
 *
 * - XNNPACK's GEMM does not block the reduction dimension, and slows down several-fold on a long
 *   one; the rows are taken in chunks (a few thousand) and the partial products accumulated.
 * - The GEMM's right operand is the chunk of dy itself (a zero-copy view: the rows of an NHWC
 *   tensor are contiguous); XNNPACK packs it, and at ≤ 1 MiB it stays in cache while the left
 *   operand streams through once. The left operand colsᵀ is built directly in transposed form:
 *   x is first transposed to channel-major [ci, b, h, w], after which each row of colsᵀ for a
 *   fixed (kh, kw, ci) and image row is a contiguous run of x (stride 1) or a strided one.
 * - The GEMM output [kh·kw·ci, co] is already the filter layout [kh, kw, ci, co].
 */
import type { tf } from '../tf';
import { assertShape, convGeometry, type ConvBackpropAttrs, type ConvGeometry } from './conv_geometry';
import {
  allocScratch,
  asWasmBackend,
  floatOffset,
  freeScratch,
  gemm,
  heapF32,
  registerView,
  releaseView,
  transposeMatrices,
} from './wasm_internals';

type TensorInfo = tf.TensorInfo;

/** Packed dy chunk (chunk rows x co) kept near this many floats (1 MiB) so it stays in cache. */
const PACKED_CHUNK_FLOATS = 1 << 18;
const MIN_CHUNK_ROWS = 512;
const MAX_CHUNK_ROWS = 4096;
/** Upper bound on the colsᵀ scratch of one chunk, in floats (16 MiB). */
const MAX_COLS_FLOATS = 4 << 20;

interface BackpropFilterAttrs extends ConvBackpropAttrs {
  filterShape: [number, number, number, number];
}

/** Rows of the reduction per GEMM for a conv with `patch` = kh·kw·ci and `co` output channels. */
export function filterChunkRows(patch: number, co: number, rowsTotal: number): number {
  const byCache = Math.min(MAX_CHUNK_ROWS, Math.max(MIN_CHUNK_ROWS, Math.floor(PACKED_CHUNK_FLOATS / co)));
  const byMemory = Math.max(1, Math.floor(MAX_COLS_FLOATS / patch));
  return Math.max(1, Math.min(rowsTotal, byCache, byMemory));
}

/** Kernel function registered as 'Conv2DBackpropFilter' on the wasm backend. */
export function conv2DBackpropFilterWasm(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): TensorInfo {
  const name = 'Conv2DBackpropFilter';
  const backend = asWasmBackend(args.backend);
  const x = args.inputs.x as TensorInfo;
  const dy = args.inputs.dy as TensorInfo;
  const attrs = args.attrs as unknown as BackpropFilterAttrs;
  const g = convGeometry(name, x.shape, attrs.filterShape, attrs);
  assertShape(name, 'dy', dy.shape, [g.batch, g.outHeight, g.outWidth, g.outChannels]);

  const co = g.outChannels;
  const patch = g.filterHeight * g.filterWidth * g.inChannels;
  const out = backend.makeOutput([g.filterHeight, g.filterWidth, g.inChannels, co], 'float32');
  const rowsTotal = g.batch * g.outHeight * g.outWidth;
  if (rowsTotal === 0 || patch === 0 || co === 0) {
    const off = floatOffset(backend, out);
    heapF32(backend).fill(0, off, off + patch * co);
    return out;
  }

  const chunkRows = filterChunkRows(patch, co, rowsTotal);
  const pixels = g.batch * g.inHeight * g.inWidth;
  const xT = allocScratch(backend, pixels * g.inChannels);
  const colsT = allocScratch(backend, patch * chunkRows);
  const partial = rowsTotal > chunkRows ? allocScratch(backend, patch * co) : -1;
  try {
    transposeMatrices(heapF32(backend), floatOffset(backend, x), xT, 1, pixels, g.inChannels);
    for (let r0 = 0; r0 < rowsTotal; r0 += chunkRows) {
      const rows = Math.min(chunkRows, rowsTotal - r0);
      im2colTransposed(heapF32(backend), xT, colsT, g, r0, rows);
      const target = r0 === 0 ? floatOffset(backend, out) : partial;
      // Fresh view ids per chunk: XNNPACK caches the packed right operand on its id.
      const aId = registerView(backend, colsT, patch * rows);
      const bId = registerView(backend, floatOffset(backend, dy) + r0 * co, rows * co);
      const outId = registerView(backend, target, patch * co);
      try {
        gemm(backend, aId, bId, outId, patch, rows, co);
      } finally {
        releaseView(backend, aId);
        releaseView(backend, bId);
        releaseView(backend, outId);
      }
      if (target === partial) {
        const heap = heapF32(backend);
        const dst = floatOffset(backend, out);
        for (let i = 0; i < patch * co; i++) heap[dst + i] += heap[partial + i];
      }
    }
  } catch (err) {
    backend.disposeData(out.dataId);
    throw err;
  } finally {
    freeScratch(backend, xT);
    freeScratch(backend, colsT);
    if (partial >= 0) freeScratch(backend, partial);
  }
  return out;
}

/**
 * Write colsᵀ for the output pixels [r0, r0 + rows): a row-major [kh·kw·ci, rows] matrix at
 * `colsT`, from the channel-major input `xT` ([ci, b, h, w]); taps in the padding are zero.
 */
export function im2colTransposed(
  heap: Float32Array,
  xT: number,
  colsT: number,
  g: ConvGeometry,
  r0: number,
  rows: number,
): void {
  const { inHeight: H, inWidth: W, inChannels: C, filterHeight: KH, filterWidth: KW } = g;
  const { outHeight: OH, outWidth: OW, strideHeight: sh, strideWidth: sw, padTop, padLeft } = g;
  const channelStride = g.batch * H * W;
  heap.fill(0, colsT, colsT + KH * KW * C * rows);
  // Walk the chunk one output-image row (b, oh) at a time: a segment of consecutive ow.
  let j = 0;
  while (j < rows) {
    const r = r0 + j;
    const b = Math.floor(r / (OH * OW));
    const oh = Math.floor((r - b * OH * OW) / OW);
    const owLo = r - (b * OH + oh) * OW;
    const owHi = Math.min(OW, owLo + rows - j);
    for (let kh = 0; kh < KH; kh++) {
      const ih = oh * sh + kh - padTop;
      if (ih < 0 || ih >= H) continue;
      for (let kw = 0; kw < KW; kw++) {
        // ow with 0 <= ow·sw + kw - padLeft < W
        const first = Math.max(owLo, Math.ceil((padLeft - kw) / sw));
        const last = Math.min(owHi, Math.floor((W - 1 + padLeft - kw) / sw) + 1);
        const len = last - first;
        if (len <= 0) continue;
        const tap = (kh * KW + kw) * C;
        const srcBase = xT + (b * H + ih) * W + first * sw + kw - padLeft;
        const dstBase = colsT + tap * rows + j + (first - owLo);
        for (let ci = 0; ci < C; ci++) {
          const src = srcBase + ci * channelStride;
          const dst = dstBase + ci * rows;
          if (sw === 1) {
            if (len >= 16) heap.copyWithin(dst, src, src + len);
            else for (let i = 0; i < len; i++) heap[dst + i] = heap[src + i];
          } else {
            for (let i = 0; i < len; i++) heap[dst + i] = heap[src + i * sw];
          }
        }
      }
    }
    j += owHi - owLo;
  }
}
