/**
 * `ContinualDetector`: one conditional diffusion model (UNet + AMN) that learns classes task after
 * task without keeping their images, protected by gradient projection, and detects anomalies on
 * every class learned so far without a task id.
 *
 * Learning a task:
 *   1. hold out a validation split of each class's normal images (never the test set);
 *   2. train: the diffusion loss on clean images conditioned on the AMN's output for the same
 *      images with synthetic anomalies, plus the AMN's feature-reconstruction loss; from the second
 *      task on only the protected conv/dense weights train and every optimiser step is projected
 *      out of the earlier tasks' bases;
 *   3. select, per class and on the validation split (held-out normals plus the same images with
 *      synthetic anomalies), the reconstruction start timestep; record the class's calibration;
 *   4. consolidate: the inference path over some training images feeds every protected layer's
 *      inputs to an iterative SVD, and the bases grow by the GPM criterion.
 *
 * Training is interruptible and fault-tolerant: it can take snapshots ({@link SnapshotPolicy}) and
 * continue from one exactly, and a step with a non-finite loss, gradient or update is refused (the
 * model and optimiser keep their last good state) and retried on the next batch, up to a limit.
 */
import { AMN_SCOPE, createAmn, type Amn } from '@ofm/amn';
import { GradientProjectionMemory } from '@ofm/continual';
import { type RgbImage, type SyntheticAnomaly, cutPasteAnomaly, nsaAnomaly, perlinAnomaly } from '@ofm/datasets';
import {
  DiffusionTrainer,
  type DiffusionTrainerOptions,
  type FitBatch,
  type FitFault,
  FitFaultError,
  type FitProgress,
  NoiseSchedule,
  UNet,
  fit,
  reconstruct,
  trainableParams,
} from '@ofm/diffusion';
import { auroc, aurocStandardError } from '@ofm/metrics';
import { ConfigError, type Ctx, DataError, NumericError, ParamStore, type Reads, Rng, canReadSync, context, readAsync, readSync, tf } from '@ofm/tensor';
import {
  type ClassCalibration,
  describeImagesReads,
  fitClassCalibration,
  routeImages,
} from './calibration';
import { type DetectorConfig, type DetectorConfigInput, resolveDetectorConfig, unetConfigOf } from '../config/config';
import { type Evaluation, type TestImage, evaluateDetector } from './evaluate';
import { type FeatureExtractor, FilterBankExtractor, PixelExtractor, gaussianBlur } from './features';
import { anomalyMap, imageScoresReads, scoreReduction } from './maps';
import type { SnapshotPolicy, TrainSnapshot } from '../io/snapshot';
import { throwIfAborted, yieldToEventLoop } from './abort';
import { SEGMENTER_SCOPE, initSegmenter, segmenterMaps, trainSegmenter } from './segmenter';

/** A class the detector has learned: what detection needs to serve it. */
export interface LearnedClass {
  className: string;
  /** 0-based index of the task that taught it. */
  task: number;
  /**
   * Reconstruction start timestep chosen on its validation split (with `fused`, the one that would
   * have been chosen: detection uses them all).
   */
  tStart: number;
  /** Validation AUROCs of every candidate start timestep (what the choice was based on). */
  selection: { tStart: number; imageAuroc: number; pixelAuroc: number }[];
  /**
   * With `reconstruction.fuse`: every start timestep detection uses, each with the mean and
   * standard deviation of its raw map over the class's normal validation pixels. The class's map is
   * the mean of the standardised maps; its `calibration` is of that fused map. Absent: one start
   * timestep (`tStart`).
   */
  fused?: FusedStart[];
  /**
   * With the segmenter (`segmenter.enabled`): the mean and standard deviation of the
   * reconstruction map and of the segmenter's map over the class's normal validation pixels. Both
   * maps are standardised by them and mixed (`segmenter.weight`); `calibration` is of the mixed map.
   */
  segmenter?: SegmenterStats;
  calibration: ClassCalibration;
  trainImages: number;
  validationImages: number;
}

/** One start timestep of a fused class, with its normal map statistics. */
export interface FusedStart {
  tStart: number;
  pixelMean: number;
  pixelStd: number;
}

/**
 * The least spread the segmenter's map is standardised by. Its map is a probability: one that
 * varies by less than 1% over normal pixels is flat (an untrained or degenerate segmenter), and
 * dividing by its spread would turn float noise into signal. Trained ones measured 0.024-0.042.
 */
const SEGMENTER_STD_FLOOR = 0.01;

/** Normal pixel statistics of a class's two maps, which put them on one scale before they are mixed. */
export interface SegmenterStats {
  reconMean: number;
  reconStd: number;
  segmenterMean: number;
  segmenterStd: number;
}

/** How a class is reconstructed (one start timestep, or several fused) and whether its segmenter map is mixed in. */
type StartPlan = Pick<LearnedClass, 'tStart' | 'fused' | 'segmenter'>;

/** Mean and (sample) standard deviation of map values, the deviation floored away from 0. */
function meanStd(values: Float32Array): { mean: number; std: number } {
  let sum = 0;
  for (const v of values) sum += v;
  const mean = values.length ? sum / values.length : 0;
  let sq = 0;
  for (const v of values) sq += (v - mean) ** 2;
  const std = Math.sqrt(sq / Math.max(1, values.length - 1));
  return { mean, std: Math.max(std, 1e-6 + 1e-3 * Math.abs(mean)) };
}

/** A fused start's normal map statistics. */
function fusedStart(tStart: number, values: Float32Array): FusedStart {
  const { mean, std } = meanStd(values);
  return { tStart, pixelMean: mean, pixelStd: std };
}

/** `sum + (maps - f.pixelMean) / f.pixelStd` (the running sum of a fused map); disposes `sum` and `maps`. */
function addStandardised(sum: tf.Tensor3D | undefined, maps: tf.Tensor3D, f: FusedStart): tf.Tensor3D {
  const next = tf.tidy(() => {
    const z = tf.div(tf.sub(maps, f.pixelMean), f.pixelStd);
    return (sum ? tf.add(sum, z) : z) as tf.Tensor3D;
  });
  tf.dispose(sum ? [maps, sum] : [maps]);
  return next;
}

/** The fused map: the running sum over `count` starts divided by their number; disposes `sum`. */
function meanOfSum(sum: tf.Tensor3D, count: number): tf.Tensor3D {
  const mean = tf.div(sum, count) as tf.Tensor3D;
  sum.dispose();
  return mean;
}

/** What one task's learning did. */
export interface TaskRecord {
  index: number;
  classes: string[];
  steps: number;
  trainSeconds: number;
  /** Mean loss over the last 10% of steps. */
  finalLoss: number;
  /** Loss every `lossEvery` steps, for curves. */
  lossCurve: number[];
  projection: DetectorConfig['continual']['projection'];
  /** Training steps refused for a non-finite value (each retried on the next batch). */
  faults?: number;
  /** With the segmenter: its training time and its mean focal loss over the last 10% of steps. */
  segmenterSeconds?: number;
  segmenterLoss?: number;
  /** Protected directions after the task: total basis rank over layers, and bytes held. */
  basisRank: number;
  basisBytes: number;
}

