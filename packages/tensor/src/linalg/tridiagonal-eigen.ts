/**
 * Eigenvalues and eigenvectors of a symmetric tridiagonal matrix by divide and conquer (Cuppen's
 * method with the Gu-Eisenstat eigenvector construction), with implicit QL on small blocks
 * (internal).
 *
 * Eigenvectors are kept as rows ("row r is the eigenvector of value r"), so every update is a
 * combination of contiguous rows.
 */
import { NumericError } from '@ofm/errors';
import { gemmNN } from './kernels';

const EPS = 2.220446049250313e-16;
/** Blocks of at most this size are solved directly by implicit QL. */
const LEAF = 32;

/** Eigen-decomposition of a symmetric tridiagonal matrix. */
export interface TridiagonalEigen {
  /** All n eigenvalues, ascending. */
  values: Float64Array;
  /**
   * Eigenvectors as rows (`keep x n`, row-major) of the `keep` largest eigenvalues, in ascending
   * order: row r belongs to `values[n - keep + r]`.
   */
  vectors: Float64Array;
  keep: number;
}

/**
 * How many eigenvectors to form, for the largest eigenvalues: a count, or a function that picks the
 * count from all eigenvalues (ascending) once they are known and before any vector is formed.
 */
export type KeepSpec = number | ((ascending: Float64Array) => number);

function resolveKeep(keep: KeepSpec, values: Float64Array): number {
  const k = typeof keep === 'number' ? keep : keep(values);
  return Math.max(0, Math.min(values.length, Math.floor(k)));
}

/**
 * Solve T = Z Λ Zᵀ for the symmetric tridiagonal T with diagonal d (length n) and off-diagonal e
 * (length n-1). Only the eigenvectors of the largest eigenvalues that `keep` asks for are formed
 * (default: all).
 */
export function tridiagonalEigen(d: Float64Array, e: Float64Array, keep: KeepSpec = d.length): TridiagonalEigen {
  const n = d.length;
  if (e.length < n - 1) throw new RangeError(`tridiagonalEigen: off-diagonal has ${e.length} entries, needs ${n - 1}`);
  let scale = 0;
  for (let i = 0; i < n; i++) scale = Math.max(scale, Math.abs(d[i]!));
  for (let i = 0; i < n - 1; i++) scale = Math.max(scale, Math.abs(e[i]!));
  if (n === 0 || scale === 0 || !Number.isFinite(scale)) {
    if (!Number.isFinite(scale)) throw new RangeError('tridiagonalEigen: matrix has non-finite entries');
    keep = resolveKeep(keep, new Float64Array(n));
    const vectors = new Float64Array(keep * n);
    for (let r = 0; r < keep; r++) vectors[r * n + (n - keep + r)] = 1;
    return { values: new Float64Array(n), vectors, keep };
  }
  // Work on T / scale, so that tolerances are relative to a matrix of norm about 1.
  const ds = new Float64Array(n);
  const es = new Float64Array(Math.max(n - 1, 0));
  for (let i = 0; i < n; i++) ds[i] = d[i]! / scale;
  for (let i = 0; i < n - 1; i++) es[i] = e[i]! / scale;
  // The chooser sees the eigenvalues of T, not of T / scale.
  const spec: KeepSpec =
    typeof keep === 'number' ? keep : (asc) => keep(asc.map((v) => v * scale));
  const out = divideAndConquer(ds, es, spec);
  for (let i = 0; i < n; i++) out.values[i] = out.values[i]! * scale;
  return out;
}

function divideAndConquer(d: Float64Array, e: Float64Array, keep: KeepSpec): TridiagonalEigen {
  const n = d.length;
  if (n <= LEAF) return qlLeaf(d, e, keep);
  const m = n >> 1;
  const beta = e[m - 1]!;
  const rho = Math.abs(beta);
  const sgn = beta < 0 ? -1 : 1;
  // T = diag(T1, T2) + rho v vᵀ with v = e_{m-1} + sgn e_m.
  const d1 = d.slice(0, m);
  const d2 = d.slice(m);
  d1[m - 1] -= rho;
  d2[0] -= rho;
  const top = divideAndConquer(d1, e.slice(0, m - 1), m);
  const bottom = divideAndConquer(d2, e.slice(m), n - m);
  return merge(top, bottom, m, n, rho, sgn, keep);
}

