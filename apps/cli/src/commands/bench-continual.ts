/**
 * `ofm bench continual`: One-for-More against its baselines and ablations over one task sequence,
 * as a single table (the paper's method table).
 *
 * Every (method, seed) pair is an independent run of the same continual pipeline `ofm train` uses
 * (`runContinual`: learn each task, evaluate every class seen after it; the reference `knn` runs
 * `runReference`, with the same data, evaluation and report), in its own child process
 * (`ofm bench continual-run PLAN ID`, hidden), so `--jobs N` runs N of them at once and one
 * run's tfjs state never touches another's. The parent writes `<out>/plan.json` (every run's
 * resolved config), each child writes `<out>/runs/<id>.json` (its result), `<out>/runs/<id>/` (its
 * checkpoint with the usual report) and `<out>/runs/<id>.log`, and the parent merges the finished
 * results into `<out>/benchmark.md` and `<out>/benchmark.json` after every run. Results survive an
 * interrupted benchmark: the same command again runs only what is missing.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import type { AnomalyDataset } from '@ofm/datasets';
import type { ContinualDetector, ContinualReport, DetectorConfig, DetectorConfigInput, RunProgress } from '@ofm/detector';
import { finalAverage, forgetting } from '@ofm/metrics';
import type { Command } from 'commander';
import { type DataOptions, FORMATS, openDataset, tasksOf } from '../data';
import { CliError, EXIT } from '../errors';
import { type CommonCliOptions, Progress, integer, isAbort, withInterrupts } from '../util';
import { type TrainerSetup, describeRunProgress, initRuntime } from './run-shared';
import { readConfigFile } from './train';
import { BACKEND_OPTION_HELP } from './info';

/** One layer's consolidation record for one task (from the detector's GPM memory report). */
type LayerBasisRecord = ReturnType<ContinualDetector['gpm']['memoryReport']>[number]['history'][number];

