/**
 * Iterative (streaming) SVD with bounded memory.
 *
 * A layer's representation matrix R (`dim x samples`, one column per tapped input vector) grows
 * with batches x diffusion timesteps and does not fit in memory. GPM only needs its dominant left
 * singular subspace, and that is preserved by compressing as we go: keep `U_r Σ_r`, and every `k`
 * blocks re-factor `[U_r Σ_r | new columns]` and truncate it, discarding at most a fraction
 * `1 - energy` of the new columns' energy (and respecting an optional rank cap). Because `[U_r Σ_r | B] [U_r Σ_r | B]ᵀ = U_r Σ_r² U_rᵀ + B Bᵀ`, the re-factored matrix has
 * the same left factor as the full stacked matrix with the discarded tails removed, so the kept
 * span tracks the full SVD's (the "transitive property" the One-for-More paper relies on).
 *
 * Memory between calls: the factor (`8·dim·(rank + 1)` bytes, float64) plus, when `k > 1`, a
 * float32 buffer for the pending `k` blocks. So the state is bounded by the rank cap and `k`
 * blocks, however many blocks are streamed ({@link IncrementalSvd.memoryBound}). Each update
 * also allocates a transient workspace of `O((rank + k·rows)·(dim + rank + k·rows))` floats.
 */
import {
  type Matrix,
  energyRank,
  matrixMultiply,
  orthonormalize,
  svd,
  matrixTranspose,
} from '@ofm/tensor';
import { type BlockInput, asBlock, sumOfSquares } from './block';
import { type LowRankFactor, type RepresentationFactorizer, leadingColumns } from './factor';

/**
 * How an update re-factors `M = [U Σ | Bᵀ]` (`dim x (r + m)`):
 * - `'gram'`: thin SVD of M by the @ofm/tensor `svd`, which eigendecomposes the Gram matrix of M's
 *   short side — the `(r+m)²` side matrix when the layer is wide, the `dim²` covariance
 *   `UΣ²Uᵀ + BᵀB` when it is narrow — and re-orthonormalises the long-side vectors. The default:
 *   the fastest in the benchmark.
 * - `'qr'`: Brand's update. Project the block on U (twice), orthonormalise the residual (`Q`), SVD
 *   the small core `[[Σ, UᵀBᵀ], [0, QᵀRes]]` and rotate `[U Q]`. The core is smaller than M's Gram
 *   only when the block is mostly inside span(U); with the Gram-based core SVD its accuracy is the
 *   same as 'gram', and its extra passes over the block make it 1.5-2x slower in the benchmark.
 *   Kept as the textbook formulation to compare against.
 */
export type IsvdMethod = 'gram' | 'qr';

/** Options of {@link IncrementalSvd}. */
export interface IncrementalSvdOptions {
  /** Length of one representation vector: the layer's input dimension (`kh·kw·in` for a conv). */
  dim: number;
  /**
   * Energy kept at every truncation (default 0.999, the reference code's value): an update
   * discards at most `(1 - energy)` of the energy of the block(s) it folds in, so the factor always
   * holds at least `energy` of all the energy streamed, unless `maxRank` forces more out.
   */
  energy?: number;
  /** Upper bound on the rank kept (default: `dim`). Bounds the memory of the factor. */
  maxRank?: number;
  /**
   * Re-factor every `k` blocks (default 1). With `k > 1` the pending blocks are buffered (float32),
   * so memory is bounded by the rank cap plus `k` blocks, and there are k times fewer updates.
   */
  blocksPerUpdate?: number;
  /** Update algorithm (default 'gram'); see {@link IsvdMethod}. */
  method?: IsvdMethod;
}

/** Inputs of {@link IncrementalSvd.memoryBound}. */
export interface IsvdMemoryBoundInput {
  dim: number;
  /** The rank cap (or the largest rank the data can reach). */
  maxRank: number;
  /** Rows of the largest block pushed. */
  blockRows: number;
  /** `blocksPerUpdate` (default 1). */
  blocksPerUpdate?: number;
}

/** The memory bound of an {@link IncrementalSvd}, in bytes. */
export interface IsvdMemoryBound {
  /** The factor at the rank cap: `U` (`dim x maxRank`) and `Σ`, float64. */
  factorBytes: number;
  /** The blocks held during an update: the k pending float32 blocks (or the one block being folded). */
  blockBytes: number;
  /** `factorBytes + blockBytes`. */
  totalBytes: number;
}

/** Relative size below which a residual row is rounding noise rather than a new direction. */
const RESIDUAL_TOLERANCE = 1e-10;

/**
 * Singular values below this fraction of the largest are numerical zeros: the Gram-based SVD
 * resolves σ only down to about 1e-7·σ₁ (its error on σ² is of order eps·σ₁²).
 */
