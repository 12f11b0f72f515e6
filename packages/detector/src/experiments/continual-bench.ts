/**
 * The continual benchmark: One-for-More against its baselines and ablations over one task
 * sequence, as a single table (the paper's method table).
 *
 * Every (method, seed) pair is an independent run of the continual pipeline (`runContinual`: learn
 * each task, evaluate every class seen after it; the reference `knn` runs `runReference`, with the
 * same data, evaluation and report). {@link planContinualBenchmark} resolves every run's config,
 * {@link runBenchmarkRun} runs one, {@link buildBenchJson} merges the finished results into the
 * table and {@link formatBenchMarkdown} renders it. {@link runContinualBenchmark} does all of it
 * in this process, one run after another; `ofm bench continual` runs each in its own child process.
 *
 * Importing this module loads no tensors: the model packages (and tfjs) are loaded when a run
 * starts, so a command line can list the methods at once.
 *
 * Output layout (the CLI's and {@link runContinualBenchmark}'s): `<out>/plan.json`,
 * `<out>/runs/<id>.json` (a run's result), `<out>/runs/<id>/` (its checkpoint with the usual
 * report), `<out>/benchmark.md` and `<out>/benchmark.json`.
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import type { AnomalyDataset } from '@ofm/datasets';
import { finalAverage, forgetting } from '@ofm/metrics';
import type { DetectorConfig, DetectorConfigInput } from '../config/config';
import type { ContinualDetector } from '../model/detector';
import type { ContinualReport } from '../report/report-format';
import type { RunProgress } from '../run/continual';
import { ExperimentError } from './errors';

/** One layer's consolidation record for one task (from the detector's GPM memory report). */
export type LayerBasisRecord = ReturnType<ContinualDetector['gpm']['memoryReport']>[number]['history'][number];

/** What a method changes in the detector config, and what it stands for. */
export interface BenchMethod {
  /** One line for the table's method list and `ofm bench continual --help`. */
  description: string;
  /** Config groups merged over the user's config (one level deep, as `resolveDetectorConfig` does). */
  config: DetectorConfigInput;
  /** Learn all classes of the sequence as one task (with the steps of the whole sequence). */
  joint?: boolean;
  /**
   * A reference method instead of the model: `'knn'` runs `PatchKnnDetector` through `runReference`
   * (no training; the config gives it the image size, seed and test batch only).
   */
  reference?: 'knn';
}

/** A plain condition branch: no neighbour mask and no feature-reconstruction loss (not an AMN). */
const PLAIN_CONDITION = { amn: { useMask: false }, training: { amnWeight: 0 } } satisfies DetectorConfigInput;

/**
 * The methods of the table. Every method but `ofm` (the detector defaults: per-task weights) shares
 * one set of weights across tasks. `gpm` and `ofm-noamn` share the plain condition, `ofm-noisvd` and
 * `ofm-shared` the AMN, so {gpm, ofm-noamn} and {ofm-noisvd, ofm-shared} each differ only in the
 * factoriser.
 */
export const BENCH_METHODS = {
  finetune: {
    description: 'the same model (AMN), shared weights without gradient projection: shows catastrophic forgetting',
    config: { continual: { weights: 'shared', projection: 'none' } },
  },
  gpm: {
    description: "gradient projection with the naive representation matrices (every collected row kept, one SVD per task: the original GPM), plain condition branch (no neighbour mask, no AMN loss)",
    config: { ...PLAIN_CONDITION, continual: { weights: 'shared', factorizer: 'naive' } },
  },
  ofm: {
    description: 'the detector defaults: AMN and segmenter, per-task weights (each task trains from the previous one and keeps its copy; routing picks it), no forgetting by construction',
    config: {},
  },
  'ofm-shared': { description: 'One-for-More as published: shared weights, gradient projection + iSVD + AMN', config: { continual: { weights: 'shared' } } },
  joint: {
    description: 'all classes learned as one task with the steps of the whole sequence: the upper bound',
    config: { continual: { weights: 'shared', projection: 'none' } },
    joint: true,
  },
  'ofm-noamn': {
    description: 'ofm-shared without the AMN: plain condition branch (no neighbour mask, no AMN loss)',
    config: { ...PLAIN_CONDITION, continual: { weights: 'shared' } },
  },
  'ofm-noisvd': {
    description: 'ofm-shared with the naive representation matrices instead of iSVD',
    config: { continual: { weights: 'shared', factorizer: 'naive' } },
  },
  knn: {
    description: 'PatchCore-style patch memory bank on filter-bank features; stores features of every class (not continual); reference',
    config: {},
    reference: 'knn',
  },
} satisfies Record<string, BenchMethod>;