/**
 * Combine the eigen-decompositions of the two halves: the eigenproblem of D + ρ z zᵀ, with
 * deflation of negligible z entries and of nearly equal d entries.
 */
function merge(
  top: TridiagonalEigen,
  bottom: TridiagonalEigen,
  m: number,
  n: number,
  rhoIn: number,
  sgn: number,
  keepSpec: KeepSpec,
): TridiagonalEigen {
  const n2 = n - m;
  // Q̂ as rows of length n: top eigenvectors in columns 0..m-1, bottom ones in m..n-1.
  const qhat = new Float64Array(n * n);
  const support = new Int32Array(2 * n);
  const lam = new Float64Array(n);
  const z = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    qhat.set(top.vectors.subarray(i * m, (i + 1) * m), i * n);
    support[2 * i] = 0;
    support[2 * i + 1] = m;
    lam[i] = top.values[i]!;
    z[i] = top.vectors[i * m + m - 1]!;
  }
  for (let i = 0; i < n2; i++) {
    const r = m + i;
    qhat.set(bottom.vectors.subarray(i * n2, (i + 1) * n2), r * n + m);
    support[2 * r] = m;
    support[2 * r + 1] = n;
    lam[r] = bottom.values[i]!;
    z[r] = sgn * bottom.vectors[i * n2]!;
  }
  // Normalise z (its norm is √2 up to rounding) and fold the norm into rho.
  let zz = 0;
  for (let i = 0; i < n; i++) zz += z[i]! * z[i]!;
  const zn = Math.sqrt(zz);
  for (let i = 0; i < n; i++) z[i] = z[i]! / zn;
  const rho = rhoIn * zz;

  // Visit the entries in ascending order of d (merge of two sorted lists).
  const order = new Int32Array(n);
  {
    let a = 0;
    let b = m;
    for (let k = 0; k < n; k++) {
      if (b >= n || (a < m && lam[a]! <= lam[b]!)) order[k] = a++;
      else order[k] = b++;
    }
  }
  let dmax = 0;
  let zmax = 0;
  for (let i = 0; i < n; i++) {
    dmax = Math.max(dmax, Math.abs(lam[i]!));
    zmax = Math.max(zmax, Math.abs(z[i]!));
  }
  const tol = 8 * EPS * Math.max(dmax, rho);

  // Deflation: entries whose z is negligible keep (d_i, q_i) as an eigenpair; of two nearly equal
  // d entries, a rotation moves all of z onto one of them and the other deflates.
  const ndRow: number[] = [];
  const ndD: number[] = [];
  const ndZ: number[] = [];
  const dfRow: number[] = [];
  const dfVal: number[] = [];
  if (rho * zmax <= tol) {
    for (let k = 0; k < n; k++) {
      dfRow.push(order[k]!);
      dfVal.push(lam[order[k]!]!);
    }
  } else {
    let prev = -1;
    for (let k = 0; k < n; k++) {
      const j = order[k]!;
      if (rho * Math.abs(z[j]!) <= tol) {
        dfRow.push(j);
        dfVal.push(lam[j]!);
        continue;
      }
      if (prev < 0) {
        prev = j;
        continue;
      }
      const zp = z[prev]!;
      const zj = z[j]!;
      const t = Math.hypot(zp, zj);
      const c = zj / t;
      const s = zp / t;
      const gap = lam[j]! - lam[prev]!;
      if (Math.abs(gap * c * s) <= tol) {
        rotateRows(qhat, support, n, prev, j, c, s);
        const lp = lam[prev]!;
        const lj = lam[j]!;
        dfRow.push(prev);
        dfVal.push(c * c * lp + s * s * lj);
        lam[j] = s * s * lp + c * c * lj;
        z[j] = t;
        z[prev] = 0;
      } else {
        ndRow.push(prev);
        ndD.push(lam[prev]!);
        ndZ.push(z[prev]!);
      }
      prev = j;
    }
    if (prev >= 0) {
      ndRow.push(prev);
      ndD.push(lam[prev]!);
      ndZ.push(z[prev]!);
    }
  }

  // The non-deflated part: roots of the secular equation and their eigenvectors.
  const K = ndRow.length;
  const dl = Float64Array.from(ndD);
  const zk = Float64Array.from(ndZ);
  const roots = new Float64Array(K);
  const u = new Float64Array(K * K);
  if (K > 0) rankOneEigen(dl, zk, rho, roots, u);

  // All eigenvalues, ascending, tagged by where their vectors come from.
  const total = K + dfRow.length;
  const values = new Float64Array(total);
  const src = new Int32Array(total); // >= 0: non-deflated index; < 0: -(deflated index) - 1
  {
    const idx = Array.from({ length: total }, (_, i) => i);
    const val = (i: number) => (i < K ? roots[i]! : dfVal[i - K]!);
    idx.sort((p, q) => val(p) - val(q));
    for (let r = 0; r < total; r++) {
      const i = idx[r]!;
      values[r] = val(i);
      src[r] = i < K ? i : -(i - K) - 1;
    }
  }

  // Eigenvectors of the `keep` largest: deflated ones are rows of Q̂; the others are Q̂ u.
  const keep = resolveKeep(keepSpec, values);
  const vectors = new Float64Array(keep * n);
  const first = n - keep;
  const wanted: number[] = [];
  const wantedAt: number[] = [];
  for (let r = first; r < n; r++) {
    const s = src[r]!;
    if (s < 0) {
      vectors.set(qhat.subarray(dfRow[-s - 1]! * n, (dfRow[-s - 1]! + 1) * n), (r - first) * n);
    } else {
      wanted.push(s);
      wantedAt.push(r - first);
    }
  }
  if (wanted.length > 0) {
    // Gather the rows of Q̂ that the non-deflated vectors combine, grouped by support: top half
    // only, both halves (rotated by deflation), bottom half only. Each half of the result is then
    // one product over a contiguous range of those rows.
    const groups: number[][] = [[], [], []];
    for (let i = 0; i < K; i++) {
      const row = ndRow[i]!;
      const lo = support[2 * row]!;
      const hi = support[2 * row + 1]!;
      groups[hi <= m ? 0 : lo >= m ? 2 : 1]!.push(i);
    }
    const perm = [...groups[0]!, ...groups[1]!, ...groups[2]!];
    const nTop = groups[0]!.length;
    const nFull = groups[1]!.length;
    const gathered = new Float64Array(K * n);
    for (let g = 0; g < K; g++) {
      const row = ndRow[perm[g]!]!;
      gathered.set(qhat.subarray(row * n, (row + 1) * n), g * n);
    }
    const w = wanted.length;
    const coeff = new Float64Array(w * K);
    for (let r = 0; r < w; r++) {
      const uo = wanted[r]! * K;
      for (let g = 0; g < K; g++) coeff[r * K + g] = u[uo + perm[g]!]!;
    }
    const prod = new Float64Array(w * n);
    gemmNN(w, m, nTop + nFull, coeff, 0, K, gathered, 0, n, prod, 0, n);
    gemmNN(w, n - m, K - nTop, coeff, nTop, K, gathered, nTop * n + m, n, prod, m, n);
    for (let r = 0; r < w; r++) vectors.set(prod.subarray(r * n, (r + 1) * n), wantedAt[r]! * n);
  }
  return { values, vectors, keep };
}

