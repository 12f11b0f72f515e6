/**
 * @ofm/detector/experiments without running a benchmark: each method of the continual benchmark
 * builds the detector it stands for, representation memory and the iSVD comparison, the table and
 * its Markdown from hand-made results, and the ratio and load statistics of the speed benchmark.
 * (`ofm bench continual` and `ofm bench perf` run them end to end in apps/cli.)
 */
import { describe, expect, it } from 'vitest';
import { ContinualDetector, type DetectorConfigInput } from '@ofm/detector';
import {
  BENCH_METHODS,
  BENCH_METHOD_NAMES,
  type BenchRow,
  type RunResult,
  buildBenchJson,
  checkLoad,
  compareMethods,
  flatSummary,
  formatBenchMarkdown,
  meanStd,
  methodConfigInput,
  type PerfPeerRunner,
  planContinualBenchmark,
  representationPeak,
  roundRatios,
  runPerfBenchmark,
} from '@ofm/detector/experiments';
import { UNet, parseUNetConfig } from '@ofm/diffusion';
import { ParamStore, initBackend } from '@ofm/tensor';

/** The CLI's tiny end-to-end config (apps/cli/test/helpers.ts) as `ofm bench continual`'s test uses it. */
const TINY_CONFIG = {
  imageSize: 24,
  unet: { model_channels: 8, channel_mult: [1, 2], attention_resolutions: [12], num_heads: 2, groupnorm_groups: 4, time_embed_dim: 16 },
  amn: { enabled: true, hintChannels: [8, 8], dim: 8, layers: 1, heads: 2, ffn: 16, dropout: 0, maskSize: 3 },
  training: { steps: 5, batchSize: 4, maxTimestep: 200 },
  reconstruction: { tStartCandidates: [40, 80], steps: 2 },
  continual: { collectImages: 4, maxRowsPerCall: 32 },
  validation: { fraction: 0.25, minImages: 2 },
};
const TINY = { ...TINY_CONFIG, continual: { collectImages: 8, maxRowsPerCall: 128 }, inferenceBatch: 2 };

describe('the methods', () => {
  it('each builds the detector it stands for, on top of the user config', async () => {
    await initBackend({ backend: 'wasm' });
    // knn is a reference method, not the model.
    expect(BENCH_METHOD_NAMES.filter((m) => 'reference' in BENCH_METHODS[m])).toEqual(['knn']);
    const built = Object.fromEntries(
      BENCH_METHOD_NAMES.filter((m) => m !== 'knn').map((m) => [m, new ContinualDetector(methodConfigInput(TINY as DetectorConfigInput, m, 7))]),
    );
    for (const d of Object.values(built)) {
      expect(d.config.seed).toBe(7);
      expect(d.config.imageSize).toBe(TINY.imageSize);
      expect(d.config.continual.collectImages).toBe(TINY.continual.collectImages);
    }
    const summary = (m: string) => {
      const d = built[m]!;
      return [d.config.continual.weights, d.config.continual.projection, d.gpm.toMeta().options.factorizer, d.amn?.config.useMask, d.config.training.amnWeight];
    };
    expect(summary('finetune')).toEqual(['shared', 'none', 'isvd', true, 1]);
    expect(summary('gpm')).toEqual(['shared', 'update', 'naive', false, 0]);
    expect(summary('ofm')).toEqual(['per-task', 'update', 'isvd', true, 1]);
    expect(summary('ofm-shared')).toEqual(['shared', 'update', 'isvd', true, 1]);
    expect(summary('joint')).toEqual(['shared', 'none', 'isvd', true, 1]);
    expect(summary('ofm-noamn')).toEqual(['shared', 'update', 'isvd', false, 0]);
    expect(summary('ofm-noisvd')).toEqual(['shared', 'update', 'naive', true, 1]);
    for (const d of Object.values(built)) d.dispose();
  });

  it('are planned once per seed; joint learns one task with the steps of the whole sequence', async () => {
    const plan = await planContinualBenchmark({
      base: TINY as DetectorConfigInput,
      methods: ['ofm', 'joint'],
      seeds: [1, 2],
      tasks: [['tiles'], ['washer']],
      data: { data: '/data', format: 'mvtec' },
    });
    expect(plan.sequence).toBe('tiles|washer');
    expect(plan.runs.map((r) => r.id)).toEqual(['ofm-seed1', 'ofm-seed2', 'joint-seed1', 'joint-seed2']);
    expect(plan.runs.map((r) => r.tasks)).toEqual([[['tiles'], ['washer']], [['tiles'], ['washer']], [['tiles', 'washer']], [['tiles', 'washer']]]);
    expect(plan.runs.map((r) => [r.seed, r.config.seed, r.config.training.steps])).toEqual([
      [1, 1, 5],
      [2, 2, 5],
      [1, 1, 10],
      [2, 2, 10],
    ]);
    await expect(planContinualBenchmark({ methods: ['nope' as 'ofm'], tasks: [['a']], data: { data: '/d', format: 'mvtec' } })).rejects.toMatchObject({
      name: 'ExperimentError',
      code: 'unknown-method',
    });
  });
});

