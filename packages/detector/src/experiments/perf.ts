/**
 * The speed benchmark (`ofm bench perf`): the UNet of one spec timed on its training step, its DDIM
 * reconstruction and every distinct conv2d, optionally interleaved with a peer (the PyTorch twin)
 * that runs the same workloads: peer, ours, peer, ... so that a machine whose load changes during
 * the run biases neither side; the load average is recorded around every run.
 *
 * Workloads:
 * - `train`: one training step (forward, backward, AdamW) on a fixed batch: s/step, images/s;
 * - `ddim`: one deterministic DDIM reconstruction of a batch (`ddim_steps` UNet calls): s/image;
 * - `conv`: every distinct conv2d of the spec, forward, input gradient and filter gradient: GFLOP/s.
 *
 * The ratio is the speed of ours relative to the peer (peer time / our time): 0.25x means four
 * times slower. How the peer runs (a Python process, say) is the caller's: {@link PerfPeerRunner}.
 * Importing this module loads no tensors; {@link runPerfBenchmark} loads the model packages.
 */
import os from 'node:os';
import type { ConvShape } from '@ofm/diffusion';
import type { BackendReport, Rng as RngClass, Tensor, Tensor4D, tf as TfNamespace } from '@ofm/tensor';
import { ExperimentError } from './errors';

/** The workloads of the speed benchmark. */
export const PERF_WORKLOADS = ['train', 'ddim', 'conv'] as const;
/** A workload of {@link PERF_WORKLOADS}. */
export type PerfWorkload = (typeof PERF_WORKLOADS)[number];

/** Summary statistics of a list of seconds. */
export interface Timings {
  unit: string;
  n: number;
  min: number;
  median: number;
  max: number;
  all: number[];
}

/** The three directions of a conv measured per shape. */
export const CONV_OPS = ['forward', 'grad-input', 'grad-filter'] as const;

/** One row of the conv table: GFLOP/s of one direction of one shape, both sides. */
export interface ConvRow extends Omit<ConvShape, 'count'> {
  count: number;
  batch: number;
  op: (typeof CONV_OPS)[number];
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

/** One invocation of a peer process: its timings and the load around it. */
export interface PeerRun {
  all: number[];
  loadavg_start: number[];
  loadavg_end: number[];
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

/** Min, median and max of a list of seconds (`unit` names what one value measures). */
export function timingStats(seconds: number[], unit: string): Timings {
  const sorted = [...seconds].sort((a, b) => a - b);
  const n = sorted.length;
  const median = n % 2 === 1 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
  return { unit, n, min: sorted[0]!, median, max: sorted[n - 1]!, all: seconds };
}

/** The load check of a run: the largest 1-minute load average sampled against `limit`. */
export function checkLoad(samples: number[], limit: number): LoadCheck {
  const max = samples.length ? Math.max(...samples) : 0;
  return { max_loadavg_1m: max, limit, ok: max <= limit };
}

/** Samples the load average (rounded to 0.01) and keeps every 1-minute value for {@link checkLoad}. */
export class LoadMonitor {
  /** Every 1-minute load average sampled so far. */
  readonly samples: number[] = [];
  /** The first sample (1, 5 and 15 minutes), if any. */
  first: number[] | undefined;