/** Rows p and q of the n-column matrix become c·p - s·q and s·p + c·q. */
function rotateRows(
  rows: Float64Array,
  support: Int32Array,
  n: number,
  p: number,
  q: number,
  c: number,
  s: number,
): void {
  const lo = Math.min(support[2 * p]!, support[2 * q]!);
  const hi = Math.max(support[2 * p + 1]!, support[2 * q + 1]!);
  const po = p * n;
  const qo = q * n;
  for (let k = lo; k < hi; k++) {
    const x = rows[po + k]!;
    const y = rows[qo + k]!;
    rows[po + k] = c * x - s * y;
    rows[qo + k] = s * x + c * y;
  }
  support[2 * p] = support[2 * q] = lo;
  support[2 * p + 1] = support[2 * q + 1] = hi;
}

/**
 * Eigen-decomposition of diag(dl) + ρ z zᵀ with dl strictly increasing, z of unit norm without zero
 * entries and ρ > 0. Writes the K eigenvalues (ascending) to `roots` and the unit eigenvectors as
 * rows of `u` (K x K).
 *
 * The eigenvectors use z recomputed from the computed roots (Löwner's formula, after Gu and
 * Eisenstat), which makes them numerically orthogonal even when roots are close to the poles.
 */
function rankOneEigen(dl: Float64Array, z: Float64Array, rho: number, roots: Float64Array, u: Float64Array): void {
  const K = dl.length;
  // Row j of u first holds δ_i = dl_i - λ_j, computed without cancellation.
  for (let j = 0; j < K; j++) roots[j] = secularRoot(j, dl, z, rho, u, j * K);
  // Löwner: -ρ ẑ_i² = δ_i(λ_i) ∏_{j≠i} δ_i(λ_j) / (dl_i - dl_j).
  const zhat = new Float64Array(K);
  for (let i = 0; i < K; i++) {
    let w = u[i * K + i]!;
    for (let j = 0; j < K; j++) {
      if (j !== i) w *= u[j * K + i]! / (dl[i]! - dl[j]!);
    }
    const mag = Math.sqrt(Math.max(0, -w / rho));
    zhat[i] = z[i]! >= 0 ? mag : -mag;
  }
  // Eigenvector j: ẑ_i / δ_i(λ_j), normalised.
  for (let j = 0; j < K; j++) {
    const o = j * K;
    let ss = 0;
    for (let i = 0; i < K; i++) {
      const v = zhat[i]! / u[o + i]!;
      u[o + i] = v;
      ss += v * v;
    }
    const inv = 1 / Math.sqrt(ss);
    for (let i = 0; i < K; i++) u[o + i] = u[o + i]! * inv;
  }
}

