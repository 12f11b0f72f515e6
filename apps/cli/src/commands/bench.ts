/**
 * `ofm bench perf`: the speed of this implementation against its PyTorch twin, in one run.
 *
 * Both sides build the UNet of one spec file (`shared/peers/unet_spec.json` by default) and must
 * have the same parameter count before anything is timed. Then, for each workload, the peer runs
 * before and after ours (peer, ours, peer), so that a machine whose load changes during the run
 * biases neither side; the load average is recorded around every run.
 *
 * Workloads:
 * - `train`: one training step (forward, backward, AdamW) on a fixed batch: s/step, images/s;
 * - `ddim`: one deterministic DDIM reconstruction of a batch (`ddim_steps` UNet calls): s/image;
 * - `conv`: every distinct conv2d of the spec, forward, input gradient and filter gradient: GFLOP/s.
 *
 * The ratio printed is the speed of ours relative to PyTorch (PyTorch time / our time): 0.25x
 * means four times slower. Where the peer cannot run (no python, no torch, no twin script) it is
 * skipped with the reason, and only our numbers are reported.
 *
 * The benchmark itself (workloads, rounds, ratios, load check, the table) is `runPerfBenchmark` of
 * `@ofm/detector/experiments`; this command parses the options, starts the backend, finds the spec
 * and runs the PyTorch side as child processes (the twin, and `peers/torch_conv.py` for convs).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
// Loads no tensors (tfjs loads when the benchmark starts), so `ofm --help` stays fast.
import {
  LoadMonitor,
  PERF_WORKLOADS,
  type PeerConvShape,
  type PeerInfo,
  type PerfJson,
  type PerfPeerRunner,
  type PerfWorkload,
  type Timings,
  formatPerfTable,
  perfSpecSettings,
  runPerfBenchmark,
} from '@ofm/detector/experiments';
import type { Command } from 'commander';
import { CliError } from '../errors';
import { integer } from '../util';
import { registerBenchContinual } from './bench-continual';
import { BACKEND_OPTION_HELP } from './info';
import { refuseWebgpuFallback } from './run-shared';

interface PerfCliOptions {
  spec?: string;
  python: string;
  peerScript?: string;
  threads: string;
  steps: string;
  warmup: string;
  ddimReps: string;
  microBatch?: string;
  convBatch?: string;
  convReps: string;
  rounds: string;
  maxLoad?: string;
  only: string;
  out: string;
  json?: boolean;
  skipPeer?: boolean;
  backend?: string;
}

const DEFAULT_PYTHON = '/usr/bin/python3';
/** The benchmark UNet spec, kept in the repository (a copy of the peer's `shared/peers/unet_spec.json`). */
const SPEC_RELATIVE = join('bench', 'unet_spec.json');
/** Where the PyTorch twin lives beside a checkout of the project (it is not part of the repository). */
const PEER_RELATIVE = join('..', 'shared', 'peers', 'torch_unet.py');
const TORCH_HINT = 'install it with `apt-get install -y python3-torch` (Debian), or pass --python, or --skip-peer';