/** The name of a method of {@link BENCH_METHODS}. */
export type BenchMethodName = keyof typeof BENCH_METHODS;
/** Every method of {@link BENCH_METHODS}, in table order. */
export const BENCH_METHOD_NAMES = Object.keys(BENCH_METHODS) as BenchMethodName[];

/** The metrics of the table: final averages over all classes, each with its forgetting measure. */
export const BENCH_METRICS = ['image_auroc', 'pixel_auroc', 'pixel_ap', 'pixel_aupro'] as const;
/** A metric of {@link BENCH_METRICS}. */
export type BenchMetric = (typeof BENCH_METRICS)[number];

/** The numbers one run contributes to the table (null where undefined, e.g. forgetting of one task). */
export const BENCH_RUN_KEYS = [
  ...BENCH_METRICS,
  ...BENCH_METRICS.map((m) => `${m}_forgetting` as const),
  'basis_bytes',
  'representation_peak_bytes',
  'representation_matrix_bytes',
  'seconds',
  'cpu_seconds',
] as const;
/** A key of {@link BENCH_RUN_KEYS}. */
export type BenchRunKey = (typeof BENCH_RUN_KEYS)[number];

/** Where a benchmark's images come from (the CLI's `--data`, `--format` and folder options), as recorded in its files. */
export interface BenchData {
  /** Dataset root. */
  data: string;
  /** Dataset layout: `mvtec`, `visa` or `folder`. */
  format: string;
  /** Folder format: normal images (default `<data>/normal`). */
  normalDir?: string;
  /** Folder format: anomalous test images (default `<data>/abnormal`). */
  abnormalDir?: string;
  /** Folder format: masks named like the anomalous images (default `<data>/mask`). */
  maskDir?: string;
}

/** One planned run: everything a run needs, resolved in advance. */
export interface PlannedRun {
  /** `<method>-seed<seed>`: the name of its files under `<out>/runs/`. */
  id: string;
  method: BenchMethodName;
  seed: number;
  /** The class names of each task (a joint run has one task with every class). */
  tasks: string[][];
  /** The resolved detector config of the run (joint: the steps of the whole sequence). */
  config: DetectorConfig;
}

/** `<out>/plan.json`. */
export interface BenchPlan {
  tool: 'ofm bench continual';
  version: 1;
  /** The command line that made the plan (without `ofm`). */
  argv: string[];
  data: BenchData;
  /** The `--setting` name or `--tasks` spec. */
  sequence: string;
  tasks: string[][];
  /** The backend every run asks for (absent: the default). */
  backend?: string;
  runs: PlannedRun[];
}

/** `<out>/runs/<id>.json`: one run's result. */
export type RunResult = Omit<PlannedRun, 'config'> & {
  config: DetectorConfig;
  data: BenchData;
  backend: string;
  tfjs_version: string;
  threads: number | null;
  checkpoint: string;
  classes: string[];
  /** Per task: classes, training seconds, bases after it, representation memory while it was collected. */
  per_task: {
    classes: string[];
    /** Wall time of the task (data loading, training, selection, consolidation, evaluation, saving). */
    seconds: number | null;
    /** CPU time of the run's process over the same span (user + system). */
    cpu_seconds: number | null;
    train_seconds: number;
    /** Wall time of the evaluation of every class seen after the task (test split). */
    evaluate_seconds: number | null;
    /** GPM bases held after the task (`knn`: its feature banks). */
    basis_bytes: number;
    /** Null for `knn`, which collects no representations. */
    representation_peak_bytes: number | null;
    representation_matrix_bytes: number | null;
  }[];
  /** `[afterTask][class]` of each metric, as in the run's report. */
  class_matrices: Record<BenchMetric, (number | null)[][]>;
} & Record<BenchRunKey, number | null>;

/** One row of the table: the mean (and sample std, null for one run) of every run key over seeds. */
export type BenchRow = { method: BenchMethodName; description: string; runs: number; seeds: number[] } & Record<BenchRunKey, number | null> &
  Record<`${BenchRunKey}_std`, number | null>;

/** One comparison the paper's claims rest on, with its bar. */
export interface BenchComparison {
  claim: string;
  /** The measured number (points or %), null when undefined. */
  value: number | null;
  bar: string;
  /** Whether `value` meets the bar; null when undefined. */
  meets: boolean | null;
  detail: string;
}

/** `<out>/benchmark.json`. */
export interface BenchJson {
  tool: 'ofm bench continual';
  version: 1;
  date: string;
  command: string;
  machine: { cpu: string | null; cpus: number; total_memory_bytes: number; node: string; platform: string; backends: string[]; tfjs_version: string | null; threads_per_run: number | null; jobs: number };
  data: BenchData;
  sequence: string;
  tasks: string[][];
  methods: BenchMethodName[];
  seeds: number[];
  /** The resolved config of the first method's first run; each run's own config is in its result file. */
  config: DetectorConfig | null;
  complete: boolean;
  rows: BenchRow[];
  comparisons: BenchComparison[];
  runs: {
    id: string;
    method: BenchMethodName;
    seed: number;
    status: 'done' | 'failed' | 'pending';
    result: string;
    seconds: number | null;
    cpu_seconds: number | null;
    error?: string;
  }[];
}

