/**
 * Benchmark: naive GPM (stack every representation vector, one SVD at the end) against the
 * streaming iSVD, on a UNet-sized layer set fed T timesteps x B batches of tap rows.
 *
 *   pnpm --filter @ofm/isvd bench [-- --out bench-results/isvd.json --T 10 --B 16 --rows 64]
 *
 * Each method runs in its own child process, so its peak resident memory (maxRSS) is its own.
 * Reported per method: bytes held by the factorisations (peak, summed over layers), process
 * memory (peak RSS and sampled JS heap + array buffers, above the baseline after start-up and data
 * set-up), time spent factoring (data generation excluded), and, per layer, the rank and the
 * agreement of the iSVD subspace with the naive one (cosines of the principal angles between the
 * energy-0.999 subspaces) and the relative error of the singular values.
 *
 * Data: per layer, `rows` samples per (timestep, batch) from a seeded low-rank-plus-noise model
 * ({@link SyntheticRepresentation}): a signal subspace with a geometric spectrum (σ from 1 to 0.3),
 * a mean inside it, 0.05% isotropic noise energy, and per-direction scales that change with the
 * timestep (±40%), as activations do along the diffusion chain.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  IncrementalSvd,
  type IsvdMethod,
  type LowRankFactor,
  type RepresentationFactorizer,
  StackedSvd,
  SyntheticRepresentation,
  maxRelativeError,
  subspaceAgreement,
} from '../src/index';

interface LayerSpec {
  name: string;
  dim: number;
  /** Signal rank of the synthetic activations. */
  rank: number;
}

/** Input dimensions of a small UNet: the RGB input conv and 3x3 convs over 64/128/256 channels. */
const LAYERS: LayerSpec[] = [
  { name: 'input conv 3x3x3', dim: 27, rank: 16 },
  { name: 'conv 3x3x64', dim: 576, rank: 48 },
  { name: 'conv 3x3x128', dim: 1152, rank: 64 },
  { name: 'conv 3x3x256', dim: 2304, rank: 96 },
];

interface Config {
  T: number;
  B: number;
  rows: number;
  energy: number;
  maxRank: number | null;
  blocksPerUpdate: number;
  methods: string[];
  seed: number;
  out: string;
}

interface WorkerResult {
  method: string;
  factorBytesPeak: number;
  perLayer: { name: string; dim: number; rank: number; bytesPeak: number; seconds: number; updates: number | null }[];
  seconds: number;
  baselineRss: number;
  maxRss: number;
  baselineHeap: number;
  peakHeap: number;
}

function parseArgs(argv: string[]): { config: Config; worker: string | null; basesDir: string | null } {
  const get = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const num = (flag: string, fallback: number): number => {
    const v = get(flag);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`isvd bench: ${flag} must be a positive number, got '${v}'`);
    return n;
  };
  const maxRank = get('--maxRank');
  return {
    config: {
      T: num('--T', 10),
      B: num('--B', 16),
      rows: num('--rows', 64),
      energy: num('--energy', 0.999),
      maxRank: maxRank === undefined ? null : num('--maxRank', 0),
      blocksPerUpdate: num('--k', 1),
      methods: (get('--methods') ?? 'naive,gram,qr').split(','),
      seed: num('--seed', 1),
      out: get('--out') ?? 'bench-results/isvd.json',
    },
    worker: get('--worker') ?? null,
    basesDir: get('--bases') ?? null,
  };
}

function makeFactorizer(method: string, layer: LayerSpec, config: Config): RepresentationFactorizer {
  const n = config.T * config.B * config.rows;
  if (method === 'naive') return new StackedSvd({ dim: layer.dim, energy: config.energy, expectedRows: n });
  if (method !== 'gram' && method !== 'qr') throw new Error(`isvd bench: unknown method '${method}' (naive, gram or qr)`);
  return new IncrementalSvd({
    dim: layer.dim,
    energy: config.energy,
    maxRank: config.maxRank ?? layer.dim,
    blocksPerUpdate: config.blocksPerUpdate,
    method: method as IsvdMethod,
  });
}