const NUMERICAL_ZERO = 1e-7;

/**
 * A streaming truncated SVD of a representation matrix fed in blocks of samples.
 *
 * ```ts
 * const isvd = new IncrementalSvd({ dim: 576, energy: 0.999, maxRank: 256 });
 * for (const block of blocks) isvd.push(block); // [rows, 576], rows are samples
 * const { U, S } = isvd.factor();               // U: 576 x rank, orthonormal columns
 * const basis = isvd.basis(0.97);               // the leading columns holding 97% of the energy
 * ```
 */
export class IncrementalSvd implements RepresentationFactorizer {
  readonly dim: number;
  readonly energy: number;
  readonly maxRank: number;
  readonly blocksPerUpdate: number;
  readonly method: IsvdMethod;

  /** `dim x rank` row-major, orthonormal columns. */
  private u: Float64Array = new Float64Array(0);
  /** Singular values, descending. */
  private s: Float64Array = new Float64Array(0);
  /** Pending blocks (k > 1 only), rows appended; its capacity counts as held memory. */
  private pending: Float32Array = new Float32Array(0);
  private pendingRows = 0;
  private pendingBlocks = 0;
  private blocks = 0;
  private samples = 0;
  private energySum = 0;
  private updateCount = 0;
  private peak = 0;
  private statePeak = 0;
  private largestBlock = 0;

  constructor(options: IncrementalSvdOptions) {
    const { dim } = options;
    if (!(Number.isInteger(dim) && dim > 0)) {
      throw new RangeError(`IncrementalSvd: dim must be a positive integer, got ${dim}`);
    }
    const energy = options.energy ?? 0.999;
    if (!(energy > 0 && energy <= 1)) {
      throw new RangeError(`IncrementalSvd: energy must be in (0, 1], got ${energy}`);
    }
    const maxRank = options.maxRank ?? dim;
    if (!(Number.isInteger(maxRank) && maxRank > 0)) {
      throw new RangeError(`IncrementalSvd: maxRank must be a positive integer, got ${maxRank}`);
    }
    const k = options.blocksPerUpdate ?? 1;
    if (!(Number.isInteger(k) && k >= 1)) {
      throw new RangeError(`IncrementalSvd: blocksPerUpdate must be an integer >= 1, got ${k}`);
    }
    const method = options.method ?? 'gram';
    if (method !== 'gram' && method !== 'qr') {
      throw new RangeError(`IncrementalSvd: method must be 'gram' or 'qr', got '${String(method)}'`);
    }
    this.dim = dim;
    this.energy = energy;
    this.maxRank = Math.min(maxRank, dim);
    this.blocksPerUpdate = k;
    this.method = method;
  }

  /**
   * The bound on {@link bytesHeld} (and {@link peakBytesHeld}) for blocks of at most `blockRows`
   * rows: the factor at the rank cap plus k float32 blocks (k = 1: the one block being folded,
   * counted at 4 bytes per entry like a tap's float32 data). Independent of the number of blocks.
   */
  static memoryBound(input: IsvdMemoryBoundInput): IsvdMemoryBound {
    const rank = Math.min(input.maxRank, input.dim);
    const k = input.blocksPerUpdate ?? 1;
    const factorBytes = 8 * rank * (input.dim + 1);
    const blockBytes = 4 * k * input.blockRows * input.dim;
    return { factorBytes, blockBytes, totalBytes: factorBytes + blockBytes };
  }

  /** Current rank of the factor (pending blocks not yet folded in). */
  get rank(): number {
    return this.s.length;
  }

  get blocksSeen(): number {
    return this.blocks;
  }

  /** Samples (block rows, i.e. representation vectors) pushed since construction or the last reset. */
  get samplesSeen(): number {
    return this.samples;
  }

  /** How many re-factorisations have run. */
  get updates(): number {
    return this.updateCount;
  }

  /** Blocks buffered and not yet folded in (always < blocksPerUpdate between calls). */
  get pendingBlockCount(): number {
    return this.pendingBlocks;
  }

  get totalEnergy(): number {
    return this.energySum;
  }

  /** Σσ² of the factor: the part of {@link totalEnergy} the truncations kept. */
  get retainedEnergy(): number {
    return sumOfSquares(this.s);
  }

  get peakBytesHeld(): number {
    return this.peak;
  }

  get peakStateBytes(): number {
    return this.statePeak;
  }

  get largestBlockBytes(): number {
    return this.largestBlock;
  }

  /** Bytes held now: the float64 factor and the pending-block buffer. */
  bytesHeld(): number {
    return this.u.byteLength + this.s.byteLength + this.pending.byteLength;
  }

