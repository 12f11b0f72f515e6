/**
 * What `ofm train`, `ofm quickstart`, `ofm eval` and `ofm detect` share: starting the tensor
 * backend, building or loading a detector, progress lines and the run summary. tfjs and the model
 * packages load lazily here, so `ofm --help` stays fast.
 */
import type {
  ContinualDetector,
  ContinualReport,
  DetectorConfigInput,
  RunOptions,
  RunProgress,
  RunResults,
  SnapshotMeta,
} from '@ofm/detector';
import type { BackendReport, BackendRequest } from '@ofm/tensor';
import { CliError } from '../errors';
import type { Progress } from '../util';

export interface DetectorOverrides {
  steps?: number;
  imageSize?: number;
  seed?: number;
  projection?: boolean;
  /** One set of weights for every task (`continual.weights: 'shared'`) instead of per-task weights. */
  sharedWeights?: boolean;
  amn?: boolean;
  segmenter?: boolean;
}

export interface TrainerSetup {
  backend: string;
  makeDetector(opts: {
    configInput?: Record<string, unknown>;
    overrides?: DetectorOverrides;
    resume?: string;
  }): Promise<{ detector: ContinualDetector; previous?: RunResults }>;
  run(opts: RunOptions): ReturnType<typeof import('@ofm/detector').runContinual>;
}

/**
 * `--backend webgpu` (or OFM_BACKEND=webgpu) that did not start: one clear error rather than the
 * whole job on another backend than the one asked for.
 */
export function refuseWebgpuFallback(report: BackendReport): void {
  if (report.requested !== 'webgpu' || report.backend === 'webgpu') return;
  const why = report.candidates.find((c) => c.name === 'webgpu')?.reason ?? 'it did not start';
  const from = report.requestSource === 'env' ? 'OFM_BACKEND=webgpu' : '--backend webgpu';
  throw new CliError(
    `${from}: the WebGPU backend cannot run this command here: ${why}. Use --backend wasm (or tensorflow-gpu); ` +
      '`ofm info --backend webgpu` and `ofm bench perf --backend webgpu` run on WebGPU',
  );
}

/** Start the backend (one clear error for a bad name) and load the model packages. */
export async function initRuntime(
  backend: string | undefined,
  progress?: Progress,
  opts: { asyncReads?: boolean } = {},
): Promise<TrainerSetup> {
  const tensor = await import('@ofm/tensor');
  // `asyncReads`: the command's path reads tensors only asynchronously (training and
  // evaluation by `runContinual`, `detectAsync`), so WebGPU in Node.js can run it. A bad backend
  // name is a ConfigError (exit 2, see exitCodeOf in cli.ts).
  const report = await tensor.initBackend({ backend: backend as BackendRequest | undefined, syncReads: !opts.asyncReads });
  refuseWebgpuFallback(report);
  if (report.backend === 'cpu') {
    progress?.note('running on the pure-JS cpu backend: expect training to be about 200x slower than wasm (see ofm info)');
  }
  const det = await import('@ofm/detector');
  const fresh = (configInput: Record<string, unknown>, overrides: DetectorOverrides) => {
    const input = { ...configInput } as DetectorConfigInput & Record<string, unknown>;
    const merge = <K extends keyof DetectorConfigInput>(key: K, patch: object) => {
      (input as Record<string, unknown>)[key] = { ...((input[key] as object | undefined) ?? {}), ...patch };
    };
    if (overrides.steps !== undefined) merge('training', { steps: overrides.steps });
    if (overrides.imageSize !== undefined) input.imageSize = overrides.imageSize;
    if (overrides.seed !== undefined) input.seed = overrides.seed;
    // Without projection, shared weights are the point of the ablation (per-task weights never use it).
    if (overrides.projection === false) merge('continual', { weights: 'shared', projection: 'none' });
    if (overrides.sharedWeights) merge('continual', { weights: 'shared' });
    if (overrides.amn === false) merge('amn', { enabled: false });
    if (overrides.segmenter === false) merge('segmenter', { enabled: false });
    // A bad config value is a ConfigError (exit 2).
    return { detector: new det.ContinualDetector(input) };
  };
  return {
    backend: report.backend,
    async makeDetector({ configInput = {}, overrides = {}, resume }) {
      if (!resume) return fresh(configInput, overrides);
      // Interrupted during its first task, a run leaves only a snapshot: the model starts from its config.
      const contents = await checkpointContents(resume);
      if (contents.tasks === null && contents.snapshot) {
        return fresh(contents.snapshot.config as unknown as Record<string, unknown>, overrides);
      }
      const { detector, meta } = await loadOrExplain(det, resume, overrides);
      return { detector, previous: meta.results as RunResults | undefined };
    },
    run: (opts) => det.runContinual(opts),
  };
}

/** Load a checkpoint; a missing, damaged or foreign one is a CheckpointError (exit 2). */
async function loadOrExplain(det: typeof import('@ofm/detector'), path: string, overrides: DetectorOverrides) {
  return await det.loadDetector(path, {
    training: overrides.steps !== undefined ? { steps: overrides.steps } : undefined,
    projection: overrides.projection === false ? 'none' : undefined,
  });
}

/**
 * What a checkpoint directory holds: the number of tasks of its consolidated checkpoint (null when
 * there is none) and the meta of a training snapshot of the task after them (null when none).
 */
