/**
 * What every representation factoriser in this package produces and reports, so the streaming
 * (iSVD) and the naive (stack everything) variants are interchangeable for GPM and benchmarks.
 */
import type { Matrix } from '@ofm/tensor';
import type { BlockInput } from './block';

/**
 * A truncated left factor of a representation matrix R (`dim x samples`): R Rᵀ ≈ U diag(S²) Uᵀ.
 * `U` is `dim x rank` float64 with orthonormal columns; `S` holds the singular values, descending.
 */
export interface LowRankFactor {
  U: Matrix;
  S: Float64Array;
}

/** The streaming interface shared by {@link IncrementalSvd} and {@link StackedSvd}. */
export interface RepresentationFactorizer {
  /** Length of one representation vector (the layer's input dimension). */
  readonly dim: number;
  /** Add a block `[rows, dim]` of samples (rows are samples, as layer taps deliver them). */
  push(block: BlockInput): void;
  /** The current factor (folds in anything pending first). The caller owns the returned arrays. */
  factor(): LowRankFactor;
  /** Bytes of representation state held right now (factor, buffered or stacked blocks). */
  bytesHeld(): number;
  /** The largest {@link bytesHeld} reached so far, including blocks held while being folded in. */
  readonly peakBytesHeld: number;
  /**
   * The largest state kept from one push to the next (the factor and any buffered blocks, or the
   * stack): what stays in memory for as long as a task is collected.
   */
  readonly peakStateBytes: number;
  /**
   * The largest block pushed, at float32 size (`4·rows·dim`): it is held only while it is folded
   * in or copied, so layers that are fed one after another never hold theirs at the same time.
   */
  readonly largestBlockBytes: number;
  /** Blocks and samples (rows) pushed so far. */
  readonly blocksSeen: number;
  readonly samplesSeen: number;
  /** Σ of squared entries of everything pushed: the energy ‖R‖²_F of the full matrix. */
  readonly totalEnergy: number;
}

/** The first `k` columns of a row-major matrix, as a new float64 matrix. */
export function leadingColumns(a: Matrix, k: number): Matrix {
  if (k === a.cols) return { rows: a.rows, cols: k, data: Float64Array.from(a.data) };
  const out = new Float64Array(a.rows * k);
  for (let i = 0; i < a.rows; i++) {
    const src = i * a.cols;
    for (let j = 0; j < k; j++) out[i * k + j] = a.data[src + j]!;
  }
  return { rows: a.rows, cols: k, data: out };
}
