/**
 * `ofm bench continual`: One-for-More against its baselines and ablations over one task sequence,
 * as a single table (the paper's method table). The experiment itself (methods, plans, runs,
 * summaries, statistics, the table as JSON and Markdown) is `@ofm/detector/experiments`; this
 * command parses the options, runs the process pool and prints progress.
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
import { createWriteStream, existsSync, mkdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import type { DetectorConfigInput, RunProgress } from '@ofm/detector';
// Loads no tensors (tfjs loads when a run starts), so `ofm --help` stays fast.
import {
  BENCH_METHODS,
  BENCH_METHOD_NAMES,
  type BenchJson,
  type BenchMethodName,
  type BenchPlan,
  type RunResult,
  benchRunResultPath,
  buildBenchJson,
  flatSummary,
  formatBenchMarkdown,
  mergeConfigInputs,
  pct,
  planContinualBenchmark,
  runBenchmarkRun,
  writeBenchmarkFiles,
  writeFileAtomic,
} from '@ofm/detector/experiments';
import type { Command } from 'commander';
import { type DataOptions, FORMATS, openDataset, tasksOf } from '../data';
import { CliError, EXIT } from '../errors';
import { type CommonCliOptions, Progress, integer, isAbort, withInterrupts } from '../util';
import { describeRunProgress, initRuntime } from './run-shared';
import { readConfigFile } from './train';
import { BACKEND_OPTION_HELP } from './info';

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
  phase: 'load' | 'train' | 'segment' | 'select' | 'consolidate' | 'evaluate' | 'saved';
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
  const configSource = o.config ? `--config ${o.config}` : 'detector config';
  const overrides: DetectorConfigInput = {};
  if (o.steps !== undefined) overrides.training = { steps: integer('--steps', o.steps, 1) };
  if (o.imageSize !== undefined) overrides.imageSize = integer('--image-size', o.imageSize, 8, 1024);
  const base = mergeConfigInputs(o.config ? readConfigFile(o.config) : {}, overrides);
  const baseConfig = resolveDetectorConfig(base, configSource);
  const seeds = o.seeds !== undefined ? parseSeeds(o.seeds) : [baseConfig.seed];

  const data: DataOptions = { data: resolve(o.data), format: o.format };
  if (o.normalDir !== undefined) data.normalDir = resolve(o.normalDir);
  if (o.abnormalDir !== undefined) data.abnormalDir = resolve(o.abnormalDir);
  if (o.maskDir !== undefined) data.maskDir = resolve(o.maskDir);
  const dataset = await openDataset(data, baseConfig.imageSize);
  const tasks = tasksOf(dataset, o);
  const plan = await planContinualBenchmark({ base, methods, seeds, tasks, data, sequence: o.setting ?? o.tasks ?? '', backend: o.backend, argv, configSource });
  const { runs } = plan;

  // Results already there (an earlier, interrupted benchmark) are kept when they are of the same run.
  mkdirSync(join(out, 'runs'), { recursive: true });
  const results = new Map<string, RunResult>();
  for (const run of runs) {
    const file = benchRunResultPath(out, run.id);
    if (!existsSync(file)) continue;
    const old = readRunResult(file);
    // Compared as stored (JSON), so that fields left undefined here match fields absent there.
    const asStored = (v: unknown) => JSON.parse(JSON.stringify(v)) as unknown;
    if (!isDeepStrictEqual(asStored([old.config, old.tasks, old.data]), asStored([run.config, run.tasks, data]))) {
      throw new CliError(`${file} holds a result of another configuration, task list or dataset; use a new --out, or delete that file to run it again`);
    }
    results.set(run.id, old);
  }
  writeFileAtomic(join(out, 'plan.json'), `${JSON.stringify(plan, null, 2)}\n`);
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
    writeBenchmarkFiles(out, json);
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
  const startRun = (run: BenchPlan['runs'][number]): Promise<void> =>
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
        const file = benchRunResultPath(out, run.id);
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
  const within = { load: 0, train: 0.5 * d, segment: 0.5 + 0.1 * d, select: 0.6 + 0.1 * d, consolidate: 0.7 + 0.05 * d, evaluate: 0.75 + 0.25 * d, saved: 1 }[m.phase];
  return (m.task + within) / m.tasks;
}

function readRunResult(file: string): RunResult {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as RunResult;
  } catch (err) {
    throw new CliError(`${file} is not a run result (${(err as Error).message}); delete it to run that run again`);
  }
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
  // Progress lines go to the run's log (the parent shows a summary of every run).
  const progress = new Progress(id);
  const send = (m: Omit<ChildMessage, 'kind'>) => process.send?.({ kind: 'progress', ...m } satisfies ChildMessage);
  const onProgress = (p: RunProgress) => {
    describeRunProgress(progress, p);
    switch (p.kind) {
      case 'load':
        send({ phase: 'load', task: p.task, tasks: p.tasks, done: 0, total: 0 });
        return;
      case 'learn':
        send({ phase: p.phase, task: p.task, tasks: p.tasks, done: p.done, total: p.total });
        return;
      case 'evaluate':
        send({ phase: 'evaluate', task: p.task, tasks: p.tasks, done: p.done, total: p.total });
        return;
      case 'saved':
        send({ phase: 'saved', task: p.task, tasks: p.tasks, done: 1, total: 1 });
        return;
    }
  };

  await initRuntime(plan.backend, progress);
  const dataset = await openDataset(plan.data, run.config.imageSize);
  const result = await withInterrupts((signal) =>
    runBenchmarkRun(run, { dataset, data: plan.data, checkpoint: join(out, 'runs', id), signal, onProgress, startedAt: started }),
  ).catch((err) => {
    if (isAbort(err)) throw new CliError(`${id} interrupted`, EXIT.interrupted);
    throw err;
  });
  writeFileAtomic(benchRunResultPath(out, id), `${JSON.stringify(result, null, 2)}\n`);
}
