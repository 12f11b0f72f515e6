/**
 * Cache-blocked float64 matrix-product kernels in plain JavaScript (internal).
 *
 * Every kernel accumulates into C (C += ...), takes explicit offsets and row strides so callers can
 * work on sub-blocks without copies, and is written for V8: monomorphic Float64Array access and
 * 4 x 4 register tiles, which measure about 4 GFLOP/s on one core here (a naive triple loop: 1).
 */

/** Depth of one pass over the reduction dimension (a 4-row strip of A stays in L1). */
const KB = 256;
/** Rows of B per block in the dot-product kernels (KB x JB doubles stay in L2). */
const JB = 64;

/**
 * C[i, j] += Σ_p A[i, p] · B[j, p] for i < m, j < n, p < k: the product A·Bᵀ of two matrices whose
 * rows are contiguous ("dot-product form"). Element (i, p) of A is `A[aOff + i * lda + p]`, and
 * likewise for B and C.
 */
export function gemmNT(
  m: number,
  n: number,
  k: number,
  A: Float64Array,
  aOff: number,
  lda: number,
  B: Float64Array,
  bOff: number,
  ldb: number,
  C: Float64Array,
  cOff: number,
  ldc: number,
): void {
  for (let p0 = 0; p0 < k; p0 += KB) {
    const pl = Math.min(k, p0 + KB) - p0;
    for (let j0 = 0; j0 < n; j0 += JB) {
      const j1 = Math.min(n, j0 + JB);
      ntBlock(0, m, j0, j1, p0, pl, A, aOff, lda, B, bOff, ldb, C, cOff, ldc);
    }
  }
}

/**
 * The lower triangle (j <= i, plus the upper half of the 4 x 4 diagonal tiles) of C += P·Pᵀ,
 * where P is `m x k` with row stride `ldp`. Callers mirror the result with {@link mirrorLower}.
 */
export function syrkLower(
  m: number,
  k: number,
  P: Float64Array,
  pOff: number,
  ldp: number,
  C: Float64Array,
  cOff: number,
  ldc: number,
): void {
  for (let p0 = 0; p0 < k; p0 += KB) {
    const pl = Math.min(k, p0 + KB) - p0;
    for (let j0 = 0; j0 < m; j0 += JB) {
      const j1 = Math.min(m, j0 + JB);
      // Only row strips that reach the block's columns: i >= j0.
      ntBlock(j0, m, j0, j1, p0, pl, P, pOff, ldp, P, pOff, ldp, C, cOff, ldc, true);
    }
  }
}

/** Copy the lower triangle of the n x n matrix C onto its upper triangle. */
export function mirrorLower(n: number, C: Float64Array): void {
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < i; j++) C[j * n + i] = C[i * n + j]!;
  }
}

/**
 * One block of the dot-product kernel: rows i0..i1-1 of A against rows j0..j1-1 of B over the
 * reduction range p0..p0+pl-1. With `lower`, tiles strictly above the diagonal are skipped.
 */
