/**
 * Householder reduction of a symmetric matrix to tridiagonal form, and the back-transformation of
 * tridiagonal eigenvectors (internal).
 *
 * A = Q T Qᵀ with Q = H_0 H_1 ... H_{n-3}, H_j = I - τ_j v_j v_jᵀ, where v_j is zero in entries
 * 0..j, one in entry j+1. Eigenvectors z of T become eigenvectors Q z of A.
 */
import { gemmNN, gemmNT, mirrorLower } from './kernels';

/** The tridiagonal form and the reflectors that produced it. */
export interface Tridiagonal {
  n: number;
  /** Diagonal, length n. */
  d: Float64Array;
  /** Off-diagonal, length max(n-1, 0): e[i] couples i and i+1. */
  e: Float64Array;
  /**
   * The input buffer, now holding reflector j in row j right of the diagonal:
   * `v_j[j+1+a] = reflectors[j*n + j+1+a]` (with v_j[j+1] = 1).
   */
  reflectors: Float64Array;
  /** τ_j, length max(n-2, 0). */
  tau: Float64Array;
}

/** Columns reduced per panel before the trailing matrix is updated with one matrix product. */
const PANEL = 32;

/**
 * Reduce the symmetric n x n matrix in `a` (row-major; only the lower triangle is read) to
 * tridiagonal form, in place.
 *
 * Blocked as in LAPACK's dsytrd: within a panel of PANEL columns, each reflector's matrix-vector
 * product runs on the trailing matrix as it was at the start of the panel, corrected by the panel's
 * earlier reflectors (S_now = S - V Wᵀ - W Vᵀ); after the panel the trailing matrix receives the
 * whole rank-2·PANEL update as one matrix product. The matrix is kept in full (both triangles) so
 * the matrix-vector products are contiguous dot products.
 */
export function tridiagonalize(a: Float64Array, n: number): Tridiagonal {
  const d = new Float64Array(n);
  const e = new Float64Array(Math.max(n - 1, 0));
  const tau = new Float64Array(Math.max(n - 2, 0));
  if (n === 0) return { n, d, e, reflectors: a, tau };
  mirrorLower(n, a);
  const nb = PANEL;
  // Panel reflectors v and update vectors w as rows, in global coordinates (zero before their start).
  const vt = new Float64Array(nb * n);
  const wt = new Float64Array(nb * n);
  const v = new Float64Array(n);
  const y = new Float64Array(n);
  const t1 = new Float64Array(nb);
  const t2 = new Float64Array(nb);
  for (let j0 = 0; j0 < n - 2; j0 += nb) {
    const b = Math.min(nb, n - 2 - j0);
    vt.fill(0);
    wt.fill(0);
    for (let c = 0; c < b; c++) {
      const j = j0 + c;
      const s0 = j + 1;
      const len = n - s0;
      // Column j (rows j..n-1), brought up to date with this panel's earlier reflectors.
      for (let q = 0; q < c; q++) {
        const vq = q * n;
        const vj = vt[vq + j]!;
        const wj = wt[vq + j]!;
        for (let r = j; r < n; r++) a[r * n + j] -= vt[vq + r]! * wj + wt[vq + r]! * vj;
      }
      d[j] = a[j * n + j]!;
      for (let i = 0; i < len; i++) v[i] = a[(s0 + i) * n + j]!;
      const h = householder(v, len);
      e[j] = h.beta;
      tau[j] = h.t;
      // Keep v_j in row j right of the diagonal, which the reduction no longer reads.
      for (let i = 0; i < len; i++) a[j * n + s0 + i] = v[i]!;
      if (h.t === 0) continue;
      // y = S v on the trailing matrix as of the panel start (rows and columns s0..n-1).
      symv(a, n, s0, v, y);
      // Corrections for the panel's earlier reflectors: y -= V (Wᵀ v) + W (Vᵀ v).
      for (let q = 0; q < c; q++) {
        let sv = 0;
        let sw = 0;
        const o = q * n + s0;
        for (let i = 0; i < len; i++) {
          sv += vt[o + i]! * v[i]!;
          sw += wt[o + i]! * v[i]!;
        }
        t1[q] = sw;
        t2[q] = sv;
      }
      for (let q = 0; q < c; q++) {
        const o = q * n + s0;
        const c1 = t1[q]!;
        const c2 = t2[q]!;
        for (let i = 0; i < len; i++) y[i] -= vt[o + i]! * c1 + wt[o + i]! * c2;
      }
      // w = τ y - (τ² / 2)(yᵀ v) v
      let yv = 0;
      for (let i = 0; i < len; i++) yv += y[i]! * v[i]!;
      const k = 0.5 * h.t * h.t * yv;
      const o = c * n + s0;
      for (let i = 0; i < len; i++) {
        vt[o + i] = v[i]!;
        wt[o + i] = h.t * y[i]! - k * v[i]!;
      }
    }
    // Trailing update S -= V Wᵀ + W Vᵀ over rows and columns s..n-1, lower triangle, then mirror.
    const s = j0 + b;
    const L = n - s;
    if (L <= 0) continue;
    const left = new Float64Array(L * 2 * b);
    const right = new Float64Array(2 * b * L);
    for (let q = 0; q < b; q++) {
      for (let i = 0; i < L; i++) {
        left[i * 2 * b + q] = -vt[q * n + s + i]!;
        left[i * 2 * b + b + q] = -wt[q * n + s + i]!;
      }
      right.set(wt.subarray(q * n + s, q * n + n), q * L);
      right.set(vt.subarray(q * n + s, q * n + n), (b + q) * L);
    }
    gemmNN(L, L, 2 * b, left, 0, 2 * b, right, 0, L, a, s * n + s, n, true);
    for (let i = 0; i < L; i++) {
      const ri = (s + i) * n + s;
      for (let j = 0; j < i; j++) a[(s + j) * n + s + i] = a[ri + j]!;
    }
  }
  if (n >= 2) e[n - 2] = a[(n - 1) * n + n - 2]!;
  if (n >= 2) d[n - 2] = a[(n - 2) * n + n - 2]!;
  d[n - 1] = a[(n - 1) * n + n - 1]!;
  return { n, d, e, reflectors: a, tau };
}

