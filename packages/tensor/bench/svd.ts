/**
 * SVD timing on float32 matrices shaped like GPM representation matrices (in_dim x samples).
 *
 *   pnpm exec tsx bench/svd.ts 512x4096 2048x8192 [--rank-limited] [--v] [--energy=0.999] [--repeat=2] [--tfjs]
 *
 * For each size: a Gaussian matrix (or, with --rank-limited, a product of Gaussian m x m/8 and
 * m/8 x n factors, so rank m/8), then svd() timed per phase. With --tfjs the products with A run
 * as float32 tf.matMul on the wasm backend (`products: 'tfjs'`). Prints one JSON line per run.
 */
import { initBackend } from '../src/backend';
import { eigenRows } from '../src/linalg/eigen';
import { type Matrix, svd } from '../src/linalg/index';
import { gramMatrix } from '../src/linalg/svd';
import { gramTfjs } from '../src/linalg/tfjs-products';
import { Rng } from '../src/rng';

const args = process.argv.slice(2);
const sizes = args.filter((a) => /^\d+x\d+$/.test(a)).map((a) => a.split('x').map(Number) as [number, number]);
const rankLimited = args.includes('--rank-limited');
const withV = args.includes('--v');
const energyArg = args.find((a) => a.startsWith('--energy='));
const energy = energyArg ? Number(energyArg.slice('--energy='.length)) : undefined;
const repeatArg = args.find((a) => a.startsWith('--repeat='));
const repeat = repeatArg ? Number(repeatArg.slice('--repeat='.length)) : 1;
const useTfjs = args.includes('--tfjs');
if (useTfjs) await initBackend({ backend: 'wasm', strict: true });
if (sizes.length === 0) {
  console.error('usage: bench/svd.ts MxN [MxN...] [--rank-limited] [--v] [--energy=F] [--repeat=N]');
  process.exit(2);
}

function makeMatrix(m: number, n: number, seed: number): Matrix {
  const rng = new Rng(seed);
  if (!rankLimited) return { rows: m, cols: n, data: rng.normalArray(m * n) };
  const r = Math.max(1, Math.floor(m / 8));
  const b = rng.normalArray(m * r);
  const c = rng.normalArray(r * n);
  const data = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < r; p++) {
      const x = b[i * r + p]!;
      const co = p * n;
      const o = i * n;
      for (let j = 0; j < n; j++) data[o + j] += x * c[co + j]!;
    }
  }
  return { rows: m, cols: n, data };
}

for (const [m, n] of sizes) {
  const a = makeMatrix(m, n, m + n);
  for (let rep = 0; rep < repeat; rep++) {
    // Phases separately (Gram, eigen), then the public call end to end.
    let t = performance.now();
    const g = (useTfjs ? gramTfjs : gramMatrix)(a, m <= n ? 'rows' : 'cols');
    const gramMs = performance.now() - t;
    const p = Math.min(m, n);
    t = performance.now();
    eigenRows(g, p, p);
    const eigenMs = performance.now() - t;
    t = performance.now();
    const r = svd(a, { computeV: withV, energy, products: useTfjs ? 'tfjs' : 'float64' });
    const svdMs = performance.now() - t;
    console.log(
      JSON.stringify({
        size: `${m}x${n}`,
        data: rankLimited ? `rank ${Math.floor(m / 8)}` : 'gaussian',
        products: useTfjs ? 'tfjs (wasm)' : 'float64',
        computeV: withV,
        energy: energy ?? null,
        kept: r.S.length,
        gramMs: Math.round(gramMs),
        eigenMs: Math.round(eigenMs),
        svdMs: Math.round(svdMs),
      }),
    );
  }
}