/** `ofm bench` and its subcommands. */
export function registerBench(program: Command): void {
  const bench = program.command('bench').description('benchmarks (see `ofm bench perf --help` and `ofm bench continual --help`)');
  registerBenchContinual(bench);
  bench
    .command('perf')
    .description('speed of training, DDIM and conv kernels against the PyTorch twin, side by side in one run')
    .option('--spec <path>', `UNet spec JSON (default: ${SPEC_RELATIVE} from the repository root)`)
    .option('--python <path>', 'python with torch for the peer', DEFAULT_PYTHON)
    .option('--peer-script <path>', `the PyTorch twin (default: torch_unet.py next to the spec, else ${PEER_RELATIVE} from the repository root)`)
    .option('--threads <n>', 'threads for both sides (ours: the threaded wasm build when > 1)', '1')
    .option('--steps <n>', 'timed training steps per run', '2')
    .option('--warmup <n>', 'untimed warm-up training steps per run', '1')
    .option('--ddim-reps <n>', 'timed DDIM reconstructions per run', '1')
    .option('--micro-batch <n>', 'our forward/backward slice size (default: the whole batch)')
    .option('--conv-batch <n>', 'batch of the conv measurements (default: the spec batch_size)')
    .option('--conv-reps <n>', 'timed calls per conv direction and shape', '2')
    .option('--rounds <n>', 'interleaved rounds of training and DDIM (PyTorch, ours, PyTorch, ours, ..., PyTorch); the spread of the rounds\' ratios is reported', '3')
    .option('--max-load <x>', '1-minute load average above which the run is flagged as too busy to compare (default: the number of CPUs)')
    .option('--only <list>', `comma-separated subset of: ${PERF_WORKLOADS.join(', ')}`, PERF_WORKLOADS.join(','))
    .option('--out <file>', 'where to write the JSON', join('bench-results', 'perf.json'))
    .option('--json', 'print the JSON instead of the table')
    .option('--skip-peer', 'measure only ours (no PyTorch)')
    .option('--backend <name>', BACKEND_OPTION_HELP)
    .action(async (options: PerfCliOptions) => {
      const result = await runPerf(options, process.argv.slice(2));
      process.stdout.write(options.json ? `${JSON.stringify(result, null, 2)}\n` : `${formatPerfTable(result)}\n`);
    });
}

/** Find the repository root (the folder with pnpm-workspace.yaml) at or above `from`. */
function findRepoRoot(from: string): string | undefined {
  let dir = resolve(from);
  for (;;) {
    if (existsSync(join(dir, 'pnpm-workspace.yaml'))) return dir;
    const up = dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

/**
 * The spec path: `--spec` relative to the working directory, else `bench/unet_spec.json` in the
 * repository (found from the working directory, then from this file).
 */
export function resolveSpecPath(spec: string | undefined, cwd = process.cwd()): string {
  if (spec != null) {
    const path = resolve(cwd, spec);
    if (!existsSync(path)) throw new CliError(`--spec ${spec}: no such file (${path})`);
    return path;
  }
  const roots = [findRepoRoot(cwd), findRepoRoot(dirname(fileURLToPath(import.meta.url)))];
  const tried: string[] = [];
  for (const root of roots) {
    if (root == null) continue;
    const path = resolve(root, SPEC_RELATIVE);
    if (existsSync(path)) return path;
    tried.push(path);
  }
  throw new CliError(
    `no UNet spec found (looked for ${tried.length ? tried.join(' and ') : `${SPEC_RELATIVE} above ${cwd}`}); ` +
      'pass --spec PATH to a spec JSON (the repository keeps one at bench/unet_spec.json)',
  );
}

/** `torch_unet.py` next to the spec, else beside the repository (`../shared/peers/`); the first that exists. */
function defaultPeerScript(specPath: string): string {
  const candidates = [join(dirname(specPath), 'torch_unet.py')];
  const root = findRepoRoot(dirname(fileURLToPath(import.meta.url))) ?? findRepoRoot(process.cwd());
  if (root) candidates.push(resolve(root, PEER_RELATIVE));
  return candidates.find((p) => existsSync(p)) ?? candidates[candidates.length - 1]!;
}

function run(file: string, args: string[], env?: NodeJS.ProcessEnv): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    execFile(file, args, { maxBuffer: 64 << 20, env: env ?? process.env }, (err, stdout, stderr) => {
      if (err) {
        const tail = `${stderr}`.trim().split('\n').slice(-8).join('\n');
        const e = new Error(`${file} ${args.slice(0, 3).join(' ')} … failed: ${err.message}${tail ? `\n${tail}` : ''}`);
        (e as Error & { code?: unknown }).code = (err as Error & { code?: unknown }).code;
        reject(e);
      } else {
        resolvePromise({ stdout: `${stdout}`, stderr: `${stderr}` });
      }
    });
  });
}