/** The normal training images of one task, by class (HWC RGB in [0, 1] at the model size). */
export interface TaskImages {
  classes: string[];
  images: Map<string, Float32Array[]>;
}

/** The phases of {@link ContinualDetector.learnTask}, in order: training, the segmenter's training, per-class start-timestep selection, consolidation. */
export type LearnPhase = 'train' | 'segment' | 'select' | 'consolidate';

/**
 * One progress report of {@link ContinualDetector.learnTask}: `done` of `total` units of the current
 * phase (optimiser steps for 'train' and 'segment'; one class's start-timestep candidates for 'select'; images
 * run through the inference path for 'consolidate').
 */
export interface LearnProgress {
  phase: LearnPhase;
  /** 0-based index of the task. */
  task: number;
  done: number;
  total: number;
  /** Loss of the step just taken ('train' only). */
  loss?: number;
  /** Seconds since the phase started. */
  elapsed: number;
}

/**
 * A training step refused for a non-finite value: the model kept its last good state. `step` is
 * the refused step of the task (1-based; it is retried on the next batch) and `limit` is
 * {@link LearnOptions.maxConsecutiveFaults}.
 */
export interface TrainingFault extends FitFault {
  /** 0-based index of the task. */
  task: number;
}

/** Training stopped: too many steps in a row had non-finite values. Nothing non-finite was kept. A {@link NumericError} with code `'training-fault'`. */
export class TrainingFaultError extends NumericError {
  override readonly name = 'TrainingFaultError';
  constructor(
    readonly fault: TrainingFault,
    message: string,
  ) {
    super(message, { code: 'training-fault' });
  }
}

/** Options of {@link ContinualDetector.learnTask}. */
export interface LearnOptions {
  /** Called after every accepted training step, every start-timestep candidate scored and every consolidation batch. */
  onProgress?: (p: LearnProgress) => void;
  /**
   * Aborting stops between steps with an `AbortError` (after a last snapshot when `snapshots` is
   * set); the detector is then mid-task (discard it).
   */
  signal?: AbortSignal;
  /** Take training snapshots (see `saveTrainSnapshot`). */
  snapshots?: SnapshotPolicy;
  /** Continue the task's training from this snapshot of it (see `loadTrainSnapshot`) instead of from the start. */
  resume?: TrainSnapshot;
  /** Told about every refused step. */
  onFault?: (fault: TrainingFault) => void;
  /** Refused steps in a row after which training stops with a {@link TrainingFaultError} (default 3). */
  maxConsecutiveFaults?: number;
}

/** One image's detection. */
export interface Detection {
  /** Calibrated image score: standard deviations above the routed class's normal validation mean. */
  score: number;
  /** The raw score (before calibration). */
  rawScore: number;
  /** Calibrated anomaly map, H*W row-major. */
  map: Float32Array;
  /** The class the image was routed to for calibration and reconstruction settings. */
  className: string;
  /** The reconstruction (HWC RGB in [0, 1]) when asked for. */
  reconstruction?: Float32Array;
}

/**
 * A continual anomaly detector: a UNet and an optional AMN in one parameter store, a noise
 * schedule, a gradient projection memory and a feature extractor, plus the classes and tasks
 * learned so far. {@link ContinualDetector.learnTask} adds a task; {@link ContinualDetector.detect}
 * scores images of any learned class.
 */
export class ContinualDetector {
  readonly config: DetectorConfig;
  readonly params: ParamStore;
  readonly unet: UNet;
  readonly amn: Amn | null;
  readonly schedule: NoiseSchedule;
  private memory: GradientProjectionMemory;
  readonly extractor: FeatureExtractor;
  readonly classes: LearnedClass[] = [];
  readonly tasks: TaskRecord[] = [];
  /** With `continual.weights: 'per-task'`: each learned task's own copy of every parameter. */
  private readonly taskWeights: Record<string, tf.Tensor>[] = [];
  /** The task whose weights the parameter store holds (the latest learned, unless detection swapped them). */
  private activeTask = -1;

  constructor(config: DetectorConfigInput = {}, opts: { extractor?: FeatureExtractor } = {}) {
    this.config = resolveDetectorConfig(config);
    const c = this.config;
    this.params = new ParamStore(c.seed);
    this.amn = c.amn.enabled ? createAmn({ ...c.amn }) : null;
    this.unet = new UNet(this.params, unetConfigOf(c, this.amn?.config.dim)).init();
    if (this.amn) this.amn.initialize(context(this.params));
    // After the UNet and AMN, so their initial values do not depend on whether there is a segmenter.
    if (c.segmenter.enabled) initSegmenter(this.params, c.imageSize, c.segmenter.channels);
    this.schedule = new NoiseSchedule({ kind: c.schedule.kind, timesteps: c.schedule.timesteps });
    this.memory = new GradientProjectionMemory(this.params, {
      threshold: c.continual.threshold,
      compression: c.continual.compression,
      factorizer: c.continual.factorizer,
      maxRowsPerCall: c.continual.maxRowsPerCall,
      maxBasisFraction: c.continual.maxBasisFraction,
      seed: c.seed,
    });
    this.extractor =
      opts.extractor ??
      (c.map.extractor === 'pixel' ? new PixelExtractor() : new FilterBankExtractor({ sigmas: c.map.sigmas }));
  }

  /** The gradient projection memory (bases of every protected layer). */
  get gpm(): GradientProjectionMemory {
    return this.memory;
  }

  /** Swap in a memory restored from a checkpoint (the old one is released). */
  replaceMemory(memory: GradientProjectionMemory): void {
    if (memory.params !== this.params) throw new Error('replaceMemory: the memory belongs to another parameter store');
    this.memory.dispose();
    this.memory = memory;
  }

  /**
   * Restore the learned classes and task history from a checkpoint. The parameter store must hold
   * the latest task's weights; with per-task weights, `tensors` must also hold every earlier
   * task's copy of every parameter (named as {@link modelTensors} names them), which is copied.
   */
  restore(classes: readonly LearnedClass[], tasks: readonly TaskRecord[], tensors: Readonly<Record<string, tf.Tensor>> = {}): void {
    if (this.tasks.length || this.classes.length) throw new Error('restore: the detector has already learned tasks');
    if (this.perTask) {
      const names = this.params.names();
      const earlier = tasks.slice(0, -1);
      for (const t of earlier) {
        const missing = names.find((name) => !(taskWeightName(t.index, name) in tensors));
        if (missing !== undefined) throw new DataError(`task ${t.index + 1} has no weight '${taskWeightName(t.index, missing)}': the file lacks its per-task weights`);
      }
      for (const t of earlier) this.taskWeights[t.index] = Object.fromEntries(names.map((name) => [name, tf.clone(tensors[taskWeightName(t.index, name)]!)]));
      if (tasks.length) this.taskWeights[tasks.length - 1] = Object.fromEntries(this.params.entries().map(([name, v]) => [name, tf.clone(v)]));
    }
    this.classes.push(...classes.map((c) => structuredClone(c)));
    this.tasks.push(...tasks.map((t) => structuredClone(t)));
    this.activeTask = this.tasks.length - 1;
  }