  /** The load averages now (1, 5 and 15 minutes), recorded. */
  sample(): number[] {
    const load = os.loadavg().map((v) => Math.round(v * 100) / 100);
    this.samples.push(load[0]!);
    this.first ??= load;
    return load;
  }
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
  const ratios = rounds.map((seconds, r) => timingStats([...peerRuns[r]!, ...peerRuns[r + 1]!], 's').median / timingStats(seconds, 's').median);
  return { ratios, ratio: timingStats(ratios, '').median, spread: [Math.min(...ratios), Math.max(...ratios)] };
}

/** What the benchmark reads from a spec besides the architecture: the batch, DDIM steps and learning rate. */
export interface PerfSpecSettings {
  /** `batch_size` (default 8). */
  batch: number;
  /** `ddim_steps` (default 10). */
  ddimSteps: number;
  /** `lr` (default 1e-4). */
  lr: number;
}

/** The benchmark settings of a spec; an {@link ExperimentError} (`'bad-input'`) naming `specPath` when unusable. */
export function perfSpecSettings(spec: Record<string, unknown>, specPath: string): PerfSpecSettings {
  const batch = Number(spec.batch_size ?? 8);
  const ddimSteps = Number(spec.ddim_steps ?? 10);
  const lr = Number(spec.lr ?? 1e-4);
  if (!Number.isInteger(batch) || batch < 1) throw new ExperimentError('bad-input', `${specPath}: batch_size must be a positive integer`);
  if (!Number.isInteger(ddimSteps) || ddimSteps < 1) throw new ExperimentError('bad-input', `${specPath}: ddim_steps must be a positive integer`);
  return { batch, ddimSteps, lr };
}

/** The peer's counts for the spec, to compare before anything is timed. */
export interface PeerParams {
  paramCount: number;
  forwardGflopPerImage: number;
  /** Parameter counts per top-level block, keyed as `UNet.paramBreakdown()`. */
  paramBreakdown: Record<string, number>;
}

/** A conv shape with the batch to time it at. */
export type PeerConvShape = ConvShape & { batch: number };

/**
 * How the peer runs: each call is one invocation (e.g. a Python process) and returns the seconds
 * of each timed repetition. {@link runPerfBenchmark} calls it before and after each of our rounds.
 */
export interface PerfPeerRunner {
  /** Build the spec's model and report its counts. */
  params(): Promise<PeerParams>;
  /** `steps` timed training steps of a batch, after `warmup` untimed ones: seconds per step. */
  train(opts: { steps: number; warmup: number }): Promise<number[]>;
  /** `reps` timed DDIM reconstructions after `warmup` untimed ones: seconds per reconstruction. */
  ddim(opts: { reps: number; warmup: number }): Promise<number[]>;
  /** Per shape, seconds of `reps` timed calls of each of {@link CONV_OPS}. */
  conv(shapes: PeerConvShape[], reps: number): Promise<Array<Record<string, number[]>>>;
}

/** Options of {@link runPerfBenchmark}. */
export interface PerfOptions {
  /** The spec as read (UNet architecture plus `batch_size`, `ddim_steps`, `lr`). */
  spec: Record<string, unknown>;
  /** Where the spec came from (recorded; names it in errors). */
  specPath: string;
  /** Workloads to run (default all of {@link PERF_WORKLOADS}). */
  only?: Iterable<PerfWorkload>;
  /** Threads of both sides (recorded; the peer is told; ours are the backend's). Default 1. */
  threads?: number;
  /** Timed training steps per round (default 2). */
  steps?: number;
  /** Untimed warm-up training steps before the first round (default 1). */
  warmup?: number;
  /** Timed DDIM reconstructions per round (default 1). */
  ddimReps?: number;
  /** Timed calls per conv direction and shape (default 2). */
  convReps?: number;
  /** Interleaved rounds of training and DDIM (default 3). */
  rounds?: number;
  /** Our forward/backward slice size (default: the whole batch). */
  microBatch?: number;
  /** Batch of the conv measurements (default: the spec's batch). */
  convBatch?: number;
  /** 1-minute load average above which the run is flagged (default: the number of CPUs). */
  maxLoad?: number;
  /** The peer as recorded in the JSON; `'ok'` needs `peerRunner`. Default: skipped, no peer. */
  peer?: PeerInfo;
  /** Runs the peer's workloads when `peer.status` is `'ok'`. */
  peerRunner?: PerfPeerRunner;
  /** The backend ours runs on (default: the current one, `backendReport()` of `@ofm/tensor`). */
  backend?: BackendReport;
  /** Load averages sampled so far (the first one is `loadavg_start`); default a new monitor. */
  load?: LoadMonitor;
  /** Notes already gathered (e.g. while starting the backend); the run adds its own. */
  notes?: string[];
  /** The command line to record (default none). */
  argv?: string[];
  /** Progress lines (which side runs what), and the load warning. */
  onNote?: (message: string) => void;
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
 * Run the speed benchmark on the current backend (initialise it first): build the spec's UNet,
 * compare parameter counts with the peer (an {@link ExperimentError} `'parameter-mismatch'` when
 * they differ: nothing is timed), then time each workload in interleaved rounds with the peer.
 * Every workload reads tensors asynchronously, so WebGPU in Node.js runs them all. Returns the
 * JSON `ofm bench perf` writes.
 */
export async function runPerfBenchmark(opts: PerfOptions): Promise<PerfJson> {
  const threads = opts.threads ?? 1;
  const steps = opts.steps ?? 2;
  const warmup = opts.warmup ?? 1;
  const ddimReps = opts.ddimReps ?? 1;
  const convReps = opts.convReps ?? 2;
  const rounds = opts.rounds ?? 3;
  const maxLoad = opts.maxLoad ?? os.cpus().length;
  const only = new Set<PerfWorkload>(opts.only ?? PERF_WORKLOADS);
  const { specPath } = opts;
  const rawSpec = opts.spec;
  const { batch, ddimSteps, lr } = perfSpecSettings(rawSpec, specPath);
  const microBatch = opts.microBatch ?? batch;
  const convBatch = opts.convBatch ?? batch;
  const notes = opts.notes ?? [];
  const note = (message: string) => opts.onNote?.(message);
  const load = opts.load ?? new LoadMonitor();
  const loadavg = () => load.sample();
  const loadStart = load.first ?? loadavg();
  const peer: PeerInfo = opts.peer ?? { status: 'skipped', reason: 'no peer', python: '', script: null };
  if (peer.status === 'ok' && !opts.peerRunner) throw new ExperimentError('bad-input', "runPerfBenchmark: peer.status 'ok' needs a peerRunner");
  const twin = opts.peerRunner!;

  const { ParamStore, Rng, backendReport, tf } = await import('@ofm/tensor');
  const { DiffusionTrainer, NoiseSchedule, UNet, convGflop, forwardGflopPerImage, parseUNetConfig, reconstruct, specConvShapes } = await import('@ofm/diffusion');
  let config: ReturnType<typeof parseUNetConfig>;
  try {
    config = parseUNetConfig(rawSpec, specPath);
  } catch (err) {
    throw new ExperimentError('bad-input', err instanceof Error ? err.message : String(err));
  }
  const report = opts.backend ?? backendReport();
  if (!report) throw new ExperimentError('bad-input', 'runPerfBenchmark: no backend has been started; call initBackend() of @ofm/tensor first');
  const store = new ParamStore(0);
  try {
    const unet = new UNet(store, config).init();
    const oursParams = unet.paramCount();

    // The peer: compare parameter counts before timing anything.
    let peerParams: number | null = null;
    let peerGflop: number | null = null;
    if (peer.status === 'ok') {
      note(`PyTorch ${peer.torch_version}: comparing parameter counts`);
      const params = await twin.params();
      peerParams = params.paramCount;
      peerGflop = params.forwardGflopPerImage;
      if (peerParams !== oursParams) {
        const ours = unet.paramBreakdown();
        const theirs = params.paramBreakdown;
        const keys = [...new Set([...Object.keys(ours), ...Object.keys(theirs)])];
        const diff = keys.filter((k) => ours[k] !== theirs[k]).map((k) => `${k}: ours ${ours[k] ?? 0}, PyTorch ${theirs[k] ?? 0}`);
        throw new ExperimentError(
          'parameter-mismatch',
          `parameter counts differ (ours ${oursParams}, PyTorch ${peerParams}) for ${specPath}, so the models are not the same ` +
            `and no timing is reported. Blocks that differ: ${diff.join('; ') || 'none by block'}`,
        );
      }
    }
    const gflopImage = forwardGflopPerImage(unet);
    if (peerGflop != null && Math.abs(peerGflop - gflopImage) > 1e-3 * peerGflop) {
      notes.push(`FLOP counts differ: ours ${gflopImage.toFixed(4)}, PyTorch ${peerGflop.toFixed(4)} GFLOP per image forward`);
    }

    const result: PerfJson = {
      tool: 'ofm bench perf',
      version: 1,
      date: new Date().toISOString(),
      argv: opts.argv ?? [],
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
          const all = await twin.train({ steps, warmup });
          peerRuns.push({ all, loadavg_start: l0, loadavg_end: loadavg() });
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
        const ours = timingStats(roundsDone.flatMap((r) => r.seconds), 's/step');
        const peerStats = peerOk ? timingStats(peerRuns.flatMap((r) => r.all), 's/step') : null;
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
          const all = await twin.ddim({ reps: ddimReps, warmup: 1 });
          peerRuns.push({ all, loadavg_start: l0, loadavg_end: loadavg() });
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
        const ours = timingStats(roundsDone.flatMap((r) => r.seconds), 's/reconstruction');
        const peerStats = peerOk ? timingStats(peerRuns.flatMap((r) => r.all), 's/reconstruction') : null;
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
          const results = await twin.conv(shapes.map((s) => ({ ...s, batch: convBatch })), convReps);
          results.forEach((r, i) => {
            for (const [op, ts] of Object.entries(r)) peerSeconds[i]![op] = [...(peerSeconds[i]![op] ?? []), ...ts];
          });
          peerRuns.push({ all: results.flatMap((r) => Object.values(r).flat()), loadavg_start: l0, loadavg_end: loadavg() });
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
            const ours = gflop / timingStats(oursSeconds[i]![op], 's').median;
            const theirs = peerSeconds[i]![op];
            const peerGflops = theirs && theirs.length > 0 ? gflop / timingStats(theirs, 's').median : null;
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
    }

    result.loadavg_end = loadavg();
    result.load_check = checkLoad(load.samples, maxLoad);
    if (!result.load_check.ok) {
      const msg =
        `too busy to compare: the 1-minute load average reached ${result.load_check.max_loadavg_1m} on ${result.machine.cpus} CPUs ` +
        `(limit ${maxLoad}, --max-load), so other processes competed for the cores during the timed runs; interleaving corrects ` +
        'for load that drifts, not for this. Rerun on an idle machine before quoting these numbers.';
      notes.push(msg);
      note(`warning: ${msg}`);
    }
    return result;
  } finally {
    store.dispose();
  }
}

const CONV_LABEL = { forward: 'forward', 'grad-input': 'input gradient', 'grad-filter': 'filter gradient' } as const;

function fmt(value: number | null | undefined, digits = 2): string {
  if (value == null || !Number.isFinite(value)) return '–';
  return value >= 100 ? value.toFixed(0) : value.toFixed(digits);
}

function ratio(value: number | null | undefined): string {
  return value == null ? '–' : `${value.toFixed(2)}x`;
}

/** "0.23x (0.21x-0.25x, 3 rounds)": the median ratio of the rounds and their range. */
function ratioWithSpread(w: { speed_ratio: number | null; speed_ratio_spread: [number, number] | null; rounds: PerfRound[] }): string {
  if (w.speed_ratio == null) return ratio(null);
  if (w.rounds.length < 2 || w.speed_ratio_spread == null) return ratio(w.speed_ratio);
  return `${ratio(w.speed_ratio)} (${ratio(w.speed_ratio_spread[0])}-${ratio(w.speed_ratio_spread[1])}, ${w.rounds.length} rounds)`;
}

/** The markdown table of a result (what `ofm bench perf` prints and the README shows). */
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
