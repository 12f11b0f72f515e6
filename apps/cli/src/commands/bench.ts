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
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { UNet as UNetClass } from '@ofm/diffusion';
import type { Rng as RngClass, Tensor, Tensor4D, tf as TfNamespace } from '@ofm/tensor';
import type { Command } from 'commander';
import { CliError } from '../errors';
import { integer } from '../util';
import { registerBenchContinual } from './bench-continual';
import { BACKEND_OPTION_HELP } from './info';
import { refuseWebgpuFallback } from './run-shared';

/** The workloads `ofm bench perf` can run. */
export const PERF_WORKLOADS = ['train', 'ddim', 'conv'] as const;
export type PerfWorkload = (typeof PERF_WORKLOADS)[number];

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

/** Summary statistics of a list of seconds. */
export interface Timings {
  unit: string;
  n: number;
  min: number;
  median: number;
  max: number;
  all: number[];
}

/** One conv2d shape of the spec: NHWC input `[batch, size, size, cin]`, a `k x k` filter to `cout`. */
export interface ConvShape {
  size: number;
  cin: number;
  cout: number;
  k: number;
  stride: number;
  /** How many layers of the UNet have this shape. */
  count: number;
}

/** One row of the conv table: GFLOP/s of one direction of one shape, both sides. */
export interface ConvRow extends Omit<ConvShape, 'count'> {
  count: number;
  batch: number;
  op: 'forward' | 'grad-input' | 'grad-filter';
  gflop: number;
  ours_gflops: number;
  peer_gflops: number | null;
  /** ours / peer GFLOP/s; null without a peer. */
  speed_ratio: number | null;
}

/** Where the PyTorch side stands. */
export interface PeerInfo {
  status: 'ok' | 'skipped';
  /** Why the peer was skipped (status 'skipped'). */
  reason?: string;
  python: string;
  script: string | null;
  torch_version?: string;
}

/** One interleaved round of a workload: our timed run between two peer runs. */
export interface PerfRound {
  /** Our seconds in this round. */
  seconds: number[];
  loadavg: [number[], number[]];
  /** Median of the two flanking peer runs / our median; null without a peer. */
  speed_ratio: number | null;
}

/**
 * Whether the machine was quiet enough for the numbers to mean something: interleaving corrects for
 * load that drifts slowly, not for other processes competing for the cores during a run.
 */
export interface LoadCheck {
  /** Largest 1-minute load average seen at any start or end of a timed run. */
  max_loadavg_1m: number;
  /** The limit (`--max-load`, default the number of CPUs). */
  limit: number;
  ok: boolean;
}

/** The JSON `ofm bench perf` writes (and prints with `--json`). */
export interface PerfJson {
  tool: 'ofm bench perf';
  version: 1;
  date: string;
  argv: string[];
  machine: { cpu: string | null; cpus: number; node: string; platform: string; total_memory_bytes: number };
  loadavg_start: number[];
  loadavg_end: number[];
  spec_path: string;
  spec: Record<string, unknown>;
  threads: number;
  ours: {
    backend: string;
    tfjs_version: string;
    custom_kernels: string[];
    threads: number | null;
    micro_batch: number;
    /** The device in words (e.g. 'software adapter: ... llvmpipe'); null when the backend gives none. */
    device?: string | null;
    /** webgpu: whether the adapter is a software one (numbers are then a correctness smoke, not GPU speed). */
    software_adapter?: boolean;
  };
  peer: PeerInfo;
  param_count: { ours: number; peer: number | null; match: boolean | null };
  forward_gflop_per_image: { ours: number; peer: number | null };
  train?: {
    batch: number;
    gflop_per_step: number;
    ours: Timings & { images_per_s: number; gflops: number; losses: number[]; loadavg: [number[], number[]] };
    peer: (Timings & { images_per_s: number; gflops: number; runs: PeerRun[] }) | null;
    /** Median of the rounds' ratios (PyTorch time / ours: above 1 = we are faster). */
    speed_ratio: number | null;
    /** Each round's ratio, and their smallest and largest. */
    speed_ratio_rounds: (number | null)[];
    speed_ratio_spread: [number, number] | null;
    rounds: PerfRound[];
  };
  ddim?: {
    batch: number;
    ddim_steps: number;
    timesteps: number[];
    ours: Timings & { sec_per_image: number; loadavg: [number[], number[]] };
    peer: (Timings & { sec_per_image: number; runs: PeerRun[] }) | null;
    speed_ratio: number | null;
    speed_ratio_rounds: (number | null)[];
    speed_ratio_spread: [number, number] | null;
    rounds: PerfRound[];
  };
  conv?: { batch: number; reps: number; rows: ConvRow[]; peer_runs: PeerRun[] };
  load_check: LoadCheck;
  notes: string[];
}

