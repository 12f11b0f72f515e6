/**
 * The DDPM training step: epsilon-prediction MSE at uniformly sampled timesteps, optimised with
 * AdamW, with the hook points continual learning needs.
 *
 * One {@link DiffusionTrainer.step}:
 *   1. draw `t ~ U{0..T-1}` and `ε ~ N(0, I)` per sample (seeded per step, so runs resume exactly);
 *   2. inside one gradient tape: the control map (a tensor, or a function evaluated in the tape so
 *      a condition network trains through it), the UNet's prediction, `mean((ε̂ − ε)²)`, plus an
 *      optional extra loss term computed by the caller;
 *   3. `transformGradients` (e.g. gradient projection), then global-norm clipping;
 *   4. the AdamW update;
 *   5. `transformUpdate` on the actual weight change `after − before` (projecting the update
 *      itself keeps it exactly orthogonal where Adam's per-coordinate scaling would not);
 *   6. the EMA update.
 *
 * A step is all or nothing: a non-finite loss or gradient stops it before the update, and an
 * update that leaves a non-finite weight is rolled back (weights and optimiser state, at no copy
 * cost: tfjs clones share data). Either way {@link NonFiniteError} says which step, the loss and
 * the first parameter at fault, and the trainer stands exactly where it stood before the step.
 */
import { ConfigError, DataError, NumericError, type ParamStore, type Reads, Rng, readAsync, readSync, tf } from '@ofm/tensor';
import { AdamW, type AdamWOptions } from './adamw';
import { Ema, type EmaOptions } from './ema';
import type { NoiseSchedule, Timesteps } from './schedule';
import type { UNet } from './unet';

/** Parameters from some store that train together with the UNet (e.g. the AMN's). */
export interface ParamSource {
  store: ParamStore;
  /** Names to train (default: every parameter of the store at the time the trainer is built). */
  names?: readonly string[];
}

/**
 * The noised batch of one step — or of one slice of it when the trainer splits batches
 * (`microBatch`): then `start`/`end` say which samples of the caller's batch these are, so that
 * the caller can slice its own per-sample tensors (e.g. corrupted images for the condition).
 */
export interface NoisingContext {
  /** The clean batch (or slice), NHWC in [-1, 1]. */
  x0: tf.Tensor4D;
  /** `x0` noised to `t`. */
  xt: tf.Tensor4D;
  /** One timestep per sample. */
  t: number[];
  noise: tf.Tensor4D;
  /** First sample of the caller's batch in this slice (0 without splitting). */
  start: number;
  /** One past the last sample of the slice (the batch size without splitting). */
  end: number;
}

/** What an extra loss term sees: the noised batch, the control used and the UNet's prediction. */
export interface StepContext extends NoisingContext {
  control?: tf.Tensor4D;
  predictedNoise: tf.Tensor4D;
}

/** Per-step information given to hooks. */
export interface HookInfo {
  /** Index of the step being taken (0-based). */
  step: number;
}

/**
 * Transforms gradients by parameter name before clipping and the update. Return a record of
 * replacements (names it omits keep their gradient) or `undefined` (or nothing) to keep them all. The trainer
 * disposes both the originals and the replacements.
 */
export type GradientHook = (grads: Readonly<Record<string, tf.Tensor>>, info: HookInfo) => Record<string, tf.Tensor> | undefined;

/**
 * Transforms the weight change `after − before` the optimiser just made, by parameter name. Return
 * replacements (the parameter becomes `before + replacement`) or `undefined`. The trainer disposes the
 * deltas and the replacements.
 */
export type UpdateHook = (deltas: Readonly<Record<string, tf.Tensor>>, info: HookInfo) => Record<string, tf.Tensor> | undefined;

