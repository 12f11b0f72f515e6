/**
 * DDIM sampling (Song et al. 2021) and partial-noise reconstruction, the inference path of
 * reconstruction-based anomaly detection: noise the input to a start timestep, denoise it in a
 * few DDIM steps under a condition, compare.
 *
 * Timestep rule (used when no explicit list is given): `steps` UNet calls at timesteps evenly
 * spaced on `(0, tStart]`, i.e. `τ_k = round(k · tStart / steps)` for `k = steps … 1`, the first
 * call at `tStart` itself (the level the input was noised to) and the last update landing on the
 * clean image (ᾱ = 1). For `tStart = 999, steps = 10`: 999, 899, 799, 699, 599, 500, 400, 300,
 * 200, 100. The reference code of One-for-More instead noises to 999 and calls the UNet at 901,
 * 801, …, 1 (latent diffusion's "uniform" discretisation); pass
 * `timesteps: ldmUniformTimesteps(10, 1000)` with `tStart: 999` to reproduce that exactly.
 */
import { ConfigError, Rng, type TapFn, tf } from '@ofm/tensor';
import type { NoiseSchedule } from './schedule';
import type { NoisePredictor } from './unet';

/** Options of {@link ddimLoop} and {@link sample}. */
export interface DdimOptions {
  /** 0 (default): deterministic DDIM; 1: DDPM-like ancestral noise. */
  eta?: number;
  /** Seed of the noise (start noise and, with eta > 0, the per-step noise). Default 0. */
  seed?: number;
  /** Control map passed to every UNet call. */
  control?: tf.Tensor4D;
  /** Clip the predicted clean image to [-1, 1] at every step (default false). */
  clipDenoised?: boolean;

  /**
   * Receives the input of every conv/dense layer at every step (gradient projection collects its
   * representations along the inference path this way).
   */
  tap?: TapFn;
}

/** Options of {@link reconstruct}: the DDIM options plus the noise level and the timesteps. */
export interface ReconstructOptions extends DdimOptions {
  /**
   * One seed per image: image i's noise (start noise and, with eta > 0, per-step noise) comes from
   * its own generator, so its reconstruction depends on the image and its seed alone, not on the
   * batch it is in or its place there. Without it the batch's noise comes from `seed`.
   */
  seeds?: readonly number[];
  /** Timestep the input is noised to (integer in `[0, T)`). */
  tStart: number;
  /** Number of DDIM steps (UNet calls, default 10); ignored when `timesteps` is given. */
  steps?: number;
  /** Explicit descending UNet timesteps (each `<= tStart`), overriding the rule above. */
  timesteps?: readonly number[];
}

/** The default rule: `steps` timesteps evenly spaced on `(0, tStart]`, descending, first = tStart. */
export function ddimTimesteps(tStart: number, steps: number): number[] {
  if (!Number.isInteger(steps) || steps < 1) throw new ConfigError(`DDIM: steps must be a positive integer (got ${steps})`);
  if (!Number.isInteger(tStart) || tStart < steps) {
    throw new ConfigError(`DDIM: tStart ${tStart} must be an integer >= steps (${steps}) so that the timesteps are distinct`);
  }
  const out: number[] = [];
  for (let k = steps; k >= 1; k--) out.push(Math.round((k * tStart) / steps));
  return out;
}

/**
 * Latent diffusion's "uniform" DDIM timesteps, `1, 1 + c, …, 1 + (steps − 1)c` with
 * `c = floor(T / steps)`, descending: `[901, 801, …, 1]` for 10 steps of 1000.
 */
export function ldmUniformTimesteps(steps: number, T: number): number[] {
  const c = Math.floor(T / steps);
  if (c < 1) throw new ConfigError(`ldmUniformTimesteps: ${steps} steps do not fit in ${T} timesteps`);
  return Array.from({ length: steps }, (_, i) => 1 + (steps - 1 - i) * c);
}

/**
 * Run DDIM from `xStart` (treated as a sample at timestep `timesteps[0]`) through the descending
 * `timesteps`, the last update going to the clean image. Returns a new tensor; `xStart` is kept.
 */