/** Check that `python` runs and imports torch, and that the twin script exists. */
async function probePeer(python: string, script: string | null): Promise<PeerInfo> {
  const base = { python, script };
  let torchVersion: string;
  try {
    const { stdout } = await run(python, ['-c', 'import torch; print(torch.__version__)']);
    torchVersion = stdout.trim();
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'ENOENT' || code === 'EACCES') {
      return { ...base, status: 'skipped', reason: `python ${python} was not found; ${TORCH_HINT}` };
    }
    const last = (err instanceof Error ? err.message : String(err)).trim().split('\n').pop();
    return { ...base, status: 'skipped', reason: `${python} cannot import torch (${last}); ${TORCH_HINT}` };
  }
  if (script == null || !existsSync(script)) {
    return {
      ...base,
      status: 'skipped',
      reason: `the PyTorch twin script ${script ?? 'torch_unet.py'} does not exist: it is not part of the repository; it lives in the project's shared/peers folder beside the checkout (pass --peer-script PATH to it)`,
    };
  }
  return { ...base, status: 'ok', torch_version: torchVersion };
}

/** Run the twin in one mode and read its JSON. */
async function runTwin(peer: PeerInfo, threads: number, specPath: string, mode: string, extra: string[]): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(os.tmpdir(), 'ofm-bench-'));
  const jsonPath = join(dir, `${mode}.json`);
  try {
    await run(peer.python, [peer.script!, '--spec', specPath, '--mode', mode, '--threads', String(threads), '--json', jsonPath, ...extra]);
    return JSON.parse(readFileSync(jsonPath, 'utf8')) as Record<string, unknown>;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function parseOnly(value: string): Set<PerfWorkload> {
  const parts = value.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = parts.filter((p) => !(PERF_WORKLOADS as readonly string[]).includes(p));
  if (bad.length > 0 || parts.length === 0) {
    throw new CliError(`--only ${value}: use a comma-separated subset of ${PERF_WORKLOADS.join(', ')}`);
  }
  return new Set(parts as PerfWorkload[]);
}

function note(message: string): void {
  process.stderr.write(`ofm bench: ${message}\n`);
}


/**
 * The PyTorch side of the conv workload, `peers/torch_conv.py` in this package: found from the
 * bundle (`dist/`) and from the sources (`src/commands/`).
 */
export function torchConvScript(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, '..', 'peers', 'torch_conv.py'), join(here, '..', '..', 'peers', 'torch_conv.py')];
  return candidates.find((p) => existsSync(p)) ?? candidates[0]!;
}