/** Options of {@link DiffusionTrainer}. */
export interface DiffusionTrainerOptions {
  /** The noise-prediction UNet to train (its parameters are created if missing). */
  unet: UNet;
  /** Noise schedule the timesteps are drawn from and the batch is noised with. */
  schedule: NoiseSchedule;
  /** UNet parameters to train (default: all of them, i.e. the first-task group). */
  trainable?: readonly string[];
  /** Further parameters optimised together with the UNet. Names must not clash across stores. */
  extra?: readonly ParamSource[];
  /** AdamW settings (defaults: those of {@link AdamWOptions}). */
  optimizer?: AdamWOptions;
  /** Keep an exponential moving average of the trained parameters. */
  ema?: EmaOptions;
  /** Clip the global gradient norm to this value (after `transformGradients`). */
  clipGradNorm?: number;
  /** Gradient hook run before clipping (e.g. gradient projection); see {@link GradientHook}. */
  transformGradients?: GradientHook;
  /** Hook on the weight change after each AdamW update; see {@link UpdateHook}. */
  transformUpdate?: UpdateHook;
  /** Seed of the timesteps and noise (default 0). */
  seed?: number;
  /**
   * Largest number of samples in one forward/backward pass (default: the whole batch). A batch is
   * split into slices of at most this size whose gradients are summed, weighted by size: the same
   * step as the whole batch (up to float rounding) with a fraction of the activation memory. Use
   * it when a batch does not fit (wasm has a 4 GiB heap).
   */
  microBatch?: number;
}

/** Options of {@link DiffusionTrainer.step} and {@link DiffusionTrainer.computeGradients}. */
export interface StepOptions {
  /**
   * Control map for the UNet: a tensor, or a function evaluated inside the gradient tape (so the
   * parameters it uses receive gradients from the diffusion loss).
   */
  control?: tf.Tensor4D | ((ctx: NoisingContext) => tf.Tensor4D);
  /**
   * Another loss term, evaluated inside the same tape and added to the diffusion loss. With
   * `microBatch` it is evaluated per slice and the slices are averaged by size, so make it a mean
   * over the slice's samples.
   */
  extraLoss?: (ctx: StepContext) => tf.Scalar;
  /** Fixed timesteps instead of sampled ones (tests, analysis). */
  t?: Timesteps;
  /** Fixed noise instead of sampled noise (not disposed by the trainer). */
  noise?: tf.Tensor4D;
}

/** Wall-clock time of the phases of one {@link DiffusionTrainer.step}, in milliseconds. */
export interface StepTimings {
  /** Forward and backward pass, loss read-back included. */
  gradientsMs: number;
  /** `transformGradients` and clipping. */
  gradientHookMs: number;
  /** AdamW, `transformUpdate` and EMA. */
  updateMs: number;
  /** The whole step. */
  totalMs: number;
}

/** What one {@link DiffusionTrainer.step} did: its index, losses (batch means), gradient norm and timings. */
export interface StepResult {
  /** The step's index (0-based). */
  step: number;
  /** Total loss: diffusion loss plus the extra term. */
  loss: number;
  /** The epsilon-prediction MSE. */
  diffusionLoss: number;
  /** The `extraLoss` term, when {@link StepOptions.extraLoss} was given. */
  extraLoss?: number;
  /** Global gradient norm after `transformGradients`, before clipping. */
  gradNorm: number;
  timings: StepTimings;
}

/** What {@link NonFiniteError} reports about a refused step. */
export interface NonFiniteFault {
  /** Index of the step (0-based); the trainer's step count did not advance. */
  step: number;
  /** Where the non-finite value appeared: the loss, a gradient, or a weight after the update. */
  kind: 'loss' | 'gradient' | 'update';
  /** The step's loss (NaN or ±Infinity when kind is 'loss'). */
  loss: number;
  /**
   * The first parameter, in training order (input side first), whose gradient ('loss',
   * 'gradient') or new value ('update') is not finite; null when none is.
   */
  layer: string | null;
}

/** A training step refused for a NaN or infinite value; nothing was changed. A {@link NumericError} with code `'non-finite'`. */
export class NonFiniteError extends NumericError {
  override readonly name = 'NonFiniteError';
  constructor(
    readonly fault: NonFiniteFault,
    lr: number,
  ) {
    const at = fault.layer ? `; first non-finite ${fault.kind === 'update' ? 'weight' : 'gradient'}: ${fault.layer}` : '';
    const what =
      fault.kind === 'loss'
        ? `loss is ${fault.loss}`
        : fault.kind === 'gradient'
          ? `a gradient is not finite (loss ${fault.loss})`
          : `the update made a weight non-finite and was rolled back (loss ${fault.loss})`;
    super(
      `DiffusionTrainer: ${what} at step ${fault.step}; the update was skipped. Lower the learning rate (now ${lr}) or set clipGradNorm${at}`,
      { code: 'non-finite' },
    );
  }
}

/**
 * What {@link DiffusionTrainer.computeGradients} returns: the batch's losses (with `microBatch`,
 * the size-weighted means over slices) and the summed gradients.
 */