function heapNow(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** One method, in this process: stream every layer's blocks, factor, save the bases. */
async function runWorker(method: string, config: Config, basesDir: string): Promise<WorkerResult> {
  const gens = LAYERS.map((l, i) => new SyntheticRepresentation({ dim: l.dim, rank: l.rank, mean: 1, modulation: 0.4, period: config.T, seed: config.seed * 100 + i }));
  // Baseline after start-up and data set-up, before any factoriser allocates.
  globalThis.gc?.();
  const baselineRss = process.memoryUsage().rss;
  const baselineHeap = heapNow();
  const facts = LAYERS.map((l) => makeFactorizer(method, l, config));
  let peakHeap = baselineHeap;
  const seconds = LAYERS.map(() => 0);
  for (let b = 0; b < config.B; b++) {
    for (let t = 0; t < config.T; t++) {
      for (let i = 0; i < LAYERS.length; i++) {
        const block = gens[i]!.block(config.rows, t);
        const t0 = performance.now();
        facts[i]!.push(block);
        seconds[i]! += (performance.now() - t0) / 1000;
      }
      peakHeap = Math.max(peakHeap, heapNow());
    }
  }
  const factors: LowRankFactor[] = [];
  for (let i = 0; i < LAYERS.length; i++) {
    const t0 = performance.now();
    factors.push(facts[i]!.factor());
    seconds[i]! += (performance.now() - t0) / 1000;
    peakHeap = Math.max(peakHeap, heapNow());
  }
  for (let i = 0; i < LAYERS.length; i++) {
    const f = factors[i]!;
    await writeFile(join(basesDir, `${method}-${i}.json`), JSON.stringify({ rows: f.U.rows, cols: f.U.cols, S: Array.from(f.S) }));
    await writeFile(join(basesDir, `${method}-${i}.bin`), new Uint8Array(Float64Array.from(f.U.data).buffer));
  }
  return {
    method,
    factorBytesPeak: facts.reduce((a, f) => a + f.peakBytesHeld, 0),
    perLayer: LAYERS.map((l, i) => ({
      name: l.name,
      dim: l.dim,
      rank: factors[i]!.S.length,
      bytesPeak: facts[i]!.peakBytesHeld,
      seconds: seconds[i]!,
      updates: facts[i] instanceof IncrementalSvd ? (facts[i] as IncrementalSvd).updates : null,
    })),
    seconds: seconds.reduce((a, s) => a + s, 0),
    baselineRss,
    maxRss: process.resourceUsage().maxRSS * 1024,
    baselineHeap,
    peakHeap,
  };
}

async function loadFactor(dir: string, method: string, i: number): Promise<LowRankFactor> {
  const meta = JSON.parse(await readFile(join(dir, `${method}-${i}.json`), 'utf8')) as { rows: number; cols: number; S: number[] };
  const bytes = await readFile(join(dir, `${method}-${i}.bin`));
  const data = new Float64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  return { U: { rows: meta.rows, cols: meta.cols, data }, S: Float64Array.from(meta.S) };
}

/** Run one method in a child process (same runtime flags, so tsx keeps working). */
function runChild(method: string, argv: string[], basesDir: string): Promise<WorkerResult> {
  const script = fileURLToPath(import.meta.url);
  const args = [...process.execArgv, '--expose-gc', script, ...argv, '--worker', method, '--bases', basesDir];
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`isvd bench: worker '${method}' exited with code ${code}`));
      const line = out.trim().split('\n').pop() ?? '';
      try {
        resolvePromise(JSON.parse(line) as WorkerResult);
      } catch {
        reject(new Error(`isvd bench: worker '${method}' printed no result (last line: ${line.slice(0, 200)})`));
      }
    });
  });
}