  /**
   * The weights that serve class `name`: its task's copy with per-task weights, the shared
   * parameters otherwise. The tensors are the detector's own (do not dispose them).
   */
  classWeights(name: string): Record<string, tf.Tensor> {
    const cls = this.classOf(name);
    if (!cls) throw new ConfigError(`class '${name}' was never learned (learned: ${this.classNames().join(', ')})`);
    if (this.perTask && this.taskWeights[cls.task]) return { ...this.taskWeights[cls.task]! };
    this.useTaskWeights(this.tasks.length - 1);
    return Object.fromEntries(this.params.entries());
  }

  /** Whether each task keeps its own weights (`continual.weights: 'per-task'`). */
  get perTask(): boolean {
    return this.config.continual.weights === 'per-task';
  }

  /**
   * Every tensor that defines the model: the parameters (the latest task's weights) and, with
   * per-task weights, each earlier task's copy as `tasks.<index>.<parameter name>`. What
   * checkpoints and exports store; the tensors are the detector's own (do not dispose them).
   */
  modelTensors(): Record<string, tf.Tensor> {
    const latest = this.tasks.length - 1;
    this.useTaskWeights(latest);
    const out: Record<string, tf.Tensor> = Object.fromEntries(this.params.entries());
    this.taskWeights.forEach((weights, index) => {
      if (index === latest) return;
      for (const [name, t] of Object.entries(weights)) out[taskWeightName(index, name)] = t;
    });
    return out;
  }

  /**
   * Put the weights that serve class `name` into the parameter store, for direct use of the model
   * (`reconstructBatch`, `unet`, `params`); a no-op with shared weights. `detect` and `learnTask`
   * choose their weights themselves.
   */
  useClassWeights(name: string): void {
    const cls = this.classOf(name);
    if (!cls) throw new ConfigError(`class '${name}' was never learned (learned: ${this.classNames().join(', ')})`);
    this.useTaskWeights(cls.task);
  }

  /**
   * Put task `index`'s weights into the parameter store (per-task weights only; a no-op with shared
   * weights, and for a task without a copy yet: the one in training).
   */
  private useTaskWeights(index: number): void {
    if (!this.perTask || index === this.activeTask || !this.taskWeights[index]) return;
    this.params.assign(this.taskWeights[index]!);
    this.activeTask = index;
  }

  /** Class names learned so far, in learning order. */
  classNames(): string[] {
    return this.classes.map((c) => c.className);
  }

  /** Number of scalar parameters of the model (UNet + AMN). */
  parameterCount(): number {
    return this.params.count();
  }

  /**
   * Learn one task: train on its classes' normal images, select reconstruction settings and
   * calibrate on a held-out split, then consolidate the projection bases.
   */
  async learnTask(task: TaskImages, opts: LearnOptions = {}): Promise<TaskRecord> {
    const c = this.config;
    const index = this.tasks.length;
    const known = new Set(this.classNames());
    for (const cls of task.classes) {
      if (known.has(cls)) throw new ConfigError(`class '${cls}' was already learned (task ${this.classOf(cls)!.task + 1}); a class is learned once`);
      const imgs = task.images.get(cls);
      if (!imgs || imgs.length < 4) {
        throw new DataError(`class '${cls}' has ${imgs?.length ?? 0} training images; at least 4 are needed (some are held out for validation)`);
      }
      imgs.forEach((img, i) => {
        if (img.length !== c.imageSize * c.imageSize * 3) {
          throw new DataError(`class '${cls}': images must be ${c.imageSize}x${c.imageSize} RGB (${c.imageSize * c.imageSize * 3} values), got ${img.length}`);
        }
        const bad = img.findIndex((v) => !Number.isFinite(v));
        if (bad >= 0) throw new DataError(`class '${cls}': training image ${i} holds ${img[bad]} at value ${bad}; images must be finite RGB in [0, 1]`);
      });
    }
    if (!this.perTask && c.continual.projection !== 'none' && !canReadSync()) {
      // Gradient projection reads every layer's inputs synchronously, inside the forward pass.
      throw new ConfigError(
        `continual.weights 'shared' with projection '${c.continual.projection}' reads layer inputs synchronously, which the ` +
          `'${tf.getBackend()}' backend in Node.js cannot; use per-task weights (continual.weights 'per-task', the default), ` +
          "projection 'none', or another backend (wasm)",
      );
    }
    const rng = new Rng(c.seed).fork(`task-${index}`);
    const split = splitValidation(task, c.validation, rng.fork('split'));
    const projection = index === 0 || this.perTask ? 'none' : c.continual.projection;

    // A new task starts from the latest task's weights (detection may have swapped in others).
    this.useTaskWeights(index - 1);
    if (this.perTask) this.activeTask = index;
    const curve = await this.train(index, split.train, projection, rng.fork('train'), opts);
    const segment = c.segmenter.enabled ? await this.trainSegmenter(index, split.train, rng.fork('segmenter'), opts) : undefined;
    if (this.perTask) {
      this.taskWeights[index] = Object.fromEntries(this.params.entries().map(([name, v]) => [name, tf.clone(v)]));
      this.activeTask = index;
    }

    for (const cls of task.classes) {
      await yieldToEventLoop();
      const learned = await this.selectAndCalibrate(index, cls, split.train.get(cls)!, split.validation.get(cls)!, rng.fork(`select-${cls}`), opts);
      this.classes.push(learned);
    }
    await this.consolidate(index, task.classes, split.train, opts);

    const tail = curve.losses.slice(-Math.max(1, Math.ceil(curve.losses.length / 10)));
    const memory = this.gpm.memoryReport();
    const record: TaskRecord = {
      index,
      classes: [...task.classes],
      steps: c.training.steps,
      trainSeconds: curve.seconds,
      finalLoss: tail.reduce((a, b) => a + b, 0) / tail.length,
      lossCurve: curve.sampled,
      projection,
      ...(curve.faults ? { faults: curve.faults } : {}),
      ...(segment ? { segmenterSeconds: segment.seconds, segmenterLoss: segment.finalLoss } : {}),
      basisRank: memory.reduce((a, m) => a + m.rank, 0),
      basisBytes: memory.reduce((a, m) => a + m.bytes, 0),
    };
    this.tasks.push(record);
    return record;
  }