export interface Gradients {
  /** Total loss: diffusion loss plus the extra term. */
  loss: number;
  /** The epsilon-prediction MSE. */
  diffusionLoss: number;
  /** The `extraLoss` term, when one was given. */
  extraLoss?: number;
  /** Gradients by parameter name (only parameters the loss depends on). The caller owns them. */
  grads: Record<string, tf.Tensor>;
}

/**
 * Trains a UNet (and any extra parameters) with the DDPM epsilon-prediction loss: owns the AdamW
 * optimiser, the optional EMA and the step counter that seeds each step's timesteps and noise.
 */
export class DiffusionTrainer {
  readonly unet: UNet;
  readonly schedule: NoiseSchedule;
  readonly optimizer: AdamW;
  readonly ema?: Ema;
  readonly clipGradNorm?: number;
  transformGradients?: GradientHook;
  transformUpdate?: UpdateHook;
  readonly seed: number;
  readonly microBatch?: number;
  private vars = new Map<string, tf.Variable>();
  private steps = 0;

  constructor(opts: DiffusionTrainerOptions) {
    this.unet = opts.unet;
    this.schedule = opts.schedule;
    this.optimizer = new AdamW(opts.optimizer);
    this.clipGradNorm = opts.clipGradNorm;
    if (this.clipGradNorm !== undefined && !(this.clipGradNorm > 0)) {
      throw new ConfigError(`DiffusionTrainer: clipGradNorm must be > 0 (got ${this.clipGradNorm})`);
    }
    this.transformGradients = opts.transformGradients;
    this.transformUpdate = opts.transformUpdate;
    this.seed = opts.seed ?? 0;
    this.microBatch = opts.microBatch;
    if (this.microBatch !== undefined && !(Number.isInteger(this.microBatch) && this.microBatch >= 1)) {
      throw new ConfigError(`DiffusionTrainer: microBatch must be a positive integer (got ${this.microBatch})`);
    }
    this.unet.init(); // creates any parameter not yet created (the control branch, say); cheap
    this.setTrainable(opts.trainable ?? this.unet.paramNames(), opts.extra ?? []);
    if (opts.ema) this.ema = new Ema(this.vars, opts.ema);
  }

  /** Steps taken so far. */
  get stepCount(): number {
    return this.steps;
  }

  /** Names of the parameters being optimised. */
  trainableNames(): string[] {
    return [...this.vars.keys()];
  }

  /**
   * Change what trains (e.g. the later-task group after the first task). Optimiser state of
   * parameters that keep training is kept; new parameters start fresh (and join the EMA).
   */
  setTrainable(unetNames: readonly string[], extra: readonly ParamSource[] = []): void {
    const vars = new Map<string, tf.Variable>();
    const add = (store: ParamStore, name: string, origin: string) => {
      const v = store.get(name);
      const known = vars.get(name);
      if (known && known !== v) {
        throw new Error(`DiffusionTrainer: parameter name '${name}' (${origin}) is used by two stores; give one model another prefix`);
      }
      vars.set(name, v);
    };
    for (const name of unetNames) add(this.unet.params, name, 'UNet');
    extra.forEach((src, i) => {
      for (const name of src.names ?? src.store.names()) add(src.store, name, `extra source ${i}`);
    });
    if (vars.size === 0) throw new Error('DiffusionTrainer: nothing to train (empty trainable list)');
    this.vars = vars;
    this.ema?.track(vars);
  }

  /**
   * Loss and gradients of one batch (no update). `batch` is NHWC in [-1, 1]; timesteps and noise
   * are drawn from the stream of step `stepCount` unless given.
   */
  computeGradients(batch: tf.Tensor4D, opts: StepOptions = {}): Gradients {
    return readSync(this.gradientsReads(batch, opts));
  }

  /** {@link DiffusionTrainer.computeGradients} reading the losses asynchronously (every backend, WebGPU in Node.js too). */
  computeGradientsAsync(batch: tf.Tensor4D, opts: StepOptions = {}): Promise<Gradients> {
    return readAsync(this.gradientsReads(batch, opts));
  }