const MB = 1024 * 1024;
const fmtMB = (b: number) => `${(b / MB).toFixed(2)} MB`;

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ')).join('\n');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const { config, worker, basesDir } = parseArgs(argv);
  if (worker) {
    const result = await runWorker(worker, config, basesDir!);
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  if (!config.methods.includes('naive')) throw new Error('isvd bench: --methods must include naive (the reference)');
  const n = config.T * config.B * config.rows;
  console.log(
    `iSVD benchmark: ${LAYERS.length} layers (inDims ${LAYERS.map((l) => l.dim).join(', ')}), T=${config.T} timesteps x B=${config.B} batches ` +
      `x ${config.rows} rows = ${n} samples per layer; energy ${config.energy}, rank cap ${config.maxRank ?? 'none'}, k=${config.blocksPerUpdate}`,
  );
  const dir = await mkdtemp(join(tmpdir(), 'ofm-isvd-bench-'));
  const results: Record<string, WorkerResult> = {};
  try {
    for (const method of config.methods) {
      console.log(`  running ${method} ...`);
      results[method] = await runChild(method, argv, dir);
    }
    const naive = results.naive!;
    const comparisons: Record<string, { layer: string; dim: number; rankNaive: number; rankIsvd: number; minCosine: number; meanSquaredCosine: number; sigmaRelError: number }[]> = {};
    for (const method of config.methods.filter((m) => m !== 'naive')) {
      comparisons[method] = [];
      for (let i = 0; i < LAYERS.length; i++) {
        const ref = await loadFactor(dir, 'naive', i);
        const got = await loadFactor(dir, method, i);
        const r = Math.min(ref.S.length, got.S.length);
        const agree = subspaceAgreement(got.U, ref.U, r);
        comparisons[method]!.push({
          layer: LAYERS[i]!.name,
          dim: LAYERS[i]!.dim,
          rankNaive: ref.S.length,
          rankIsvd: got.S.length,
          minCosine: agree.minCosine,
          meanSquaredCosine: agree.meanSquaredCosine,
          sigmaRelError: maxRelativeError(got.S, ref.S, r),
        });
      }
    }

    // Tables.
    const methodRows = [['method', 'factor bytes (peak)', 'vs naive', 'peak RSS - base', 'heap+buffers - base', 'factor time']];
    for (const m of config.methods) {
      const r = results[m]!;
      methodRows.push([
        m === 'naive' ? 'naive GPM' : `iSVD (${m})`,
        fmtMB(r.factorBytesPeak),
        `${((100 * r.factorBytesPeak) / naive.factorBytesPeak).toFixed(2)}%`,
        fmtMB(r.maxRss - r.baselineRss),
        fmtMB(r.peakHeap - r.baselineHeap),
        `${r.seconds.toFixed(2)} s`,
      ]);
    }
    console.log(`\n${table(methodRows)}\n`);
    const layerRows = [['layer', 'dim', 'method', 'rank', 'naive rank', 'bytes', 'naive bytes', 'time', 'naive time', 'min cos', 'σ rel err']];
    for (const m of Object.keys(comparisons)) {
      comparisons[m]!.forEach((c, i) => {
        layerRows.push([
          c.layer,
          String(c.dim),
          m,
          String(c.rankIsvd),
          String(c.rankNaive),
          fmtMB(results[m]!.perLayer[i]!.bytesPeak),
          fmtMB(naive.perLayer[i]!.bytesPeak),
          `${results[m]!.perLayer[i]!.seconds.toFixed(2)} s`,
          `${naive.perLayer[i]!.seconds.toFixed(2)} s`,
          c.minCosine.toFixed(8),
          c.sigmaRelError.toExponential(2),
        ]);
      });
    }
    console.log(`${table(layerRows)}\n`);

    const goals = Object.fromEntries(
      Object.keys(comparisons).map((m) => {
        const memoryRatio = results[m]!.factorBytesPeak / naive.factorBytesPeak;
        const agreement = Math.min(...comparisons[m]!.map((c) => c.minCosine));
        return [m, { memoryRatio, minAgreement: agreement, memoryGoalMet: memoryRatio <= 0.05, agreementGoalMet: agreement >= 0.99 }];
      }),
    );
    for (const [m, g] of Object.entries(goals)) {
      console.log(
        `goal (${m}): iSVD memory ${(100 * g.memoryRatio).toFixed(2)}% of naive (<= 5%: ${g.memoryGoalMet ? 'met' : 'NOT met'}), ` +
          `subspace agreement ${g.minAgreement.toFixed(6)} (>= 0.99: ${g.agreementGoalMet ? 'met' : 'NOT met'})`,
      );
    }
    const out = resolve(config.out);
    await mkdir(dirname(out), { recursive: true });
    const { out: _out, ...configJson } = config;
    await writeFile(
      out,
      `${JSON.stringify(
        { benchmark: 'isvd', date: new Date().toISOString(), node: process.version, config: { ...configJson, samplesPerLayer: n }, layers: LAYERS, results, comparisons, goals },
        null,
        2,
      )}\n`,
    );
    console.log(`results written to ${out}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
