/**
 * Gradient projection memory (GPM) over a model built from @ofm/tensor primitives.
 *
 * Life cycle, per task:
 *   1. learn the task, keeping every protected weight's change orthogonal to the bases of the
 *      earlier tasks: {@link GradientProjectionMemory.projectUpdate} after each optimiser step
 *      (the one to use with Adam/AdamW), or {@link GradientProjectionMemory.project} on the
 *      gradients (exact only for plain SGD); {@link GradientProjectionMemory.projectionHooks}
 *      gives either as a trainer hook;
 *   2. run the model over the task's data with {@link GradientProjectionMemory.tapFn} in its
 *      context: each protected layer's inputs stream into a per-layer factoriser (iSVD by default,
 *      so memory stays bounded however many batches and timesteps are collected);
 *   3. {@link GradientProjectionMemory.consolidate}: grow each layer's basis with the GPM
 *      criterion.
 *
 * Bases are keyed by layer name, stored as float32 tensors `[inDim, rank]` (a conv's input space
 * is its im2col patch space, `kh·kw·in`, matching the weight reshaped to `[kh·kw·in, out]`), and
 * serialise into checkpoints as `gpm.<layer>.basis` plus {@link GpmMeta}.
 */
import { IncrementalSvd, type IsvdMethod, type RepresentationFactorizer, StackedSvd } from '@ofm/isvd';
import { DataError, type Matrix, type ParamStore, Rng, type TapEvent, type TapFn, projectGradient, sameShape, tf } from '@ofm/tensor';
import { growBasis } from './criterion';
import { type LayerSelector, type ThresholdQuery, type ThresholdSpec, checkThreshold, isSelected, resolveThreshold } from './selection';

/**
 * Where a trainer applies gradient projection: to each step's weight change (`'update'`, for
 * Adam/AdamW), to the gradients (`'gradient'`, exact for plain SGD), or nowhere (`'none'`).
 */
export type ProjectionMode = 'update' | 'gradient' | 'none';

/**
 * A hook over named tensors (weight changes or gradients) that returns replacements for the
 * entries it changes: the shape of @ofm/diffusion's `UpdateHook` and `GradientHook`.
 */
export type ProjectionHook = (tensors: Readonly<Record<string, tf.Tensor>>) => Record<string, tf.Tensor>;

/** What {@link GradientProjectionMemory.projectionHooks} returns: at most one of the two hooks. */
export interface ProjectionHooks {
  transformUpdate?: ProjectionHook;
  transformGradients?: ProjectionHook;
}

/** How representations are factored while they are collected. */
export type FactorizerKind = 'isvd' | 'naive';

/** Options of {@link GradientProjectionMemory}. */
export interface GpmOptions {
  /** Protected layers (default: every conv and dense weight of the store). */
  layers?: LayerSelector;
  /**
   * Compression energy of the per-layer factorisation while collecting (default 0.999, as in the
   * reference code): each iSVD truncation keeps this fraction of the energy.
   */
  compression?: ThresholdSpec;
  /**
   * Basis-growth threshold of the GPM criterion (default 0.97): after consolidation the basis
   * explains at least this fraction of the task's representation energy. (The One-for-More
   * reference code uses 0.5; the GPM paper 0.97-0.99. Higher protects more and leaves less room.)
   */
  threshold?: ThresholdSpec;
  /**
   * At most this many rows of each tap matrix are kept per call (default 256), drawn without
   * replacement from a seeded generator and scaled by √(rows / kept) so that energies stay
   * unbiased. Bounds the cost of large convs (a 64 x 64 feature map has 4096 rows per image).
   */
  maxRowsPerCall?: number;
  /** Seed of the row sampling (default 0). */
  seed?: number;
  /** 'isvd' (default, bounded memory) or 'naive' (stack every row, one SVD at consolidation). */
  factorizer?: FactorizerKind;
  /** iSVD: re-factor every k tap calls of a layer (default 1). */
  blocksPerUpdate?: number;
  /** iSVD update algorithm (default 'gram'). */
  method?: IsvdMethod;
  /** iSVD rank cap per layer while collecting (default: the layer's input dimension). */
  collectRank?: number | ((query: ThresholdQuery) => number);
  /**
   * Largest fraction of a layer's input space the basis may fill (default 1). Below 1, a layer
   * always keeps some directions free to learn (a narrow input conv can otherwise fill up after
   * one task and stop learning).
   */
  maxBasisFraction?: number;
}