/**
 * Merge config inputs group by group, later ones winning (groups one level deep, arrays and
 * scalars replaced), as `resolveDetectorConfig` merges a config over the defaults.
 */
export function mergeConfigInputs(...inputs: DetectorConfigInput[]): DetectorConfigInput {
  const out: Record<string, unknown> = {};
  for (const input of inputs) {
    for (const [key, value] of Object.entries(input)) {
      const prev = out[key];
      const isGroup = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
      out[key] = isGroup(prev) && isGroup(value) ? { ...(prev as object), ...(value as object) } : value;
    }
  }
  return out as DetectorConfigInput;
}

/** The config input of one run: the user's config, the method's changes, the seed. */
export function methodConfigInput(base: DetectorConfigInput, method: BenchMethodName, seed: number): DetectorConfigInput {
  return mergeConfigInputs(base, BENCH_METHODS[method].config, { seed });
}

/** Options of {@link planContinualBenchmark}. */
export interface BenchPlanOptions {
  /** The class names of each task, in learning order. */
  tasks: string[][];
  /** Where the images come from (recorded in the plan and every result). */
  data: BenchData;
  /** The user's config, shared by every method (partial; defaults fill the rest). */
  base?: DetectorConfigInput;
  /** Methods to run, in table order (default: all of {@link BENCH_METHOD_NAMES}). */
  methods?: BenchMethodName[];
  /** Every method runs once per seed (default: the seed of the resolved `base`). */
  seeds?: number[];
  /** Names the sequence in the table (default: the tasks as `a,b|c`). */
  sequence?: string;
  /** The backend the runs ask for (recorded; {@link runContinualBenchmark} uses the current one). */
  backend?: string;
  /** The command line to record in the table (default none). */
  argv?: string[];
  /** Names the config in validation errors (default `'detector config'`). */
  configSource?: string;
}

/**
 * Resolve every (method, seed) run of a benchmark: each run's config is the user's config with the
 * method's changes and the seed, validated by `resolveDetectorConfig` (whose error it throws); a
 * joint method learns one task of every class with the steps of the whole sequence. Throws an
 * {@link ExperimentError} (`'unknown-method'`) for a method name not in {@link BENCH_METHODS}.
 */
export async function planContinualBenchmark(opts: BenchPlanOptions): Promise<BenchPlan> {
  const { resolveDetectorConfig } = await import('../config/config');
  const base = opts.base ?? {};
  const methods = opts.methods ?? BENCH_METHOD_NAMES;
  const unknown = methods.filter((m) => !(BENCH_METHOD_NAMES as string[]).includes(m));
  if (unknown.length > 0) {
    throw new ExperimentError('unknown-method', `unknown method ${unknown.map((u) => `'${u}'`).join(', ')}; choose from ${BENCH_METHOD_NAMES.join(', ')}`);
  }
  const source = opts.configSource ?? 'detector config';
  const seeds = opts.seeds ?? [resolveDetectorConfig(base, source).seed];
  const { tasks } = opts;
  const runs: PlannedRun[] = methods.flatMap((method) =>
    seeds.map((seed) => {
      const joint = (BENCH_METHODS[method] as BenchMethod).joint === true;
      const config = resolveDetectorConfig(methodConfigInput(base, method, seed), source);
      if (joint) config.training.steps *= tasks.length;
      return { id: `${method}-seed${seed}`, method, seed, tasks: joint ? [tasks.flat()] : tasks, config };
    }),
  );
  return {
    tool: 'ofm bench continual',
    version: 1,
    argv: opts.argv ?? [],
    data: opts.data,
    sequence: opts.sequence ?? tasks.map((t) => t.join(',')).join('|'),
    tasks,
    backend: opts.backend,
    runs,
  };
}

/** `<out>/runs/<id>.json`: where a run's result is kept. */
export function benchRunResultPath(out: string, id: string): string {
  return join(out, 'runs', `${id}.json`);
}

/** Write a file atomically (temp file, then rename), so a reader never sees half of it. */
export function writeFileAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

/** Write the table as `<out>/benchmark.json` and `<out>/benchmark.md` (each atomically). */
export function writeBenchmarkFiles(out: string, table: BenchJson): void {
  writeFileAtomic(join(out, 'benchmark.json'), `${JSON.stringify(table, null, 2)}\n`);
  writeFileAtomic(join(out, 'benchmark.md'), `${formatBenchMarkdown(table)}\n`);
}