export async function checkpointContents(dir: string): Promise<{ tasks: number | null; snapshot: SnapshotMeta | null }> {
  const det = await import('@ofm/detector');
  let tasks: number | null = null;
  try {
    tasks = (await det.readDetectorMeta(dir)).tasks.length;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code !== 'missing' && code !== 'missing-manifest') throw err;
  }
  return { tasks, snapshot: await det.readSnapshotMeta(dir) };
}

/** Load a checkpoint for detection or evaluation, with checkpoint problems as clear CLI errors. */
export async function loadForInference(backend: string | undefined, path: string) {
  // `ofm detect` and `ofm eval` read asynchronously (detectAsync, evaluateClass).
  const runtime = await initRuntime(backend, undefined, { asyncReads: true });
  const det = await import('@ofm/detector');
  const { detector, meta } = await loadOrExplain(det, path, {});
  return { runtime, detector, meta, det };
}

/** Turn run progress into progress lines. */
export function describeRunProgress(progress: Progress, p: RunProgress): void {
  const task = `task ${p.task + 1}/${p.tasks}`;
  switch (p.kind) {
    case 'load':
      if (p.done % 50 === 0) progress.update(`load-${p.task}-${p.className}`, `${task} loading ${p.className}`, p.done, p.done);
      return;
    case 'learn': {
      const label = { train: 'training', segment: 'training the segmenter', select: 'choosing t_start', consolidate: 'consolidating bases' }[p.phase];
      progress.update(`${p.phase}-${p.task}`, `${task} ${label}`, p.done, p.total, p.loss !== undefined ? `loss ${p.loss.toFixed(4)}` : '');
      return;
    }
    case 'evaluate':
      progress.update(`eval-${p.task}-${p.className}`, `${task} evaluating ${p.className}`, p.done, p.total);
      return;
    case 'resume':
      progress.note(
        `${task}: continuing training from its snapshot at step ${p.step}/${p.steps} (saved ${p.savedAt}) instead of restarting the task`,
      );
      return;
    case 'fault': {
      const f = p.fault;
      const where = f.layer ? `, first non-finite ${f.kind === 'update' ? 'weight' : 'gradient'} in ${f.layer}` : '';
      progress.warn(
        `task ${f.task + 1}/${p.tasks} step ${f.step}: non-finite ${f.kind} (loss ${f.loss}${where}); kept the last good weights and ` +
          `optimiser state, skipping this batch (${f.consecutive}/${f.limit} in a row stops training)`,
      );
      return;
    }
    case 'notice':
      progress.warn(p.message);
      return;
    case 'saved':
    case 'snapshot':
      return;
  }
}

/**
 * Take the write lock of checkpoint directory `dir` for this command (repairing what a killed
 * writer left), or fail with one clear line naming the process that holds it.
 */
export async function lockCheckpoint(dir: string, command: string, progress: Progress) {
  const { acquireCheckpointLock } = await import('@ofm/tensor');
  // Held by another process: a 'locked' CheckpointError naming it (exit 2).
  return await acquireCheckpointLock(dir, { purpose: command, onNotice: (m) => progress.warn(m) });
}

function fmt(v: number | null | undefined): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '   –  ' : v.toFixed(3);
}

/**
 * The after-each-task table printed at the end of a run; `learnedNow` is the number of tasks this
 * run learned (a resumed run learns fewer than the checkpoint holds).
 */
export function formatCurve(report: ContinualReport, checkpoint: string, seconds: number, learnedNow = report.tasks.length): string {
  const held = learnedNow === report.tasks.length ? '' : ` (the checkpoint now holds ${report.tasks.length})`;
  const lines = [
    `learned ${learnedNow} task(s) in ${(seconds / 60).toFixed(1)} min${held}; checkpoint ${checkpoint}, report ${checkpoint}/report/report.md`,
    '',
    'after task  classes                image AUROC  pixel AUROC  AUPRO   image forgetting  pixel forgetting',
  ];
  for (const c of report.curve) {
    const classes = report.tasks[c.task - 1]?.classes.join(',') ?? '';
    lines.push(
      `${String(c.task).padEnd(10)}  ${classes.padEnd(21).slice(0, 21)}  ${fmt(c.avg_image_auroc).padEnd(11)}  ${fmt(c.avg_pixel_auroc).padEnd(11)}  ${fmt(c.avg_pixel_aupro).padEnd(6)}  ${fmt(c.image_auroc_forgetting).padEnd(16)}  ${fmt(c.pixel_auroc_forgetting)}`,
    );
  }
  lines.push('');
  return `${lines.join('\n')}\n`;
}

/** `--json` of train and quickstart: flat keys, numbers or null; `tasks_learned_now` counts this run's tasks. */
export function summaryJson(report: ContinualReport, checkpoint: string, seconds: number, learnedNow = report.tasks.length): Record<string, unknown> {
  const clean = (v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v);
  return {
    checkpoint,
    report: `${checkpoint}/report/report.json`,
    seconds: Math.round(seconds * 10) / 10,
    backend: report.backend,
    classes: report.classes,
    ...Object.fromEntries(Object.entries(report.summary).map(([k, v]) => [k, clean(v)])),
    tasks_learned_now: learnedNow,
  };
}
