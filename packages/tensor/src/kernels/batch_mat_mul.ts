/**
 * BatchMatMul for the wasm backend. tfjs 4.22 runs XNNPACK only for a single, untransposed
 * product; any batch, broadcast or transpose (every matMul gradient, every attention product)
 * falls to a scalar triple loop at ~1 GFLOP/s. This kernel keeps the built-in for the fast case
 * and otherwise:
 *
 * 1. transposes a transposed operand explicitly (tiled JS transpose on the heap);
 * 2. runs one XNNPACK GEMM per output batch on zero-copy views of the operands and the output
 *    (one GEMM in all when `b` is shared by every batch: the batches of `a` stack into rows);
 * 3. splits a long reduction (K > {@link MAX_GEMM_REDUCTION}) into chunks and accumulates, as
 *    XNNPACK's GEMM slows down several-fold on a long K. A transposed `a` (the weight-gradient
 *    case) is transposed chunk by chunk, so this costs no extra copy.
 *
 * Batch dimensions broadcast with the usual rules (e.g. [2,1,m,k] x [3,k,n] -> [2,3,m,n]).
 */
import { tf } from '../tf';
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
type KernelFunc = tf.KernelFunc;

/** Reductions longer than this are split into chunks of {@link GEMM_REDUCTION_CHUNK}. */
export const MAX_GEMM_REDUCTION = 4096;
/** Chunk length of a split reduction. */
export const GEMM_REDUCTION_CHUNK = 2048;

interface Problem {
  m: number;
  k: number;
  n: number;
  outOuter: number[];
  batchA: number;
  batchB: number;
  batchOut: number;
  /** For each output batch, the batch index in a and in b (broadcasting). */
  pairs: Array<[number, number]>;
}

/**
 * Build the BatchMatMul kernel function. `builtin` is the wasm backend's own kernel, used for
 * the case it already runs fast (batch 1, no transpose).
 */
export function createBatchMatMulWasm(builtin: KernelFunc): KernelFunc {
  return (args) => {
    const a = args.inputs.a as TensorInfo;
    const b = args.inputs.b as TensorInfo;
    const transposeA = Boolean(args.attrs?.transposeA);
    const transposeB = Boolean(args.attrs?.transposeB);
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return builtin(args);
    const p = describe(a.shape, b.shape, transposeA, transposeB);
    if (p.batchOut === 1 && !transposeA && !transposeB) return builtin(args);
    return batchMatMul(asWasmBackend(args.backend), a, b, transposeA, transposeB, p);
  };
}

function describe(aShape: number[], bShape: number[], transposeA: boolean, transposeB: boolean): Problem {
  if (aShape.length < 2 || bShape.length < 2) {
    throw new Error(`BatchMatMul: operands need rank >= 2, got [${aShape.join(', ')}] and [${bShape.join(', ')}]`);
  }
  const ar = aShape.length;
  const br = bShape.length;
  const m = transposeA ? aShape[ar - 1] : aShape[ar - 2];
  const k = transposeA ? aShape[ar - 2] : aShape[ar - 1];
  const kb = transposeB ? bShape[br - 1] : bShape[br - 2];
  const n = transposeB ? bShape[br - 2] : bShape[br - 1];
  if (k !== kb) {
    throw new Error(
      `Error in matMul: inner shapes (${k}) and (${kb}) of Tensors with shapes ${aShape} and ${bShape} ` +
        `and transposeA=${transposeA} and transposeB=${transposeB} must match.`,
    );
  }
  const aOuter = aShape.slice(0, -2);
  const bOuter = bShape.slice(0, -2);
  const outOuter = tf.broadcast_util.assertAndGetBroadcastShape(aOuter, bOuter);
  const rank = outOuter.length;
  const pad = (s: number[]) => [...new Array<number>(rank - s.length).fill(1), ...s];
  const aDims = pad(aOuter);
  const bDims = pad(bOuter);
  const pairs: Array<[number, number]> = [];
  const batchOut = outOuter.reduce((x, y) => x * y, 1);
  const index = new Array<number>(rank).fill(0);
  for (let i = 0; i < batchOut; i++) {
    let ia = 0;
    let ib = 0;
    for (let d = 0; d < rank; d++) {
      ia = ia * aDims[d] + (aDims[d] === 1 ? 0 : index[d]);
      ib = ib * bDims[d] + (bDims[d] === 1 ? 0 : index[d]);
    }
    pairs.push([ia, ib]);
    for (let d = rank - 1; d >= 0; d--) {
      if (++index[d] < outOuter[d]) break;
      index[d] = 0;
    }
  }
  return {
    m,
    k,
    n,
    outOuter,
    batchA: aDims.reduce((x, y) => x * y, 1),
    batchB: bDims.reduce((x, y) => x * y, 1),
    batchOut,
    pairs,
  };
}