/** One invocation of a peer process: its timings and the load around it. */
interface PeerRun {
  all: number[];
  loadavg_start: number[];
  loadavg_end: number[];
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

function stats(seconds: number[], unit: string): Timings {
  const sorted = [...seconds].sort((a, b) => a - b);
  const n = sorted.length;
  const median = n % 2 === 1 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
  return { unit, n, min: sorted[0]!, median, max: sorted[n - 1]!, all: seconds };
}

/** Every load average sampled by {@link loadavg} in this process (for the load check). */
const loadSamples: number[] = [];

function loadavg(): number[] {
  const load = os.loadavg().map((v) => Math.round(v * 100) / 100);
  loadSamples.push(load[0]!);
  return load;
}

/** The load check of a run: the largest 1-minute load average sampled against `limit`. */
export function checkLoad(samples: number[], limit: number): LoadCheck {
  const max = samples.length ? Math.max(...samples) : 0;
  return { max_loadavg_1m: max, limit, ok: max <= limit };
}

/**
 * The ratio of each round (the median of the peer runs before and after it over our median), and
 * the median of those; `peerRuns` has one more entry than `rounds` (peer, ours, peer, ours, ..., peer).
 */
export function roundRatios(
  rounds: number[][],
  peerRuns: number[][] | null,
): { ratios: (number | null)[]; ratio: number | null; spread: [number, number] | null } {
  if (!peerRuns || peerRuns.length !== rounds.length + 1) return { ratios: rounds.map(() => null), ratio: null, spread: null };
  const ratios = rounds.map((seconds, r) => stats([...peerRuns[r]!, ...peerRuns[r + 1]!], 's').median / stats(seconds, 's').median);
  return { ratios, ratio: stats(ratios, '').median, spread: [Math.min(...ratios), Math.max(...ratios)] };
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

/**
 * Times conv2d forward and the two gradients in PyTorch for a list of shapes; prints one JSON
 * line. Thread settings are made before torch is imported (as the twin does). The gradients are
 * `aten::convolution_backward`, what autograd runs in training.
 */
const TORCH_CONV_SCRIPT = `
import json, os, sys, time
threads, reps = int(sys.argv[1]), int(sys.argv[2])
shapes = json.loads(sys.argv[3])
os.environ["OMP_NUM_THREADS"] = str(threads)
os.environ["MKL_NUM_THREADS"] = str(threads)
import torch
torch.set_num_threads(threads)
try:
    torch.set_num_interop_threads(1)
except RuntimeError:
    pass
torch.manual_seed(0)
def median_seconds(f):
    f()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    return ts
out = []
for s in shapes:
    b, h, ci, co, k, st = s["batch"], s["size"], s["cin"], s["cout"], s["k"], s["stride"]
    p = k // 2
    x = torch.randn(b, ci, h, h)
    w = torch.randn(co, ci, k, k)
    with torch.no_grad():
        y = torch.nn.functional.conv2d(x, w, None, st, p)
    dy = torch.randn_like(y)
    def fwd():
        with torch.no_grad():
            torch.nn.functional.conv2d(x, w, None, st, p)
    def bwd(mask):
        return lambda: torch.ops.aten.convolution_backward(dy, x, w, None, [st, st], [p, p], [1, 1], False, [0, 0], 1, mask)
    out.append({"forward": median_seconds(fwd), "grad-input": median_seconds(bwd([True, False, False])),
                "grad-filter": median_seconds(bwd([False, True, False]))})
print(json.dumps({"torch_version": torch.__version__, "threads": torch.get_num_threads(), "results": out}))
`;

/** The distinct conv2d shapes of a UNet plan, with how often each occurs in one forward pass. */
export function specConvShapes(plan: {
  inputBlocks: Array<Array<{ kind: string; [k: string]: unknown }>>;
  middleBlock: Array<{ kind: string; [k: string]: unknown }>;
  outputBlocks: Array<Array<{ kind: string; [k: string]: unknown }>>;
}, config: { image_size: number; in_channels: number; out_channels: number; model_channels: number }): ConvShape[] {
  const shapes = new Map<string, ConvShape>();
  const add = (size: number, cin: number, cout: number, k: number, stride: number) => {
    const key = `${size}/${cin}/${cout}/${k}/${stride}`;
    const known = shapes.get(key);
    if (known) known.count++;
    else shapes.set(key, { size, cin, cout, k, stride, count: 1 });
  };
  let res = config.image_size;
  const visit = (layer: { kind: string; [k: string]: unknown }) => {
    const n = (key: string) => layer[key] as number;
    switch (layer.kind) {
      case 'conv-in':
        add(res, config.in_channels, n('outChannels'), 3, 1);
        break;
      case 'res':
        add(res, n('inChannels'), n('outChannels'), 3, 1);
        add(res, n('outChannels'), n('outChannels'), 3, 1);
        if (n('inChannels') !== n('outChannels')) add(res, n('inChannels'), n('outChannels'), 1, 1);
        break;
      case 'downsample':
        add(res, n('channels'), n('channels'), 3, 2);
        res /= 2;
        break;
      case 'upsample':
        res *= 2;
        add(res, n('channels'), n('channels'), 3, 1);
        break;
    }
  };
  for (const block of [...plan.inputBlocks, plan.middleBlock, ...plan.outputBlocks]) block.forEach(visit);
  add(config.image_size, config.model_channels, config.out_channels, 3, 1);
  return [...shapes.values()];
}

function convGflop(s: Omit<ConvShape, 'count'>, batch: number): number {
  const out = Math.ceil(s.size / s.stride);
  return (2 * batch * out * out * s.cout * s.cin * s.k * s.k) / 1e9;
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

/** Run the benchmark described by the CLI options; writes the JSON to `--out` and returns it. */
export async function runPerf(options: PerfCliOptions, argv: string[] = []): Promise<PerfJson> {
  const threads = integer('--threads', options.threads, 1, 256);
  const steps = integer('--steps', options.steps, 1);
  const warmup = integer('--warmup', options.warmup, 0);
  const ddimReps = integer('--ddim-reps', options.ddimReps, 1);
  const convReps = integer('--conv-reps', options.convReps, 1);
  const rounds = integer('--rounds', options.rounds ?? '3', 1, 100);
  const maxLoad = options.maxLoad != null ? Number(options.maxLoad) : os.cpus().length;
  if (!Number.isFinite(maxLoad) || maxLoad <= 0) throw new CliError(`--max-load must be a positive number, got "${options.maxLoad}"`);
  loadSamples.length = 0;
  const only = parseOnly(options.only);
  const specPath = resolveSpecPath(options.spec);
  let rawSpec: Record<string, unknown>;
  try {
    rawSpec = JSON.parse(readFileSync(specPath, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new CliError(`--spec ${specPath}: not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  const batch = Number(rawSpec.batch_size ?? 8);
  const ddimSteps = Number(rawSpec.ddim_steps ?? 10);
  const lr = Number(rawSpec.lr ?? 1e-4);
  if (!Number.isInteger(batch) || batch < 1) throw new CliError(`${specPath}: batch_size must be a positive integer`);
  if (!Number.isInteger(ddimSteps) || ddimSteps < 1) throw new CliError(`${specPath}: ddim_steps must be a positive integer`);
  const microBatch = options.microBatch != null ? integer('--micro-batch', options.microBatch, 1) : batch;
  const convBatch = options.convBatch != null ? integer('--conv-batch', options.convBatch, 1) : batch;
  const notes: string[] = [];
  const loadStart = loadavg();

  // tfjs and the model are loaded only now, so `ofm --help` stays fast.
  const { enableWasmThreads, initBackend, ParamStore, Rng, tf } = await import('@ofm/tensor');
  const { DiffusionTrainer, NoiseSchedule, UNet, parseUNetConfig, reconstruct } = await import('@ofm/diffusion');
  let config: ReturnType<typeof parseUNetConfig>;
  try {
    config = parseUNetConfig(rawSpec, specPath);
  } catch (err) {
    throw new CliError(err instanceof Error ? err.message : String(err));
  }
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
  let report: Awaited<ReturnType<typeof initBackend>>;
  try {
    report = await initBackend({ backend: options.backend as 'auto' | undefined, syncReads: false });
  } catch (err) {
    throw new CliError(err instanceof Error ? err.message : String(err));
  }
  refuseWebgpuFallback(report);
  if (report.adapter?.software) {
    notes.push(`webgpu runs on a software adapter (${report.detail ?? 'no GPU'}): these numbers check that it works, they are not GPU speed`);
  }
  if (threads > 1 && report.backend === 'wasm' && report.threads !== threads) {
    notes.push(`ours ran with ${report.threads ?? 1} thread(s), PyTorch with ${threads}`);
  }
  const store = new ParamStore(0);
  const unet = new UNet(store, config).init();
  const oursParams = unet.paramCount();

  // The peer: probe, then compare parameter counts before timing anything.
  const script = options.peerScript != null ? resolve(options.peerScript) : defaultPeerScript(specPath);
  const peer: PeerInfo = options.skipPeer
    ? { status: 'skipped', reason: '--skip-peer', python: options.python, script }
    : await probePeer(options.python, script);
  if (peer.status === 'skipped') note(`PyTorch peer skipped: ${peer.reason}`);
  let peerParams: number | null = null;
  let peerGflop: number | null = null;
  if (peer.status === 'ok') {
    note(`PyTorch ${peer.torch_version}: comparing parameter counts`);
    const params = await runTwin(peer, threads, specPath, 'params', []);
    peerParams = Number(params.param_count);
    peerGflop = Number(params.forward_gflop_per_image);
    if (peerParams !== oursParams) {
      const ours = unet.paramBreakdown();
      const theirs = (params.param_breakdown ?? {}) as Record<string, number>;
      const keys = [...new Set([...Object.keys(ours), ...Object.keys(theirs)])];
      const diff = keys
        .filter((k) => ours[k] !== theirs[k])
        .map((k) => `${k}: ours ${ours[k] ?? 0}, PyTorch ${theirs[k] ?? 0}`);
      throw new CliError(
        `parameter counts differ (ours ${oursParams}, PyTorch ${peerParams}) for ${specPath}, so the models are not the same ` +
          `and no timing is reported. Blocks that differ: ${diff.join('; ') || 'none by block'}`,
        1,
      );
    }
  }
  const gflopImage = forwardGflopPerImage(unet, config, tf);
  if (peerGflop != null && Math.abs(peerGflop - gflopImage) > 1e-3 * peerGflop) {
    notes.push(`FLOP counts differ: ours ${gflopImage.toFixed(4)}, PyTorch ${peerGflop.toFixed(4)} GFLOP per image forward`);
  }

  const result: PerfJson = {
    tool: 'ofm bench perf',
    version: 1,
    date: new Date().toISOString(),
    argv,
    machine: {
      cpu: os.cpus()[0]?.model ?? null,
      cpus: os.cpus().length,
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
      total_memory_bytes: os.totalmem(),
    },
    loadavg_start: loadStart,
    loadavg_end: loadStart,
    spec_path: specPath,
    spec: rawSpec,
    threads,
    ours: {
      backend: report.backend,
      tfjs_version: report.tfjsVersion,
      custom_kernels: [...report.customKernels],
      threads: report.threads ?? null,
      micro_batch: microBatch,
      device: report.detail ?? null,
      ...(report.adapter ? { software_adapter: report.adapter.software } : {}),
    },
    peer,
    param_count: { ours: oursParams, peer: peerParams, match: peerParams == null ? null : peerParams === oursParams },
    forward_gflop_per_image: { ours: gflopImage, peer: peerGflop },
    load_check: checkLoad([], maxLoad),
    notes,
  };

  const peerOk = peer.status === 'ok';
  const rng = new Rng(1);
  const x0 = rng.rand([batch, config.image_size, config.image_size, config.in_channels], -1, 1) as Tensor4D;
  try {
    if (only.has('train')) {
      const peerRuns: PeerRun[] = [];
      const peerTrain = async () => {
        if (!peerOk) return;
        note('train: PyTorch');
        const l0 = loadavg();
        const r = await runTwin(peer, threads, specPath, 'train', ['--steps', String(steps), '--warmup', String(warmup)]);
        peerRuns.push({ all: (r.timings as Timings).all, loadavg_start: l0, loadavg_end: loadavg() });
      };
      await peerTrain();
      const trainer = new DiffusionTrainer({
        unet,
        schedule: new NoiseSchedule({ kind: 'linear' }),
        optimizer: { lr, weightDecay: 0.01 },
        microBatch: microBatch < batch ? microBatch : undefined,
      });
      const roundsDone: PerfRound[] = [];
      const losses: number[] = [];
      try {
        for (let r = 0; r < rounds; r++) {
          const warm = r === 0 ? warmup : 0;
          note(
            `train: ours, round ${r + 1}/${rounds} (batch ${batch}${microBatch < batch ? ` in slices of ${microBatch}` : ''}, ${warm} warm-up + ${steps} timed steps)`,
          );
          const l0 = loadavg();
          const seconds: number[] = [];
          for (let i = 0; i < warm + steps; i++) {
            const t0 = performance.now();
            const step = await trainer.stepAsync(x0);
            const sec = (performance.now() - t0) / 1000;
            losses.push(step.loss);
            if (i >= warm) seconds.push(sec);
            note(`  ${i < warm ? 'warm-up' : 'step'} ${i}: ${sec.toFixed(2)} s, loss ${step.loss.toFixed(4)}`);
          }
          roundsDone.push({ seconds, loadavg: [l0, loadavg()], speed_ratio: null });
          await peerTrain();
        }
      } finally {
        trainer.dispose();
      }
      const gflopStep = 3 * gflopImage * batch;
      const ours = stats(roundsDone.flatMap((r) => r.seconds), 's/step');
      const peerStats = peerOk ? stats(peerRuns.flatMap((r) => r.all), 's/step') : null;
      const ratios = roundRatios(roundsDone.map((r) => r.seconds), peerOk ? peerRuns.map((r) => r.all) : null);
      roundsDone.forEach((r, i) => {
        r.speed_ratio = ratios.ratios[i]!;
      });
      result.train = {
        batch,
        gflop_per_step: gflopStep,
        ours: {
          ...ours,
          images_per_s: batch / ours.median,
          gflops: gflopStep / ours.median,
          losses,
          loadavg: [roundsDone[0]!.loadavg[0], roundsDone.at(-1)!.loadavg[1]],
        },
        peer: peerStats ? { ...peerStats, images_per_s: batch / peerStats.median, gflops: gflopStep / peerStats.median, runs: peerRuns } : null,
        speed_ratio: ratios.ratio,
        speed_ratio_rounds: ratios.ratios,
        speed_ratio_spread: ratios.spread,
        rounds: roundsDone,
      };
    }

    if (only.has('ddim')) {
      // The twin's rule: noise to t_start = T - T/S, then S calls at round(linspace(0, t_start, S)).
      const T = 1000;
      const tStart = T - Math.floor(T / ddimSteps);
      const timesteps = Array.from({ length: ddimSteps }, (_, i) =>
        Math.round(ddimSteps === 1 ? tStart : (i * tStart) / (ddimSteps - 1)),
      ).reverse();
      const peerRuns: PeerRun[] = [];
      const peerDdim = async () => {
        if (!peerOk) return;
        note('ddim: PyTorch');
        const l0 = loadavg();
        const r = await runTwin(peer, threads, specPath, 'ddim', ['--steps', String(ddimReps), '--warmup', '1']);
        peerRuns.push({ all: (r.timings as Timings).all, loadavg_start: l0, loadavg_end: loadavg() });
      };
      await peerDdim();
      const schedule = new NoiseSchedule({ kind: 'linear' });
      const warm = tf.tidy(() => unet.forward(x0, new Array<number>(batch).fill(tStart)));
      await warm.data(); // asynchronous reads: the only kind WebGPU in Node.js has
      warm.dispose();
      const roundsDone: PerfRound[] = [];
      for (let r = 0; r < rounds; r++) {
        note(`ddim: ours, round ${r + 1}/${rounds} (batch ${batch}, ${ddimSteps} steps${r === 0 ? ', after 1 warm-up UNet call' : ''}, ${ddimReps} timed)`);
        const l0 = loadavg();
        const seconds: number[] = [];
        for (let i = 0; i < ddimReps; i++) {
          const t0 = performance.now();
          const out = reconstruct(unet, schedule, x0, { tStart, timesteps, seed: i });
          await out.data();
          out.dispose();
          seconds.push((performance.now() - t0) / 1000);
          note(`  reconstruction ${i}: ${seconds[i]!.toFixed(2)} s`);
        }
        roundsDone.push({ seconds, loadavg: [l0, loadavg()], speed_ratio: null });
        await peerDdim();
      }
      const ours = stats(roundsDone.flatMap((r) => r.seconds), 's/reconstruction');
      const peerStats = peerOk ? stats(peerRuns.flatMap((r) => r.all), 's/reconstruction') : null;
      const ratios = roundRatios(roundsDone.map((r) => r.seconds), peerOk ? peerRuns.map((r) => r.all) : null);
      roundsDone.forEach((r, i) => {
        r.speed_ratio = ratios.ratios[i]!;
      });
      result.ddim = {
        batch,
        ddim_steps: ddimSteps,
        timesteps,
        ours: { ...ours, sec_per_image: ours.median / batch, loadavg: [roundsDone[0]!.loadavg[0], roundsDone.at(-1)!.loadavg[1]] },
        peer: peerStats ? { ...peerStats, sec_per_image: peerStats.median / batch, runs: peerRuns } : null,
        speed_ratio: ratios.ratio,
        speed_ratio_rounds: ratios.ratios,
        speed_ratio_spread: ratios.spread,
        rounds: roundsDone,
      };
    }

    if (only.has('conv')) {
      const shapes = specConvShapes(unet.plan, config);
      const peerRuns: PeerRun[] = [];
      const peerSeconds: Array<Record<string, number[]>> = shapes.map(() => ({}));
      const peerConv = async () => {
        if (!peerOk) return;
        note('conv: PyTorch');
        const l0 = loadavg();
        const payload = JSON.stringify(shapes.map((s) => ({ ...s, batch: convBatch })));
        const env = { ...process.env, OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
        const { stdout } = await run(peer.python, ['-c', TORCH_CONV_SCRIPT, String(threads), String(convReps), payload], env);
        const parsed = JSON.parse(stdout.trim().split('\n').pop()!) as { results: Array<Record<string, number[]>> };
        parsed.results.forEach((r, i) => {
          for (const [op, ts] of Object.entries(r)) peerSeconds[i]![op] = [...(peerSeconds[i]![op] ?? []), ...ts];
        });
        peerRuns.push({ all: parsed.results.flatMap((r) => Object.values(r).flat()), loadavg_start: l0, loadavg_end: loadavg() });
      };
      await peerConv();
      note(`conv: ours (${shapes.length} shapes, batch ${convBatch})`);
      const oursSeconds: Array<Record<ConvRow['op'], number[]>> = [];
      for (const s of shapes) oursSeconds.push(await timeConvOurs(tf, rng, s, convBatch, convReps));
      await peerConv();
      const rows: ConvRow[] = [];
      shapes.forEach((s, i) => {
        for (const op of CONV_OPS) {
          const gflop = convGflop(s, convBatch);
          const ours = gflop / stats(oursSeconds[i]![op], 's').median;
          const theirs = peerSeconds[i]![op];
          const peerGflops = theirs && theirs.length > 0 ? gflop / stats(theirs, 's').median : null;
          rows.push({
            ...s,
            batch: convBatch,
            op,
            gflop,
            ours_gflops: ours,
            peer_gflops: peerGflops,
            speed_ratio: peerGflops != null ? ours / peerGflops : null,
          });
        }
      });
      result.conv = { batch: convBatch, reps: convReps, rows, peer_runs: peerRuns };
    }
  } finally {
    x0.dispose();
    store.dispose();
  }

  result.loadavg_end = loadavg();
  result.load_check = checkLoad(loadSamples, maxLoad);
  if (!result.load_check.ok) {
    const msg =
      `too busy to compare: the 1-minute load average reached ${result.load_check.max_loadavg_1m} on ${result.machine.cpus} CPUs ` +
      `(limit ${maxLoad}, --max-load), so other processes competed for the cores during the timed runs; interleaving corrects ` +
      'for load that drifts, not for this. Rerun on an idle machine before quoting these numbers.';
    notes.push(msg);
    note(`warning: ${msg}`);
  }
  const out = resolve(options.out);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  note(`wrote ${out}`);
  return result;
}

type Tf = typeof TfNamespace;

/** Seconds per call of our conv2d forward, input gradient and filter gradient for one shape. */
async function timeConvOurs(tf: Tf, rng: RngClass, s: ConvShape, batch: number, reps: number): Promise<Record<ConvRow['op'], number[]>> {
  const xShape: [number, number, number, number] = [batch, s.size, s.size, s.cin];
  const wShape: [number, number, number, number] = [s.k, s.k, s.cin, s.cout];
  const p = Math.floor(s.k / 2);
  const pad: 'valid' | [[number, number], [number, number], [number, number], [number, number]] =
    p === 0 ? 'valid' : [[0, 0], [p, p], [p, p], [0, 0]];
  const x = rng.randn(xShape) as Tensor4D;
  const w = rng.randn(wShape) as Tensor4D;
  const dy = tf.tidy(() => rng.randn(tf.conv2d(x, w, s.stride, pad).shape));
  const attrs = { strides: s.stride, pad, dataFormat: 'NHWC' };
  const calls: Record<ConvRow['op'], () => Tensor> = {
    forward: () => tf.conv2d(x, w, s.stride, pad),
    'grad-input': () => tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: w }, { ...attrs, inputShape: xShape }) as Tensor,
    'grad-filter': () => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { ...attrs, filterShape: wShape }) as Tensor,
  };
  const out = {} as Record<ConvRow['op'], number[]>;
  try {
    for (const [op, f] of Object.entries(calls) as Array<[ConvRow['op'], () => Tensor]>) {
      const seconds: number[] = [];
      for (let i = 0; i <= reps; i++) {
        const t0 = performance.now();
        const y = f();
        await y.data();
        y.dispose();
        if (i > 0) seconds.push((performance.now() - t0) / 1000); // call 0 warms up
      }
      out[op] = seconds;
    }
  } finally {
    tf.dispose([x, w, dy]);
  }
  return out;
}

/**
 * Forward GFLOP of one image, counted as the twin counts: 2·MACs of every conv and dense layer
 * (from the layer taps of one batch-1 pass) plus the two attention matmuls.
 */
function forwardGflopPerImage(
  unet: UNetClass,
  config: { image_size: number; in_channels: number },
  tf: Tf,
): number {
  let flops = 0;
  tf.tidy(() => {
    const x = tf.zeros([1, config.image_size, config.image_size, config.in_channels]) as Tensor4D;
    unet.forward(x, [0], {
      tap: (e) => {
        flops += 2 * e.input.shape[0] * e.input.shape[1] * e.weightShape[e.weightShape.length - 1]!;
      },
    });
  });
  let res = config.image_size;
  for (const block of [...unet.plan.inputBlocks, unet.plan.middleBlock, ...unet.plan.outputBlocks]) {
    for (const layer of block) {
      if (layer.kind === 'attention') flops += 2 * 2 * (res * res) ** 2 * layer.channels;
      if (layer.kind === 'downsample') res /= 2;
      if (layer.kind === 'upsample') res *= 2;
    }
  }
  return flops / 1e9;
}

const CONV_OPS = ['forward', 'grad-input', 'grad-filter'] as const;
const CONV_LABEL = { forward: 'forward', 'grad-input': 'input gradient', 'grad-filter': 'filter gradient' } as const;

function fmt(value: number | null | undefined, digits = 2): string {
  if (value == null || !Number.isFinite(value)) return '–';
  return value >= 100 ? value.toFixed(0) : value.toFixed(digits);
}

function ratio(value: number | null | undefined): string {
  return value == null ? '–' : `${value.toFixed(2)}x`;
}

/** The markdown table of a result (what `ofm bench perf` prints and the README shows). */
/** "0.23x (0.21x-0.25x, 3 rounds)": the median ratio of the rounds and their range. */
function ratioWithSpread(w: { speed_ratio: number | null; speed_ratio_spread: [number, number] | null; rounds: PerfRound[] }): string {
  if (w.speed_ratio == null) return ratio(null);
  if (w.rounds.length < 2 || w.speed_ratio_spread == null) return ratio(w.speed_ratio);
  return `${ratio(w.speed_ratio)} (${ratio(w.speed_ratio_spread[0])}-${ratio(w.speed_ratio_spread[1])}, ${w.rounds.length} rounds)`;
}

export function formatPerfTable(r: PerfJson): string {
  const peerName = r.peer.status === 'ok' ? `PyTorch ${r.peer.torch_version}` : 'PyTorch (skipped)';
  const lines = [
    `ofm bench perf: ${r.ours.backend}${r.ours.software_adapter ? ` (on a ${r.ours.device}: not GPU speed)` : ''} (tfjs ${r.ours.tfjs_version}) vs ${peerName}, ${r.threads} thread${r.threads > 1 ? 's' : ''}, ` +
      `${r.param_count.ours.toLocaleString('en-US')} parameters${r.param_count.match ? ' (same on both sides)' : ''}`,
    `${r.machine.cpu ?? 'unknown CPU'} x${r.machine.cpus}, load average ${r.loadavg_start[0]} at the start, ${r.loadavg_end[0]} at the end, ` +
      `at most ${r.load_check.max_loadavg_1m} during timed runs (${r.load_check.ok ? 'within' : 'OVER'} the limit ${r.load_check.limit})`,
    '',
    `| workload | ours | ${peerName} | ours/PyTorch speed |`,
    '|---|---|---|---|',
  ];
  if (r.train) {
    const t = r.train;
    const mb = r.ours.micro_batch < t.batch ? `, slices of ${r.ours.micro_batch}` : '';
    lines.push(`| training step, batch ${t.batch}${mb} (s/step) | ${fmt(t.ours.median)} | ${fmt(t.peer?.median)} | ${ratioWithSpread(t)} |`);
    lines.push(`| training throughput (images/s) | ${fmt(t.ours.images_per_s, 3)} | ${fmt(t.peer?.images_per_s, 3)} | |`);
    lines.push(`| training GFLOP/s (${fmt(t.gflop_per_step, 1)} GFLOP/step) | ${fmt(t.ours.gflops, 1)} | ${fmt(t.peer?.gflops, 1)} | |`);
  }
  if (r.ddim) {
    const d = r.ddim;
    lines.push(`| DDIM reconstruction, ${d.ddim_steps} steps, batch ${d.batch} (s/image) | ${fmt(d.ours.sec_per_image)} | ${fmt(d.peer?.sec_per_image)} | ${ratioWithSpread(d)} |`);
  }
  if (r.conv) {
    const layers = r.conv.rows.filter((c) => c.op === 'forward').reduce((n, c) => n + c.count, 0);
    for (const op of CONV_OPS) {
      const rows = r.conv.rows.filter((c) => c.op === op);
      // Count-weighted over the layers: total GFLOP of one pass through every conv / total time.
      const rate = (side: 'ours_gflops' | 'peer_gflops') => {
        if (rows.some((c) => c[side] == null)) return null;
        const gflop = rows.reduce((g, c) => g + c.count * c.gflop, 0);
        return gflop / rows.reduce((t, c) => t + (c.count * c.gflop) / c[side]!, 0);
      };
      const ours = rate('ours_gflops');
      const peer = rate('peer_gflops');
      lines.push(
        `| conv2d ${CONV_LABEL[op]}, all ${layers} layers, batch ${r.conv.batch} (GFLOP/s) | ${fmt(ours, 1)} | ${fmt(peer, 1)} | ${ratio(peer != null && ours != null ? ours / peer : null)} |`,
      );
    }
    lines.push('', `Per conv shape (batch ${r.conv.batch}), GFLOP/s ours / PyTorch (speed ratio):`, '');
    lines.push('| input -> output channels, kernel | layers | forward | grad input | grad filter |', '|---|---|---|---|---|');
    const shapes = r.conv.rows.filter((c) => c.op === 'forward');
    for (const s of shapes) {
      const cell = (op: ConvRow['op']) => {
        const c = r.conv!.rows.find((x) => x.op === op && x.size === s.size && x.cin === s.cin && x.cout === s.cout && x.k === s.k && x.stride === s.stride)!;
        return c.peer_gflops == null ? fmt(c.ours_gflops, 1) : `${fmt(c.ours_gflops, 1)} / ${fmt(c.peer_gflops, 1)} (${ratio(c.speed_ratio)})`;
      };
      const name = `${s.size}x${s.size}x${s.cin} -> ${s.cout}, ${s.k}x${s.k}${s.stride > 1 ? ` stride ${s.stride}` : ''}`;
      lines.push(`| ${name} | ${s.count} | ${cell('forward')} | ${cell('grad-input')} | ${cell('grad-filter')} |`);
    }
  }
  if (r.peer.status === 'skipped') lines.push('', `PyTorch peer skipped: ${r.peer.reason}`);
  for (const n of r.notes) lines.push('', `note: ${n}`);
  return lines.join('\n');
}