  private *gradientsReads(batch: tf.Tensor4D, opts: StepOptions): Reads<Gradients> {
    const n = batch.shape[0];
    const rng = new Rng(this.seed).fork(`step ${this.steps}`);
    const t = opts.t !== undefined ? this.schedule.batchTimesteps(opts.t, n) : Array.from({ length: n }, () => rng.int(this.schedule.T));
    if (opts.noise && opts.noise.shape.join() !== batch.shape.join()) {
      throw new Error(`DiffusionTrainer: noise shape [${opts.noise.shape}] differs from the batch's [${batch.shape}]`);
    }
    if (opts.control instanceof tf.Tensor && opts.control.shape[0] !== n) {
      throw new Error(`DiffusionTrainer: the control map has ${opts.control.shape[0]} samples for a batch of ${n}`);
    }
    const noise = opts.noise ?? (rng.randn(batch.shape) as tf.Tensor4D);
    const size = Math.min(this.microBatch ?? n, n);
    const total: Gradients = { loss: 0, diffusionLoss: 0, grads: {} };
    try {
      for (let start = 0; start < n; start += size) {
        const end = Math.min(start + size, n);
        const part = yield* this.chunkGradients(batch, noise, t, start, end, opts);
        const w = (end - start) / n;
        total.loss += w * part.loss;
        total.diffusionLoss += w * part.diffusionLoss;
        if (part.extraLoss !== undefined) total.extraLoss = (total.extraLoss ?? 0) + w * part.extraLoss;
        for (const [name, g] of Object.entries(part.grads)) {
          const acc = total.grads[name];
          total.grads[name] = acc ? tf.add(acc, g) : g;
          if (acc) {
            acc.dispose();
            g.dispose();
          }
        }
      }
      return total;
    } catch (e) {
      disposeAll(total.grads);
      throw e;
    } finally {
      if (!opts.noise) noise.dispose();
    }
  }

  /**
   * Loss and gradients of samples `[start, end)`, each loss term scaled by the slice's share of the
   * batch so that summing the slices' gradients gives the whole batch's.
   */
  private *chunkGradients(
    batch: tf.Tensor4D,
    noise: tf.Tensor4D,
    t: number[],
    start: number,
    end: number,
    opts: StepOptions,
  ): Reads<Gradients> {
    const n = batch.shape[0];
    const whole = start === 0 && end === n;
    const slice = (x: tf.Tensor4D) => (whole ? x : (tf.slice(x, start, end - start) as tf.Tensor4D));
    const x0 = slice(batch);
    const eps = slice(noise);
    const ts = t.slice(start, end);
    const fixedControl = opts.control instanceof tf.Tensor ? slice(opts.control) : undefined;
    const xt = this.schedule.qSample(x0, ts, eps);
    const weight = (end - start) / n;
    const names = [...this.vars.keys()];
    const varList = names.map((name) => this.vars.get(name)!);
    const nameOf = new Map(varList.map((v, i) => [v.name, names[i]!]));
    let diffusionLoss: tf.Scalar | undefined;
    let extraLoss: tf.Scalar | undefined;
    try {
      const { value, grads } = tf.variableGrads(() => {
        const base: NoisingContext = { x0, xt, t: ts, noise: eps, start, end };
        const control = typeof opts.control === 'function' ? opts.control(base) : fixedControl;
        const predicted = this.unet.forward(xt, ts, { control });
        const mse = tf.mean(tf.squaredDifference(predicted, eps)) as tf.Scalar;
        diffusionLoss = tf.keep(mse);
        let loss = mse;
        if (opts.extraLoss) {
          const extra = opts.extraLoss({ ...base, control, predictedNoise: predicted });
          if (extra.rank !== 0) throw new Error(`DiffusionTrainer: extraLoss must return a scalar, got shape [${extra.shape}]`);
          extraLoss = tf.keep(extra);
          loss = tf.add(mse, extra);
        }
        return (weight === 1 ? loss : tf.mul(loss, weight)) as tf.Scalar;
      }, varList);
      const out: Record<string, tf.Tensor> = {};
      for (const [varName, g] of Object.entries(grads)) out[nameOf.get(varName)!] = g;
      const diffusion = (yield diffusionLoss!)[0]!;
      const extra = extraLoss ? (yield extraLoss)[0] : undefined;
      value.dispose();
      return { loss: diffusion + (extra ?? 0), diffusionLoss: diffusion, extraLoss: extra, grads: out };
    } finally {
      diffusionLoss?.dispose();
      extraLoss?.dispose();
      for (const x of [x0, eps, fixedControl]) if (x && x !== batch && x !== noise && x !== opts.control) x.dispose();
      xt.dispose();
    }
  }