/** What a method changes in the detector config, and what it stands for. */
export interface BenchMethod {
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
    description: 'the detector defaults: AMN, per-task weights (each task trains from the previous one and keeps its copy; routing picks it), no forgetting by construction',
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

export type BenchMethodName = keyof typeof BENCH_METHODS;
export const BENCH_METHOD_NAMES = Object.keys(BENCH_METHODS) as BenchMethodName[];

/** The metrics of the table: final averages over all classes, each with its forgetting measure. */
export const BENCH_METRICS = ['image_auroc', 'pixel_auroc', 'pixel_ap', 'pixel_aupro'] as const;
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
export type BenchRunKey = (typeof BENCH_RUN_KEYS)[number];

/** One planned run: everything a child needs, resolved by the parent. */
export interface PlannedRun {
  id: string;
  method: BenchMethodName;
  seed: number;
  tasks: string[][];
  config: DetectorConfig;
}

/** `<out>/plan.json`. */
export interface BenchPlan {
  tool: 'ofm bench continual';
  version: 1;
  argv: string[];
  data: DataOptions;
  /** The `--setting` name or `--tasks` spec. */
  sequence: string;
  tasks: string[][];
  backend?: string;
  runs: PlannedRun[];
}

/** `<out>/runs/<id>.json`: one run's result. */
export type RunResult = Omit<PlannedRun, 'config'> & {
  config: DetectorConfig;
  data: DataOptions;
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
  value: number | null;
  bar: string;
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
  data: DataOptions;
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

interface ContinualCliOptions extends DataOptions, CommonCliOptions {
  setting?: string;
  tasks?: string;
  methods: string;
  seeds?: string;
  config?: string;
  steps?: string;
  imageSize?: string;
  out: string;
  jobs: string;
}

/** Progress a child sends its parent over IPC. */
interface ChildMessage {
  kind: 'progress';
  phase: 'load' | 'train' | 'select' | 'consolidate' | 'evaluate' | 'saved';
  task: number;
  tasks: number;
  done: number;
  total: number;
}

/** Register `ofm bench continual` (and its hidden per-run worker) under `ofm bench`. */
export function registerBenchContinual(bench: Command): void {
  bench
    .command('continual')
    .description('One-for-More against its baselines and ablations over one task sequence: the method table (Markdown + JSON)')
    .requiredOption('--data <dir>', 'dataset root')
    .option('--format <name>', `dataset layout: ${FORMATS.join(', ')}`, 'mvtec')
    .option('--setting <name>', 'a continual setting of the paper, e.g. mvtec-14-1')
    .option('--tasks <spec>', 'tasks as "a|b|c" ("," joins classes into one task, "|" separates tasks)')
    .option('--methods <list>', `comma-separated, from: ${BENCH_METHOD_NAMES.join(', ')}`, BENCH_METHOD_NAMES.join(','))
    .option('--seeds <list>', 'comma-separated seeds; every method runs once per seed (default: the config seed)')
    .option('--config <file>', 'detector config JSON shared by every method (partial; defaults fill the rest)')
    .option('--steps <n>', 'training steps per task (joint: times the number of tasks)')
    .option('--image-size <n>', 'image size in pixels')
    .requiredOption('--out <dir>', 'output folder: benchmark.md, benchmark.json, plan.json, runs/')
    .option('--jobs <n>', 'runs at once, each a child process with one compute thread', '1')
    .option('--backend <name>', `${BACKEND_OPTION_HELP}; used by every run`)
    .option('--normal-dir <dir>', 'folder format: normal images (default <data>/normal)')
    .option('--abnormal-dir <dir>', 'folder format: anomalous test images (default <data>/abnormal)')
    .option('--mask-dir <dir>', 'folder format: masks named like the anomalous images (default <data>/mask)')
    .option('--json', 'print the table as one flat JSON object on stdout')
    .option('--quiet', 'no progress on stderr')
    .addHelpText(
      'after',
      `
Methods:
${BENCH_METHOD_NAMES.map((m) => `  ${m.padEnd(11)} ${BENCH_METHODS[m].description}`).join('\n')}

Every (method, seed) is an independent run in its own process; its result is kept in
<out>/runs/<method>-seed<seed>.json as soon as it finishes, so running the same command again
after an interruption runs only what is missing. Exit codes: 0 all runs done, 1 a run failed
(the table holds the others), 2 bad input, 130 interrupted.

Example (the synthetic dataset, five one-class tasks, three seeds, 16 runs at once):
  ofm synth --out data
  ofm bench continual --data data --tasks "tiles|washer|chip|weave|tablet" --seeds 1,2,3 --jobs 16 --out bench-continual`,
    )
    .action(async (o: ContinualCliOptions) => {
      const result = await runContinualBench(o, process.argv.slice(2));
      process.stdout.write(o.json ? `${JSON.stringify(flatSummary(result, resolve(o.out)), null, 2)}\n` : `${formatBenchMarkdown(result)}\n`);
      if (!result.complete) {
        throw new CliError(`${result.runs.filter((r) => r.status === 'failed').length} run(s) failed; see their logs in ${join(resolve(o.out), 'runs')}`, EXIT.failure);
      }
    });

  bench
    .command('continual-run', { hidden: true })
    .description('one run of `ofm bench continual` (started by it)')
    .argument('<plan>', 'plan.json written by ofm bench continual')
    .argument('<id>', 'the run id in the plan')
    .action(async (planPath: string, id: string) => {
      await runOne(planPath, id);
    });
}

/** Merge config inputs group by group (arrays and scalars are replaced). */
function mergeConfig(...inputs: DetectorConfigInput[]): DetectorConfigInput {
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
  return mergeConfig(base, BENCH_METHODS[method].config, { seed });
}

function parseMethods(value: string): BenchMethodName[] {
  const names = value.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = names.filter((n) => !(BENCH_METHOD_NAMES as string[]).includes(n));
  if (names.length === 0 || unknown.length > 0) {
    throw new CliError(`--methods ${value}: ${unknown.length ? `unknown method ${unknown.map((u) => `'${u}'`).join(', ')}` : 'no method given'}; choose from ${BENCH_METHOD_NAMES.join(', ')}`);
  }
  if (new Set(names).size !== names.length) throw new CliError(`--methods ${value}: a method is listed twice`);
  return names as BenchMethodName[];
}

function parseSeeds(value: string): number[] {
  const seeds = value.split(',').map((s) => integer('--seeds', s.trim(), 0));
  if (new Set(seeds).size !== seeds.length) throw new CliError(`--seeds ${value}: a seed is listed twice`);
  return seeds;
}

/** Write a file atomically (temp file, then rename), so a reader never sees half of it. */
function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

const runFile = (out: string, id: string) => join(out, 'runs', `${id}.json`);

/**
 * The parent: plan every run, start the missing ones `--jobs` at a time, merge the results into
 * the table after each. Returns the final table (complete or not).
 */
export async function runContinualBench(o: ContinualCliOptions, argv: string[]): Promise<BenchJson> {
  const started = Date.now();
  const methods = parseMethods(o.methods);
  const jobs = integer('--jobs', o.jobs, 1, 1024);
  const out = resolve(o.out);
  const progress = new Progress('bench', o.quiet || o.json === true);
  const { resolveDetectorConfig } = await import('@ofm/detector');
  const resolveOrExplain = (input: DetectorConfigInput): DetectorConfig => {
    try {
      return resolveDetectorConfig(input, o.config ? `--config ${o.config}` : 'detector config');
    } catch (err) {
      throw new CliError((err as Error).message);
    }
  };
  const overrides: DetectorConfigInput = {};
  if (o.steps !== undefined) overrides.training = { steps: integer('--steps', o.steps, 1) };
  if (o.imageSize !== undefined) overrides.imageSize = integer('--image-size', o.imageSize, 8, 1024);
  const base = mergeConfig(o.config ? readConfigFile(o.config) : {}, overrides);
  const baseConfig = resolveOrExplain(base);
  const seeds = o.seeds !== undefined ? parseSeeds(o.seeds) : [baseConfig.seed];

  const data: DataOptions = { data: resolve(o.data), format: o.format };
  if (o.normalDir !== undefined) data.normalDir = resolve(o.normalDir);
  if (o.abnormalDir !== undefined) data.abnormalDir = resolve(o.abnormalDir);
  if (o.maskDir !== undefined) data.maskDir = resolve(o.maskDir);
  const dataset = await openDataset(data, baseConfig.imageSize);
  const tasks = tasksOf(dataset, o);
  const runs: PlannedRun[] = methods.flatMap((method) =>
    seeds.map((seed) => {
      const joint = (BENCH_METHODS[method] as BenchMethod).joint === true;
      const config = resolveOrExplain(methodConfigInput(base, method, seed));
      if (joint) config.training.steps *= tasks.length;
      return { id: `${method}-seed${seed}`, method, seed, tasks: joint ? [tasks.flat()] : tasks, config };
    }),
  );
  const plan: BenchPlan = {
    tool: 'ofm bench continual',
    version: 1,
    argv,
    data,
    sequence: o.setting ?? o.tasks ?? '',
    tasks,
    backend: o.backend,
    runs,
  };

  // Results already there (an earlier, interrupted benchmark) are kept when they are of the same run.
  mkdirSync(join(out, 'runs'), { recursive: true });
  const results = new Map<string, RunResult>();
  for (const run of runs) {
    const file = runFile(out, run.id);
    if (!existsSync(file)) continue;
    const old = readRunResult(file);
    // Compared as stored (JSON), so that fields left undefined here match fields absent there.
    const asStored = (v: unknown) => JSON.parse(JSON.stringify(v)) as unknown;
    if (!isDeepStrictEqual(asStored([old.config, old.tasks, old.data]), asStored([run.config, run.tasks, data]))) {
      throw new CliError(`${file} holds a result of another configuration, task list or dataset; use a new --out, or delete that file to run it again`);
    }
    results.set(run.id, old);
  }
  writeAtomic(join(out, 'plan.json'), `${JSON.stringify(plan, null, 2)}\n`);
  const pending = runs.filter((r) => !results.has(r.id));
  if (results.size > 0) progress.note(`${results.size} of ${runs.length} runs already done in ${out}; running the other ${pending.length}`);
  if (jobs > os.cpus().length) progress.note(`--jobs ${jobs} is more than the ${os.cpus().length} CPUs here: runs will slow each other down`);
  progress.note(
    `${runs.length} runs (${methods.join(', ')} x seed ${seeds.join(', ')}) over ${tasks.length} tasks (${tasks.map((t) => t.join(',')).join(' | ')}), ${Math.min(jobs, Math.max(1, pending.length))} at a time`,
  );

  const failures = new Map<string, string>();
  const table = (): BenchJson => buildBenchJson(plan, out, results, failures, jobs, argv);
  const writeTable = () => {
    const json = table();
    writeAtomic(join(out, 'benchmark.json'), `${JSON.stringify(json, null, 2)}\n`);
    writeAtomic(join(out, 'benchmark.md'), `${formatBenchMarkdown(json)}\n`);
    return json;
  };
  writeTable();

  const planPath = join(out, 'plan.json');
  const fractions = new Map<string, number>();
  const status = new Map<string, string>();
  const children = new Set<ChildProcess>();
  // Set on Ctrl-C: runs that end from then on were stopped, not failed.
  let stopping = false;
  // Without a terminal (a log file), the status line is printed at most once a minute.
  let lastReport = 0;
  const report = (force = false) => {
    const now = Date.now();
    if (!force && !process.stderr.isTTY && now - lastReport < 60_000) return;
    lastReport = now;
    const done = results.size + failures.size;
    const fraction = (done + [...fractions.values()].reduce((a, b) => a + b, 0)) / runs.length;
    const running = [...status.entries()].map(([id, s]) => `${id} ${s}`).join('; ');
    const percent = done === runs.length ? 100 : Math.min(99, Math.floor(100 * fraction));
    progress.update('bench', `${done}/${runs.length} runs done, overall %`, percent, 100, running);
  };
  const startRun = (run: PlannedRun): Promise<void> =>
    new Promise((resolvePromise) => {
      const log = createWriteStream(join(out, 'runs', `${run.id}.log`));
      const env = { ...process.env };
      // One compute thread per run (tfjs-node's TensorFlow otherwise takes every core per process).
      if (jobs > 1) for (const k of ['TF_NUM_INTRAOP_THREADS', 'TF_NUM_INTEROP_THREADS', 'OMP_NUM_THREADS']) env[k] ??= '1';
      const child = fork(cliEntry(), ['bench', 'continual-run', planPath, run.id], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env });
      children.add(child);
      child.stdout!.pipe(log, { end: false });
      child.stderr!.pipe(log, { end: false });
      let tail = '';
      child.stderr!.on('data', (chunk: Buffer) => {
        tail = (tail + chunk.toString()).slice(-2000);
      });
      status.set(run.id, 'starting');
      child.on('message', (m: ChildMessage) => {
        if (m.kind !== 'progress') return;
        fractions.set(run.id, runFraction(m));
        status.set(run.id, `task ${m.task + 1}/${m.tasks} ${m.phase}${m.total > 0 && m.phase !== 'saved' ? ` ${Math.round((100 * m.done) / m.total)}%` : ''}`);
        report();
      });
      child.on('exit', (code, signal) => {
        children.delete(child);
        fractions.delete(run.id);
        status.delete(run.id);
        log.end();
        const file = runFile(out, run.id);
        let failure: string | null = null;
        if (code === 0 && existsSync(file)) {
          try {
            const r = readRunResult(file);
            results.set(run.id, r);
            progress.note(
              `${run.id} done in ${(r.seconds! / 60).toFixed(1)} min: image AUROC ${pct(r.image_auroc)}, pixel AUROC ${pct(r.pixel_auroc)}, image forgetting ${pct(r.image_auroc_forgetting)} pts`,
            );
          } catch (err) {
            failure = (err as Error).message;
          }
        } else if (!stopping) {
          // Not stopped by us: an error (its last line), or killed from outside (e.g. out of memory).
          const last = tail.trim().split('\n').filter((l) => l.startsWith('ofm: error')).pop() ?? tail.trim().split('\n').pop() ?? '';
          failure = signal ? `killed by ${signal}` : `exit code ${code}: ${last.replace(/^ofm: error: /, '')}`;
        }
        if (failure !== null) {
          failures.set(run.id, failure);
          progress.note(`${run.id} failed (${failure}); log: ${join(out, 'runs', `${run.id}.log`)}`);
        }
        writeTable();
        report(true);
        resolvePromise();
      });
    });

  const queue = [...pending];
  try {
    await withInterrupts(
      async (signal) => {
        const worker = async () => {
          for (let run = queue.shift(); run && !signal.aborted; run = queue.shift()) await startRun(run);
        };
        await Promise.all(Array.from({ length: Math.min(jobs, pending.length) }, worker));
        if (signal.aborted) {
          const err = new Error('interrupted');
          err.name = 'AbortError';
          throw err;
        }
      },
      () => {
        progress.note('interrupt: stopping the runs in progress (finished runs are kept)');
        stopping = true;
        for (const c of children) c.kill('SIGTERM');
      },
    );
  } catch (err) {
    if (isAbort(err)) {
      writeTable();
      throw new CliError(
        `interrupted after ${results.size} of ${runs.length} runs; their results are in ${join(out, 'runs')}; run the same command again to run the rest`,
        EXIT.interrupted,
      );
    }
    throw err;
  }
  const final = writeTable();
  progress.note(`${results.size} runs in ${((Date.now() - started) / 60_000).toFixed(1)} min; table: ${join(out, 'benchmark.md')}`);
  return final;
}

/** The built CLI entry next to this bundle (children run the same binary as the parent). */
function cliEntry(): string {
  const entry = fileURLToPath(new URL('./bin.js', import.meta.url));
  if (!existsSync(entry)) throw new CliError(`${entry} does not exist: run ofm bench continual from the built CLI (pnpm --filter @ofm/cli... build)`, EXIT.failure);
  return entry;
}

/** Rough share of a run done, from its progress: phases of a task weighted by their usual cost. */
function runFraction(m: ChildMessage): number {
  const d = m.total > 0 ? Math.min(1, m.done / m.total) : 0;
  const within = { load: 0, train: 0.6 * d, select: 0.6 + 0.1 * d, consolidate: 0.7 + 0.05 * d, evaluate: 0.75 + 0.25 * d, saved: 1 }[m.phase];
  return (m.task + within) / m.tasks;
}

function readRunResult(file: string): RunResult {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as RunResult;
  } catch (err) {
    throw new CliError(`${file} is not a run result (${(err as Error).message}); delete it to run that run again`);
  }
}

