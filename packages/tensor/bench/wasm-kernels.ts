/**
 * GFLOP/s of the custom wasm kernels against tfjs's built-in wasm path (a measurement, not a test).
 *
 *   cd packages/tensor && pnpm exec tsx bench/wasm-kernels.ts [--iters N] [--quick]
 *
 * Conv2DBackpropFilter has no built-in on wasm; its yardstick is the built-in forward Conv2D of
 * the same shape (same FLOPs, XNNPACK). GFLOP counts 2 per multiply-add.
 */
import { initBackend } from '../src/backend';
import { registerWasmKernels, unregisterWasmKernels } from '../src/kernels';
import { Rng } from '../src/rng';
import { tf } from '../src/tf';

const args = process.argv.slice(2);
const iters = Number(args[args.indexOf('--iters') + 1]) || 5;
const quick = args.includes('--quick');
const rng = new Rng(1);

interface Row {
  op: string;
  shape: string;
  path: string;
  gflop: number;
  medianMs: number;
  bestMs: number;
}
const rows: Row[] = [];

/** Run `f` (returning a tensor) warm-up + n times; the data is read back each time. */
function time(f: () => tf.Tensor, n: number): { median: number; best: number } {
  const warm = f();
  warm.dataSync();
  warm.dispose();
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const out = f();
    out.dataSync();
    ms.push(performance.now() - t0);
    out.dispose();
  }
  ms.sort((a, b) => a - b);
  return { median: ms[Math.floor(ms.length / 2)], best: ms[0] };
}

function measure(op: string, shape: string, path: string, gflop: number, f: () => tf.Tensor, n = iters): void {
  const { median, best } = time(f, n);
  rows.push({ op, shape, path, gflop, medianMs: median, bestMs: best });
  console.log(
    `${op.padEnd(22)} ${shape.padEnd(34)} ${path.padEnd(18)} ${(gflop / (median / 1000)).toFixed(1).padStart(6)} GFLOP/s ` +
      `(best ${(gflop / (best / 1000)).toFixed(1)}; median ${median.toFixed(0)} ms)`,
  );
}

function withBuiltins<T>(f: () => T): T {
  unregisterWasmKernels();
  try {
    return f();
  } finally {
    registerWasmKernels();
  }
}

async function main(): Promise<void> {
  const report = await initBackend({ backend: 'wasm' });
  console.log(`backend ${report.backend}, simd ${report.simd}, threads ${report.threads}, tfjs ${report.tfjsVersion}`);

  const convs: Array<{ x: [number, number, number, number]; k: number; co: number; s: number }> = quick
    ? [{ x: [8, 32, 32, 128], k: 3, co: 128, s: 1 }]
    : [
        { x: [8, 32, 32, 128], k: 3, co: 128, s: 1 },
        { x: [8, 64, 64, 64], k: 3, co: 64, s: 1 },
        { x: [8, 16, 16, 256], k: 3, co: 256, s: 1 },
        { x: [8, 32, 32, 128], k: 1, co: 128, s: 1 },
        { x: [8, 32, 32, 128], k: 3, co: 128, s: 2 },
      ];
  for (const c of convs) {
    const filterShape: [number, number, number, number] = [c.k, c.k, c.x[3], c.co];
    const x = tf.tensor4d(rng.normalArray(c.x.reduce((a, b) => a * b)), c.x);
    const w = tf.tensor4d(rng.normalArray(filterShape.reduce((a, b) => a * b)), filterShape);
    const y = tf.conv2d(x, w, c.s, 'same');
    const dy = tf.tensor4d(rng.normalArray(y.size), y.shape);
    const gflop = (2 * y.size * c.k * c.k * c.x[3]) / 1e9;
    const shape = `${c.x.join('x')} ${c.k}x${c.k} s${c.s} ->${c.co}`;
    const attrs = { strides: c.s, pad: 'same', dataFormat: 'NHWC' };
    measure('Conv2D (fwd)', shape, 'built-in', gflop, () => tf.conv2d(x, w, c.s, 'same'));
    measure('Conv2DBackpropFilter', shape, 'custom', gflop, () =>
      tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { ...attrs, filterShape }) as tf.Tensor,
    );
    const dx = () => tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: w }, { ...attrs, inputShape: c.x }) as tf.Tensor;
    measure('Conv2DBackpropInput', shape, 'custom', gflop, dx);
    withBuiltins(() => measure('Conv2DBackpropInput', shape, 'built-in', gflop, dx, Math.min(iters, 3)));
    tf.dispose([x, w, y, dy]);
  }

  const mms: Array<{ a: number[]; b: number[]; ta: boolean; tb: boolean }> = quick
    ? [{ a: [8, 256, 512], b: [8, 512, 256], ta: false, tb: false }]
    : [
        { a: [8, 256, 512], b: [8, 512, 256], ta: false, tb: false },
        { a: [1024, 1024], b: [1024, 1024], ta: false, tb: false },
        { a: [1024, 1024], b: [1024, 1024], ta: true, tb: false },
        { a: [1024, 1024], b: [1024, 1024], ta: false, tb: true },
        { a: [8, 256, 64], b: [8, 256, 64], ta: false, tb: true },
        { a: [8192, 128], b: [8192, 128], ta: true, tb: false },
      ];
  for (const m of mms) {
    const a = tf.tensor(rng.normalArray(m.a.reduce((p, d) => p * d)), m.a);
    const b = tf.tensor(rng.normalArray(m.b.reduce((p, d) => p * d)), m.b);
    const out = tf.matMul(a, b, m.ta, m.tb);
    const k = m.ta ? m.a[m.a.length - 2] : m.a[m.a.length - 1];
    const gflop = (2 * out.size * k) / 1e9;
    out.dispose();
    const shape = `[${m.a}]${m.ta ? 'ᵀ' : ''} x [${m.b}]${m.tb ? 'ᵀ' : ''}`;
    const f = () => tf.matMul(a, b, m.ta, m.tb);
    measure('BatchMatMul', shape, 'custom', gflop, f);
    withBuiltins(() => measure('BatchMatMul', shape, 'built-in', gflop, f, Math.min(iters, 3)));
    tf.dispose([a, b]);
  }
  console.log(JSON.stringify({ iters, rows }, null, 0));
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