describe('representation memory', () => {
  const record = (peakBytes: number, stateBytes?: number, blockBytes?: number) => ({
    task: 0,
    threshold: 0.99,
    compression: 0.999,
    samples: 10,
    peakBytes,
    stateBytes,
    blockBytes,
    explainedBefore: 0,
    explainedAfter: 1,
    added: 1,
    refused: 0,
    rank: 1,
  });

  it('is the states of all layers plus the largest block (layers fold one after another)', () => {
    expect(representationPeak([record(130, 100, 30), record(70, 50, 20), undefined])).toBe(100 + 50 + 30);
    // Records written before the split count each layer's whole peak.
    expect(representationPeak([record(130), record(70, 50, 20)])).toBe(130 + 50 + 20);
    expect(representationPeak([])).toBe(0);
  });

  it("is compared with the naive method's matrices, not its growing stack buffer", () => {
    const row = (method: string, peak: number, matrices: number) => ({ method, image_auroc: 0.9, representation_peak_bytes: peak, representation_matrix_bytes: matrices }) as unknown as BenchRow;
    const [memory, auroc] = compareMethods([row('ofm-shared', 40, 1000), row('ofm-noisvd', 1800, 1000)]).slice(-2);
    expect(memory!.claim).toContain('ofm-shared vs ofm-noisvd');
    expect(memory!.value).toBe(4);
    expect(memory!.meets).toBe(true);
    expect(auroc!.value).toBe(0);
  });
});

describe('the table', () => {
  it('is the mean and sample std over seeds, with the runs not done marked, as JSON and Markdown', async () => {
    expect(meanStd([1, 3])).toEqual([2, Math.SQRT2]);
    expect(meanStd([2])).toEqual([2, null]);
    expect(meanStd([2, null])).toEqual([null, null]);
    const plan = await planContinualBenchmark({
      base: TINY as DetectorConfigInput,
      methods: ['finetune', 'ofm'],
      seeds: [1, 2],
      tasks: [['tiles'], ['washer']],
      data: { data: '/data', format: 'mvtec' },
      argv: ['bench', 'continual', '--tasks', 'tiles|washer'],
    });
    const result = (id: string, auroc: number, forgetting: number) => {
      const run = plan.runs.find((r) => r.id === id)!;
      return {
        ...run,
        data: plan.data,
        backend: 'wasm',
        tfjs_version: '4.22.0',
        threads: 1,
        checkpoint: `/out/runs/${id}`,
        classes: ['tiles', 'washer'],
        per_task: [],
        class_matrices: { image_auroc: [], pixel_auroc: [], pixel_ap: [], pixel_aupro: [] },
        image_auroc: auroc,
        pixel_auroc: auroc,
        pixel_ap: auroc,
        pixel_aupro: auroc,
        image_auroc_forgetting: forgetting,
        pixel_auroc_forgetting: forgetting,
        pixel_ap_forgetting: forgetting,
        pixel_aupro_forgetting: forgetting,
        basis_bytes: 0,
        representation_peak_bytes: 0,
        representation_matrix_bytes: 0,
        seconds: 60,
        cpu_seconds: 120,
      } satisfies RunResult;
    };
    const results = new Map<string, RunResult>([
      ['finetune-seed1', result('finetune-seed1', 0.8, 0.2)],
      ['finetune-seed2', result('finetune-seed2', 0.7, 0.3)],
      ['ofm-seed1', result('ofm-seed1', 0.9, 0.01)],
    ]);
    const table = buildBenchJson(plan, '/out', results, new Map([['ofm-seed2', 'exit code 1: boom']]), 2, plan.argv);
    expect(table.complete).toBe(false);
    expect(table.command).toBe("ofm bench continual --tasks 'tiles|washer'");
    expect(table.rows.map((r) => [r.method, r.runs, r.seeds])).toEqual([
      ['finetune', 2, [1, 2]],
      ['ofm', 1, [1]],
    ]);
    expect(table.rows[0]!.image_auroc).toBeCloseTo(0.75, 12);
    expect(table.rows[0]!.image_auroc_std).toBeCloseTo(Math.sqrt(0.005), 12);
    expect(table.rows[1]!.image_auroc_std).toBeNull();
    expect(table.runs.map((r) => r.status)).toEqual(['done', 'done', 'done', 'failed']);
    expect(table.runs[3]).toMatchObject({ id: 'ofm-seed2', error: 'exit code 1: boom', result: '/out/runs/ofm-seed2.json' });
    expect(table.comparisons[0]).toMatchObject({ claim: 'ofm forgets at most 2 points of image AUROC', value: 1, meets: true });

    const md = formatBenchMarkdown(table);
    expect(md).toContain('**Partial: 3 of 4 runs done.**');
    expect(md).toMatch(/^\| finetune \| 75\.0 ± 7\.1 \| /m);
    expect(md).toMatch(/^\| ofm \(1 of 2 seeds\) \| 90\.0 \| /m);
    expect(md).toContain('| ofm-seed2 | failed: exit code 1: boom | – | – | /out/runs/ofm-seed2.json |');
    expect(flatSummary(table, '/out')).toMatchObject({ markdown: '/out/benchmark.md', json: '/out/benchmark.json', complete: false, rows: table.rows });
  });
});