/** CPU time of this process so far (user + system), in seconds. */
function cpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/** The numbers {@link summariseRun} reads from a run's report and memory. */
export type RunSummary = ReturnType<typeof summariseRun>;

/** One method's learning and evaluation over the run's tasks, summarised; `dispose` releases its model. */
interface MethodRunner {
  run(opts: { dataset: AnomalyDataset; out: string; signal?: AbortSignal; onProgress: (p: RunProgress) => void }): Promise<RunSummary>;
  dispose(): void;
}

/** The model's methods: the continual pipeline of `ofm train`, summarised from its report and GPM memory. */
async function modelRunner(run: PlannedRun): Promise<MethodRunner> {
  const [{ ContinualDetector }, { runContinual }] = await Promise.all([import('../model/detector'), import('../run/continual')]);
  const detector = new ContinualDetector({ ...run.config });
  return {
    run: async (o) => summariseRun((await runContinual({ ...o, tasks: run.tasks, detector })).report, detector.gpm.memoryReport()),
    dispose: () => detector.dispose(),
  };
}

/** The reference `knn`: a patch memory bank per class (`PatchKnnDetector` through `runReference`), on the same data and metrics. */
async function knnRunner(run: PlannedRun): Promise<MethodRunner> {
  const [{ PatchKnnDetector }, { runReference }] = await Promise.all([import('../model/knn'), import('../run/reference')]);
  const knn = new PatchKnnDetector({ imageSize: run.config.imageSize, seed: run.config.seed });
  return {
    run: async (o) => {
      const { report } = await runReference({ ...o, tasks: run.tasks, detector: knn, batch: run.config.inferenceBatch });
      return referenceSummary(report, knn.bankBytes());
    },
    dispose: () => knn.dispose(),
  };
}

/** Options of {@link runBenchmarkRun}. */
export interface BenchRunOptions {
  /** The images, at the run's image size (`run.config.imageSize`). */
  dataset: AnomalyDataset;
  /** Where the dataset came from (recorded in the result). */
  data: BenchData;
  /** The run's checkpoint directory (replaced: every run starts from scratch), e.g. `<out>/runs/<id>`. */
  checkpoint: string;
  /** Aborting stops the run with an `AbortError` at the next check. */
  signal?: AbortSignal;
  /** Every progress event of the run, as `runContinual` tells them. */
  onProgress?: (p: RunProgress) => void;
  /** `Date.now()` when the run's process started (default: now); the run's `seconds` count from it. */
  startedAt?: number;
}

/**
 * One (method, seed) run: builds the method's detector (or the `knn` reference), learns and
 * evaluates the run's tasks on the current backend, and returns its result with the wall and CPU
 * time of each task (`cpu_seconds` is this process's CPU time, so run one at a time per process).
 */
export async function runBenchmarkRun(run: PlannedRun, opts: BenchRunOptions): Promise<RunResult> {
  const started = opts.startedAt ?? Date.now();
  const { backendReport, tf } = await import('@ofm/tensor');
  const method = (BENCH_METHODS[run.method] as BenchMethod).reference === 'knn' ? await knnRunner(run) : await modelRunner(run);
  try {
    // A checkpoint left by an interrupted earlier attempt is replaced: every run starts from scratch.
    rmSync(opts.checkpoint, { recursive: true, force: true });
    // Wall and CPU time of each task (load, learn, evaluate, save) and of its evaluation: the CPU
    // time is what the task costs one free core, whatever else the machine was doing.
    const timing: { start: number; cpuStart: number; evaluate?: number; seconds?: number; cpuSeconds?: number; evaluateSeconds?: number }[] = [];
    const onProgress = (p: RunProgress) => {
      opts.onProgress?.(p);
      const now = Date.now();
      timing[p.task] ??= { start: now, cpuStart: cpuSeconds() };
      const t = timing[p.task]!;
      if (p.kind === 'evaluate') t.evaluate ??= now;
      if (p.kind === 'saved') {
        t.seconds = (now - t.start) / 1000;
        t.cpuSeconds = cpuSeconds() - t.cpuStart;
        t.evaluateSeconds = t.evaluate === undefined ? 0 : (now - t.evaluate) / 1000;
      }
    };
    const summary = await method.run({ dataset: opts.dataset, out: opts.checkpoint, signal: opts.signal, onProgress });
    const backend = backendReport();
    summary.per_task.forEach((t, i) => {
      t.seconds = timing[i]?.seconds ?? null;
      t.cpu_seconds = timing[i]?.cpuSeconds ?? null;
      t.evaluate_seconds = timing[i]?.evaluateSeconds ?? null;
    });
    return {
      ...summary,
      id: run.id,
      method: run.method,
      seed: run.seed,
      tasks: run.tasks,
      config: run.config,
      data: opts.data,
      backend: backend?.backend ?? tf.getBackend(),
      tfjs_version: backend?.tfjsVersion ?? 'unknown',
      threads: backend?.threads ?? null,
      checkpoint: opts.checkpoint,
      seconds: (Date.now() - started) / 1000,
      cpu_seconds: cpuSeconds(),
    };
  } finally {
    method.dispose();
  }
}