/** What consolidation did to one layer in one task. */
export interface LayerBasisRecord {
  /** 0-based task index. */
  task: number;
  /** Growth threshold and compression energy used. */
  threshold: number;
  compression: number;
  /** Rows collected (after sampling): the task's representation matrix is `inDim x samples`. */
  samples: number;
  /**
   * The most bytes this layer's collector held while the task was collected: for `'naive'` the
   * stacked rows (the whole representation matrix, in a buffer that grows by doubling), for
   * `'isvd'` the running factor plus the block being folded in. This is the memory iSVD bounds.
   */
  peakBytes: number;
  /**
   * Of {@link peakBytes}: the most this layer's collector kept from one tap call to the next (the
   * factor, or the stack), and its largest block, held only while it is folded in. Layers are fed
   * one after another, so a task's representation memory is the sum of the states plus the largest
   * block. Absent in checkpoints written before these were recorded.
   */
  stateBytes?: number;
  blockBytes?: number;
  /** Fraction of the task's representation energy the basis explained before and after growing. */
  explainedBefore: number;
  explainedAfter: number;
  /** Directions added, and asked for but refused by `maxBasisFraction`. */
  added: number;
  refused: number;
  /** Basis rank after this task. */
  rank: number;
}

/** Result of {@link GradientProjectionMemory.consolidate}. */
export interface ConsolidationReport {
  task: number;
  layers: (LayerBasisRecord & { layer: string; inDim: number })[];
}

/** One row of {@link GradientProjectionMemory.memoryReport}. */
export interface LayerMemoryReport {
  layer: string;
  kind: 'conv' | 'dense';
  inDim: number;
  rank: number;
  /** rank / inDim: the share of the input space frozen for later tasks. */
  fraction: number;
  /** Bytes of the stored basis (float32). */
  bytes: number;
  /** Bytes held by this layer's collector right now (0 when not collecting). */
  collectingBytes: number;
  history: LayerBasisRecord[];
}

/** Serialised form of a memory, stored in checkpoint metadata next to `gpm.<layer>.basis` tensors. */
export interface GpmMeta {
  format: 'ofm-gpm';
  version: 1;
  /** Tasks consolidated. */
  tasks: number;
  options: {
    /** A number, or 'custom' when a per-layer function was used (see each layer's history). */
    compression: number | 'custom';
    threshold: number | 'custom';
    maxRowsPerCall: number;
    seed: number;
    factorizer: FactorizerKind;
    blocksPerUpdate: number;
    method: IsvdMethod;
    maxBasisFraction: number;
  };
  layers: Record<string, { kind: 'conv' | 'dense'; inDim: number; rank: number; history: LayerBasisRecord[] }>;
}

/** The checkpoint tensor name of a layer's basis. */
export function basisTensorName(layer: string): string {
  return `gpm.${layer}.basis`;
}

interface LayerState {
  layer: string;
  weight: string;
  kind: 'conv' | 'dense';
  inDim: number;
  /** `[inDim, rank]` float32, orthonormal columns; null while the rank is 0. */
  basis: tf.Tensor2D | null;
  history: LayerBasisRecord[];
}

interface Collector {
  factorizer: RepresentationFactorizer;
  compression: number;
}

const GPM_FORMAT = 'ofm-gpm';
const GPM_VERSION = 1;

/**
 * Per-layer orthonormal bases of earlier tasks' input subspaces for the protected conv and dense
 * weights of a `ParamStore`, with the tap that collects representations, the consolidation
 * that grows the bases, and the projections that keep later updates orthogonal to them.
 */
export class GradientProjectionMemory {
  readonly params: ParamStore;
  private readonly selector: LayerSelector | undefined;
  private readonly compression: ThresholdSpec;
  private readonly threshold: ThresholdSpec;
  private readonly maxRowsPerCall: number;
  private readonly seed: number;
  private readonly factorizerKind: FactorizerKind;
  private readonly blocksPerUpdate: number;
  private readonly method: IsvdMethod;
  private readonly collectRank: GpmOptions['collectRank'];
  private readonly maxBasisFraction: number;

