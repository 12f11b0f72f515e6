/**
 * The naive variant: keep every representation vector and take one SVD at the end, as the
 * original GPM code does. Its memory grows with the number of samples (`4·dim` bytes per sample);
 * it is here as the reference that the streaming {@link IncrementalSvd} is measured against.
 */
import { type Matrix, svd } from '@ofm/tensor';
import { type BlockInput, asBlock, sumOfSquares } from './block';
import type { LowRankFactor, RepresentationFactorizer } from './factor';

/** Options of {@link StackedSvd}. */
export interface StackedSvdOptions {
  /** Length of one representation vector (the layer's input dimension). */
  dim: number;
  /**
   * Energy fraction the returned factor keeps (default 0.999, like the iSVD's truncation, so the
   * two are comparable); 1 keeps every non-zero direction up to `min(samples, dim)`.
   */
  energy?: number;
  /** Upper bound on the returned rank (default: `dim`). */
  maxRank?: number;
  /**
   * Rows to reserve up front. Without it the buffer doubles as it fills, so it may hold up to twice
   * the data; with the exact total the buffer is exactly the stacked matrix.
   */
  expectedRows?: number;
}

/**
 * Stacks all blocks (float32, rows are samples) and factors the whole matrix on request with the
 * thin SVD of @ofm/tensor.
 */
export class StackedSvd implements RepresentationFactorizer {
  readonly dim: number;
  readonly energy: number;
  readonly maxRank: number;
  private data: Float32Array;
  private rows = 0;
  private blocks = 0;
  private energySum = 0;
  private peak = 0;
  private largestBlock = 0;

  constructor(options: StackedSvdOptions) {
    const { dim } = options;
    if (!(Number.isInteger(dim) && dim > 0)) throw new RangeError(`StackedSvd: dim must be a positive integer, got ${dim}`);
    const energy = options.energy ?? 0.999;
    if (!(energy > 0 && energy <= 1)) throw new RangeError(`StackedSvd: energy must be in (0, 1], got ${energy}`);
    const maxRank = options.maxRank ?? dim;
    if (!(Number.isInteger(maxRank) && maxRank > 0)) {
      throw new RangeError(`StackedSvd: maxRank must be a positive integer, got ${maxRank}`);
    }
    const reserve = options.expectedRows ?? 0;
    if (!(Number.isInteger(reserve) && reserve >= 0)) {
      throw new RangeError(`StackedSvd: expectedRows must be a non-negative integer, got ${reserve}`);
    }
    this.dim = dim;
    this.energy = energy;
    this.maxRank = Math.min(maxRank, dim);
    this.data = new Float32Array(reserve * dim);
  }

  get blocksSeen(): number {
    return this.blocks;
  }

  /** Samples (block rows, i.e. representation vectors) pushed since construction or the last reset. */
  get samplesSeen(): number {
    return this.rows;
  }

  get totalEnergy(): number {
    return this.energySum;
  }

  get peakBytesHeld(): number {
    return this.peak;
  }

  /** The stack is the state: the same as {@link peakBytesHeld}. */
  get peakStateBytes(): number {
    return this.peak;
  }

  get largestBlockBytes(): number {
    return this.largestBlock;
  }

  /** Bytes of the stacking buffer (its capacity, which is what the process holds). */
  bytesHeld(): number {
    return this.data.byteLength;
  }

  /** Append a block `[rows, dim]` (copied, as float32). */
  push(block: BlockInput): void {
    const b = asBlock(block, this.dim, 'StackedSvd.push');
    this.blocks += 1;
    this.energySum += sumOfSquares(b.data);
    this.largestBlock = Math.max(this.largestBlock, 4 * b.rows * b.cols);
    const need = (this.rows + b.rows) * this.dim;
    if (need > this.data.length) {
      const grown = new Float32Array(Math.max(need, 2 * this.data.length));
      grown.set(this.data.subarray(0, this.rows * this.dim));
      this.data = grown;
    }
    this.data.set(b.data, this.rows * this.dim);
    this.rows += b.rows;
    this.peak = Math.max(this.peak, this.bytesHeld());
  }

  /** The stacked samples as a `samples x dim` matrix (a view of the buffer, not a copy). */
  stacked(): Matrix {
    return { rows: this.rows, cols: this.dim, data: this.data.subarray(0, this.rows * this.dim) };
  }

  /**
   * One SVD of everything pushed: the left factor of the representation matrix (`dim x samples`),
   * i.e. the right singular vectors of the stacked `samples x dim` matrix, truncated to `energy`
   * (default: this instance's) and `maxRank`.
   */
  factor(energy: number = this.energy): LowRankFactor {
    if (this.rows === 0) return { U: { rows: this.dim, cols: 0, data: new Float64Array(0) }, S: new Float64Array(0) };
    const res = svd(this.stacked(), { computeU: false, computeV: true, energy, rank: this.maxRank });
    return { U: res.V!, S: res.S };
  }

  /** Drop the stacked data. */
  reset(): void {
    this.data = new Float32Array(0);
    this.rows = 0;
    this.blocks = 0;
    this.energySum = 0;
    this.peak = 0;
    this.largestBlock = 0;
  }
}