/** The PyTorch twin as the benchmark's peer: every call is one python process. */
function twinRunner(peer: PeerInfo, threads: number, specPath: string): PerfPeerRunner {
  return {
    async params() {
      const params = await runTwin(peer, threads, specPath, 'params', []);
      return {
        paramCount: Number(params.param_count),
        forwardGflopPerImage: Number(params.forward_gflop_per_image),
        paramBreakdown: (params.param_breakdown ?? {}) as Record<string, number>,
      };
    },
    async train({ steps, warmup }) {
      const r = await runTwin(peer, threads, specPath, 'train', ['--steps', String(steps), '--warmup', String(warmup)]);
      return (r.timings as Timings).all;
    },
    async ddim({ reps, warmup }) {
      const r = await runTwin(peer, threads, specPath, 'ddim', ['--steps', String(reps), '--warmup', String(warmup)]);
      return (r.timings as Timings).all;
    },
    async conv(shapes: PeerConvShape[], reps: number) {
      const payload = JSON.stringify(shapes);
      const env = { ...process.env, OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
      const { stdout } = await run(peer.python, [torchConvScript(), String(threads), String(reps), payload], env);
      return (JSON.parse(stdout.trim().split('\n').pop()!) as { results: Array<Record<string, number[]>> }).results;
    },
  };
}

/**
 * Run the benchmark described by the CLI options (`runPerfBenchmark` of @ofm/detector/experiments,
 * with the PyTorch twin as its peer); writes the JSON to `--out` and returns it.
 */
export async function runPerf(options: PerfCliOptions, argv: string[] = []): Promise<PerfJson> {
  const threads = integer('--threads', options.threads, 1, 256);
  const steps = integer('--steps', options.steps, 1);
  const warmup = integer('--warmup', options.warmup, 0);
  const ddimReps = integer('--ddim-reps', options.ddimReps, 1);
  const convReps = integer('--conv-reps', options.convReps, 1);
  const rounds = integer('--rounds', options.rounds ?? '3', 1, 100);
  const maxLoad = options.maxLoad != null ? Number(options.maxLoad) : os.cpus().length;
  if (!Number.isFinite(maxLoad) || maxLoad <= 0) throw new CliError(`--max-load must be a positive number, got "${options.maxLoad}"`);
  const only = parseOnly(options.only);
  const specPath = resolveSpecPath(options.spec);
  let rawSpec: Record<string, unknown>;
  try {
    rawSpec = JSON.parse(readFileSync(specPath, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new CliError(`--spec ${specPath}: not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  const { batch } = perfSpecSettings(rawSpec, specPath);
  const microBatch = options.microBatch != null ? integer('--micro-batch', options.microBatch, 1) : batch;
  const convBatch = options.convBatch != null ? integer('--conv-batch', options.convBatch, 1) : batch;
  const notes: string[] = [];
  const load = new LoadMonitor();
  load.sample();

  // tfjs and the model are loaded only now, so `ofm --help` stays fast.
  const { enableWasmThreads, initBackend, tf } = await import('@ofm/tensor');
  const { parseUNetConfig } = await import('@ofm/diffusion');
  parseUNetConfig(rawSpec, specPath);
  if (threads > 1 && tf.engine().registry.wasm == null) {
    // tfjs uses one thread under Node.js; its threaded wasm build is started here instead.
    try {
      await enableWasmThreads(threads);
    } catch (err) {
      notes.push(`the threaded wasm build did not start, so ours ran on one thread: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  // Every workload reads asynchronously (the trainer's stepAsync, `await data()`), so WebGPU in
  // Node.js, which has no synchronous reads, runs them all.
  const report = await initBackend({ backend: options.backend as 'auto' | undefined, syncReads: false });
  refuseWebgpuFallback(report);
  if (report.adapter?.software) {
    notes.push(`webgpu runs on a software adapter (${report.detail ?? 'no GPU'}): these numbers check that it works, they are not GPU speed`);
  }
  if (threads > 1 && report.backend === 'wasm' && report.threads !== threads) {
    notes.push(`ours ran with ${report.threads ?? 1} thread(s), PyTorch with ${threads}`);
  }

  // The peer: probe it; the benchmark compares parameter counts before timing anything.
  const script = options.peerScript != null ? resolve(options.peerScript) : defaultPeerScript(specPath);
  const peer: PeerInfo = options.skipPeer
    ? { status: 'skipped', reason: '--skip-peer', python: options.python, script }
    : await probePeer(options.python, script);
  if (peer.status === 'skipped') note(`PyTorch peer skipped: ${peer.reason}`);

  const result = await runPerfBenchmark({
      spec: rawSpec,
      specPath,
      only,
      threads,
      steps,
      warmup,
      ddimReps,
      convReps,
      rounds,
      microBatch,
      convBatch,
      maxLoad,
      peer,
      peerRunner: peer.status === 'ok' ? twinRunner(peer, threads, specPath) : undefined,
      backend: report,
      load,
      notes,
      argv,
    onNote: note,
  });
  const out = resolve(options.out);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  note(`wrote ${out}`);
  return result;
}