function ntBlock(
  i0: number,
  i1: number,
  j0: number,
  j1: number,
  p0: number,
  pl: number,
  A: Float64Array,
  aOff: number,
  lda: number,
  B: Float64Array,
  bOff: number,
  ldb: number,
  C: Float64Array,
  cOff: number,
  ldc: number,
  lower = false,
): void {
  let i = i0;
  for (; i + 3 < i1; i += 4) {
    const a0 = aOff + i * lda + p0;
    const a1 = a0 + lda;
    const a2 = a1 + lda;
    const a3 = a2 + lda;
    const jEnd = lower ? Math.min(j1, i + 4) : j1;
    let j = j0;
    for (; j + 3 < jEnd; j += 4) {
      const b0 = bOff + j * ldb + p0;
      const b1 = b0 + ldb;
      const b2 = b1 + ldb;
      const b3 = b2 + ldb;
      let s00 = 0;
      let s01 = 0;
      let s02 = 0;
      let s03 = 0;
      let s10 = 0;
      let s11 = 0;
      let s12 = 0;
      let s13 = 0;
      let s20 = 0;
      let s21 = 0;
      let s22 = 0;
      let s23 = 0;
      let s30 = 0;
      let s31 = 0;
      let s32 = 0;
      let s33 = 0;
      for (let p = 0; p < pl; p++) {
        const y0 = B[b0 + p]!;
        const y1 = B[b1 + p]!;
        const y2 = B[b2 + p]!;
        const y3 = B[b3 + p]!;
        let x = A[a0 + p]!;
        s00 += x * y0; s01 += x * y1; s02 += x * y2; s03 += x * y3;
        x = A[a1 + p]!;
        s10 += x * y0; s11 += x * y1; s12 += x * y2; s13 += x * y3;
        x = A[a2 + p]!;
        s20 += x * y0; s21 += x * y1; s22 += x * y2; s23 += x * y3;
        x = A[a3 + p]!;
        s30 += x * y0; s31 += x * y1; s32 += x * y2; s33 += x * y3;
      }
      let c = cOff + i * ldc + j;
      C[c] += s00; C[c + 1] += s01; C[c + 2] += s02; C[c + 3] += s03;
      c += ldc;
      C[c] += s10; C[c + 1] += s11; C[c + 2] += s12; C[c + 3] += s13;
      c += ldc;
      C[c] += s20; C[c + 1] += s21; C[c + 2] += s22; C[c + 3] += s23;
      c += ldc;
      C[c] += s30; C[c + 1] += s31; C[c + 2] += s32; C[c + 3] += s33;
    }
    // Leftover columns of this strip.
    for (; j < jEnd; j++) {
      const b0 = bOff + j * ldb + p0;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let p = 0; p < pl; p++) {
        const y = B[b0 + p]!;
        s0 += A[a0 + p]! * y;
        s1 += A[a1 + p]! * y;
        s2 += A[a2 + p]! * y;
        s3 += A[a3 + p]! * y;
      }
      const c = cOff + i * ldc + j;
      C[c] += s0;
      C[c + ldc] += s1;
      C[c + 2 * ldc] += s2;
      C[c + 3 * ldc] += s3;
    }
  }
  // Leftover rows.
  for (; i < i1; i++) {
    const a0 = aOff + i * lda + p0;
    const jEnd = lower ? Math.min(j1, i + 1) : j1;
    for (let j = j0; j < jEnd; j++) {
      const b0 = bOff + j * ldb + p0;
      let s = 0;
      for (let p = 0; p < pl; p++) s += A[a0 + p]! * B[b0 + p]!;
      C[cOff + i * ldc + j] += s;
    }
  }
}

/** Depth of one pass in the row-update kernel. */
const KB_NN = 256;
/** Columns of B per packed panel in the row-update kernel (a multiple of 4). */
const NB_NN = 128;
/** Scratch for packed panels of B, grown on demand (kernels never re-enter). */
let packBuffer = new Float64Array(KB_NN * NB_NN);

/**
 * C[i, j] += Σ_p A[i, p] · B[p, j] for i < m, j < n, p < k ("row-update form": each row of C is a
 * combination of rows of B).
 *
 * B is packed per KB_NN x NB_NN block into 4-column strips, so the inner loop reads both operands
 * contiguously and keeps a 4 x 4 tile of C in registers. With `lower`, only tiles that touch the
 * lower triangle (j <= i, plus whole 4 x 4 diagonal tiles) are computed; C must then be square.
 */