/** Options of {@link runContinualBenchmark}. */
export interface ContinualBenchmarkOptions {
  /** Output folder: `plan.json`, `runs/<id>.json`, `runs/<id>/` (checkpoints), `benchmark.json`, `benchmark.md`. */
  out: string;
  /** The images at the runs' image size, or a function that opens them for a run. */
  dataset: AnomalyDataset | ((run: PlannedRun) => AnomalyDataset | Promise<AnomalyDataset>);
  /** Aborting stops the run in progress with an `AbortError` (finished results stay in `out`). */
  signal?: AbortSignal;
  /** Every progress event of every run. */
  onProgress?: (run: PlannedRun, p: RunProgress) => void;
  /** Told each run's result as soon as it is written. */
  onResult?: (result: RunResult) => void;
}

/**
 * Run every run of a plan in this process, one after another, on the current backend (initialise
 * it first), writing each result and then the table into `out`; returns the table. `ofm bench
 * continual` does the same with one child process per run.
 */
export async function runContinualBenchmark(plan: BenchPlan, opts: ContinualBenchmarkOptions): Promise<BenchJson> {
  const { out } = opts;
  mkdirSync(join(out, 'runs'), { recursive: true });
  writeFileAtomic(join(out, 'plan.json'), `${JSON.stringify(plan, null, 2)}\n`);
  const results = new Map<string, RunResult>();
  for (const run of plan.runs) {
    const dataset = typeof opts.dataset === 'function' ? await opts.dataset(run) : opts.dataset;
    const result = await runBenchmarkRun(run, {
      dataset,
      data: plan.data,
      checkpoint: join(out, 'runs', run.id),
      signal: opts.signal,
      onProgress: opts.onProgress && ((p) => opts.onProgress!(run, p)),
    });
    writeFileAtomic(benchRunResultPath(out, run.id), `${JSON.stringify(result, null, 2)}\n`);
    results.set(run.id, result);
    opts.onResult?.(result);
  }
  const table = buildBenchJson(plan, out, results, new Map(), 1, plan.argv);
  writeBenchmarkFiles(out, table);
  return table;
}

/**
 * The summary of a reference run: metrics and forgetting as {@link summariseRun} computes them; the
 * memory it holds is its feature banks (in the bases column, per task the banks after it), and it
 * collects no representations (null).
 */
export function referenceSummary(report: ContinualReport, bankBytes: number): RunSummary {
  const summary = summariseRun(report, []);
  return {
    ...summary,
    basis_bytes: bankBytes,
    representation_peak_bytes: null,
    representation_matrix_bytes: null,
    per_task: summary.per_task.map((t) => ({ ...t, representation_peak_bytes: null, representation_matrix_bytes: null })),
  };
}

/**
 * The most representation memory a task's collection held at once. Layers are fed one after
 * another, each folding (or stacking) its block before the next layer runs: the states all layers
 * keep, summed, plus the largest block. Records from before the state / block split fall back to
 * the per-layer peaks, summed (which counts every layer's block as if all were held together).
 */
export function representationPeak(records: (LayerBasisRecord | undefined)[]): number {
  let states = 0;
  let block = 0;
  for (const r of records) {
    if (!r) continue;
    if (r.stateBytes === undefined || r.blockBytes === undefined) states += r.peakBytes;
    else {
      states += r.stateBytes;
      block = Math.max(block, r.blockBytes);
    }
  }
  return states + block;
}

/**
 * A run's numbers from its report and its memory: final averages and forgetting of each metric
 * (@ofm/metrics over the class-by-task matrices), the bases held at the end, and per task the
 * representation memory while it was collected (summed over layers, which collect at once).
 */
