/**
 * Conv2DBackpropInput for the wasm backend, replacing tfjs 4.22's scalar C++ loop (~1 GFLOP/s)
 * with XNNPACK paths (10-20 GFLOP/s):
 *
 * - stride 1 (and every pad ≤ k-1): dx is the forward conv of dy with the filter flipped in
 *   space and with in/out channels swapped, padded k-1-pad on each side. That runs on the
 *   built-in XNNPACK Conv2D kernel.
 * - otherwise (stride > 1, or a pad larger than k-1): cols = dy · Wᵀ as one GEMM per chunk of
 *   output pixels, then col2im scatters each patch back into dx.
 */
import { tf } from '../tf';
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
  type WasmBackend,
} from './wasm_internals';

type TensorInfo = tf.TensorInfo;

/** Upper bound on the patch-gradient scratch of one chunk, in floats (16 MiB). */
const MAX_CHUNK_FLOATS = 4 << 20;
/** Output pixels per GEMM in the col2im path. */
const TARGET_CHUNK_ROWS = 4096;

interface BackpropInputAttrs extends ConvBackpropAttrs {
  inputShape: [number, number, number, number];
}

/** Kernel function registered as 'Conv2DBackpropInput' on the wasm backend. */
export function conv2DBackpropInputWasm(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): TensorInfo {
  const name = 'Conv2DBackpropInput';
  const backend = asWasmBackend(args.backend);
  const dy = args.inputs.dy as TensorInfo;
  const filter = args.inputs.filter as TensorInfo;
  const attrs = args.attrs as unknown as BackpropInputAttrs;
  const g = convGeometry(name, attrs.inputShape, filter.shape, attrs);
  assertShape(name, 'dy', dy.shape, [g.batch, g.outHeight, g.outWidth, g.outChannels]);
  assertShape(name, 'filter', filter.shape, [g.filterHeight, g.filterWidth, g.inChannels, g.outChannels]);

  const inputSize = g.batch * g.inHeight * g.inWidth * g.inChannels;
  const patch = g.filterHeight * g.filterWidth * g.inChannels;
  if (inputSize === 0 || patch === 0 || g.outChannels === 0 || g.outHeight * g.outWidth === 0) {
    const dx = backend.makeOutput([...attrs.inputShape], 'float32');
    const off = floatOffset(backend, dx);
    heapF32(backend).fill(0, off, off + inputSize);
    return dx;
  }
  const transposedConvFits =
    g.strideHeight === 1 &&
    g.strideWidth === 1 &&
    Math.max(g.padTop, g.padBottom) <= g.filterHeight - 1 &&
    Math.max(g.padLeft, g.padRight) <= g.filterWidth - 1;
  return transposedConvFits ? viaFlippedConv(backend, dy, filter, g) : viaGemmCol2im(backend, dy, filter, g);
}

/** Stride 1: dx = conv2d(dy, flip(W)ᵀ) with padding k-1-pad, on the built-in XNNPACK Conv2D. */
function viaFlippedConv(backend: WasmBackend, dy: TensorInfo, filter: TensorInfo, g: ConvGeometry): TensorInfo {
  const { filterHeight: KH, filterWidth: KW, inChannels: ci, outChannels: co } = g;
  const flipped = backend.makeOutput([KH, KW, co, ci], 'float32');
  try {
    const heap = heapF32(backend);
    const src = floatOffset(backend, filter);
    const dst = floatOffset(backend, flipped);
    for (let kh = 0; kh < KH; kh++) {
      for (let kw = 0; kw < KW; kw++) {
        const from = src + ((KH - 1 - kh) * KW + (KW - 1 - kw)) * ci * co;
        transposeMatrices(heap, from, dst + (kh * KW + kw) * co * ci, 1, ci, co);
      }
    }
    const conv2d = tf.getKernel('Conv2D', 'wasm');
    if (conv2d == null) throw new Error('Conv2DBackpropInput (@ofm/tensor wasm kernel): the wasm Conv2D kernel is missing');
    const pad: tf.backend_util.ExplicitPadding = [
      [0, 0],
      [KH - 1 - g.padTop, KH - 1 - g.padBottom],
      [KW - 1 - g.padLeft, KW - 1 - g.padRight],
      [0, 0],
    ];
    const dx = conv2d.kernelFunc({
      inputs: { x: dy, filter: flipped },
      attrs: { strides: [1, 1], pad, dilations: [1, 1], dataFormat: 'NHWC' },
      backend: backend as unknown as tf.KernelBackend,
    }) as TensorInfo;
    return dx;
  } finally {
    // Disposing the flipped filter also drops the XNNPACK operator cached on its id.
    backend.disposeData(flipped.dataId);
  }
}