  /** The learned class of that name, if any. */
  classOf(name: string): LearnedClass | undefined {
    return this.classes.find((c) => c.className === name);
  }

  /**
   * Names of the parameters that train on task `index` (all of them with per-task weights). With
   * shared weights, each model part under its own policy: the UNet's by its parameter groups
   * (`trainableParams`), the AMN's (under its scope) all on the first task and only its weights
   * later.
   */
  trainableNames(index: number): string[] {
    // The segmenter trains in its own phase (`trainSegmenter`), never with the diffusion loss.
    if (this.perTask) return this.params.names().filter((name) => !name.startsWith(`${SEGMENTER_SCOPE}.`));
    const phase = index === 0 ? 'first-task' : 'later-task';
    const unetNames = trainableParams(this.params, phase, { prefix: this.unet.prefix });
    const amnNames = this.amn
      ? this.params
          .infosList()
          .filter((i) => i.name.startsWith(`${AMN_SCOPE}.`) && (phase === 'first-task' || i.role === 'weight'))
          .map((i) => i.name)
      : [];
    return [...unetNames, ...amnNames];
  }

  /**
   * Train task `index`: its batches, its trainer (what trains, projected how) and the training
   * loop of @ofm/diffusion (`fit`: progress, abort, fault retry, snapshots), continued from
   * `opts.resume` when given.
   */
  private async train(
    index: number,
    images: Map<string, Float32Array[]>,
    projection: DetectorConfig['continual']['projection'],
    taskRng: Rng,
    opts: LearnOptions,
  ): Promise<{ losses: number[]; sampled: number[]; seconds: number; faults: number }> {
    const c = this.config;
    const classes = [...images.keys()];
    const trainer = this.makeTrainer({
      unet: this.unet,
      schedule: this.schedule,
      trainable: this.trainableNames(index),
      optimizer: { lr: index === 0 ? c.training.lr : (c.training.laterLr ?? c.training.lr), weightDecay: c.training.weightDecay },
      clipGradNorm: c.training.clipGradNorm,
      microBatch: c.training.microBatch,
      seed: taskRng.fork('trainer').seed,
    });
    const resume = opts.resume;
    if (resume) this.resumeTraining(resume, index, classes, trainer);
    // The batch stream and the dropout stream: continued from the snapshot, or fresh.
    const rng = resume ? Rng.fromState(resume.rng) : taskRng;
    const dropoutRng = resume ? Rng.fromState(resume.dropoutRng) : taskRng.fork('dropout');
    const losses: number[] = resume ? [...resume.losses] : [];
    const sampled: number[] = resume ? [...resume.sampled] : [];
    let faults = resume?.faults ?? 0;
    const secondsBefore = resume?.trainSeconds ?? 0;
    const lossEvery = Math.max(1, Math.floor(c.training.steps / 50));
    const policy = opts.snapshots;
    const snapshot = async (p: FitProgress) => {
      const snap: TrainSnapshot = {
        task: index,
        classes,
        step: p.done,
        steps: c.training.steps,
        losses: [...losses],
        sampled: [...sampled],
        faults,
        trainSeconds: secondsBefore + p.elapsed,
        rng: rng.state(),
        dropoutRng: dropoutRng.state(),
        weights: Object.fromEntries(this.params.entries().map(([name, v]) => [name, tf.clone(v)])),
        optimizer: trainer.state(),
      };
      try {
        await policy!.save(snap);
      } finally {
        tf.dispose([...Object.values(snap.weights), ...Object.values(snap.optimizer)]);
      }
    };
    try {
      const done = await fit(trainer, this.trainingBatches(images, rng, context(this.params, { training: true, rng: dropoutRng })), {
        steps: c.training.steps,
        start: resume?.step ?? 0,
        signal: opts.signal,
        maxConsecutiveFaults: opts.maxConsecutiveFaults,
        ...this.gpm.projectionHooks(projection),
        ...(policy ? { snapshots: { everySteps: policy.everySteps, everySeconds: policy.everySeconds, save: snapshot } } : {}),
        onStep: (result, p) => {
          losses.push(result.loss);
          if ((p.done - 1) % lossEvery === 0 || p.done === c.training.steps) sampled.push(result.loss);
          opts.onProgress?.({ phase: 'train', task: index, done: p.done, total: p.total, loss: result.loss, elapsed: p.elapsed });
        },
        onFault: (fault) => {
          faults += 1;
          opts.onFault?.({ ...fault, task: index });
        },
      });
      return { losses, sampled, seconds: secondsBefore + done.seconds, faults };
    } catch (e) {
      if (e instanceof FitFaultError) throw faultError({ ...e.fault, task: index }, trainer.optimizer.lr, c.training.clipGradNorm);
      throw e;
    } finally {
      trainer.dispose();
    }
  }

  /**
   * Train the task's segmenter (starting from the previous task's) on the task's training images,
   * each with synthetic anomalies drawn from its own class as the validation split draws them.
   */
  private async trainSegmenter(index: number, images: Map<string, Float32Array[]>, rng: Rng, opts: LearnOptions): Promise<{ seconds: number; finalLoss: number }> {
    const size = this.config.imageSize;
    const pool = [...images].flatMap(([, imgs]) => imgs.map((image) => ({ image, sameClass: imgs })));
    return trainSegmenter(
      this.params,
      pool.map((p) => p.image),
      size,
      this.config.segmenter,
      {
        rng,
        signal: opts.signal,
        anomaly: (i, image, r) => syntheticAnomaly(image, pool[i]!.sameClass, size, r, SEGMENTER_ANOMALY_MIX),
        onProgress: (p) => opts.onProgress?.({ phase: 'segment', task: index, done: p.done, total: p.total, loss: p.loss, elapsed: p.elapsed }),
      },
    );
  }