export function summariseRun(
  report: ContinualReport,
  memory: ReturnType<ContinualDetector['gpm']['memoryReport']>,
): Pick<RunResult, BenchMetric | `${BenchMetric}_forgetting` | 'basis_bytes' | 'representation_peak_bytes' | 'representation_matrix_bytes' | 'classes' | 'per_task' | 'class_matrices'> {
  const learnedAt = report.classes.map((c) => report.tasks.findIndex((t) => t.classes.includes(c)));
  const perTask = report.tasks.map((t, i) => {
    const records = memory.map((l) => ({ inDim: l.inDim, h: l.history.find((h) => h.task === i) }));
    return {
      classes: t.classes,
      seconds: null as number | null,
      cpu_seconds: null as number | null,
      train_seconds: t.trainSeconds,
      evaluate_seconds: null as number | null,
      basis_bytes: t.basisBytes,
      representation_peak_bytes: representationPeak(records.map((r) => r.h)),
      representation_matrix_bytes: records.reduce((a, r) => a + 4 * r.inDim * (r.h?.samples ?? 0), 0),
    };
  });
  const metrics = {} as Record<BenchMetric | `${BenchMetric}_forgetting`, number | null>;
  const classMatrices = {} as Record<BenchMetric, (number | null)[][]>;
  for (const m of BENCH_METRICS) {
    const matrix = report.classMatrices[m];
    classMatrices[m] = matrix;
    metrics[m] = matrixSummary(matrix, learnedAt, 'final');
    metrics[`${m}_forgetting`] = matrixSummary(matrix, learnedAt, 'forgetting');
  }
  return {
    ...metrics,
    basis_bytes: memory.reduce((a, l) => a + l.bytes, 0),
    representation_peak_bytes: Math.max(0, ...perTask.map((t) => t.representation_peak_bytes)),
    representation_matrix_bytes: Math.max(0, ...perTask.map((t) => t.representation_matrix_bytes)),
    classes: report.classes,
    per_task: perTask,
    class_matrices: classMatrices,
  };
}

/** Final average or forgetting of a class-by-task matrix; null when undefined (one task, or a metric missing). */
function matrixSummary(matrix: (number | null)[][], learnedAt: number[], kind: 'final' | 'forgetting'): number | null {
  const complete = matrix.length > 0 && matrix.every((row, i) => learnedAt.every((at, j) => at > i || typeof row[j] === 'number'));
  if (!complete) return null;
  const v = (kind === 'final' ? finalAverage : forgetting)(matrix, { learnedAt });
  return Number.isFinite(v) ? v : null;
}

/**
 * Mean and sample standard deviation of a run key over runs (the std is null for one value); both
 * null when any run lacks the value.
 */
export function meanStd(values: (number | null)[]): [number | null, number | null] {
  const v = values.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  if (v.length === 0 || v.length < values.length) return [null, null];
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  if (v.length === 1) return [mean, null];
  return [mean, Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1))];
}

function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/**
 * The table of the finished runs (a method appears once at least one of its runs is done): one row
 * per method with {@link meanStd} of every run key over its seeds, the comparisons, the machine,
 * and every planned run's status (`failures`: run id to error, for runs that failed).
 */
export function buildBenchJson(
  plan: BenchPlan,
  out: string,
  results: ReadonlyMap<string, RunResult>,
  failures: ReadonlyMap<string, string>,
  jobs: number,
  argv: string[],
): BenchJson {
  const methods = [...new Set(plan.runs.map((r) => r.method))];
  const rows: BenchRow[] = [];
  for (const method of methods) {
    const done = plan.runs.filter((r) => r.method === method && results.has(r.id)).map((r) => results.get(r.id)!);
    if (done.length === 0) continue;
    const row = { method, description: BENCH_METHODS[method].description, runs: done.length, seeds: done.map((r) => r.seed) } as BenchRow;
    for (const key of BENCH_RUN_KEYS) [row[key], row[`${key}_std`]] = meanStd(done.map((r) => r[key]));
    rows.push(row);
  }
  const finished = [...results.values()];
  const first = finished[0];
  return {
    tool: 'ofm bench continual',
    version: 1,
    date: new Date().toISOString(),
    command: `ofm ${argv.map(shellQuote).join(' ')}`,
    machine: {
      cpu: os.cpus()[0]?.model ?? null,
      cpus: os.cpus().length,
      total_memory_bytes: os.totalmem(),
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
      backends: [...new Set(finished.map((r) => r.backend))],
      tfjs_version: first?.tfjs_version ?? null,
      threads_per_run: first?.threads ?? null,
      jobs,
    },
    data: plan.data,
    sequence: plan.sequence,
    tasks: plan.tasks,
    methods,
    seeds: [...new Set(plan.runs.map((r) => r.seed))],
    config: plan.runs[0]?.config ?? null,
    complete: plan.runs.every((r) => results.has(r.id)),
    rows,
    comparisons: compareMethods(rows),
    runs: plan.runs.map((r) => {
      const res = results.get(r.id);
      const error = failures.get(r.id);
      return {
        id: r.id,
        method: r.method,
        seed: r.seed,
        status: res ? 'done' : error ? 'failed' : 'pending',
        result: benchRunResultPath(out, r.id),
        seconds: res?.seconds ?? null,
        cpu_seconds: res?.cpu_seconds ?? null,
        ...(error && !res ? { error } : {}),
      };
    }),
  };
}