export function gemmNN(
  m: number,
  n: number,
  k: number,
  A: Float64Array,
  aOff: number,
  lda: number,
  B: Float64Array,
  bOff: number,
  ldb: number,
  C: Float64Array,
  cOff: number,
  ldc: number,
  lower = false,
): void {
  if (packBuffer.length < KB_NN * NB_NN) packBuffer = new Float64Array(KB_NN * NB_NN);
  const P = packBuffer;
  for (let p0 = 0; p0 < k; p0 += KB_NN) {
    const pl = Math.min(k, p0 + KB_NN) - p0;
    for (let j0 = 0; j0 < n; j0 += NB_NN) {
      const nl = Math.min(NB_NN, n - j0);
      const strips = nl >> 2;
      // Pack full 4-column strips: P[(t * pl + p) * 4 + q] = B[p0 + p, j0 + 4t + q].
      for (let t = 0; t < strips; t++) {
        const base = t * pl * 4;
        for (let p = 0; p < pl; p++) {
          const src = bOff + (p0 + p) * ldb + j0 + 4 * t;
          const dst = base + p * 4;
          P[dst] = B[src]!;
          P[dst + 1] = B[src + 1]!;
          P[dst + 2] = B[src + 2]!;
          P[dst + 3] = B[src + 3]!;
        }
      }
      const jRem = j0 + strips * 4;
      const iStart = lower ? Math.max(0, j0 - (j0 & 3)) : 0;
      let i = lower ? iStart : 0;
      for (; i + 3 < m; i += 4) {
        const a0 = aOff + i * lda + p0;
        const a1 = a0 + lda;
        const a2 = a1 + lda;
        const a3 = a2 + lda;
        const tEnd = lower ? Math.min(strips, ((i + 4 - j0) >> 2)) : strips;
        for (let t = 0; t < tEnd; t++) {
          const bp = t * pl * 4;
          let s00 = 0;
          let s01 = 0;
          let s02 = 0;
          let s03 = 0;
          let s10 = 0;
          let s11 = 0;
          let s12 = 0;
          let s13 = 0;
          let s20 = 0;
          let s21 = 0;
          let s22 = 0;
          let s23 = 0;
          let s30 = 0;
          let s31 = 0;
          let s32 = 0;
          let s33 = 0;
          for (let p = 0; p < pl; p++) {
            const q = bp + p * 4;
            const y0 = P[q]!;
            const y1 = P[q + 1]!;
            const y2 = P[q + 2]!;
            const y3 = P[q + 3]!;
            let x = A[a0 + p]!;
            s00 += x * y0; s01 += x * y1; s02 += x * y2; s03 += x * y3;
            x = A[a1 + p]!;
            s10 += x * y0; s11 += x * y1; s12 += x * y2; s13 += x * y3;
            x = A[a2 + p]!;
            s20 += x * y0; s21 += x * y1; s22 += x * y2; s23 += x * y3;
            x = A[a3 + p]!;
            s30 += x * y0; s31 += x * y1; s32 += x * y2; s33 += x * y3;
          }
          let c = cOff + i * ldc + j0 + 4 * t;
          C[c] += s00; C[c + 1] += s01; C[c + 2] += s02; C[c + 3] += s03;
          c += ldc;
          C[c] += s10; C[c + 1] += s11; C[c + 2] += s12; C[c + 3] += s13;
          c += ldc;
          C[c] += s20; C[c + 1] += s21; C[c + 2] += s22; C[c + 3] += s23;
          c += ldc;
          C[c] += s30; C[c + 1] += s31; C[c + 2] += s32; C[c + 3] += s33;
        }
        // Columns past the last full strip.
        const jEnd = lower ? Math.min(j0 + nl, i + 4) : j0 + nl;
        for (let j = jRem; j < jEnd; j++) {
          let s0 = 0;
          let s1 = 0;
          let s2 = 0;
          let s3 = 0;
          for (let p = 0; p < pl; p++) {
            const y = B[bOff + (p0 + p) * ldb + j]!;
            s0 += A[a0 + p]! * y;
            s1 += A[a1 + p]! * y;
            s2 += A[a2 + p]! * y;
            s3 += A[a3 + p]! * y;
          }
          const c = cOff + i * ldc + j;
          C[c] += s0;
          C[c + ldc] += s1;
          C[c + 2 * ldc] += s2;
          C[c + 3 * ldc] += s3;
        }
      }
      // Rows past the last full strip of 4.
      for (; i < m; i++) {
        const a0 = aOff + i * lda + p0;
        const jEnd = lower ? Math.min(j0 + nl, i + 1) : j0 + nl;
        for (let j = j0; j < jEnd; j++) {
          let s = 0;
          for (let p = 0; p < pl; p++) s += A[a0 + p]! * B[bOff + (p0 + p) * ldb + j]!;
          C[cOff + i * ldc + j] += s;
        }
      }
    }
  }
}

/** Σ x[xo + i] · y[yo + i] for i < n. */
export function dot(n: number, x: Float64Array, xo: number, y: Float64Array, yo: number): number {
  let s0 = 0;
  let s1 = 0;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    s0 += x[xo + i]! * y[yo + i]!;
    s1 += x[xo + i + 1]! * y[yo + i + 1]!;
  }
  if (i < n) s0 += x[xo + i]! * y[yo + i]!;
  return s0 + s1;
}

/** y[yo + i] += a · x[xo + i] for i < n. */
export function axpy(n: number, a: number, x: Float64Array, xo: number, y: Float64Array, yo: number): void {
  for (let i = 0; i < n; i++) y[yo + i] += a * x[xo + i]!;
}