  /**
   * The endless batch stream of a task's training: each batch draws its images, synthetic
   * anomalies for the AMN's input, timesteps and crops from `rng`, and conditions the UNet on the
   * AMN's output for the corrupted images (`amnCtx` carries the dropout stream).
   */
  private *trainingBatches(images: Map<string, Float32Array[]>, rng: Rng, amnCtx: Ctx): Generator<FitBatch, never> {
    const c = this.config;
    const size = c.imageSize;
    const pool: { cls: string; image: Float32Array }[] = [];
    for (const [cls, imgs] of images) for (const image of imgs) pool.push({ cls, image });
    while (true) {
      const picks = Array.from({ length: c.training.batchSize }, () => pool[rng.int(pool.length)]!);
      const cleanData = picks.map((p) => p.image);
      let corruptedData = picks.map((p) =>
        this.amn && rng.uniform() < c.training.anomalyProbability ? syntheticAnomaly(p.image, images.get(p.cls)!, size, rng).image : p.image,
      );
      const t = Array.from({ length: picks.length }, () => rng.int(c.training.maxTimestep));
      let batchData = cleanData;
      const crop = c.training.cropSize ?? size;
      if (crop < size) {
        // The same window of the clean and the corrupted image.
        const corners = picks.map(() => [rng.int(size - crop + 1), rng.int(size - crop + 1)] as const);
        batchData = cleanData.map((img, i) => cropHwc(img, size, corners[i]![0], corners[i]![1], crop));
        corruptedData = corruptedData.map((img, i) => cropHwc(img, size, corners[i]![0], corners[i]![1], crop));
      }
      const clean = toModelBatch(batchData, crop);
      const corrupted = this.amn ? toModelBatch(corruptedData, crop) : null;
      let amnLoss: tf.Scalar | null = null;
      const amn = this.amn;
      yield {
        batch: clean,
        options: {
          t,
          control: amn
            ? (nctx) => {
                const slice = (x: tf.Tensor4D) => tf.slice(x, [nctx.start, 0, 0, 0], [nctx.end - nctx.start, -1, -1, -1]);
                const cond = amn.condition(amnCtx, slice(corrupted!), slice(clean));
                amnLoss = cond.loss;
                return cond.control;
              }
            : undefined,
          extraLoss: amn ? () => tf.mul(amnLoss!, c.training.amnWeight) as tf.Scalar : undefined,
        },
        dispose: () => corrupted?.dispose(),
      };
    }
  }

  /** Build a task's trainer. Subclasses may wrap or instrument it (tests inject faults here). */
  protected makeTrainer(options: DiffusionTrainerOptions): DiffusionTrainer {
    return new DiffusionTrainer(options);
  }

  /** Put a task's training back where a snapshot of it stood: weights and trainer state. */
  private resumeTraining(snapshot: TrainSnapshot, index: number, classes: string[], trainer: DiffusionTrainer): void {
    const c = this.config;
    if (snapshot.task !== index || snapshot.classes.join(',') !== classes.join(',') || snapshot.steps !== c.training.steps) {
      throw new DataError(
        `resume: the snapshot is of task ${snapshot.task + 1} (${snapshot.classes.join(',')}, ${snapshot.steps} steps), ` +
          `not of task ${index + 1} (${classes.join(',')}, ${c.training.steps} steps)`,
      );
    }
    const missing = this.params.names().filter((name) => !(name in snapshot.weights));
    if (missing.length) throw new DataError(`resume: the snapshot has no weight '${missing[0]}' (${missing.length} missing); it is of another model`);
    this.params.assign(snapshot.weights);
    trainer.loadState(snapshot.optimizer);
  }

  /** The AMN's control map for model-space images, or undefined without an AMN. */
  private control(x: tf.Tensor4D, ctx: Ctx = context(this.params)): tf.Tensor4D | undefined {
    return this.amn ? this.amn.forward(ctx, x) : undefined;
  }

  /** Reconstructions (HWC in [0, 1], as a tensor) of images in [0, 1]. */
  reconstructBatch(images01: tf.Tensor4D, tStart: number, tapCtx?: Ctx, sample = 0): tf.Tensor4D {
    return readSync(this.reconstructReads(images01, tStart, tapCtx, sample));
  }

  private *reconstructReads(images01: tf.Tensor4D, tStart: number, tapCtx?: Ctx, sample = 0): Reads<tf.Tensor4D> {
    const c = this.config;
    // Each image's noise is seeded by its own pixels (and the config seed and the sample index):
    // its reconstruction, map and score are the same whatever batch it is detected in, and
    // independent of the others'.
    const seeds = yield* imageSeedsReads(images01, c.seed + sample);
    return tf.tidy(() => {
      const x = tf.sub(tf.mul(images01, 2), 1) as tf.Tensor4D;
      const control = this.control(x, tapCtx);
      const recon = reconstruct(this.unet, this.schedule, x, {
        tStart,
        steps: c.reconstruction.steps,
        eta: c.reconstruction.eta,
        seeds,
        control,
        tap: tapCtx?.tap,
      });
      return tf.clipByValue(tf.div(tf.add(recon, 1), 2), 0, 1) as tf.Tensor4D;
    });
  }

  /**
   * Raw maps `[N, H, W]` and raw scores for images in [0, 1], reconstructed as `plan` says: at one
   * start timestep, or (fused) the mean over its start timesteps of each map standardised by that
   * start's normal statistics. The reconstruction kept is the first start timestep's.
   */
  private *rawMaps(
    images01: tf.Tensor4D,
    plan: StartPlan,
    keepRecon = false,
  ): Reads<{ maps: tf.Tensor3D; scores: Float32Array; recon?: tf.Tensor4D }> {
    const reduction = scoreReduction(this.config.map);
    const { maps: reconMaps, recon } = yield* this.reconstructionMaps(images01, plan, keepRecon);
    const maps = plan.segmenter ? this.mixSegmenter(reconMaps, this.segmenterMaps(images01), plan.segmenter) : reconMaps;
    return { maps, scores: yield* imageScoresReads(maps, reduction), recon };
  }

  /** The reconstruction maps of {@link rawMaps}, before the segmenter's map is mixed in. */
  private *reconstructionMaps(images01: tf.Tensor4D, plan: StartPlan, keepRecon: boolean): Reads<{ maps: tf.Tensor3D; recon?: tf.Tensor4D }> {
    if (!plan.fused) return yield* this.sampleMaps(images01, plan.tStart, keepRecon);
    let sum: tf.Tensor3D | undefined;
    let kept: tf.Tensor4D | undefined;
    for (const [k, f] of plan.fused.entries()) {
      const { maps, recon } = yield* this.sampleMaps(images01, f.tStart, keepRecon && k === 0);
      if (recon) kept = recon;
      sum = addStandardised(sum, maps, f);
    }
    return { maps: meanOfSum(sum!, plan.fused.length), recon: kept };
  }

  /** The segmenter's anomaly probabilities `[N, H, W]`, smoothed as the reconstruction map is (`map.blurSigma`). */
  private segmenterMaps(images01: tf.Tensor4D): tf.Tensor3D {
    return tf.tidy(() => {
      const p = segmenterMaps(this.params, images01, this.config.segmenter.channels);
      return tf.squeeze(gaussianBlur(tf.expandDims(p, 3) as tf.Tensor4D, this.config.map.blurSigma), [3]) as tf.Tensor3D;
    });
  }

  /** The mixed map: both maps standardised by the class's normal statistics, weighted by `segmenter.weight`; disposes both inputs. */
  private mixSegmenter(recon: tf.Tensor3D, seg: tf.Tensor3D, s: SegmenterStats): tf.Tensor3D {
    const w = this.config.segmenter.weight;
    const mixed = tf.tidy(() =>
      tf.add(tf.mul(tf.div(tf.sub(recon, s.reconMean), s.reconStd), 1 - w), tf.mul(tf.div(tf.sub(seg, s.segmenterMean), s.segmenterStd), w)),
    ) as tf.Tensor3D;
    tf.dispose([recon, seg]);
    return mixed;
  }