  /**
   * One training step on `batch` (NHWC in [-1, 1]). On a non-finite loss, gradient or updated
   * weight it throws {@link NonFiniteError} and leaves weights, optimiser state and step count as
   * they were.
   */
  step(batch: tf.Tensor4D, opts: StepOptions = {}): StepResult {
    return readSync(this.stepReads(batch, opts));
  }

  /**
   * {@link DiffusionTrainer.step} reading losses and norms asynchronously: the same numbers, and the
   * only way to train on the WebGPU backend in Node.js (it cannot read synchronously).
   */
  stepAsync(batch: tf.Tensor4D, opts: StepOptions = {}): Promise<StepResult> {
    return readAsync(this.stepReads(batch, opts));
  }

  private *stepReads(batch: tf.Tensor4D, opts: StepOptions): Reads<StepResult> {
    const start = performance.now();
    const step = this.steps;
    const info: HookInfo = { step };
    const { loss, diffusionLoss, extraLoss, grads } = yield* this.gradientsReads(batch, opts);
    const afterGradients = performance.now();
    let gradNorm = Number.NaN;
    try {
      if (!Number.isFinite(loss)) throw this.nonFinite({ step, kind: 'loss', loss, layer: yield* firstNonFiniteReads(grads) });
      if (this.transformGradients) this.replace(grads, this.transformGradients(grads, info), 'transformGradients');
      gradNorm = yield* globalNormReads(Object.values(grads));
      // A finite norm means finite gradients (an overflowing sum of squares counts as a fault too).
      if (!Number.isFinite(gradNorm)) throw this.nonFinite({ step, kind: 'gradient', loss, layer: yield* firstNonFiniteReads(grads) });
      if (this.clipGradNorm !== undefined && gradNorm > this.clipGradNorm) {
        const scale = this.clipGradNorm / (gradNorm + 1e-6);
        for (const [name, g] of Object.entries(grads)) {
          grads[name] = tf.mul(g, scale);
          g.dispose();
        }
      }
    } catch (e) {
      disposeAll(grads);
      throw e;
    }
    const afterHooks = performance.now();
    const updated = Object.keys(grads);
    const undo = this.savePoint(updated);
    try {
      this.applyUpdate(grads, info);
      const bad = yield* firstNonFiniteReads(Object.fromEntries(updated.map((name) => [name, this.vars.get(name)!])));
      if (bad !== null) throw this.nonFinite({ step, kind: 'update', loss, layer: bad });
    } catch (e) {
      undo.restore();
      throw e;
    } finally {
      undo.dispose();
    }
    if (this.ema) this.ema.update();
    this.steps += 1;
    const end = performance.now();
    return {
      step,
      loss,
      diffusionLoss,
      extraLoss,
      gradNorm,
      timings: {
        gradientsMs: afterGradients - start,
        gradientHookMs: afterHooks - afterGradients,
        updateMs: end - afterHooks,
        totalMs: end - start,
      },
    };
  }

  /**
   * Optimiser and EMA state as named tensors the caller owns (`adamw.*`, `ema.*`, and
   * `trainer.step`), for checkpoints.
   */
  state(): Record<string, tf.Tensor> {
    return {
      ...this.optimizer.state(),
      ...(this.ema ? this.ema.state() : {}),
      'trainer.step': tf.scalar(this.steps, 'int32'),
    };
  }

  /** Restore a {@link DiffusionTrainer.state} (the parameters themselves are restored elsewhere). */
  loadState(tensors: Readonly<Record<string, tf.Tensor>>): void {
    const step = tensors['trainer.step'];
    if (!step) throw new DataError("DiffusionTrainer.loadState: no 'trainer.step' tensor; is this a trainer state?");
    this.optimizer.loadState(tensors);
    this.ema?.loadState(tensors);
    this.steps = step.dataSync()[0]!;
  }

  /** Release optimiser and EMA state (not the parameters). */
  dispose(): void {
    this.optimizer.dispose();
    this.ema?.dispose();
  }

