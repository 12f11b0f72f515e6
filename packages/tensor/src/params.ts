/**
 * A named parameter store. Models in one-for-more are functions over a store: a layer asks for its
 * parameters by a stable hierarchical name (`unet.input.1.0.in.conv.weight`) and the store creates
 * them on first use, in call order, from its seeded generator. Checkpoints and GPM bases are keyed
 * by these names, so they must not depend on anything but the model's structure.
 */
import { Rng } from './rng';
import { tf } from './tf';

/** How a new parameter is filled. `fanIn` is the number of inputs feeding one output unit. */
export type Init =
  | { kind: 'zeros' }
  | { kind: 'ones' }
  | { kind: 'constant'; value: number }
  /** PyTorch's default for Conv2d/Linear: U(-1/sqrt(fanIn), 1/sqrt(fanIn)). */
  | { kind: 'uniformFanIn'; fanIn: number }
  | { kind: 'normal'; std: number };

/** Metadata the store keeps per parameter. */
export interface ParamInfo {
  name: string;
  shape: number[];
  /** The layer that owns it (its name without the trailing `.weight`/`.bias`/...). */
  layer: string;
  /** `weight` of a conv/dense layer, `bias`, or a norm `scale`/`offset`, or `other`. */
  role: 'weight' | 'bias' | 'scale' | 'offset' | 'other';
  /** conv and dense weights are what gradient projection protects. */
  layerKind: 'conv' | 'dense' | 'norm' | 'other';
}

/**
 * Named float32 variables created on first request, with per-parameter metadata. Initial values
 * come from a generator seeded by the constructor's `seed`, so the same seed and call order give
 * the same parameters.
 */
export class ParamStore {
  private readonly vars = new Map<string, tf.Variable>();
  private readonly infos = new Map<string, ParamInfo>();
  private readonly rng: Rng;

  constructor(seed = 0) {
    this.rng = new Rng(seed).fork('params');
  }

  /**
   * The parameter `name`, created with `init` on first use. Asking again with another shape is a
   * programming error and throws, naming both shapes.
   */
  param(name: string, shape: number[], init: Init, meta: Omit<ParamInfo, 'name' | 'shape'>): tf.Variable {
    const existing = this.vars.get(name);
    if (existing) {
      if (!sameShape(existing.shape, shape)) {
        throw new Error(`parameter '${name}' exists with shape [${existing.shape}] but was requested as [${shape}]`);
      }
      return existing;
    }
    const value = tf.tidy(() => this.initialValue(shape, init));
    // Variable names are global in the tfjs engine; a unique suffix lets several stores coexist.
    const v = tf.variable(value, true, `${name}#${uniqueId()}`, 'float32');
    value.dispose();
    this.vars.set(name, v);
    this.infos.set(name, { name, shape: [...shape], ...meta });
    return v;
  }

  /** Whether a parameter named `name` has been created. */
  has(name: string): boolean {
    return this.vars.has(name);
  }

  /** The parameter `name`; throws a clear error when it does not exist. */
  get(name: string): tf.Variable {
    const v = this.vars.get(name);
    if (!v) throw new Error(`no parameter named '${name}' (the store has ${this.vars.size} parameters)`);
    return v;
  }

  /** The metadata of parameter `name`; throws when it does not exist. */
  info(name: string): ParamInfo {
    const i = this.infos.get(name);
    if (!i) throw new Error(`no parameter named '${name}'`);
    return i;
  }

  /** Parameter names in creation order. */
  names(): string[] {
    return [...this.vars.keys()];
  }

  /** The metadata of every parameter, in creation order. */
  infosList(): ParamInfo[] {
    return [...this.infos.values()];
  }

  /** All parameters by name, in creation order. */
  entries(): [string, tf.Variable][] {
    return [...this.vars.entries()];
  }

  /** Total number of scalar parameters. */
  count(filter?: (info: ParamInfo) => boolean): number {
    let n = 0;
    for (const info of this.infos.values()) {
      if (!filter || filter(info)) n += info.shape.reduce((a, b) => a * b, 1);
    }
    return n;
  }

  /** Copy values in (e.g. from a checkpoint). Every name must exist with the same shape. */
  assign(values: Record<string, tf.Tensor>, opts: { allowMissing?: boolean } = {}): void {
    for (const [name, t] of Object.entries(values)) {
      const v = this.vars.get(name);
      if (!v) {
        if (opts.allowMissing) continue;
        throw new Error(`cannot assign '${name}': the model has no such parameter`);
      }
      if (!sameShape(v.shape, t.shape)) {
        throw new Error(`cannot assign '${name}': model shape [${v.shape}] but value shape [${t.shape}]`);
      }
      v.assign(t.dtype === 'float32' ? t : tf.cast(t, 'float32'));
    }
  }

  /** A snapshot of every parameter's current value (new tensors the caller owns). */
  snapshot(): Record<string, tf.Tensor> {
    const out: Record<string, tf.Tensor> = {};
    for (const [name, v] of this.vars) out[name] = tf.clone(v);
    return out;
  }

  /** Dispose every parameter variable and forget all names; the store is empty afterwards. */
  dispose(): void {
    for (const v of this.vars.values()) v.dispose();
    this.vars.clear();
    this.infos.clear();
  }

  private initialValue(shape: number[], init: Init): tf.Tensor {
    const size = shape.reduce((a, b) => a * b, 1);
    switch (init.kind) {
      case 'zeros':
        return tf.zeros(shape);
      case 'ones':
        return tf.ones(shape);
      case 'constant':
        return tf.fill(shape, init.value);
      case 'uniformFanIn': {
        const bound = 1 / Math.sqrt(init.fanIn);
        return tf.tensor(this.rng.uniformArray(size, -bound, bound), shape);
      }
      case 'normal':
        return tf.tensor(this.rng.normalArray(size, 0, init.std), shape);
    }
  }
}

let nextId = 0;
function uniqueId(): number {
  nextId += 1;
  return nextId;
}

/** Whether two tensor shapes are equal, dimension by dimension. */
export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
