/**
 * Which UNet parameters train in which continual-learning phase. On the first task everything
 * trains. On later tasks One-for-More trains only the conv and linear *weights* (the ones gradient
 * projection protects) and freezes biases, normalisation layers and the time-embedding MLP; the
 * policy below makes each of those choices explicit and configurable. Everything is by stable
 * parameter name, so the same lists key checkpoints and projection bases.
 */
import type { ParamInfo, ParamStore } from '@ofm/tensor';

/** `first-task`: the model learns from scratch; `later-task`: it must not forget earlier tasks. */
export type TrainingPhase = 'first-task' | 'later-task';

/** What trains on later tasks besides the protected conv/dense weights. */
export interface LaterTaskPolicy {
  /** Train conv/dense biases (default false, as the authors). */
  biases: boolean;
  /** Train GroupNorm scales and offsets (default false, as the authors). */
  norms: boolean;
  /** Train the time-embedding MLP `time_embed.*` (default false, as the authors). */
  timeEmbedding: boolean;
  /**
   * Train the per-residual-block time projections `emb_layers.*` (default true: they are linear
   * weights of the UNet, which the authors train and protect).
   */
  resBlockTimeProjections: boolean;
  /** Train the control projection `control.*` (default true: the condition branch keeps learning). */
  control: boolean;
}

/** The defaults: the authors' choices. */
export const DEFAULT_LATER_TASK_POLICY: Readonly<LaterTaskPolicy> = Object.freeze({
  biases: false,
  norms: false,
  timeEmbedding: false,
  resBlockTimeProjections: true,
  control: true,
});

/** A conv or dense layer whose weight gradient projection may protect. */
export interface ProtectedLayer {
  /** Layer name, as taps report it (the weight's name without `.weight`). */
  layer: string;
  /** The weight parameter's name. */
  weight: string;
  kind: 'conv' | 'dense';
  /** Rows of the weight reshaped to a matrix: `kh*kw*in` for a conv, `in` for a dense layer. */
  inDim: number;
  outDim: number;
}

/** Options of {@link trainableParams} and {@link protectedLayers}: which parameters, under which policy. */
export interface ParamSelection {
  /** Name prefix of the UNet's parameters (default `unet`). */
  prefix?: string;
  /** Overrides of {@link DEFAULT_LATER_TASK_POLICY}. */
  policy?: Partial<LaterTaskPolicy>;
}

/** Names of the UNet parameters that train in `phase`, in store order. */
export function trainableParams(store: ParamStore, phase: TrainingPhase, opts: ParamSelection = {}): string[] {
  const prefix = `${opts.prefix ?? 'unet'}.`;
  const policy = { ...DEFAULT_LATER_TASK_POLICY, ...opts.policy };
  return store
    .infosList()
    .filter((info) => info.name.startsWith(prefix))
    .filter((info) => phase === 'first-task' || trainsLater(info, info.name.slice(prefix.length), policy))
    .map((info) => info.name);
}

/**
 * The conv/dense weights that train on later tasks under the policy: the layers whose updates
 * gradient projection keeps orthogonal to earlier tasks' inputs.
 */
export function protectedLayers(store: ParamStore, opts: ParamSelection = {}): ProtectedLayer[] {
  const trainable = new Set(trainableParams(store, 'later-task', opts));
  return store
    .infosList()
    .filter((info) => trainable.has(info.name) && isLayerWeight(info))
    .map((info) => {
      const outDim = info.shape[info.shape.length - 1]!;
      const size = info.shape.reduce((a, b) => a * b, 1);
      return { layer: info.layer, weight: info.name, kind: info.layerKind as 'conv' | 'dense', inDim: size / outDim, outDim };
    });
}

function isLayerWeight(info: ParamInfo): boolean {
  return info.role === 'weight' && (info.layerKind === 'conv' || info.layerKind === 'dense');
}

function trainsLater(info: ParamInfo, localName: string, policy: LaterTaskPolicy): boolean {
  const top = localName.split('.')[0];
  if (top === 'time_embed' && !policy.timeEmbedding) return false;
  if (top === 'control' && !policy.control) return false;
  if (localName.split('.').includes('emb_layers') && !policy.resBlockTimeProjections) return false;
  if (info.layerKind === 'norm') return policy.norms;
  if (info.role === 'bias') return policy.biases;
  return isLayerWeight(info);
}
