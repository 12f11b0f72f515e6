/**
 * Noise schedules of a discrete-time diffusion process and the forward (noising) process
 * `q(x_t | x_0)`. Timesteps are integers `0 .. T-1`; timestep `t` has noise variance
 * `1 - ᾱ_t` where `ᾱ_t = Π_{s<=t} (1 - β_s)`. Values are computed in float64 on the host and
 * handed to tfjs as float32 (as the PyTorch twin does).
 */
import { ConfigError, sameShape, tf } from '@ofm/tensor';

/** `linear`: DDPM betas; `scaled-linear`: latent/stable diffusion betas; `cosine`: improved DDPM. */
export type ScheduleKind = 'linear' | 'scaled-linear' | 'cosine';

/** Options of {@link NoiseSchedule}. */
export interface ScheduleOptions {
  /** Beta schedule (default 'linear'). */
  kind?: ScheduleKind;
  /** Number of diffusion timesteps T (default 1000). */
  timesteps?: number;
  /** First beta; default 1e-4 (linear) or 0.00085 (scaled-linear). Unused by cosine. */
  betaStart?: number;
  /** Last beta; default 0.02 (linear) or 0.012 (scaled-linear). Unused by cosine. */
  betaEnd?: number;
  /** Cosine schedule offset s (default 0.008). */
  cosineOffset?: number;
  /** Cosine schedule beta cap (default 0.999). */
  maxBeta?: number;
}

/** Timesteps for a batch: one per sample, or one number for the whole batch. */
export type Timesteps = number | readonly number[] | Int32Array;

/**
 * A fixed schedule of T betas and their cumulative products ᾱ_t (float64), with the forward
 * noising {@link NoiseSchedule.qSample} and timestep validation. Holds no tensors.
 */
export class NoiseSchedule {
  readonly kind: ScheduleKind;
  /** Number of timesteps T. */
  readonly T: number;
  /** β_t, t = 0..T-1. */
  readonly betas: Float64Array;
  /** ᾱ_t = Π_{s<=t} (1 - β_s), t = 0..T-1. */
  readonly alphasCumprod: Float64Array;

  constructor(opts: ScheduleOptions = {}) {
    const kind = opts.kind ?? 'linear';
    const T = opts.timesteps ?? 1000;
    if (!Number.isInteger(T) || T < 2) throw new ConfigError(`NoiseSchedule: timesteps must be an integer >= 2 (got ${T})`);
    this.kind = kind;
    this.T = T;
    this.betas = makeBetas(kind, T, opts);
    for (let t = 0; t < T; t++) {
      const b = this.betas[t]!;
      if (!(b > 0 && b < 1)) throw new ConfigError(`NoiseSchedule(${kind}): beta[${t}] = ${b} is outside (0, 1); check betaStart/betaEnd`);
    }
    this.alphasCumprod = new Float64Array(T);
    let prod = 1;
    for (let t = 0; t < T; t++) {
      prod *= 1 - this.betas[t]!;
      this.alphasCumprod[t] = prod;
    }
  }

  /** ᾱ_t; `t = -1` is the clean image (ᾱ = 1), which DDIM's last step lands on. */
  alphaBar(t: number): number {
    if (t === -1) return 1;
    this.checkTimestep(t);
    return this.alphasCumprod[t]!;
  }

  /** Throws a clear error unless `t` is an integer in `[0, T)`. */
  checkTimestep(t: number): void {
    if (!Number.isInteger(t) || t < 0 || t >= this.T) {
      throw new Error(`timestep ${t} is outside the schedule: use integers 0..${this.T - 1}`);
    }
  }

  /**
   * Forward noising `x_t = sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) noise` for an NHWC batch, with one timestep
   * per sample (or one for all). `noise` must have the shape of `x0`.
   */
  qSample(x0: tf.Tensor4D, t: Timesteps, noise: tf.Tensor4D): tf.Tensor4D {
    if (!sameShape(x0.shape, noise.shape)) {
      throw new Error(`qSample: noise shape [${noise.shape}] differs from x0 shape [${x0.shape}]`);
    }
    const ts = this.batchTimesteps(t, x0.shape[0]);
    const a = new Float32Array(ts.length);
    const s = new Float32Array(ts.length);
    ts.forEach((ti, i) => {
      const ab = this.alphaBar(ti);
      a[i] = Math.sqrt(ab);
      s[i] = Math.sqrt(1 - ab);
    });
    return tf.tidy(() => {
      const shape = [ts.length, 1, 1, 1];
      return tf.add(tf.mul(x0, tf.tensor(a, shape)), tf.mul(noise, tf.tensor(s, shape))) as tf.Tensor4D;
    });
  }

  /** `t` expanded to one validated timestep per sample of a batch of `n`. */
  batchTimesteps(t: Timesteps, n: number): number[] {
    const ts = typeof t === 'number' ? new Array<number>(n).fill(t) : Array.from(t);
    if (ts.length !== n) throw new Error(`got ${ts.length} timesteps for a batch of ${n}`);
    for (const ti of ts) this.checkTimestep(ti);
    return ts;
  }
}

function makeBetas(kind: ScheduleKind, T: number, opts: ScheduleOptions): Float64Array {
  const betas = new Float64Array(T);
  switch (kind) {
    case 'linear': {
      const b0 = opts.betaStart ?? 1e-4;
      const b1 = opts.betaEnd ?? 0.02;
      for (let t = 0; t < T; t++) betas[t] = b0 + ((b1 - b0) * t) / (T - 1);
      return betas;
    }
    case 'scaled-linear': {
      // Linear in sqrt(beta), as latent diffusion / Stable Diffusion.
      const r0 = Math.sqrt(opts.betaStart ?? 0.00085);
      const r1 = Math.sqrt(opts.betaEnd ?? 0.012);
      for (let t = 0; t < T; t++) betas[t] = (r0 + ((r1 - r0) * t) / (T - 1)) ** 2;
      return betas;
    }
    case 'cosine': {
      // Nichol & Dhariwal (2021): ᾱ(u) ∝ cos²((u + s)/(1 + s) · π/2), u = t/T; betas capped.
      const s = opts.cosineOffset ?? 0.008;
      const maxBeta = opts.maxBeta ?? 0.999;
      const f = (u: number) => Math.cos(((u + s) / (1 + s)) * (Math.PI / 2)) ** 2;
      for (let t = 0; t < T; t++) betas[t] = Math.min(1 - f((t + 1) / T) / f(t / T), maxBeta);
      return betas;
    }
    default:
      throw new ConfigError(`unknown schedule kind '${String(kind)}': use 'linear', 'scaled-linear' or 'cosine'`);
  }
}