  /**
   * Raw maps `[N, H, W]` for images in [0, 1] at one start timestep: the mean of the maps of
   * `reconstruction.samples` reconstructions with independent noise (the reconstruction kept is
   * the first).
   */
  private *sampleMaps(images01: tf.Tensor4D, tStart: number, keepRecon: boolean): Reads<{ maps: tf.Tensor3D; recon?: tf.Tensor4D }> {
    const samples = this.config.reconstruction.samples ?? 1;
    const mapOptions = { aggregate: this.config.map.aggregate, blurSigma: this.config.map.blurSigma };
    const recon = yield* this.reconstructReads(images01, tStart);
    let maps = anomalyMap(this.extractor, images01, recon, mapOptions);
    for (let k = 1; k < samples; k++) {
      const other = yield* this.reconstructReads(images01, tStart, undefined, k);
      const sum = tf.tidy(() => tf.add(maps, anomalyMap(this.extractor, images01, other, mapOptions)) as tf.Tensor3D);
      tf.dispose([maps, other]);
      maps = sum;
    }
    if (samples > 1) {
      const mean = tf.div(maps, samples) as tf.Tensor3D;
      maps.dispose();
      maps = mean;
    }
    if (!keepRecon) {
      recon.dispose();
      return { maps };
    }
    return { maps, recon };
  }

  private async selectAndCalibrate(
    index: number,
    cls: string,
    train: Float32Array[],
    validation: Float32Array[],
    rng: Rng,
    opts: LearnOptions,
  ): Promise<LearnedClass> {
    const c = this.config;
    const size = c.imageSize;
    // The validation set: held-out normal images, and the same images with synthetic anomalies.
    const anomalous = validation.map((img) => {
      let a = syntheticAnomaly(img, train, size, rng);
      for (let attempt = 0; attempt < 5 && a.area === 0; attempt++) a = syntheticAnomaly(img, train, size, rng);
      return a;
    });
    const images = [...validation, ...anomalous.map((a) => a.image)];
    const labels = [...validation.map(() => 0), ...anomalous.map((a) => (a.area > 0 ? 1 : 0))];
    const pixelLabels = new Uint8Array(images.length * size * size);
    anomalous.forEach((a, i) => pixelLabels.set(a.mask, (validation.length + i) * size * size));

    const selection: LearnedClass['selection'] = [];
    const normals: { scores: Float32Array; mapValues: Float32Array }[] = [];
    const fused: FusedStart[] = [];
    const started = Date.now();
    for (const [k, tStart] of c.reconstruction.tStartCandidates.entries()) {
      throwIfAborted(opts.signal);
      const { scores, mapValues } = await this.scoreImages(images, { tStart }, opts.signal);
      selection.push({ tStart, imageAuroc: auroc(scores, labels), pixelAuroc: auroc(mapValues, pixelLabels) });
      const normal = { scores: scores.slice(0, validation.length), mapValues: mapValues.slice(0, validation.length * size * size) };
      normals.push(normal);
      fused.push(fusedStart(tStart, normal.mapValues));
      opts.onProgress?.({
        phase: 'select',
        task: index,
        done: k + 1,
        total: c.reconstruction.tStartCandidates.length,
        elapsed: (Date.now() - started) / 1000,
      });
    }
    const chosen = chooseStartTimestep(selection, labels);
    const descriptors = await readAsync(this.describe(train));
    const plan: StartPlan = c.reconstruction.fuse === false ? { tStart: selection[chosen]!.tStart } : { tStart: selection[chosen]!.tStart, fused };
    // The calibration is of the maps detection will make: the chosen start's, or the fused ones,
    // combined from the per-start maps of the held-out normals already made above.
    const reconNormal = plan.fused ? await this.fuseNormals(normals, fused, validation.length) : normals[chosen]!;
    // With the segmenter, the calibration is of the mixed map of the same held-out normals.
    const mixed = c.segmenter.enabled ? await this.mixNormals(validation, reconNormal.mapValues) : undefined;
    if (mixed) plan.segmenter = mixed.stats;
    const normal = mixed ?? reconNormal;
    return {
      className: cls,
      task: index,
      ...plan,
      selection,
      calibration: fitClassCalibration(cls, descriptors, normal.scores, normal.mapValues),
      trainImages: train.length,
      validationImages: validation.length,
    };
  }

  /**
   * The segmenter's statistics on held-out normal images whose reconstruction maps are
   * `reconValues`, and the scores and flattened maps of their mixed maps (as {@link rawMaps} mixes them).
   */
  private async mixNormals(images: Float32Array[], reconValues: Float32Array): Promise<{ stats: SegmenterStats; scores: Float32Array; mapValues: Float32Array }> {
    const size = this.config.imageSize;
    const x = to01Batch(images, size);
    const seg = this.segmenterMaps(x);
    x.dispose();
    const r = meanStd(reconValues);
    const g = meanStd((await seg.data()) as Float32Array);
    const stats: SegmenterStats = { reconMean: r.mean, reconStd: r.std, segmenterMean: g.mean, segmenterStd: Math.max(g.std, SEGMENTER_STD_FLOOR) };
    const maps = this.mixSegmenter(tf.tensor3d(reconValues, [images.length, size, size]), seg, stats);
    try {
      return { stats, scores: await readAsync(imageScoresReads(maps, scoreReduction(this.config.map))), mapValues: (await maps.data()) as Float32Array };
    } finally {
      maps.dispose();
    }
  }

  /** Scores and flattened maps of `n` images fused from their per-start raw maps, as {@link rawMaps} fuses them. */
  private async fuseNormals(
    perStart: readonly { mapValues: Float32Array }[],
    fused: readonly FusedStart[],
    n: number,
  ): Promise<{ scores: Float32Array; mapValues: Float32Array }> {
    const size = this.config.imageSize;
    let sum: tf.Tensor3D | undefined;
    fused.forEach((f, k) => {
      sum = addStandardised(sum, tf.tensor3d(perStart[k]!.mapValues, [n, size, size]), f);
    });
    const maps = meanOfSum(sum!, fused.length);
    try {
      return { scores: await readAsync(imageScoresReads(maps, scoreReduction(this.config.map))), mapValues: (await maps.data()) as Float32Array };
    } finally {
      maps.dispose();
    }
  }

  /**
   * Raw scores and flattened raw maps of images (HWC [0, 1]) at one start timestep, batched; Ctrl-C
   * handlers run and `signal` is checked between batches.
   */
  private async scoreImages(images: Float32Array[], plan: StartPlan, signal?: AbortSignal): Promise<{ scores: Float32Array; mapValues: Float32Array }> {
    const size = this.config.imageSize;
    const scores = new Float32Array(images.length);
    const mapValues = new Float32Array(images.length * size * size);
    const b = this.config.inferenceBatch;
    for (let i = 0; i < images.length; i += b) {
      await yieldToEventLoop();
      throwIfAborted(signal);
      const chunk = images.slice(i, i + b);
      const x = to01Batch(chunk, size);
      const { maps, scores: s } = await readAsync(this.rawMaps(x, plan));
      scores.set(s, i);
      mapValues.set(await maps.data(), i * size * size);
      maps.dispose();
      x.dispose();
    }
    return { scores, mapValues };
  }