/**
 * The j-th root (ascending) of the secular equation f(λ) = 1 + ρ Σ z_i² / (dl_i - λ) = 0, which lies
 * in (dl_j, dl_{j+1}), or in (dl_{K-1}, dl_{K-1} + ρ) for the last. Writes δ_i = dl_i - λ to
 * `delta[off + i]`.
 *
 * λ is kept as (nearest pole) + τ so that the differences δ_i are accurate. Each step fits
 * f ≈ c + s/(dl_j - λ) + S/(dl_{j+1} - λ) to the value and the two partial derivatives of f (poles
 * at and below j, and above j) and moves to the root of that model; a bisection step replaces any
 * step that leaves the bracket.
 */
function secularRoot(j: number, dl: Float64Array, z: Float64Array, rho: number, delta: Float64Array, off: number): number {
  const K = dl.length;
  const last = j === K - 1;
  let org: number;
  let lo: number;
  let hi: number;
  if (!last) {
    const gap = dl[j + 1]! - dl[j]!;
    const mid = 0.5 * gap;
    let f = 1;
    for (let i = 0; i < K; i++) f += (rho * z[i]! * z[i]!) / (dl[i]! - dl[j]! - mid);
    if (f >= 0) {
      org = j;
      lo = 0;
      hi = mid;
    } else {
      org = j + 1;
      lo = dl[j]! - dl[j + 1]! + mid;
      hi = 0;
    }
  } else {
    org = j;
    lo = 0;
    let zz = 0;
    for (let i = 0; i < K; i++) zz += z[i]! * z[i]!;
    hi = rho * zz * (1 + 8 * EPS) + Number.MIN_VALUE;
  }
  const dorg = dl[org]!;
  for (let i = 0; i < K; i++) delta[off + i] = dl[i]! - dorg;
  let tau = 0.5 * (lo + hi);
  for (let iter = 0; iter < 200; iter++) {
    let psi = 0;
    let dpsi = 0;
    let phi = 0;
    let dphi = 0;
    for (let i = 0; i <= j; i++) {
      const del = delta[off + i]! - tau;
      const t = (rho * z[i]! * z[i]!) / del;
      psi += t;
      dpsi += t / del;
    }
    for (let i = j + 1; i < K; i++) {
      const del = delta[off + i]! - tau;
      const t = (rho * z[i]! * z[i]!) / del;
      phi += t;
      dphi += t / del;
    }
    const f = 1 + psi + phi;
    if (f === 0) break;
    if (f < 0) lo = tau;
    else hi = tau;
    if (Math.abs(f) <= EPS * (8 * (phi - psi) + 8)) break;
    // Step to the root of the two-pole model, in terms of η (new τ = τ + η).
    const a = delta[off + j]! - tau;
    let eta: number;
    if (last) {
      const c = f - a * dpsi;
      eta = c > 0 ? a + (a * a * dpsi) / c : Number.NaN;
    } else {
      const b = delta[off + j + 1]! - tau;
      const s = a * a * dpsi;
      const S = b * b * dphi;
      const c = f - a * dpsi - b * dphi;
      eta = modelRoot(a, b, c, s, S);
    }
    let next = tau + eta;
    if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);
    const done = Math.abs(next - tau) <= 2 * EPS * Math.max(Math.abs(tau), Math.abs(next)) || hi - lo <= 2 * EPS * Math.max(Math.abs(lo), Math.abs(hi));
    tau = next;
    if (done) break;
  }
  for (let i = 0; i < K; i++) delta[off + i] = delta[off + i]! - tau;
  return dorg + tau;
}