  /**
   * Add a block of samples `[rows, dim]` (a tap matrix as it comes: rows are samples, i.e. columns
   * of the representation matrix). With `blocksPerUpdate = 1` it is folded in at once and not
   * kept; otherwise it is copied into the pending buffer.
   */
  push(block: BlockInput): void {
    const b = asBlock(block, this.dim, 'IncrementalSvd.push');
    this.blocks += 1;
    this.samples += b.rows;
    this.energySum += sumOfSquares(b.data);
    if (b.rows === 0) return;
    const blockBytes = 4 * b.rows * b.cols;
    if (blockBytes > this.largestBlock) this.largestBlock = blockBytes;
    if (this.blocksPerUpdate === 1) {
      // The caller's block is held while it is folded in: count it at float32 size, as a tap's is.
      this.notePeak(this.bytesHeld() + blockBytes);
      this.fold(b);
      this.notePeak(this.bytesHeld());
      return;
    }
    this.appendPending(b);
    this.pendingBlocks += 1;
    this.notePeak(this.bytesHeld());
    if (this.pendingBlocks >= this.blocksPerUpdate) this.flush();
  }

  /** Fold any pending blocks in now (a no-op when none are pending). */
  flush(): void {
    if (this.pendingRows > 0) {
      this.fold({ rows: this.pendingRows, cols: this.dim, data: this.pending.subarray(0, this.pendingRows * this.dim) });
    }
    this.pendingRows = 0;
    this.pendingBlocks = 0;
    this.notePeak(this.bytesHeld());
  }

  /** Singular values of the factor, descending (a copy; flushes pending blocks first). */
  singularValues(): Float64Array {
    this.flush();
    return this.s.slice();
  }

  /** The whole factor (copies; flushes pending blocks first). */
  factor(): LowRankFactor {
    this.flush();
    return { U: { rows: this.dim, cols: this.rank, data: this.u.slice() }, S: this.s.slice() };
  }

  /** How many leading directions hold `threshold` of the factor's energy. */
  rankFor(threshold: number = this.energy): number {
    this.flush();
    return energyRank(this.s, threshold);
  }

  /**
   * An orthonormal basis (`dim x k`) of the leading directions holding `threshold` of the factor's
   * energy (default: the truncation energy, i.e. the whole factor).
   */
  basis(threshold: number = this.energy): Matrix {
    const k = this.rankFor(threshold);
    return leadingColumns({ rows: this.dim, cols: this.rank, data: this.u }, k);
  }

  /** Forget everything (the options stay). */
  reset(): void {
    this.u = new Float64Array(0);
    this.s = new Float64Array(0);
    this.pending = new Float32Array(0);
    this.pendingRows = 0;
    this.pendingBlocks = 0;
    this.blocks = 0;
    this.samples = 0;
    this.energySum = 0;
    this.updateCount = 0;
    this.peak = 0;
    this.statePeak = 0;
    this.largestBlock = 0;
  }

  /** Record `bytes` held now; the state alone (without a block being folded) is `bytesHeld()`. */
  private notePeak(bytes: number): void {
    if (bytes > this.peak) this.peak = bytes;
    const state = this.bytesHeld();
    if (state > this.statePeak) this.statePeak = state;
  }

  private appendPending(b: Matrix): void {
    const need = (this.pendingRows + b.rows) * this.dim;
    if (need > this.pending.length) {
      // First use: room for k blocks of this size; grows only if later blocks are larger.
      const rows = Math.max(this.pendingRows + b.rows, this.blocksPerUpdate * b.rows);
      const grown = new Float32Array(rows * this.dim);
      grown.set(this.pending.subarray(0, this.pendingRows * this.dim));
      this.pending = grown;
    }
    this.pending.set(b.data, this.pendingRows * this.dim);
    this.pendingRows += b.rows;
  }

  /** Re-factor `[U Σ | Bᵀ]` and truncate. A block of zeros changes nothing and is skipped. */
  private fold(b: Matrix): void {
    if (sumOfSquares(b.data) === 0) return;
    const next = this.method === 'qr' ? this.foldQr(b) : this.foldGram(b);
    // Directions below the SVD's resolution are numerical zeros, not data: never keep them.
    const S = next.S;
    let k = S.length;
    while (k > 0 && S[k - 1]! <= NUMERICAL_ZERO * S[0]!) k -= 1;
    this.u = (k === S.length ? next.U : leadingColumns(next.U, k)).data as Float64Array;
    this.s = S.slice(0, k);
    this.updateCount += 1;
  }