function batchMatMul(
  backend: WasmBackend,
  a: TensorInfo,
  b: TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
  p: Problem,
): TensorInfo {
  const { m, k, n } = p;
  const out = backend.makeOutput([...p.outOuter, m, n], 'float32');
  const outSize = p.batchOut * m * n;
  if (outSize === 0 || k === 0) {
    const off = floatOffset(backend, out);
    heapF32(backend).fill(0, off, off + outSize);
    return out;
  }
  const scratch: number[] = [];
  const views: number[] = [];
  const view = (floatIndex: number, size: number) => {
    const id = registerView(backend, floatIndex, size);
    views.push(id);
    return id;
  };
  const alloc = (size: number) => {
    const f = allocScratch(backend, size);
    scratch.push(f);
    return f;
  };
  try {
    // b as row-major [batchB, k, n].
    let bMat = floatOffset(backend, b);
    if (transposeB) {
      const t = alloc(p.batchB * k * n);
      transposeMatrices(heapF32(backend), floatOffset(backend, b), t, p.batchB, n, k);
      bMat = t;
    }
    if (transposeA && k > MAX_GEMM_REDUCTION) {
      chunkedReduction(backend, a, bMat, out, p, alloc);
      return out;
    }
    // a as row-major [batchA, m, k].
    let aMat = floatOffset(backend, a);
    if (transposeA) {
      const t = alloc(p.batchA * m * k);
      transposeMatrices(heapF32(backend), floatOffset(backend, a), t, p.batchA, k, m);
      aMat = t;
    }
    const outOff = floatOffset(backend, out);
    if (p.batchB === 1) {
      // Every output batch uses the same b: stack the batches of a into rows, one GEMM.
      gemm(backend, view(aMat, p.batchA * m * k), view(bMat, k * n), view(outOff, outSize), p.batchA * m, k, n);
      return out;
    }
    // One view per distinct operand batch: a broadcast b is packed by XNNPACK only once.
    const aIds = new Map<number, number>();
    const bIds = new Map<number, number>();
    const viewOf = (ids: Map<number, number>, index: number, base: number, matrixSize: number) => {
      const known = ids.get(index);
      if (known != null) return known;
      const id = view(base + index * matrixSize, matrixSize);
      ids.set(index, id);
      return id;
    };
    p.pairs.forEach(([ia, ib], i) => {
      const aId = viewOf(aIds, ia, aMat, m * k);
      const bId = viewOf(bIds, ib, bMat, k * n);
      gemm(backend, aId, bId, view(outOff + i * m * n, m * n), m, k, n);
    });
    return out;
  } catch (err) {
    backend.disposeData(out.dataId);
    throw err;
  } finally {
    for (const id of views) releaseView(backend, id);
    for (const f of scratch) freeScratch(backend, f);
  }
}

/**
 * aᵀ·b with a long reduction: a is stored [batchA, k, m], so a chunk of k rows is contiguous;
 * each chunk is transposed to [m, kc], multiplied with rows [k0, k1) of b and accumulated.
 */
function chunkedReduction(
  backend: WasmBackend,
  a: TensorInfo,
  bMat: number,
  out: TensorInfo,
  p: Problem,
  alloc: (size: number) => number,
): void {
  const { m, k, n } = p;
  const aChunk = alloc(m * GEMM_REDUCTION_CHUNK);
  const partial = alloc(m * n);
  p.pairs.forEach(([ia, ib], i) => {
    for (let k0 = 0; k0 < k; k0 += GEMM_REDUCTION_CHUNK) {
      const kc = Math.min(GEMM_REDUCTION_CHUNK, k - k0);
      const target = k0 === 0 ? floatOffset(backend, out) + i * m * n : partial;
      transposeMatrices(heapF32(backend), floatOffset(backend, a) + ia * k * m + k0 * m, aChunk, 1, kc, m);
      // Fresh ids per chunk: XNNPACK caches the packed b on its id, and the buffers change.
      const aId = registerView(backend, aChunk, m * kc);
      const bId = registerView(backend, bMat + ib * k * n + k0 * n, kc * n);
      const outId = registerView(backend, target, m * n);
      try {
        gemm(backend, aId, bId, outId, m, kc, n);
      } finally {
        releaseView(backend, aId);
        releaseView(backend, bId);
        releaseView(backend, outId);
      }
      if (target === partial) {
        const heap = heapF32(backend);
        const dst = floatOffset(backend, out) + i * m * n;
        for (let j = 0; j < m * n; j++) heap[dst + j] += heap[partial + j];
      }
    }
  });
}