export function ddimLoop(
  model: NoisePredictor,
  schedule: NoiseSchedule,
  xStart: tf.Tensor4D,
  timesteps: readonly number[],
  opts: DdimOptions = {},
  rng: Rng | readonly Rng[] = new Rng(opts.seed ?? 0).fork('ddim'),
): tf.Tensor4D {
  checkDescending(schedule, timesteps);
  const eta = opts.eta ?? 0;
  if (!(eta >= 0)) throw new ConfigError(`DDIM: eta must be >= 0 (got ${eta})`);
  const n = xStart.shape[0];
  let x = xStart;
  timesteps.forEach((t, i) => {
    const next = tf.tidy(() => {
      const aT = schedule.alphaBar(t);
      const aPrev = schedule.alphaBar(i + 1 < timesteps.length ? timesteps[i + 1]! : -1);
      const eps = model.predictNoise(x, new Array<number>(n).fill(t), { control: opts.control, tap: opts.tap });
      let x0 = tf.div(tf.sub(x, tf.mul(eps, Math.sqrt(1 - aT))), Math.sqrt(aT));
      if (opts.clipDenoised) x0 = tf.clipByValue(x0, -1, 1);
      const sigma = eta * Math.sqrt(((1 - aPrev) / (1 - aT)) * (1 - aT / aPrev));
      const dirScale = Math.sqrt(Math.max(1 - aPrev - sigma * sigma, 0));
      let out = tf.add(tf.mul(x0, Math.sqrt(aPrev)), tf.mul(eps, dirScale));
      if (sigma > 0) out = tf.add(out, tf.mul(noiseLike(rng, x.shape), sigma));
      return out as tf.Tensor4D;
    });
    if (x !== xStart) x.dispose();
    x = next;
  });
  return x === xStart ? tf.clone(xStart) : x;
}

/** Gaussian noise of `shape`: from one generator for the batch, or one generator per image. */
function noiseLike(rng: Rng | readonly Rng[], shape: readonly number[]): tf.Tensor4D {
  const [n, ...rest] = shape as [number, number, number, number];
  if (!Array.isArray(rng)) return (rng as Rng).randn([n, ...rest]) as tf.Tensor4D;
  return tf.tidy(() => tf.concat((rng as readonly Rng[]).map((r) => r.randn([1, ...rest])), 0) as tf.Tensor4D);
}

/**
 * Reconstruct an NHWC batch (in [-1, 1]): noise it to `tStart` with seeded Gaussian noise (per
 * image with `seeds`), then
 * denoise with DDIM (see the module comment for the timestep rule). Returns a new tensor of the
 * input's shape; no other tensors outlive the call.
 */
export function reconstruct(
  model: NoisePredictor,
  schedule: NoiseSchedule,
  x: tf.Tensor4D,
  opts: ReconstructOptions,
): tf.Tensor4D {
  schedule.checkTimestep(opts.tStart);
  const timesteps = opts.timesteps ? [...opts.timesteps] : ddimTimesteps(opts.tStart, opts.steps ?? 10);
  if (timesteps.length === 0) throw new Error('reconstruct: timesteps is empty');
  if (timesteps[0]! > opts.tStart) {
    throw new Error(`reconstruct: the first timestep ${timesteps[0]} is above tStart ${opts.tStart}; the input would be treated as noisier than it is`);
  }
  if (opts.seeds && opts.seeds.length !== x.shape[0]) {
    throw new Error(`reconstruct: ${opts.seeds.length} seeds for a batch of ${x.shape[0]} images`);
  }
  const rng = opts.seeds ? opts.seeds.map((s) => new Rng(s)) : new Rng(opts.seed ?? 0);
  const noise = noiseLike(rng, x.shape);
  const xt = schedule.qSample(x, opts.tStart, noise);
  noise.dispose();
  try {
    return ddimLoop(model, schedule, xt, timesteps, opts, Array.isArray(rng) ? rng.map((r) => r.fork('ddim')) : (rng as Rng).fork('ddim'));
  } finally {
    xt.dispose();
  }
}

/**
 * Generate a batch of `shape` from pure noise: DDIM over `steps` timesteps evenly spaced on
 * `(0, T − 1]`.
 */
export function sample(
  model: NoisePredictor,
  schedule: NoiseSchedule,
  shape: [number, number, number, number],
  opts: DdimOptions & { steps?: number } = {},
): tf.Tensor4D {
  const rng = new Rng(opts.seed ?? 0);
  const xT = rng.randn(shape) as tf.Tensor4D;
  try {
    return ddimLoop(model, schedule, xT, ddimTimesteps(schedule.T - 1, opts.steps ?? 50), opts, rng.fork('ddim'));
  } finally {
    xT.dispose();
  }
}

function checkDescending(schedule: NoiseSchedule, timesteps: readonly number[]): void {
  timesteps.forEach((t, i) => {
    schedule.checkTimestep(t);
    if (i > 0 && t >= timesteps[i - 1]!) {
      throw new Error(`DDIM: timesteps must strictly decrease, got ${timesteps[i - 1]} then ${t}`);
    }
  });
}