  /**
   * SVD options that truncate `[U Σ | Bᵀ]` so that at most `(1 - energy)·‖B‖²` is discarded: the
   * fewest leading directions whose energy reaches `‖M‖² - (1 - energy)‖B‖²`, capped at maxRank.
   *
   * Measuring the budget against the incoming block, not against the whole factor, matters: a
   * budget of `(1 - energy)·‖M‖²` grows with everything streamed so far, and a direction that
   * appears (or was missed) late — one block's worth of energy at a time — would be cut at every
   * update and never enter the factor. With the block's budget every direction that carries more
   * than `1 - energy` of a block survives and accumulates.
   */
  private truncation(blockEnergy: number): { energy: number; rank: number } {
    const total = this.retainedEnergy + blockEnergy;
    const keep = total > 0 ? Math.min(1, Math.max(0, 1 - ((1 - this.energy) * blockEnergy) / total)) : 1;
    return { energy: keep, rank: this.maxRank };
  }

  /** Thin SVD of M = [U Σ | Bᵀ] through the Gram matrix of its short side. */
  private foldGram(b: Matrix): LowRankFactor {
    const d = this.dim;
    const r = this.rank;
    const m = b.rows;
    const w = r + m;
    const M = new Float64Array(d * w);
    const { u, s } = this;
    for (let i = 0; i < d; i++) {
      const row = i * w;
      const urow = i * r;
      for (let j = 0; j < r; j++) M[row + j] = u[urow + j]! * s[j]!;
    }
    // Columns r.. are the block's rows.
    const bd = b.data;
    for (let j = 0; j < m; j++) {
      const src = j * d;
      for (let i = 0; i < d; i++) M[i * w + r + j] = bd[src + i]!;
    }
    const res = svd({ rows: d, cols: w, data: M }, this.truncation(sumOfSquares(bd)));
    return { U: res.U!, S: res.S };
  }

  /** Brand's update: residual QR and an SVD of the small core matrix. */
  private foldQr(b: Matrix): LowRankFactor {
    const d = this.dim;
    const r = this.rank;
    const m = b.rows;
    const U: Matrix = { rows: d, cols: r, data: this.u };
    // Residual rows Rt = B - (B U) Uᵀ, projected twice ("twice is enough"); P = (B U)ᵀ = Uᵀ Bᵀ.
    const rt = Float64Array.from(b.data);
    const bu = new Float64Array(m * r);
    if (r > 0) {
      for (let pass = 0; pass < 2; pass++) {
        const c = matrixMultiply({ rows: m, cols: d, data: rt }, U);
        const back = matrixMultiply(c, U, { transposeB: true });
        for (let i = 0; i < rt.length; i++) rt[i] -= back.data[i]!;
        for (let i = 0; i < bu.length; i++) bu[i] += c.data[i]!;
      }
    }
    // A residual at rounding level of its sample carries no direction: drop it before the QR.
    const bd = b.data;
    for (let j = 0; j < m; j++) {
      let rr = 0;
      let bb = 0;
      for (let i = j * d; i < (j + 1) * d; i++) {
        rr += rt[i]! * rt[i]!;
        bb += bd[i]! * bd[i]!;
      }
      if (rr <= RESIDUAL_TOLERANCE * RESIDUAL_TOLERANCE * bb) rt.fill(0, j * d, (j + 1) * d);
    }
    const residual: Matrix = { rows: m, cols: d, data: rt };
    const { Q } = orthonormalize(matrixTranspose(residual), { tolerance: RESIDUAL_TOLERANCE }); // d x q
    const q = Q.cols;
    const rq = matrixMultiply(Q, residual, { transposeA: true, transposeB: true }); // q x m
    // Core K = [[Σ, P], [0, Rq]], (r + q) x (r + m).
    const kr = r + q;
    const kc = r + m;
    const K = new Float64Array(kr * kc);
    for (let i = 0; i < r; i++) {
      K[i * kc + i] = this.s[i]!;
      for (let j = 0; j < m; j++) K[i * kc + r + j] = bu[j * r + i]!;
    }
    for (let a = 0; a < q; a++) {
      for (let j = 0; j < m; j++) K[(r + a) * kc + r + j] = rq.data[a * m + j]!;
    }
    const core = svd({ rows: kr, cols: kc, data: K }, this.truncation(sumOfSquares(bd)));
    const uk = core.U!;
    const k = uk.cols;
    // U' = [U Q] Uk = U Uk[0:r] + Q Uk[r:].
    const next = matrixMultiply(Q, { rows: q, cols: k, data: uk.data.subarray(r * k) });
    if (r > 0) {
      const head = matrixMultiply(U, { rows: r, cols: k, data: uk.data.subarray(0, r * k) });
      for (let i = 0; i < next.data.length; i++) next.data[i] += head.data[i]!;
    }
    return { U: next, S: core.S };
  }
}