/** y[i] = Σ_c a[s0 + i, s0 + c] v[c] over the trailing block from s0, four rows at a time. */
function symv(a: Float64Array, n: number, s0: number, v: Float64Array, y: Float64Array): void {
  const len = n - s0;
  let i = 0;
  for (; i + 3 < len; i += 4) {
    const r0 = (s0 + i) * n + s0;
    const r1 = r0 + n;
    const r2 = r1 + n;
    const r3 = r2 + n;
    let y0 = 0;
    let y1 = 0;
    let y2 = 0;
    let y3 = 0;
    for (let c = 0; c < len; c++) {
      const x = v[c]!;
      y0 += a[r0 + c]! * x;
      y1 += a[r1 + c]! * x;
      y2 += a[r2 + c]! * x;
      y3 += a[r3 + c]! * x;
    }
    y[i] = y0;
    y[i + 1] = y1;
    y[i + 2] = y2;
    y[i + 3] = y3;
  }
  for (; i < len; i++) {
    const r0 = (s0 + i) * n + s0;
    let acc = 0;
    for (let c = 0; c < len; c++) acc += a[r0 + c]! * v[c]!;
    y[i] = acc;
  }
}

/**
 * Householder vector for x = v[0..len-1], in place: afterwards v[0] = 1 and v holds the reflector
 * with (I - t v vᵀ) x = beta e_0. t = 0 when x is already a multiple of e_0.
 */