/** Any stride: per chunk of output pixels, cols = dy · Wᵀ (one GEMM), then col2im into dx. */
function viaGemmCol2im(backend: WasmBackend, dy: TensorInfo, filter: TensorInfo, g: ConvGeometry): TensorInfo {
  const co = g.outChannels;
  const patch = g.filterHeight * g.filterWidth * g.inChannels;
  const rowsTotal = g.batch * g.outHeight * g.outWidth;
  const chunkRows = Math.max(1, Math.min(rowsTotal, TARGET_CHUNK_ROWS, Math.floor(MAX_CHUNK_FLOATS / patch) || 1));

  const dx = backend.makeOutput([g.batch, g.inHeight, g.inWidth, g.inChannels], 'float32');
  const wT = allocScratch(backend, co * patch);
  const cols = allocScratch(backend, chunkRows * patch);
  let wTId = -1;
  try {
    let heap = heapF32(backend);
    const dxOff = floatOffset(backend, dx);
    heap.fill(0, dxOff, dxOff + g.batch * g.inHeight * g.inWidth * g.inChannels);
    // The filter is [kh·kw·ci, co]; the GEMM needs Wᵀ = [co, kh·kw·ci]. One id for all chunks,
    // so XNNPACK packs it once.
    transposeMatrices(heap, floatOffset(backend, filter), wT, 1, patch, co);
    wTId = registerView(backend, wT, co * patch);
    for (let r0 = 0; r0 < rowsTotal; r0 += chunkRows) {
      const rows = Math.min(chunkRows, rowsTotal - r0);
      const aId = registerView(backend, floatOffset(backend, dy) + r0 * co, rows * co);
      const outId = registerView(backend, cols, rows * patch);
      try {
        gemm(backend, aId, wTId, outId, rows, co, patch);
      } finally {
        releaseView(backend, aId);
        releaseView(backend, outId);
      }
      heap = heapF32(backend);
      col2imRows(heap, cols, floatOffset(backend, dx), g, r0, rows);
    }
  } catch (err) {
    backend.disposeData(dx.dataId);
    throw err;
  } finally {
    if (wTId >= 0) releaseView(backend, wTId);
    freeScratch(backend, wT);
    freeScratch(backend, cols);
  }
  return dx;
}

/**
 * Add the patch rows [r0, r0 + rows) of `cols` (row-major [rows, kh·kw·ci]) back into the NHWC
 * tensor at `dxOff`; taps that fall in the padding are dropped. The adjoint of im2col.
 */
export function col2imRows(
  heap: Float32Array,
  cols: number,
  dxOff: number,
  g: ConvGeometry,
  r0: number,
  rows: number,
): void {
  const { inHeight: H, inWidth: W, inChannels: C, filterHeight: KH, filterWidth: KW } = g;
  const patch = KH * KW * C;
  const rowLen = KW * C;
  const pixelsPerImage = g.outHeight * g.outWidth;
  let b = Math.floor(r0 / pixelsPerImage);
  let oh = Math.floor((r0 - b * pixelsPerImage) / g.outWidth);
  let ow = r0 - b * pixelsPerImage - oh * g.outWidth;
  for (let j = 0; j < rows; j++) {
    const srcRow = cols + j * patch;
    const iw0 = ow * g.strideWidth - g.padLeft;
    const kwLo = Math.max(0, -iw0);
    const kwHi = Math.min(KW, W - iw0);
    if (kwHi > kwLo) {
      for (let kh = 0; kh < KH; kh++) {
        const ih = oh * g.strideHeight + kh - g.padTop;
        if (ih < 0 || ih >= H) continue;
        const src = srcRow + kh * rowLen + kwLo * C;
        const dst = dxOff + ((b * H + ih) * W + iw0 + kwLo) * C;
        const len = (kwHi - kwLo) * C;
        for (let i = 0; i < len; i++) heap[dst + i] += heap[src + i];
      }
    }
    if (++ow === g.outWidth) {
      ow = 0;
      if (++oh === g.outHeight) {
        oh = 0;
        b++;
      }
    }
  }
}