  private *describe(images: Float32Array[]): Reads<Float32Array[]> {
    const out: Float32Array[] = [];
    const b = 64;
    for (let i = 0; i < images.length; i += b) {
      const x = to01Batch(images.slice(i, i + b), this.config.imageSize);
      try {
        out.push(...(yield* describeImagesReads(x)));
      } finally {
        x.dispose();
      }
    }
    return out;
  }

  private async consolidate(index: number, classes: string[], train: Map<string, Float32Array[]>, opts: LearnOptions): Promise<void> {
    // Without projection the bases would never be used: skip the collection.
    if (this.perTask || this.config.continual.projection === 'none') return;
    const c = this.config;
    const started = Date.now();
    const tapCtx = context(this.params, { tap: this.gpm.tapFn() });
    let done = 0;
    for (const cls of classes) {
      const learned = this.classOf(cls)!;
      const imgs = train.get(cls)!.slice(0, c.continual.collectImages);
      for (let i = 0; i < imgs.length; i += c.inferenceBatch) {
        await yieldToEventLoop();
        throwIfAborted(opts.signal);
        const x = to01Batch(imgs.slice(i, i + c.inferenceBatch), c.imageSize);
        for (const tStart of learned.fused?.map((f) => f.tStart) ?? [learned.tStart]) this.reconstructBatch(x, tStart, tapCtx).dispose();
        x.dispose();
        done += Math.min(c.inferenceBatch, imgs.length - i);
        opts.onProgress?.({
          phase: 'consolidate',
          task: index,
          done,
          total: classes.length * Math.min(c.continual.collectImages, imgs.length),
          elapsed: (Date.now() - started) / 1000,
        });
      }
    }
    this.gpm.consolidate();
  }

  /**
   * Detect anomalies in images (HWC RGB in [0, 1] at the model size), with no task id: each image
   * is routed to the nearest learned class for its reconstruction settings, weights (per-task) and
   * calibration. `className` skips the routing: every image is taken as that class.
   */
  detect(images: Float32Array[], opts: { reconstructions?: boolean; className?: string } = {}): Detection[] {
    return readSync(this.detectReads(images, opts));
  }

  /**
   * {@link ContinualDetector.detect} reading results asynchronously: the same detections, on every
   * backend (WebGPU in Node.js can only read asynchronously).
   */
  detectAsync(images: Float32Array[], opts: { reconstructions?: boolean; className?: string } = {}): Promise<Detection[]> {
    return readAsync(this.detectReads(images, opts));
  }

  private *detectReads(images: Float32Array[], opts: { reconstructions?: boolean; className?: string }): Reads<Detection[]> {
    if (this.classes.length === 0) throw new Error('the detector has learned no class yet; learn a task first');
    const given = opts.className === undefined ? undefined : this.classOf(opts.className);
    if (opts.className !== undefined && !given) {
      throw new ConfigError(`detect: class '${opts.className}' was never learned (learned: ${this.classNames().join(', ')})`);
    }
    const size = this.config.imageSize;
    for (const img of images) {
      if (img.length !== size * size * 3) {
        throw new DataError(`detect: images must be ${size}x${size} RGB (${size * size * 3} values), got ${img.length}`);
      }
    }
    const routed = given ? images.map(() => given) : (yield* this.routeIndices(images)).map((k) => this.classes[k]!);
    const results = new Array<Detection>(images.length);
    // Group by the weights and start timestep the routed class needs, so each group reconstructs in batches.
    // (Fused classes standardise with their own statistics: one group per class.)
    const groups = new Map<string, { task: number; plan: StartPlan; indices: number[] }>();
    routed.forEach((cls, i) => {
      const task = this.perTask ? cls.task : -1;
      const key = cls.fused || cls.segmenter ? `${task}:${cls.className}` : `${task}:${cls.tStart}`;
      const g = groups.get(key) ?? { task, plan: cls, indices: [] };
      g.indices.push(i);
      groups.set(key, g);
    });
    const b = this.config.inferenceBatch;
    for (const { task, plan, indices } of groups.values()) {
      this.useTaskWeights(task);
      for (let k = 0; k < indices.length; k += b) {
        const idx = indices.slice(k, k + b);
        const x = to01Batch(idx.map((i) => images[i]!), size);
        const { maps, scores, recon } = yield* this.rawMaps(x, plan, opts.reconstructions);
        const mapData = (yield maps) as Float32Array;
        const reconData = recon ? ((yield recon) as Float32Array) : undefined;
        idx.forEach((i, j) => {
          const cal = routed[i]!.calibration;
          const raw = mapData.subarray(j * size * size, (j + 1) * size * size);
          const map = new Float32Array(raw.length);
          for (let p = 0; p < raw.length; p++) map[p] = (raw[p]! - cal.pixelMean) / cal.pixelStd;
          results[i] = {
            score: (scores[j]! - cal.scoreMean) / cal.scoreStd,
            rawScore: scores[j]!,
            map,
            className: routed[i]!.className,
            reconstruction: reconData ? Float32Array.from(reconData.subarray(j * size * size * 3, (j + 1) * size * size * 3)) : undefined,
          };
        });
        maps.dispose();
        recon?.dispose();
        x.dispose();
      }
    }
    return results;
  }

  /** The learned class each image (HWC RGB in [0, 1] at the model size) is routed to, by name. */
  route(images: Float32Array[]): string[] {
    if (this.classes.length === 0) throw new Error('the detector has learned no class yet; learn a task first');
    return readSync(this.routeIndices(images)).map((k) => this.classes[k]!.className);
  }

  private *routeIndices(images: Float32Array[]): Reads<number[]> {
    const calibrations = this.classes.map((c) => c.calibration);
    return routeImages(yield* this.describe(images), calibrations);
  }

  /**
   * Evaluate on labelled test images by class name, with no task id: every image goes through
   * {@link detect}; metrics per class and averaged per task, and the routing accuracy.
   */
  evaluate(tests: ReadonlyMap<string, readonly TestImage[]>): Evaluation {
    return evaluateDetector(this, tests);
  }

  /**
   * Release the model's parameters, the projection memory and the feature extractor (a
   * caller-supplied one too); the detector is unusable afterwards.
   */
  dispose(): void {
    for (const weights of this.taskWeights) tf.dispose(Object.values(weights));
    this.taskWeights.length = 0;
    this.gpm.dispose();
    this.params.dispose();
    this.extractor.dispose?.();
  }
}

