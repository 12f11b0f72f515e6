/**
 * AdamW (Loshchilov & Hutter): Adam with decoupled weight decay, over named tf.Variables, with the
 * exact update of `torch.optim.AdamW`:
 *
 *     p ← p (1 − lr·λ)
 *     m ← β1 m + (1 − β1) g          v ← β2 v + (1 − β2) g²
 *     p ← p − (lr / (1 − β1^k)) · m / (sqrt(v) / sqrt(1 − β2^k) + ε)
 *
 * with `k` the number of updates that parameter has had. State is per parameter name and can be
 * saved and restored as named tensors (for checkpoints).
 */
import { ConfigError, DataError, sameShape, tf } from '@ofm/tensor';

/** Options of {@link AdamW}. */
export interface AdamWOptions {
  /** Learning rate (default 1e-4). Mutable later through {@link AdamW.lr}. */
  lr?: number;
  /** Decay rate of the first-moment average m, in [0, 1) (default 0.9). */
  beta1?: number;
  /** Decay rate of the second-moment average v, in [0, 1) (default 0.999). */
  beta2?: number;
  /** Added to the bias-corrected sqrt(v) in the denominator (default 1e-8). */
  eps?: number;
  /** Decoupled weight decay λ (default 0.01, as PyTorch). */
  weightDecay?: number;
  /** Which parameters decay (default: all, as PyTorch's default param group). */
  decays?: (name: string) => boolean;
}

interface Slot {
  m: tf.Variable;
  v: tf.Variable;
  steps: number;
}

const STATE_PREFIX = 'adamw';

/**
 * An AdamW optimiser over named variables, keeping per-parameter moments m and v as float32
 * variables of the parameter's shape; {@link AdamW.update} changes the variables in place.
 */
export class AdamW {
  /** Learning rate of the next update; may be changed between updates (e.g. by a schedule). */
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private readonly decays: (name: string) => boolean;
  private readonly slots = new Map<string, Slot>();

  constructor(opts: AdamWOptions = {}) {
    this.lr = opts.lr ?? 1e-4;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    this.decays = opts.decays ?? (() => true);
    if (!(this.lr >= 0)) throw new ConfigError(`AdamW: lr must be >= 0 (got ${this.lr})`);
    for (const [k, b] of [
      ['beta1', this.beta1],
      ['beta2', this.beta2],
    ] as const) {
      if (!(b >= 0 && b < 1)) throw new ConfigError(`AdamW: ${k} must be in [0, 1) (got ${b})`);
    }
  }

  /**
   * One update of every parameter named in `grads` (each must be in `vars`, same shape). Parameters
   * without a gradient are left alone and their state does not advance.
   */
  update(vars: ReadonlyMap<string, tf.Variable>, grads: Readonly<Record<string, tf.Tensor>>): void {
    for (const [name, g] of Object.entries(grads)) {
      const p = vars.get(name);
      if (!p) throw new Error(`AdamW: gradient for '${name}', which is not among the parameters being optimised`);
      if (!sameShape(p.shape, g.shape)) throw new Error(`AdamW: gradient of '${name}' has shape [${g.shape}], parameter [${p.shape}]`);
      const slot = this.slot(name, p);
      slot.steps += 1;
      const bc1 = 1 - this.beta1 ** slot.steps;
      const bc2 = 1 - this.beta2 ** slot.steps;
      const decay = this.decays(name) ? this.lr * this.weightDecay : 0;
      tf.tidy(() => {
        const m = tf.add(tf.mul(slot.m, this.beta1), tf.mul(g, 1 - this.beta1));
        const v = tf.add(tf.mul(slot.v, this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
        const denom = tf.add(tf.div(tf.sqrt(v), Math.sqrt(bc2)), this.eps);
        const decayed = decay > 0 ? tf.mul(p, 1 - decay) : p;
        slot.m.assign(m);
        slot.v.assign(v);
        p.assign(tf.sub(decayed, tf.mul(tf.div(m, denom), this.lr / bc1)));
      });
    }
  }

  /** Updates parameter `name` has had so far (0 if none). */
  stepsOf(name: string): number {
    return this.slots.get(name)?.steps ?? 0;
  }

  /**
   * The state as named tensors the caller owns: `adamw.m.<param>`, `adamw.v.<param>` and
   * `adamw.step.<param>` (an int32 scalar).
   */
  state(): Record<string, tf.Tensor> {
    const out: Record<string, tf.Tensor> = {};
    for (const [name, slot] of this.slots) {
      out[`${STATE_PREFIX}.m.${name}`] = tf.clone(slot.m);
      out[`${STATE_PREFIX}.v.${name}`] = tf.clone(slot.v);
      out[`${STATE_PREFIX}.step.${name}`] = tf.scalar(slot.steps, 'int32');
    }
    return out;
  }

  /**
   * Restore state saved by {@link AdamW.state} (tensors are copied; other keys are ignored, so a
   * whole checkpoint may be passed). Replaces the state of every parameter it names; with `exact`,
   * parameters it does not name lose their state too (the optimiser is then exactly as saved).
   */
  loadState(tensors: Readonly<Record<string, tf.Tensor>>, opts: { exact?: boolean } = {}): void {
    const prefix = `${STATE_PREFIX}.step.`;
    if (opts.exact) this.reset([...this.slots.keys()].filter((name) => !(`${prefix}${name}` in tensors)));
    for (const key of Object.keys(tensors)) {
      if (!key.startsWith(prefix)) continue;
      const name = key.slice(prefix.length);
      const m = tensors[`${STATE_PREFIX}.m.${name}`];
      const v = tensors[`${STATE_PREFIX}.v.${name}`];
      if (!m || !v) throw new DataError(`AdamW.loadState: '${key}' is present but its m or v tensor is missing`);
      if (!sameShape(m.shape, v.shape)) throw new DataError(`AdamW.loadState: m and v of '${name}' differ in shape`);
      this.slots.get(name)?.m.dispose();
      this.slots.get(name)?.v.dispose();
      this.slots.set(name, {
        m: stateVariable(() => tf.cast(m, 'float32')),
        v: stateVariable(() => tf.cast(v, 'float32')),
        steps: tensors[key]!.dataSync()[0]!,
      });
    }
  }

  /** Forget the state of the named parameters (or of all). */
  reset(names?: Iterable<string>): void {
    for (const name of names ?? [...this.slots.keys()]) {
      const slot = this.slots.get(name);
      if (!slot) continue;
      slot.m.dispose();
      slot.v.dispose();
      this.slots.delete(name);
    }
  }

  /** Release every parameter's moment tensors (as {@link AdamW.reset}); a later update starts from zero moments. */
  dispose(): void {
    this.reset();
  }

  private slot(name: string, p: tf.Variable): Slot {
    let slot = this.slots.get(name);
    if (slot && !sameShape(slot.m.shape, p.shape)) {
      throw new DataError(`AdamW: state of '${name}' has shape [${slot.m.shape}] but the parameter is [${p.shape}]`);
    }
    if (!slot) {
      slot = { m: stateVariable(() => tf.zerosLike(p)), v: stateVariable(() => tf.zerosLike(p)), steps: 0 };
      this.slots.set(name, slot);
    }
    return slot;
  }
}

/** A non-trainable variable holding the value `make` returns (the temporary is released). */
function stateVariable(make: () => tf.Tensor): tf.Variable {
  const value = make();
  const v = tf.variable(value, false);
  value.dispose();
  return v;
}

