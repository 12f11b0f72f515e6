/**
 * Seeded low-rank-plus-noise representation streams, for tests and benchmarks of the factorisers:
 * what a layer's inputs look like to GPM (a few dominant directions, a noise floor, a mean, and a
 * spectrum that changes with the diffusion timestep), with a known ground truth.
 */
import { type Matrix, Rng, orthonormalize } from '@ofm/tensor';

/** Options of {@link SyntheticRepresentation}. */
export interface SyntheticRepresentationOptions {
  /** Length of one representation vector. */
  dim: number;
  /** Number of signal directions (`<= dim`). */
  rank: number;
  /** Largest and smallest signal singular value per sample (geometric in between; default 1 and 0.3). */
  sigmaMax?: number;
  sigmaMin?: number;
  /** Expected fraction of the total energy that is isotropic noise (default 5e-4). */
  noiseFraction?: number;
  /** Norm of a constant mean vector added to every sample, inside the signal span (default 0). */
  mean?: number;
  /**
   * Non-stationarity over timesteps: direction j's scale is `1 + modulation·sin(2π·step/period + φ_j)`
   * (default 0: stationary).
   */
  modulation?: number;
  /** Period of the modulation in steps (default 10). */
  period?: number;
  seed?: number;
}

/**
 * Samples `x = B (w(step) ∘ σ ∘ z) + μ + ε`: B a fixed random orthonormal `dim x rank` basis,
 * z standard normal, ε isotropic noise, μ a mean in span(B).
 */
export class SyntheticRepresentation {
  readonly dim: number;
  readonly rank: number;
  readonly noiseStd: number;
  /** `dim x rank`, orthonormal columns: the ground-truth signal subspace. */
  readonly basis: Matrix;
  private readonly sigma: Float64Array;
  private readonly phase: Float64Array;
  private readonly meanVec: Float64Array;
  private readonly modulation: number;
  private readonly period: number;
  private readonly rng: Rng;

  constructor(options: SyntheticRepresentationOptions) {
    const { dim, rank } = options;
    if (!(Number.isInteger(dim) && dim > 0 && Number.isInteger(rank) && rank > 0 && rank <= dim)) {
      throw new RangeError(`SyntheticRepresentation: need integers 0 < rank <= dim, got rank ${rank}, dim ${dim}`);
    }
    const sMax = options.sigmaMax ?? 1;
    const sMin = options.sigmaMin ?? 0.3;
    const noiseFraction = options.noiseFraction ?? 5e-4;
    if (!(noiseFraction >= 0 && noiseFraction < 1)) {
      throw new RangeError(`SyntheticRepresentation: noiseFraction must be in [0, 1), got ${noiseFraction}`);
    }
    this.dim = dim;
    this.rank = rank;
    this.modulation = options.modulation ?? 0;
    this.period = options.period ?? 10;
    const seed = options.seed ?? 0;
    const setup = new Rng(seed).fork('synthetic-setup');
    this.rng = new Rng(seed).fork('synthetic-samples');
    const g = new Float64Array(dim * rank);
    for (let i = 0; i < g.length; i++) g[i] = setup.normal();
    this.basis = orthonormalize({ rows: dim, cols: rank, data: g }).Q;
    if (this.basis.cols !== rank) throw new Error('SyntheticRepresentation: random basis came out rank-deficient');
    this.sigma = new Float64Array(rank);
    this.phase = new Float64Array(rank);
    let signal = 0;
    for (let j = 0; j < rank; j++) {
      const t = rank === 1 ? 0 : j / (rank - 1);
      this.sigma[j] = sMax * (sMin / sMax) ** t;
      this.phase[j] = 2 * Math.PI * setup.uniform();
      signal += this.sigma[j]! ** 2;
    }
    // Mean along a fixed random direction of the signal span.
    this.meanVec = new Float64Array(dim);
    const meanNorm = options.mean ?? 0;
    if (meanNorm > 0) {
      const coeff = new Float64Array(rank);
      let cc = 0;
      for (let j = 0; j < rank; j++) {
        coeff[j] = setup.normal();
        cc += coeff[j]! ** 2;
      }
      const scale = meanNorm / Math.sqrt(cc);
      for (let i = 0; i < dim; i++) {
        let v = 0;
        for (let j = 0; j < rank; j++) v += this.basis.data[i * rank + j]! * coeff[j]!;
        this.meanVec[i] = v * scale;
      }
      signal += meanNorm ** 2;
    }
    this.noiseStd = Math.sqrt((noiseFraction / (1 - noiseFraction)) * (signal / dim));
  }

  /** A block of `rows` samples `[rows, dim]` (float32, like a tap) at timestep index `step`. */
  block(rows: number, step = 0): Matrix {
    const { dim, rank, rng } = this;
    const out = new Float32Array(rows * dim);
    const w = new Float64Array(rank);
    for (let j = 0; j < rank; j++) {
      w[j] = this.sigma[j]! * (1 + this.modulation * Math.sin((2 * Math.PI * step) / this.period + this.phase[j]!));
    }
    const z = new Float64Array(rank);
    const B = this.basis.data;
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < rank; j++) z[j] = w[j]! * rng.normal();
      const o = r * dim;
      for (let i = 0; i < dim; i++) {
        let v = this.meanVec[i]! + this.noiseStd * rng.normal();
        const bo = i * rank;
        for (let j = 0; j < rank; j++) v += B[bo + j]! * z[j]!;
        out[o + i] = v;
      }
    }
    return { rows, cols: dim, data: out };
  }
}