  private applyUpdate(grads: Record<string, tf.Tensor>, info: HookInfo): void {
    const before: Record<string, tf.Tensor> = {};
    try {
      if (this.transformUpdate) for (const name of Object.keys(grads)) before[name] = tf.clone(this.vars.get(name)!);
      this.optimizer.update(this.vars, grads);
    } finally {
      disposeAll(grads);
    }
    if (!this.transformUpdate) return;
    const deltas: Record<string, tf.Tensor> = {};
    try {
      for (const [name, b] of Object.entries(before)) deltas[name] = tf.sub(this.vars.get(name)!, b);
      const replaced = this.transformUpdate(deltas, info);
      if (!replaced) return;
      for (const [name, delta] of Object.entries(replaced)) {
        const b = before[name];
        if (!b) throw new Error(`transformUpdate returned '${name}', which was not updated this step`);
        checkShape('transformUpdate', name, delta, b);
        tf.tidy(() => this.vars.get(name)!.assign(tf.add(b, delta)));
      }
      for (const [name, delta] of Object.entries(replaced)) if (delta !== deltas[name]) delta.dispose();
    } finally {
      disposeAll(deltas);
      disposeAll(before);
    }
  }

  private nonFinite(fault: NonFiniteFault): NonFiniteError {
    return new NonFiniteError(fault, this.optimizer.lr);
  }

  /**
   * The values of parameters `names` and the whole optimiser state now, to put back if an update
   * fails. Clones share data with what they clone, so this costs no copy.
   */
  private savePoint(names: readonly string[]): { restore(): void; dispose(): void } {
    const weights = Object.fromEntries(names.map((name) => [name, tf.clone(this.vars.get(name)!)]));
    const optimizer = this.optimizer.state();
    return {
      restore: () => {
        for (const [name, w] of Object.entries(weights)) this.vars.get(name)!.assign(w);
        this.optimizer.loadState(optimizer, { exact: true });
      },
      dispose: () => {
        disposeAll(weights);
        disposeAll(optimizer);
      },
    };
  }

  /** Swap hook results into `grads`, disposing what they replace. */
  private replace(grads: Record<string, tf.Tensor>, replaced: Record<string, tf.Tensor> | undefined, hook: string): void {
    if (!replaced) return;
    for (const [name, g] of Object.entries(replaced)) {
      const old = grads[name];
      if (!old) throw new Error(`${hook} returned '${name}', which has no gradient this step`);
      checkShape(hook, name, g, old);
      if (g !== old) old.dispose();
      grads[name] = g;
    }
  }
}

function checkShape(hook: string, name: string, got: tf.Tensor, want: tf.Tensor): void {
  if (got.shape.join() !== want.shape.join()) {
    throw new Error(`${hook} returned shape [${got.shape}] for '${name}', expected [${want.shape}]`);
  }
}

/**
 * The first name in `tensors` (in order) whose tensor holds a NaN or ±Infinity or whose sum of
 * squares overflows, or null; one read-back for all of them.
 */
export function firstNonFinite(tensors: Readonly<Record<string, tf.Tensor>>): string | null {
  return readSync(firstNonFiniteReads(tensors));
}

function* firstNonFiniteReads(tensors: Readonly<Record<string, tf.Tensor>>): Reads<string | null> {
  const names = Object.keys(tensors);
  if (names.length === 0) return null;
  const stacked = tf.tidy(() => tf.stack(names.map((n) => tf.sum(tf.square(tensors[n]!)))));
  let sums: ArrayLike<number>;
  try {
    sums = yield stacked;
  } finally {
    stacked.dispose();
  }
  const i = Array.prototype.findIndex.call(sums, (v: number) => !Number.isFinite(v));
  return i < 0 ? null : names[i]!;
}

/** sqrt(Σ‖g‖²) over all tensors, as a number. */
export function globalNorm(tensors: readonly tf.Tensor[]): number {
  return readSync(globalNormReads(tensors));
}

function* globalNormReads(tensors: readonly tf.Tensor[]): Reads<number> {
  if (tensors.length === 0) return 0;
  const norm = tf.tidy(() => {
    // addN over at most 7 inputs at a time, carrying the total (the same order of additions as one
    // addN): WebGPU binds the inputs and the output as storage buffers, at most 8 per shader by default.
    const squares = tensors.map((g) => tf.sum(tf.square(g)));
    let total = squares[0]!;
    for (let i = 1; i < squares.length; i += 6) total = tf.addN([total, ...squares.slice(i, i + 6)]);
    return tf.sqrt(total);
  });
  try {
    return (yield norm)[0]!;
  } finally {
    norm.dispose();
  }
}

function disposeAll(record: Record<string, tf.Tensor>): void {
  for (const t of Object.values(record)) if (!t.isDisposed) t.dispose();
}
