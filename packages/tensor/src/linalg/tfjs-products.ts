/**
 * The large products of the SVD on the active tfjs backend in float32 (internal): much faster than
 * the float64 JavaScript kernels when the backend has a fast matMul (wasm/XNNPACK, tfjs-node),
 * at float32 accuracy.
 */
import { tf } from '../tf';
import type { Matrix, MatrixData } from './matrix';

/** Reduction depth per matMul: keeps float32 sums short and XNNPACK on its fast path. */
const DEPTH = 1024;

/** Rows r0..r0+h-1, columns c0..c0+w-1 of the n-column matrix `data` as float32 (h x w). */
function block(data: MatrixData, n: number, r0: number, h: number, c0: number, w: number): Float32Array {
  const out = new Float32Array(h * w);
  for (let i = 0; i < h; i++) {
    const src = (r0 + i) * n + c0;
    for (let j = 0; j < w; j++) out[i * w + j] = data[src + j]!;
  }
  return out;
}

/** Transpose of an h x w float32 block. */
function transposed(b: Float32Array, h: number, w: number): Float32Array {
  const out = new Float32Array(h * w);
  for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) out[j * h + i] = b[i * w + j]!;
  return out;
}

/**
 * A Aᵀ ('rows') or AᵀA ('cols') in float64, accumulated over float32 matMuls of depth {@link DEPTH}.
 */
export function gramTfjs(a: Matrix, side: 'rows' | 'cols'): Float64Array {
  const { rows: m, cols: n, data } = a;
  const p = side === 'rows' ? m : n;
  const total = side === 'rows' ? n : m;
  const g = new Float64Array(p * p);
  for (let t0 = 0; t0 < total; t0 += DEPTH) {
    const d = Math.min(DEPTH, total - t0);
    // left (p x d) and right (d x p) with left · right = this panel's contribution.
    const panel = side === 'rows' ? block(data, n, 0, m, t0, d) : block(data, n, t0, d, 0, n);
    const left = side === 'rows' ? panel : transposed(panel, d, n);
    const right = side === 'rows' ? transposed(panel, m, d) : panel;
    const part = tf.tidy(() => tf.matMul(tf.tensor2d(left, [p, d]), tf.tensor2d(right, [d, p])));
    const values = part.dataSync();
    part.dispose();
    for (let i = 0; i < p * p; i++) g[i] += values[i]!;
  }
  return g;
}

/**
 * y = rows · A (wide: rows are k x m, y is k x n) or rows · Aᵀ (tall: rows are k x n, y is k x m),
 * in float32 matMuls, returned in float64.
 */
export function applyTfjs(rows: Float64Array, k: number, a: Matrix, wide: boolean): Float64Array {
  const { rows: m, cols: n, data } = a;
  const p = wide ? m : n;
  const L = wide ? n : m;
  const y = new Float64Array(k * L);
  const left = tf.tensor2d(Float32Array.from(rows.subarray(0, k * p)), [k, p]);
  try {
    for (let l0 = 0; l0 < L; l0 += DEPTH) {
      const w = Math.min(DEPTH, L - l0);
      // right (p x w): columns l0.. of A (wide) or rows l0.. of A transposed (tall).
      const right = wide ? block(data, n, 0, m, l0, w) : transposed(block(data, n, l0, w, 0, n), w, n);
      const part = tf.tidy(() => tf.matMul(left, tf.tensor2d(right, [p, w])));
      const values = part.dataSync();
      part.dispose();
      for (let r = 0; r < k; r++) {
        for (let j = 0; j < w; j++) y[r * L + l0 + j] = values[r * w + j]!;
      }
    }
  } finally {
    left.dispose();
  }
  return y;
}