function householder(v: Float64Array, len: number): { beta: number; t: number } {
  const alpha = v[0]!;
  let scale = 0;
  for (let i = 1; i < len; i++) scale = Math.max(scale, Math.abs(v[i]!));
  if (scale === 0) {
    v[0] = 1;
    return { beta: alpha, t: 0 };
  }
  let ss = 0;
  for (let i = 1; i < len; i++) {
    const x = v[i]! / scale;
    ss += x * x;
  }
  const xnorm = scale * Math.sqrt(ss);
  const norm = Math.hypot(alpha, xnorm);
  const beta = alpha >= 0 ? -norm : norm;
  const t = (beta - alpha) / beta;
  const inv = 1 / (alpha - beta);
  for (let i = 1; i < len; i++) v[i] = v[i]! * inv;
  v[0] = 1;
  return { beta, t };
}

/** Reflectors per block in the back-transformation. */
const WY_BLOCK = 32;

/**
 * Turn eigenvectors of T into eigenvectors of A, in place: each of the `k` rows of `zt` (row r is
 * one eigenvector, length n) becomes Q zt[r].
 *
 * Reflectors are applied in blocks of {@link WY_BLOCK} as I - V Tᵦ Vᵀ (compact WY form), so the
 * work is two matrix products per block instead of one pass over zt per reflector.
 */
export function applyQ(tri: Tridiagonal, zt: Float64Array, k: number): void {
  const { n, reflectors: a, tau } = tri;
  const nRefl = Math.max(n - 2, 0);
  if (nRefl === 0 || k === 0) return;
  const nb = WY_BLOCK;
  const V = new Float64Array(nb * n);
  const T = new Float64Array(nb * nb);
  const W = new Float64Array(k * nb);
  const W2 = new Float64Array(k * nb);
  const tmp = new Float64Array(nb);
  // Blocks from the last reflectors to the first: Q z = H_0 (H_1 (... (H_{n-3} z))).
  const lastStart = Math.floor((nRefl - 1) / nb) * nb;
  for (let j0 = lastStart; j0 >= 0; j0 -= nb) {
    const b = Math.min(nb, nRefl - j0);
    // Reflectors j0..j0+b-1 act on entries s..n-1 with s = j0 + 1.
    const s = j0 + 1;
    const len = n - s;
    // V: b rows of length len, reflector c starting at local offset c.
    V.fill(0, 0, b * len);
    for (let c = 0; c < b; c++) {
      const j = j0 + c;
      const src = j * n + j + 1;
      const dst = c * len + c;
      const m = n - j - 1;
      for (let i = 0; i < m; i++) V[dst + i] = a[src + i]!;
    }
    // Tᵦ (upper triangular): H_{j0} ... H_{j0+b-1} = I - V Tᵦ Vᵀ.
    T.fill(0, 0, nb * nb);
    for (let c = 0; c < b; c++) {
      const tc = tau[j0 + c]!;
      T[c * nb + c] = tc;
      if (c === 0 || tc === 0) continue;
      // tmp = V[:, 0:c]ᵀ v_c
      for (let r = 0; r < c; r++) {
        let sum = 0;
        const vr = r * len;
        const vc = c * len;
        for (let i = c; i < len; i++) sum += V[vr + i]! * V[vc + i]!;
        tmp[r] = sum;
      }
      // T[0:c, c] = -τ_c T[0:c, 0:c] tmp
      for (let r = 0; r < c; r++) {
        let sum = 0;
        for (let q = r; q < c; q++) sum += T[r * nb + q]! * tmp[q]!;
        T[r * nb + c] = -tc * sum;
      }
    }
    // Rows z ← z (I - V Tᵦ Vᵀ)ᵀ = z - ((z V) Tᵦᵀ) Vᵀ, on the entries s..n-1 of each row.
    W.fill(0, 0, k * b);
    gemmNT(k, b, len, zt, s, n, V, 0, len, W, 0, b);
    W2.fill(0, 0, k * b);
    for (let r = 0; r < k; r++) {
      for (let c = 0; c < b; c++) {
        // (W Tᵦᵀ)[r, c] = Σ_q W[r, q] T[c, q], T upper: q >= c.
        let sum = 0;
        for (let q = c; q < b; q++) sum += W[r * b + q]! * T[c * nb + q]!;
        W2[r * b + c] = -sum;
      }
    }
    gemmNN(k, len, b, W2, 0, b, V, 0, len, zt, s, n);
  }
}