/** The error that stops training after `fault`, the last of too many refused steps in a row. */
function faultError(fault: TrainingFault, lr: number, clip: number): TrainingFaultError {
  const at = fault.layer ? `, first non-finite ${fault.kind === 'update' ? 'weight' : 'gradient'} in ${fault.layer}` : '';
  return new TrainingFaultError(
    fault,
    `task ${fault.task + 1}, step ${fault.step}: ${fault.consecutive} steps in a row had non-finite values (last: ${fault.kind}, ` +
      `loss ${fault.loss}${at}); training stopped with the last good weights and nothing non-finite was saved. ` +
      `Lower training.lr (now ${lr}) or training.clipGradNorm (now ${clip}) in the detector config (ofm train --config FILE), ` +
      'or check the training images',
  );
}


/**
 * Which start timestep a class keeps, from the validation AUROCs of every candidate: the smallest
 * timestep whose image + pixel AUROC is within one standard error (of the best candidate's image
 * AUROC, Hanley-McNeil) of the best. On a validation split of a few images the differences between
 * candidates are mostly noise, and a lower start timestep keeps the reconstruction closer to the
 * input: measured on the quick start, it held image AUROC through later tasks where a higher one
 * drifted (packages/detector/README.md, "Start timestep"). Returns an index into `selection`.
 */
export function chooseStartTimestep(
  selection: readonly { tStart: number; imageAuroc: number; pixelAuroc: number }[],
  labels: readonly number[],
): number {
  const finiteOr = (v: number) => (Number.isFinite(v) ? v : 0.5);
  const combined = selection.map((s) => finiteOr(s.imageAuroc) + finiteOr(s.pixelAuroc));
  const best = combined.indexOf(Math.max(...combined));
  const positives = labels.filter((l) => l === 1).length;
  const negatives = labels.length - positives;
  const tolerance =
    positives > 0 && negatives > 0 ? aurocStandardError(finiteOr(selection[best]!.imageAuroc), positives, negatives) : 0;
  let chosen = best;
  selection.forEach((s, k) => {
    if (combined[k]! >= combined[best]! - tolerance && s.tStart < selection[chosen]!.tStart) chosen = k;
  });
  return chosen;
}

/** One noise seed per image of `[N, H, W, C]`: FNV-1a over its float32 bits, mixed with `seed`. */
function* imageSeedsReads(images: tf.Tensor4D, seed: number): Reads<number[]> {
  const bits = new Uint32Array(((yield images) as Float32Array).slice().buffer);
  const per = bits.length / images.shape[0];
  return Array.from({ length: images.shape[0] }, (_, i) => {
    let h = (0x811c9dc5 ^ (seed >>> 0)) >>> 0;
    for (let k = i * per; k < (i + 1) * per; k++) h = Math.imul(h ^ bits[k]!, 0x01000193) >>> 0;
    return h;
  });
}

/** The checkpoint name of task `index`'s copy of parameter `name` (per-task weights). */
export function taskWeightName(index: number, name: string): string {
  return `tasks.${index}.${name}`;
}

/** Split each class's images into train and validation, deterministically. */
function splitValidation(
  task: TaskImages,
  opts: DetectorConfig['validation'],
  rng: Rng,
): { train: Map<string, Float32Array[]>; validation: Map<string, Float32Array[]> } {
  const train = new Map<string, Float32Array[]>();
  const validation = new Map<string, Float32Array[]>();
  for (const cls of task.classes) {
    const imgs = task.images.get(cls)!;
    const order = rng.fork(cls).permutation(imgs.length);
    // Keep at least half for training, at least 2 for validation.
    const nVal = Math.min(Math.floor(imgs.length / 2), Math.max(2, opts.minImages, Math.round(opts.fraction * imgs.length)));
    validation.set(cls, Array.from(order.slice(0, nVal), (i) => imgs[i]!));
    train.set(cls, Array.from(order.slice(nVal), (i) => imgs[i]!));
  }
  return { train, validation };
}

/** The shares of the three kinds of synthetic anomaly (they sum to 1). */
interface AnomalyMix {
  nsa: number;
  cutPaste: number;
  perlin: number;
}

/** The mix the AMN's inputs and the validation split draw from. */
const ANOMALY_MIX: AnomalyMix = { nsa: 0.5, cutPaste: 0.25, perlin: 0.25 };

/**
 * The segmenter's mix: more Perlin blobs (texture-shaped regions of pasted colour), less NSA and
 * cut-paste. With the segmenter's He initialisation it scored higher on real photographs
 * (docs/benchmarks.md, "The segmenter's initialisation and anomaly mix").
 */
const SEGMENTER_ANOMALY_MIX: AnomalyMix = { nsa: 0.4, cutPaste: 0.2, perlin: 0.4 };

/** A synthetic anomaly on an image: NSA from another image of the class, cut-paste or Perlin, drawn by `mix`. */
function syntheticAnomaly(image: Float32Array, sameClass: Float32Array[], size: number, rng: Rng, mix: AnomalyMix = ANOMALY_MIX): SyntheticAnomaly {
  const rgb = (data: Float32Array): RgbImage => ({ data, width: size, height: size, channels: 3 });
  const options = { rng, cleanProbability: 0, areaRange: [0.005, 0.08] as const };
  const u = rng.uniform();
  if (u < mix.nsa && sameClass.length > 1) {
    let source = sameClass[rng.int(sameClass.length)]!;
    if (source === image) source = sameClass[(sameClass.indexOf(image) + 1) % sameClass.length]!;
    return nsaAnomaly(rgb(image), rgb(source), options);
  }
  return u < mix.nsa + mix.cutPaste ? cutPasteAnomaly(rgb(image), options) : perlinAnomaly(rgb(image), options);
}

/** The `crop` x `crop` window at row `top`, column `left` of an HWC RGB image of side `size`. */
function cropHwc(image: Float32Array, size: number, top: number, left: number, crop: number): Float32Array {
  const out = new Float32Array(crop * crop * 3);
  for (let y = 0; y < crop; y++) out.set(image.subarray(((top + y) * size + left) * 3, ((top + y) * size + left + crop) * 3), y * crop * 3);
  return out;
}

/** Stack HWC [0, 1] images into a `[N, H, W, 3]` tensor in [0, 1]. */
export function to01Batch(images: Float32Array[], size: number): tf.Tensor4D {
  const data = new Float32Array(images.length * size * size * 3);
  images.forEach((img, i) => data.set(img, i * size * size * 3));
  return tf.tensor4d(data, [images.length, size, size, 3]);
}

/** Stack HWC [0, 1] images into the model's `[N, H, W, 3]` in [-1, 1]. */
function toModelBatch(images: Float32Array[], size: number): tf.Tensor4D {
  return tf.tidy(() => tf.sub(tf.mul(to01Batch(images, size), 2), 1) as tf.Tensor4D);
}