/** CPU time of this process so far (user + system), in seconds. */
function cpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/** The child: one (method, seed) run; writes `<out>/runs/<id>.json` when it has finished. */
async function runOne(planPath: string, id: string): Promise<void> {
  const started = Date.now();
  let plan: BenchPlan;
  try {
    plan = JSON.parse(readFileSync(planPath, 'utf8')) as BenchPlan;
  } catch (err) {
    throw new CliError(`${planPath}: not a benchmark plan (${(err as Error).message})`);
  }
  const run = plan.runs.find((r) => r.id === id);
  if (!run) throw new CliError(`${planPath} has no run '${id}'`);
  const out = join(planPath, '..');
  const checkpoint = join(out, 'runs', id);
  // Progress lines go to the run's log (the parent shows a summary of every run).
  const progress = new Progress(id);
  const send = (m: Omit<ChildMessage, 'kind'>) => process.send?.({ kind: 'progress', ...m } satisfies ChildMessage);

  const runtime = await initRuntime(plan.backend, progress);
  const { backendReport } = await import('@ofm/tensor');
  const method = (BENCH_METHODS[run.method] as BenchMethod).reference === 'knn' ? await knnRunner(run) : await modelRunner(run, runtime);
  try {
    const dataset = await openDataset(plan.data, run.config.imageSize);
    // A checkpoint left by an interrupted earlier attempt is replaced: every run starts from scratch.
    rmSync(checkpoint, { recursive: true, force: true });
    // Wall and CPU time of each task (load, learn, evaluate, save) and of its evaluation: the CPU
    // time is what the task costs one free core, whatever else the machine was doing.
    const timing: { start: number; cpuStart: number; evaluate?: number; seconds?: number; cpuSeconds?: number; evaluateSeconds?: number }[] = [];
    const onProgress = (p: RunProgress) => {
      describeRunProgress(progress, p);
      const now = Date.now();
      timing[p.task] ??= { start: now, cpuStart: cpuSeconds() };
      const t = timing[p.task]!;
      switch (p.kind) {
        case 'load':
          send({ phase: 'load', task: p.task, tasks: p.tasks, done: 0, total: 0 });
          return;
        case 'learn':
          send({ phase: p.phase, task: p.task, tasks: p.tasks, done: p.done, total: p.total });
          return;
        case 'evaluate':
          t.evaluate ??= now;
          send({ phase: 'evaluate', task: p.task, tasks: p.tasks, done: p.done, total: p.total });
          return;
        case 'saved':
          t.seconds = (now - t.start) / 1000;
          t.cpuSeconds = cpuSeconds() - t.cpuStart;
          t.evaluateSeconds = t.evaluate === undefined ? 0 : (now - t.evaluate) / 1000;
          send({ phase: 'saved', task: p.task, tasks: p.tasks, done: 1, total: 1 });
          return;
      }
    };
    const summary = await withInterrupts((signal) => method.run({ dataset, out: checkpoint, signal, onProgress })).catch((err) => {
      if (isAbort(err)) throw new CliError(`${id} interrupted`, EXIT.interrupted);
      throw err;
    });
    const backend = backendReport();
    summary.per_task.forEach((t, i) => {
      t.seconds = timing[i]?.seconds ?? null;
      t.cpu_seconds = timing[i]?.cpuSeconds ?? null;
      t.evaluate_seconds = timing[i]?.evaluateSeconds ?? null;
    });
    const result: RunResult = {
      ...summary,
      id,
      method: run.method,
      seed: run.seed,
      tasks: run.tasks,
      config: run.config,
      data: plan.data,
      backend: runtime.backend,
      tfjs_version: backend?.tfjsVersion ?? 'unknown',
      threads: backend?.threads ?? null,
      checkpoint,
      seconds: (Date.now() - started) / 1000,
      cpu_seconds: cpuSeconds(),
    };
    writeAtomic(runFile(out, id), `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    method.dispose();
  }
}

type RunSummary = ReturnType<typeof summariseRun>;

/** One method's learning and evaluation over the run's tasks, summarised; `dispose` releases its model. */
interface MethodRunner {
  run(opts: { dataset: AnomalyDataset; out: string; signal: AbortSignal; onProgress: (p: RunProgress) => void }): Promise<RunSummary>;
  dispose(): void;
}

/** The model's methods: the continual pipeline of `ofm train`, summarised from its report and GPM memory. */
async function modelRunner(run: PlannedRun, runtime: TrainerSetup): Promise<MethodRunner> {
  const { detector } = await runtime.makeDetector({ configInput: { ...run.config } });
  return {
    run: async (o) => summariseRun((await runtime.run({ ...o, tasks: run.tasks, detector })).report, detector.gpm.memoryReport()),
    dispose: () => detector.dispose(),
  };
}

/** The reference `knn`: a patch memory bank per class (`PatchKnnDetector` through `runReference`), on the same data and metrics. */
async function knnRunner(run: PlannedRun): Promise<MethodRunner> {
  const det = await import('@ofm/detector');
  const knn = new det.PatchKnnDetector({ imageSize: run.config.imageSize, seed: run.config.seed });
  return {
    run: async (o) => {
      const { report } = await det.runReference({ ...o, tasks: run.tasks, detector: knn, batch: run.config.inferenceBatch });
      return referenceSummary(report, knn.bankBytes());
    },
    dispose: () => knn.dispose(),
  };
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

/** Mean and sample standard deviation (null for one value); null when any run lacks the value. */
function meanStd(values: (number | null)[]): [number | null, number | null] {
  const v = values.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  if (v.length === 0 || v.length < values.length) return [null, null];
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  if (v.length === 1) return [mean, null];
  return [mean, Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1))];
}

/** The table of the finished runs (a method appears once at least one of its runs is done). */
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
        result: runFile(out, r.id),
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
function pct(v: number | null | undefined): string {
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

/** `--json`: the table as one flat, stable object (rows of plain numbers). */
export function flatSummary(r: BenchJson, out: string) {
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