/**
 * The comparisons the paper's claims rest on (issue #6's bars), from the rows present: forgetting
 * of `ofm` against `finetune`, `ofm` against `joint`, and iSVD against the naive representation in
 * the two pairs that differ only in it (`ofm-shared` / `ofm-noisvd`, `ofm-noamn` / `gpm`).
 */
export function compareMethods(rows: BenchRow[]): BenchComparison[] {
  const by = (m: BenchMethodName) => rows.find((r) => r.method === m);
  const points = (v: number | null | undefined) => (v == null ? null : 100 * v);
  const out: BenchComparison[] = [];
  const ofm = by('ofm');
  const finetune = by('finetune');
  if (ofm) {
    const f = points(ofm.image_auroc_forgetting);
    const ft = points(finetune?.image_auroc_forgetting);
    out.push({
      claim: 'ofm forgets at most 2 points of image AUROC',
      value: f,
      bar: '<= 2 points',
      meets: f == null ? null : f <= 2,
      detail: ft == null ? 'finetune not run' : `finetune: ${ft.toFixed(1)} points${f == null ? '' : ` (finetune - ofm: ${(ft - f).toFixed(1)} points)`}`,
    });
  }
  const joint = by('joint');
  if (ofm && joint) {
    const gap = ofm.image_auroc == null || joint.image_auroc == null ? null : 100 * (joint.image_auroc - ofm.image_auroc);
    out.push({
      claim: 'ofm within 3 points of joint (final image AUROC)',
      value: gap,
      bar: '<= 3 points below joint',
      meets: gap == null ? null : gap <= 3,
      detail: `joint ${pct(joint.image_auroc)}, ofm ${pct(ofm.image_auroc)}`,
    });
  }
  for (const [isvd, naive] of [
    ['ofm-shared', 'ofm-noisvd'],
    ['ofm-noamn', 'gpm'],
  ] as const) {
    const a = by(isvd);
    const b = by(naive);
    if (!a || !b) continue;
    // Against the naive method's matrices themselves (4 bytes per entry), not its stack buffer,
    // which may be up to twice as large as it grows: the ratio does not flatter iSVD.
    const naiveBytes = b.representation_matrix_bytes;
    const ratio = a.representation_peak_bytes != null && naiveBytes ? (100 * a.representation_peak_bytes) / naiveBytes : null;
    out.push({
      claim: `iSVD memory at most 5% of the naive representation (${isvd} vs ${naive})`,
      value: ratio,
      bar: '<= 5%',
      meets: ratio == null ? null : ratio <= 5,
      detail: `representation peak of ${isvd} ${bytes(a.representation_peak_bytes)}; representation matrices of ${naive} ${bytes(naiveBytes)} (its peak with the stacking buffer: ${bytes(b.representation_peak_bytes)})`,
    });
    const diff = a.image_auroc == null || b.image_auroc == null ? null : 100 * Math.abs(a.image_auroc - b.image_auroc);
    out.push({
      claim: `iSVD costs at most 1 point of image AUROC (${isvd} vs ${naive})`,
      value: diff,
      bar: '<= 1 point',
      meets: diff == null ? null : diff <= 1,
      detail: `${isvd} ${pct(a.image_auroc)}, ${naive} ${pct(b.image_auroc)}`,
    });
  }
  return out;
}

/** A fraction as points (x100, one decimal); '–' when undefined. */
export function pct(v: number | null | undefined): string {
  return v == null || !Number.isFinite(v) ? '–' : (100 * v).toFixed(1);
}

function bytes(v: number | null | undefined): string {
  if (v == null) return '–';
  if (v === 0) return '0';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  const k = Math.min(units.length - 1, Math.floor(Math.log(v) / Math.log(1024)));
  return `${(v / 1024 ** k).toFixed(k === 0 ? 0 : 1)} ${units[k]}`;
}

/** `mean ± std` of a row's key, formatted by `f`. */
function cell(row: BenchRow, key: BenchRunKey, f: (v: number | null) => string): string {
  const std = row[`${key}_std`];
  return std == null ? f(row[key]) : `${f(row[key])} ± ${f(std)}`;
}