  /** Protected layers seen so far (by layer name). */
  private readonly layers = new Map<string, LayerState>();
  /** Per layer: protected or not, decided once. */
  private readonly decisions = new Map<string, boolean>();
  private readonly collectors = new Map<string, Collector>();
  private taskIndex = 0;
  private sampler: Rng | null = null;
  private readonly tap: TapFn = (event) => this.onTap(event);

  constructor(params: ParamStore, options: GpmOptions = {}) {
    this.params = params;
    this.selector = options.layers;
    this.compression = options.compression ?? 0.999;
    this.threshold = options.threshold ?? 0.97;
    this.maxRowsPerCall = options.maxRowsPerCall ?? 256;
    this.seed = options.seed ?? 0;
    this.factorizerKind = options.factorizer ?? 'isvd';
    this.blocksPerUpdate = options.blocksPerUpdate ?? 1;
    this.method = options.method ?? 'gram';
    this.collectRank = options.collectRank;
    this.maxBasisFraction = options.maxBasisFraction ?? 1;
    if (!(Number.isInteger(this.maxRowsPerCall) && this.maxRowsPerCall > 0)) {
      throw new RangeError(`GradientProjectionMemory: maxRowsPerCall must be a positive integer, got ${this.maxRowsPerCall}`);
    }
    if (this.factorizerKind !== 'isvd' && this.factorizerKind !== 'naive') {
      throw new RangeError(`GradientProjectionMemory: factorizer must be 'isvd' or 'naive', got '${String(this.factorizerKind)}'`);
    }
    if (!(this.maxBasisFraction > 0 && this.maxBasisFraction <= 1)) {
      throw new RangeError(`GradientProjectionMemory: maxBasisFraction must be in (0, 1], got ${this.maxBasisFraction}`);
    }
    if (typeof this.compression === 'number') checkThreshold(this.compression, "GradientProjectionMemory option 'compression'");
    if (typeof this.threshold === 'number') checkThreshold(this.threshold, "GradientProjectionMemory option 'threshold'");
  }

  /** Tasks consolidated so far (the index of the task being learned or collected now). */
  get tasks(): number {
    return this.taskIndex;
  }

  /** Layers with a basis or a collector, in the order they were first seen. */
  layerNames(): string[] {
    return [...this.layers.keys()];
  }

  /**
   * A tap to put in the model's context (`context(params, { tap: gpm.tapFn() })`): every call of a
   * protected layer feeds (a seeded sample of) its input rows to that layer's factoriser for the
   * current task. Unprotected layers are ignored.
   */
  tapFn(): TapFn {
    return this.tap;
  }

  /** Run `fn` with the collecting tap (sugar for passing {@link tapFn} yourself); returns fn's result. */
  collect<T>(fn: (tap: TapFn) => T): T {
    return fn(this.tap);
  }

  /** Whether `layer` (a layer name, e.g. `unet.out.conv`) is protected. */
  isProtected(layer: string): boolean {
    let decided = this.decisions.get(layer);
    if (decided === undefined) {
      const weight = `${layer}.weight`;
      decided = this.params.has(weight) && isSelected(this.selector, this.params.info(weight));
      this.decisions.set(layer, decided);
    }
    return decided;
  }