/** The root in (a, b) of c + s/(a - η) + S/(b - η) = 0 (s, S > 0, a < 0 < b), or NaN. */
function modelRoot(a: number, b: number, c: number, s: number, S: number): number {
  // c (a - η)(b - η) + s (b - η) + S (a - η) = 0  ⇔  c η² + B η + C = 0
  const B = -(c * (a + b) + s + S);
  const C = c * a * b + s * b + S * a;
  const inside = (x: number) => x > a && x < b;
  if (c === 0) {
    const r = -C / B;
    return inside(r) ? r : Number.NaN;
  }
  const disc = Math.max(0, B * B - 4 * c * C);
  const q = -0.5 * (B + (B >= 0 ? 1 : -1) * Math.sqrt(disc));
  const r1 = q / c;
  const r2 = q !== 0 ? C / q : Number.NaN;
  if (inside(r1)) return r1;
  if (inside(r2)) return r2;
  return Number.NaN;
}

/**
 * Implicit QL with Wilkinson shifts for a small tridiagonal matrix, accumulating the rotations into
 * eigenvector rows. Returns eigenvalues ascending and the vectors of the `keep` largest.
 */
function qlLeaf(dIn: Float64Array, eIn: Float64Array, keepSpec: KeepSpec): TridiagonalEigen {
  const n = dIn.length;
  const d = dIn.slice();
  const e = new Float64Array(n);
  e.set(eIn.subarray(0, n - 1));
  const zt = new Float64Array(n * n);
  for (let i = 0; i < n; i++) zt[i * n + i] = 1;
  for (let l = 0; l < n; l++) {
    let iter = 0;
    for (;;) {
      let m = l;
      for (; m < n - 1; m++) {
        const dd = Math.abs(d[m]!) + Math.abs(d[m + 1]!);
        if (Math.abs(e[m]!) <= EPS * dd) break;
      }
      if (m === l) break;
      if (++iter > 100) throw new NumericError('tridiagonalEigen: QL iteration did not converge');
      let g = (d[l + 1]! - d[l]!) / (2 * e[l]!);
      let r = Math.hypot(g, 1);
      g = d[m]! - d[l]! + e[l]! / (g + (g >= 0 ? r : -r));
      let s = 1;
      let c = 1;
      let p = 0;
      let i = m - 1;
      let underflow = false;
      for (; i >= l; i--) {
        const f = s * e[i]!;
        const b = c * e[i]!;
        r = Math.hypot(f, g);
        e[i + 1] = r;
        if (r === 0) {
          d[i + 1] = d[i + 1]! - p;
          e[m] = 0;
          underflow = true;
          break;
        }
        s = f / r;
        c = g / r;
        g = d[i + 1]! - p;
        r = (d[i]! - g) * s + 2 * c * b;
        p = s * r;
        d[i + 1] = g + p;
        g = c * r - b;
        // Rotate eigenvector rows i and i+1.
        const oi = i * n;
        const oj = oi + n;
        for (let k = 0; k < n; k++) {
          const x = zt[oj + k]!;
          const y = zt[oi + k]!;
          zt[oj + k] = s * y + c * x;
          zt[oi + k] = c * y - s * x;
        }
      }
      if (underflow) continue;
      d[l] = d[l]! - p;
      e[l] = g;
      e[m] = 0;
    }
  }
  const idx = Array.from({ length: n }, (_, i) => i).sort((a, b) => d[a]! - d[b]!);
  const values = new Float64Array(n);
  for (let r = 0; r < n; r++) values[r] = d[idx[r]!]!;
  const keep = resolveKeep(keepSpec, values);
  const vectors = new Float64Array(keep * n);
  for (let r = 0; r < keep; r++) {
    const from = idx[n - keep + r]!;
    vectors.set(zt.subarray(from * n, (from + 1) * n), r * n);
  }
  return { values, vectors, keep };
}