/** The Markdown page of a benchmark: how it was run, the table, the comparisons, the runs. */
export function formatBenchMarkdown(r: BenchJson): string {
  const m = r.machine;
  const c = r.config;
  const seeds = r.seeds.length > 1 ? `seeds ${r.seeds.join(', ')}: mean ± sample standard deviation over seeds` : `seed ${r.seeds[0]}: one run per method`;
  const lines = [
    '# Continual benchmark: One-for-More, its baselines and ablations',
    '',
    '```sh',
    r.command,
    '```',
    '',
    `- Machine: ${m.cpu ?? 'unknown CPU'}, ${m.cpus} cores, ${(m.total_memory_bytes / 1024 ** 3).toFixed(0)} GiB, Node ${m.node} (${m.platform}); backend ${m.backends.join(', ') || '–'} (tfjs ${m.tfjs_version ?? '–'}), ${m.threads_per_run ?? '?'} thread(s) per run, ${m.jobs} run(s) at once`,
    `- Data: ${r.data.data} (${r.data.format}); ${r.tasks.length} tasks: ${r.tasks.map((t) => t.join(', ')).join(' → ')}`,
    `- ${seeds}`,
    c
      ? `- Config: ${c.imageSize} px, ${c.training.steps} steps per task at batch ${c.training.batchSize} (joint: the steps of the whole sequence), lr ${c.training.lr}, DDIM ${c.reconstruction.steps} steps from t in {${c.reconstruction.tStartCandidates.join(', ')}}, GPM threshold ${c.continual.threshold}, compression ${c.continual.compression}, ${c.continual.collectImages} images per class collected, ${c.continual.maxRowsPerCall} rows per tap call; every field in benchmark.json`
      : '- Config: –',
    '',
    ...(r.complete ? [] : [`**Partial: ${r.runs.filter((x) => x.status === 'done').length} of ${r.runs.length} runs done.**`, '']),
    '| method | image AUROC | pixel AUROC | pixel AP | AUPRO | forgetting: image AUROC | pixel AUROC | pixel AP | AUPRO | bases held | representation, peak | full representation | time per run (min) |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...r.rows.map((row) =>
      [
        `${row.method}${row.runs < r.seeds.length ? ` (${row.runs} of ${r.seeds.length} seeds)` : ''}`,
        ...BENCH_METRICS.map((k) => cell(row, k, pct)),
        ...BENCH_METRICS.map((k) => cell(row, `${k}_forgetting`, pct)),
        cell(row, 'basis_bytes', bytes),
        cell(row, 'representation_peak_bytes', bytes),
        cell(row, 'representation_matrix_bytes', bytes),
        cell(row, 'seconds', (v) => (v == null ? '–' : (v / 60).toFixed(1))),
      ].join(' | ').replace(/^/, '| ').concat(' |'),
    ),
    '',
    'Metrics in %: the final average over all classes after the last task (image AUROC, pixel AUROC, pixel AP, AUPRO at FPR 0.3). ' +
      'Forgetting in points: for each class learned before the last task, its best result before the last task minus its final result, averaged (– where undefined: one task). ' +
      '"Bases held": the GPM bases after the last task (float32; for the reference `knn`, its patch banks, and – for the representation columns: it collects none). "Representation, peak": the most memory the representations held at once while one task was collected (the factors or stacks of all layers plus the largest block being folded in); ' +
      '"full representation": the size of the representation matrices collected for one task (4 · rows · input dimension, summed over layers), what a method must hold without iSVD.',
    '',
  ];
  if (r.comparisons.length) {
    lines.push('## Comparisons', '', '| claim | measured | bar | | detail |', '|---|---|---|---|---|');
    for (const k of r.comparisons) {
      lines.push(`| ${k.claim} | ${k.value == null ? '–' : k.value.toFixed(1)} | ${k.bar} | ${k.meets == null ? '–' : k.meets ? 'meets' : 'misses'} | ${k.detail} |`);
    }
    lines.push('');
  }
  lines.push('## Methods', '', ...r.rows.map((row) => `- \`${row.method}\`: ${row.description}`), '');
  const minutes = (v: number | null) => (v == null ? '–' : (v / 60).toFixed(1));
  lines.push('## Runs', '', '| run | status | wall time (min) | CPU time (min) | result |', '|---|---|---|---|---|');
  for (const run of r.runs) {
    lines.push(`| ${run.id} | ${run.status}${run.error ? `: ${run.error.replace(/\|/g, '\\|')}` : ''} | ${minutes(run.seconds)} | ${minutes(run.cpu_seconds)} | ${run.result} |`);
  }
  return lines.join('\n');
}

/** The flat summary of a table (`ofm bench continual --json`). */
export interface BenchFlatSummary {
  tool: BenchJson['tool'];
  version: BenchJson['version'];
  /** The output folder, and the table's two files in it. */
  out: string;
  markdown: string;
  json: string;
  complete: boolean;
  sequence: string;
  tasks: string[][];
  seeds: number[];
  backends: string[];
  rows: BenchRow[];
  comparisons: BenchComparison[];
}

/** `--json`: the table as one flat, stable object (rows of plain numbers). */
export function flatSummary(r: BenchJson, out: string): BenchFlatSummary {
  return {
    tool: r.tool,
    version: r.version,
    out,
    markdown: join(out, 'benchmark.md'),
    json: join(out, 'benchmark.json'),
    complete: r.complete,
    sequence: r.sequence,
    tasks: r.tasks,
    seeds: r.seeds,
    backends: r.machine.backends,
    rows: r.rows,
    comparisons: r.comparisons,
  };
}
