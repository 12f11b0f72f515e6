/**
 * Exponential moving average of named parameters: `shadow ← d·shadow + (1 − d)·param` after each
 * update. Sampling with the averaged weights is usually smoother than with the raw ones.
 */
import { ConfigError, DataError, tf } from '@ofm/tensor';

/** Options of {@link Ema}. */
export interface EmaOptions {
  /** Decay d (default 0.999). */
  decay?: number;
  /**
   * Ramp the decay up as `min(d, (1 + k) / (10 + k))` after k updates, so early averages are not
   * dominated by the initial weights (default false).
   */
  warmup?: boolean;
}

const STATE_PREFIX = 'ema';

/**
 * Shadow copies (non-trainable variables) of named parameters, averaged by
 * {@link Ema.update} and swapped in by {@link Ema.withAverages} or {@link Ema.copyToParams}.
 */
export class Ema {
  readonly decay: number;
  readonly warmup: boolean;
  private readonly shadows = new Map<string, tf.Variable>();
  private readonly targets = new Map<string, tf.Variable>();
  private updates = 0;

  constructor(params: Iterable<[string, tf.Variable]>, opts: EmaOptions = {}) {
    this.decay = opts.decay ?? 0.999;
    this.warmup = opts.warmup ?? false;
    if (!(this.decay >= 0 && this.decay < 1)) throw new ConfigError(`Ema: decay must be in [0, 1) (got ${this.decay})`);
    this.track(params);
  }

  /** Start averaging more parameters (their shadow starts at the current value). */
  track(params: Iterable<[string, tf.Variable]>): void {
    for (const [name, v] of params) {
      const known = this.targets.get(name);
      if (known === v) continue;
      if (known) throw new Error(`Ema: '${name}' is already tracked for another variable`);
      this.targets.set(name, v);
      const copy = tf.clone(v);
      this.shadows.set(name, tf.variable(copy, false));
      copy.dispose();
    }
  }

  /** Names being averaged. */
  names(): string[] {
    return [...this.shadows.keys()];
  }

  /** The decay the next {@link Ema.update} uses. */
  currentDecay(): number {
    return this.warmup ? Math.min(this.decay, (1 + this.updates) / (10 + this.updates)) : this.decay;
  }

  /** Fold the current parameter values into the averages. */
  update(): void {
    const d = this.currentDecay();
    tf.tidy(() => {
      for (const [name, shadow] of this.shadows) {
        shadow.assign(tf.add(tf.mul(shadow, d), tf.mul(this.targets.get(name)!, 1 - d)));
      }
    });
    this.updates += 1;
  }

  /** Run `fn` with the averaged values in the parameters, then put the raw values back. */
  withAverages<T>(fn: () => T): T {
    const saved = new Map<string, tf.Tensor>();
    for (const [name, v] of this.targets) {
      saved.set(name, tf.clone(v));
      v.assign(this.shadows.get(name)!);
    }
    try {
      return fn();
    } finally {
      for (const [name, value] of saved) {
        this.targets.get(name)!.assign(value);
        value.dispose();
      }
    }
  }

  /** Copy the averages into the parameters for good (e.g. before exporting a model). */
  copyToParams(): void {
    for (const [name, v] of this.targets) v.assign(this.shadows.get(name)!);
  }

  /** Averages as named tensors the caller owns: `ema.<param>`, plus `ema.__updates__` (int32). */
  state(): Record<string, tf.Tensor> {
    const out: Record<string, tf.Tensor> = {};
    for (const [name, s] of this.shadows) out[`${STATE_PREFIX}.${name}`] = tf.clone(s);
    out[`${STATE_PREFIX}.__updates__`] = tf.scalar(this.updates, 'int32');
    return out;
  }

  /** Restore averages saved by {@link Ema.state}; names it has no target for are an error. */
  loadState(tensors: Readonly<Record<string, tf.Tensor>>): void {
    const prefix = `${STATE_PREFIX}.`;
    for (const [key, t] of Object.entries(tensors)) {
      if (!key.startsWith(prefix)) continue;
      if (key === `${prefix}__updates__`) {
        this.updates = t.dataSync()[0]!;
        continue;
      }
      const name = key.slice(prefix.length);
      const shadow = this.shadows.get(name);
      if (!shadow) throw new DataError(`Ema.loadState: '${name}' is not a tracked parameter`);
      if (shadow.shape.join() !== t.shape.join()) {
        throw new DataError(`Ema.loadState: '${name}' has shape [${t.shape}], the parameter [${shadow.shape}]`);
      }
      shadow.assign(t);
    }
  }

  /** Release the shadow variables and stop tracking every parameter; the parameters themselves are untouched. */
  dispose(): void {
    for (const s of this.shadows.values()) s.dispose();
    this.shadows.clear();
    this.targets.clear();
  }
}