describe('the speed benchmark', () => {
  it('round ratios: each round against the peer runs on both sides of it; the median and range over rounds', () => {
    const r = roundRatios([[2], [4], [1]], [[1], [3], [1], [2]]);
    // Round 1: peers 1 and 3 -> median 2, ours 2 -> 1; round 2: peers 3, 1 -> 2 / 4; round 3: peers 1, 2 -> 1.5 / 1.
    expect(r.ratios).toEqual([1, 0.5, 1.5]);
    expect(r.ratio).toBe(1);
    expect(r.spread).toEqual([0.5, 1.5]);
    expect(roundRatios([[1]], null)).toEqual({ ratios: [null], ratio: null, spread: null });
    expect(checkLoad([0.5, 2.5, 1], 2)).toEqual({ max_loadavg_1m: 2.5, limit: 2, ok: false });
    expect(checkLoad([0.5, 1], 2).ok).toBe(true);
  });

  /** The tiny spec of the CLI's bench test: 16 px, batch 2, 2 DDIM steps. */
  const SPEC = {
    image_size: 16,
    in_channels: 3,
    out_channels: 3,
    model_channels: 8,
    channel_mult: [1, 2],
    num_res_blocks: 1,
    attention_resolutions: [8],
    num_heads: 2,
    groupnorm_groups: 4,
    time_embed_dim: 16,
    batch_size: 2,
    ddim_steps: 2,
    lr: 1e-4,
  };
  const peerInfo = { status: 'ok' as const, python: 'fake', script: null, torch_version: 'fake' };

  /** A peer that takes `seconds` per call and reports the parameter count it is given. */
  function fakePeer(paramCount: number, calls: string[]): PerfPeerRunner {
    return {
      params: async () => ({ paramCount, forwardGflopPerImage: 0, paramBreakdown: { out: paramCount } }),
      train: async ({ steps }) => {
        calls.push('peer train');
        return new Array<number>(steps).fill(0.5);
      },
      ddim: async ({ reps }) => {
        calls.push('peer ddim');
        return new Array<number>(reps).fill(0.25);
      },
      conv: async (shapes, reps) => {
        calls.push('peer conv');
        return shapes.map(() => ({ forward: new Array<number>(reps).fill(1e-3), 'grad-input': [1e-3], 'grad-filter': [1e-3] }));
      },
    };
  }

  it('interleaves a peer with our rounds (peer, ours, peer, ...) and refuses a model of another size', async () => {
    await initBackend({ backend: 'wasm' });
    const store = new ParamStore(0);
    const params = new UNet(store, parseUNetConfig(SPEC)).init().paramCount();
    store.dispose();
    const calls: string[] = [];
    const notes: string[] = [];
    const r = await runPerfBenchmark({
      spec: SPEC,
      specPath: 'tiny.json',
      only: ['ddim', 'conv'],
      rounds: 2,
      convReps: 1,
      maxLoad: 1000,
      peer: peerInfo,
      peerRunner: fakePeer(params, calls),
      onNote: (m) => notes.push(m),
    });
    expect(calls).toEqual(['peer ddim', 'peer ddim', 'peer ddim', 'peer conv', 'peer conv']);
    expect(notes.filter((n) => n.startsWith('ddim:'))).toEqual(['ddim: PyTorch', expect.stringMatching(/^ddim: ours, round 1\/2/), 'ddim: PyTorch', expect.stringMatching(/^ddim: ours, round 2\/2/), 'ddim: PyTorch']);
    expect(r.param_count).toEqual({ ours: params, peer: params, match: true });
    expect(r.train).toBeUndefined();
    const ddim = r.ddim!;
    expect(ddim.timesteps).toEqual([500, 0]);
    expect(ddim.peer!.runs).toHaveLength(3);
    expect(ddim.speed_ratio_rounds).toEqual(ddim.rounds.map((round) => 0.25 / round.seconds[0]!));
    expect(ddim.peer!.sec_per_image).toBe(0.125);
    for (const row of r.conv!.rows) {
      expect(row.peer_gflops).toBeCloseTo(row.gflop / 1e-3, 9);
      expect(row.speed_ratio).toBeCloseTo(row.ours_gflops / row.peer_gflops!, 9);
    }
    expect(r.load_check).toMatchObject({ limit: 1000, ok: true });

    await expect(
      runPerfBenchmark({ spec: SPEC, specPath: 'tiny.json', only: ['ddim'], peer: peerInfo, peerRunner: fakePeer(params + 1, []) }),
    ).rejects.toMatchObject({ name: 'ExperimentError', code: 'parameter-mismatch', message: expect.stringMatching(/^parameter counts differ \(ours \d+, PyTorch \d+\) for tiny\.json/) });
    await expect(runPerfBenchmark({ spec: { ...SPEC, batch_size: 0 }, specPath: 'tiny.json' })).rejects.toMatchObject({
      code: 'bad-input',
      message: 'tiny.json: batch_size must be a positive integer',
    });
  });
});