  /** Rows collected for the current task, per layer. */
  collectedSamples(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [layer, c] of this.collectors) out[layer] = c.factorizer.samplesSeen;
    return out;
  }

  /** Drop what was collected for the current task without changing any basis. */
  discardCollection(): void {
    this.collectors.clear();
    this.sampler = null;
  }

  /**
   * Turn the current task's collected representations into bases: for each layer that was tapped,
   * keep the existing basis and add residual directions until `threshold` (default: the memory's)
   * of the task's representation energy is explained. Ends the task: collectors are released and
   * the task index advances.
   */
  consolidate(options: { threshold?: ThresholdSpec } = {}): ConsolidationReport {
    const spec = options.threshold ?? this.threshold;
    const task = this.taskIndex;
    const report: ConsolidationReport = { task, layers: [] };
    for (const [layer, collector] of this.collectors) {
      const state = this.layers.get(layer)!;
      const query: ThresholdQuery = { layer, kind: state.kind, inDim: state.inDim, task };
      const threshold = resolveThreshold(spec, query, 'threshold');
      const factor = collector.factorizer.factor();
      const existing = state.basis ? tensorToMatrix(state.basis) : null;
      const cap = Math.max(existing?.cols ?? 0, Math.floor(this.maxBasisFraction * state.inDim));
      const growth = growBasis(existing, factor, threshold, cap);
      this.setBasis(state, growth.basis);
      const record: LayerBasisRecord = {
        task,
        threshold,
        compression: collector.compression,
        samples: collector.factorizer.samplesSeen,
        peakBytes: collector.factorizer.peakBytesHeld,
        stateBytes: collector.factorizer.peakStateBytes,
        blockBytes: collector.factorizer.largestBlockBytes,
        explainedBefore: growth.explainedBefore,
        explainedAfter: growth.explainedAfter,
        added: growth.added,
        refused: growth.refused,
        rank: growth.basis.cols,
      };
      state.history.push(record);
      report.layers.push({ layer, inDim: state.inDim, ...record });
    }
    this.collectors.clear();
    this.sampler = null;
    this.taskIndex += 1;
    return report;
  }

  /** A float64 copy of a layer's basis (`inDim x rank`), or null when it has none. */
  basis(layer: string): Matrix | null {
    const state = this.layers.get(layer);
    return state?.basis ? tensorToMatrix(state.basis) : null;
  }

  /** The basis tensor itself (`[inDim, rank]`; owned by the memory: do not dispose), or null. */
  basisTensor(layer: string): tf.Tensor2D | null {
    return this.layers.get(layer)?.basis ?? null;
  }

  /** Current basis rank of a layer (0 when it has none). */
  rank(layer: string): number {
    return this.layers.get(layer)?.basis?.shape[1] ?? 0;
  }

  /**
   * Project gradients: for each protected weight with a basis U, `G ← G - U (Uᵀ G)` with G viewed as
   * `[inDim, out]` (the transpose of the paper's `G - G U Uᵀ` on `[out, in]`). Keys may be parameter
   * names or the tf variable names that `tf.variableGrads` returns. Projected entries are new
   * tensors; every other entry is passed through as the same tensor (biases, norms and unprotected
   * weights follow the caller's freeze policy).
   *
   * Exact for plain SGD. With Adam/AdamW the optimiser rescales each coordinate and turns the step
   * back toward protected directions: use {@link projectUpdate} instead.
   */
  project(grads: Record<string, tf.Tensor>): Record<string, tf.Tensor> {
    const byVariable = this.variableNames();
    const out: Record<string, tf.Tensor> = {};
    for (const [key, g] of Object.entries(grads)) {
      const state = this.stateOfWeight(byVariable.get(key) ?? key);
      out[key] = state?.basis ? projectGradient(g, state.basis) : g;
    }
    return out;
  }

  /**
   * Clones of the protected weights that have a basis (keyed by parameter name): take one before an
   * optimiser step and hand it to {@link projectUpdate} after. The caller disposes it.
   */
  snapshot(): Record<string, tf.Tensor> {
    const out: Record<string, tf.Tensor> = {};
    for (const state of this.layers.values()) {
      if (state.basis && this.params.has(state.weight)) out[state.weight] = tf.keep(tf.clone(this.params.get(state.weight)));
    }
    return out;
  }

  /**
   * Project the actual weight change of an optimiser step: for each protected weight W with a basis
   * U and an entry in `before`, `W ← W₀ + P(W - W₀)` with `P(Δ) = Δ - U (Uᵀ Δ)` on `[inDim, out]`.
   * The step is then orthogonal to every protected direction whatever the optimiser did — Adam's
   * per-coordinate scaling, AdamW's decoupled weight decay, momentum — so this is the projection to
   * use with adaptive optimisers. A trainer with an update hook gets the same projection from
   * {@link projectionHooks} (`'update'`), which is how the detector applies it after every step.
   *
   * `after` defaults to the store's variables (updated in place); entries of `before` that are not
   * protected weights are ignored.
   */
  projectUpdate(before: Record<string, tf.Tensor>, after?: Record<string, tf.Variable>): void {
    for (const [name, w0] of Object.entries(before)) {
      const state = this.stateOfWeight(name);
      if (!state?.basis) continue;
      const target = after ? after[name] : this.params.get(name);
      if (!target) throw new Error(`projectUpdate: no variable '${name}' in 'after' to project (pass the weights updated by the step)`);
      if (!sameShape(target.shape, w0.shape)) {
        throw new RangeError(`projectUpdate: '${name}' is [${target.shape}] now but [${w0.shape}] in the snapshot`);
      }
      const basis = state.basis;
      const next = tf.tidy(() => tf.add(w0, projectGradient(tf.sub(target, w0), basis)));
      target.assign(next);
      next.dispose();
    }
  }

  /**
   * Run one optimiser step with its weight change projected: snapshot, `step()`, projectUpdate,
   * release the snapshot. Works with synchronous steps and with steps that return a promise.
   */
  withProjectedUpdate<T>(step: () => T): T {
    const before = this.snapshot();
    const finish = () => {
      try {
        this.projectUpdate(before);
      } finally {
        tf.dispose(Object.values(before));
      }
    };
    let result: T;
    try {
      result = step();
    } catch (err) {
      tf.dispose(Object.values(before));
      throw err;
    }
    if (isThenable(result)) {
      return result.then(
        (value) => {
          finish();
          return value;
        },
        (err) => {
          tf.dispose(Object.values(before));
          throw err;
        },
      ) as T;
    }
    finish();
    return result;
  }

  /** Whether any protected layer has a basis yet (before the first consolidation, none has). */
  hasBasis(): boolean {
    for (const state of this.layers.values()) if ((state.basis?.shape[1] ?? 0) > 0) return true;
    return false;
  }

  /**
   * The projection as trainer hooks (`transformUpdate` / `transformGradients` of @ofm/diffusion's
   * `DiffusionTrainer` and `fit`): spread the result into their options.
   *
   * - `'update'`: `transformUpdate` projects each step's actual weight change `Δ = after − before`
   *   out of the bases, `before + P(Δ)`: {@link projectUpdate} done by the trainer, which keeps
   *   the clones and rolls a faulty step back. The one to use with Adam/AdamW.
   * - `'gradient'`: `transformGradients` projects the gradients ({@link project}; exact for SGD).
   * - `'none'`, or no layer has a basis yet: no hooks (`{}`), so nothing is cloned or projected.
   *
   * A hook returns only the entries it changed (protected weights with a basis); the trainer keeps
   * the others as they are. It reads the bases when called: consolidating during training would
   * change it.
   */
  projectionHooks(mode: ProjectionMode): ProjectionHooks {
    if (mode === 'none' || !this.hasBasis()) return {};
    const hook: ProjectionHook = (tensors) => {
      const projected = this.project({ ...tensors });
      const out: Record<string, tf.Tensor> = {};
      for (const [name, t] of Object.entries(projected)) if (t !== tensors[name]) out[name] = t;
      return out;
    };
    return mode === 'update' ? { transformUpdate: hook } : { transformGradients: hook };
  }

  /** Per-layer memory: rank, input dimension, share of the input space used, bytes, history. */
  memoryReport(): LayerMemoryReport[] {
    return [...this.layers.values()].map((s) => {
      const rank = s.basis?.shape[1] ?? 0;
      return {
        layer: s.layer,
        kind: s.kind,
        inDim: s.inDim,
        rank,
        fraction: rank / s.inDim,
        bytes: 4 * s.inDim * rank,
        collectingBytes: this.collectors.get(s.layer)?.factorizer.bytesHeld() ?? 0,
        history: s.history.map((h) => ({ ...h })),
      };
    });
  }

  /** Bases as named tensors `gpm.<layer>.basis` (`[inDim, rank]`, float32 clones the caller owns). */
  toTensors(): Record<string, tf.Tensor> {
    const out: Record<string, tf.Tensor> = {};
    for (const s of this.layers.values()) {
      if (s.basis) out[basisTensorName(s.layer)] = tf.keep(tf.clone(s.basis));
    }
    return out;
  }

  /** JSON metadata to store beside {@link toTensors}: options, ranks, thresholds per layer and task. */
  toMeta(): GpmMeta {
    const layers: GpmMeta['layers'] = {};
    for (const s of this.layers.values()) {
      if (!s.basis && s.history.length === 0) continue;
      layers[s.layer] = { kind: s.kind, inDim: s.inDim, rank: s.basis?.shape[1] ?? 0, history: s.history.map((h) => ({ ...h })) };
    }
    return {
      format: GPM_FORMAT,
      version: GPM_VERSION,
      tasks: this.taskIndex,
      options: {
        compression: typeof this.compression === 'number' ? this.compression : 'custom',
        threshold: typeof this.threshold === 'number' ? this.threshold : 'custom',
        maxRowsPerCall: this.maxRowsPerCall,
        seed: this.seed,
        factorizer: this.factorizerKind,
        blocksPerUpdate: this.blocksPerUpdate,
        method: this.method,
        maxBasisFraction: this.maxBasisFraction,
      },
      layers,
    };
  }

  /**
   * Rebuild a memory from checkpoint contents: `meta` from {@link toMeta} (or an object holding it
   * under `gpm`) and the `gpm.<layer>.basis` tensors (copied; the caller keeps ownership). Options
   * not given fall back to the stored numeric ones. Shapes are checked against the metadata and,
   * for weights already in `params`, against the weight.
   */
  static fromCheckpoint(
    checkpoint: { meta: unknown; tensors: Record<string, tf.Tensor> },
    params: ParamStore,
    options: GpmOptions = {},
  ): GradientProjectionMemory {
    const meta = readMeta(checkpoint.meta);
    const stored = meta.options;
    const gpm = new GradientProjectionMemory(params, {
      compression: stored.compression === 'custom' ? undefined : stored.compression,
      threshold: stored.threshold === 'custom' ? undefined : stored.threshold,
      maxRowsPerCall: stored.maxRowsPerCall,
      seed: stored.seed,
      factorizer: stored.factorizer,
      blocksPerUpdate: stored.blocksPerUpdate,
      method: stored.method,
      maxBasisFraction: stored.maxBasisFraction,
      ...options,
    });
    for (const [layer, info] of Object.entries(meta.layers)) {
      const name = basisTensorName(layer);
      const t = checkpoint.tensors[name];
      const weight = `${layer}.weight`;
      if (params.has(weight)) {
        const shape = params.get(weight).shape;
        const inDim = shape.slice(0, -1).reduce((a, b) => a * b, 1);
        if (inDim !== info.inDim) {
          throw new RangeError(
            `GPM checkpoint: layer '${layer}' has a basis for input dimension ${info.inDim} but the model's weight ` +
              `'${weight}' is [${shape}] (input dimension ${inDim}); the checkpoint belongs to another model configuration`,
          );
        }
      }
      const state: LayerState = { layer, weight, kind: info.kind, inDim: info.inDim, basis: null, history: info.history.map((h) => ({ ...h })) };
      if (info.rank > 0) {
        if (!t) throw new DataError(`GPM checkpoint: tensor '${name}' is missing (the metadata says rank ${info.rank}); the checkpoint is incomplete`);
        if (t.rank !== 2 || t.shape[0] !== info.inDim || t.shape[1] !== info.rank) {
          throw new RangeError(`GPM checkpoint: tensor '${name}' is [${t.shape}] but the metadata says [${info.inDim}, ${info.rank}]`);
        }
        state.basis = tf.keep((t.dtype === 'float32' ? tf.clone(t) : tf.cast(t, 'float32')) as tf.Tensor2D);
      }
      gpm.layers.set(layer, state);
    }
    gpm.taskIndex = meta.tasks;
    return gpm;
  }

  /** Release the basis tensors and collectors. */
  dispose(): void {
    for (const s of this.layers.values()) s.basis?.dispose();
    this.layers.clear();
    this.collectors.clear();
  }

  private onTap(event: TapEvent): void {
    if (!this.isProtected(event.layer)) return;
    const [rows, inDim] = event.input.shape;
    const state = this.layerState(event, inDim);
    let collector = this.collectors.get(event.layer);
    if (!collector) {
      collector = this.newCollector(state);
      this.collectors.set(event.layer, collector);
    }
    if (rows === 0) return;
    collector.factorizer.push({ rows: Math.min(rows, this.maxRowsPerCall), cols: inDim, data: this.sampleRows(event.input) });
  }

  private layerState(event: TapEvent, inDim: number): LayerState {
    let state = this.layers.get(event.layer);
    const weightIn = event.weightShape.slice(0, -1).reduce((a, b) => a * b, 1);
    if (weightIn !== inDim) {
      throw new RangeError(`GPM: layer '${event.layer}' tapped with ${inDim}-wide inputs but its weight [${event.weightShape}] expects ${weightIn}`);
    }
    if (!state) {
      state = { layer: event.layer, weight: `${event.layer}.weight`, kind: event.kind, inDim, basis: null, history: [] };
      this.layers.set(event.layer, state);
    } else if (state.inDim !== inDim) {
      throw new RangeError(`GPM: layer '${event.layer}' has a basis for input dimension ${state.inDim} but was tapped with ${inDim}`);
    }
    return state;
  }

  private newCollector(state: LayerState): Collector {
    const query: ThresholdQuery = { layer: state.layer, kind: state.kind, inDim: state.inDim, task: this.taskIndex };
    const compression = resolveThreshold(this.compression, query, 'compression');
    let factorizer: RepresentationFactorizer;
    if (this.factorizerKind === 'naive') {
      factorizer = new StackedSvd({ dim: state.inDim, energy: compression });
    } else {
      const cap = this.collectRank === undefined ? state.inDim : typeof this.collectRank === 'number' ? this.collectRank : this.collectRank(query);
      factorizer = new IncrementalSvd({
        dim: state.inDim,
        energy: compression,
        maxRank: Math.min(cap, state.inDim),
        blocksPerUpdate: this.blocksPerUpdate,
        method: this.method,
      });
    }
    return { factorizer, compression };
  }

  /**
   * The tap rows to keep, as float32: all of them, or `maxRowsPerCall` drawn without replacement
   * and scaled by √(rows / kept) so that the sample's energy estimates the full matrix's.
   */
  private sampleRows(input: tf.Tensor2D): Float32Array {
    const [rows, inDim] = input.shape;
    const m = this.maxRowsPerCall;
    // All rows: the tensor's own data, read before the tap returns (the factoriser copies what it keeps).
    if (rows <= m) return input.dataSync() as Float32Array;
    if (!this.sampler) this.sampler = new Rng(this.seed).fork(`gpm-task-${this.taskIndex}`);
    // Partial Fisher-Yates: the first m entries of a random permutation, then sorted for locality.
    const order = new Int32Array(rows);
    for (let i = 0; i < rows; i++) order[i] = i;
    for (let i = 0; i < m; i++) {
      const j = i + this.sampler.int(rows - i);
      const t = order[i]!;
      order[i] = order[j]!;
      order[j] = t;
    }
    const picked = order.slice(0, m).sort();
    const scale = Math.sqrt(rows / m);
    const gathered = tf.tidy(() => tf.gather(input, tf.tensor1d(picked, 'int32')));
    try {
      const data = gathered.dataSync();
      const out = new Float32Array(m * inDim);
      for (let i = 0; i < out.length; i++) out[i] = data[i]! * scale;
      return out;
    } finally {
      gathered.dispose();
    }
  }

  private setBasis(state: LayerState, basis: Matrix): void {
    state.basis?.dispose();
    state.basis = basis.cols === 0 ? null : tf.keep(tf.tensor2d(Float32Array.from(basis.data), [basis.rows, basis.cols], 'float32'));
  }

  private stateOfWeight(paramName: string): LayerState | undefined {
    if (!paramName.endsWith('.weight')) return undefined;
    const state = this.layers.get(paramName.slice(0, -'.weight'.length));
    return state && state.weight === paramName ? state : undefined;
  }

  /** tf variable name → parameter name, for gradients keyed by variable. */
  private variableNames(): Map<string, string> {
    const map = new Map<string, string>();
    for (const [name, v] of this.params.entries()) map.set(v.name, name);
    return map;
  }
}

function tensorToMatrix(t: tf.Tensor2D): Matrix {
  return { rows: t.shape[0], cols: t.shape[1], data: Float64Array.from(t.dataSync()) };
}

function isThenable<T>(value: T): value is T & PromiseLike<Awaited<T>> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

function readMeta(raw: unknown): GpmMeta {
  const candidate = (raw as { format?: unknown } | null)?.format === GPM_FORMAT ? raw : (raw as { gpm?: unknown } | null)?.gpm;
  const meta = candidate as Partial<GpmMeta> | undefined;
  if (!meta || meta.format !== GPM_FORMAT) {
    throw new DataError(`GPM checkpoint: metadata has no '${GPM_FORMAT}' section (pass the object from toMeta(), or checkpoint meta holding it under 'gpm')`);
  }
  if (meta.version !== GPM_VERSION) {
    throw new DataError(`GPM checkpoint: format version ${String(meta.version)} is not supported (this build reads version ${GPM_VERSION})`);
  }
  if (typeof meta.tasks !== 'number' || !meta.layers || !meta.options) {
    throw new DataError('GPM checkpoint: metadata is incomplete (tasks, options and layers are required)');
  }
  return meta as GpmMeta;
}
