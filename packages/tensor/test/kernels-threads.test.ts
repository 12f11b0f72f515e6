/**
 * The multi-threaded wasm build under Node.js (enableWasmThreads): it starts with a pool of two
 * threads, the pool really runs (more CPU time than wall time on a conv), and every custom kernel
 * gives the cpu backend's results through it. Runs in its own process (vitest forks per file),
 * since the wasm backend starts once per process.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend';
import { enableWasmThreads } from '../src/kernels';
import { context, groupNorm, upsampleNearest } from '../src/nn';
import { ParamStore } from '../src/params';
import { Rng } from '../src/rng';
import { tf } from '../src/tf';

const rng = new Rng(5);

async function onBoth(f: () => tf.Tensor[]): Promise<[Float32Array[], Float32Array[]]> {
  const read = () => {
    const outs = tf.tidy(f);
    const values = outs.map((t) => Float32Array.from(t.dataSync() as Float32Array));
    tf.dispose(outs);
    return values;
  };
  await tf.setBackend('wasm');
  const wasm = read();
  await tf.setBackend('cpu');
  const cpu = read();
  await tf.setBackend('wasm');
  return [wasm, cpu];
}

function maxRel(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / scale;
}

let threads = 0;
beforeAll(async () => {
  await expect(enableWasmThreads(9)).rejects.toThrow(/threads must be an integer from 1 to 8/);
  threads = (await enableWasmThreads(2)).threads;
  const report = await initBackend({ backend: 'wasm' });
  expect(report.backend).toBe('wasm');
  expect(report.threads).toBe(2);
});

describe('threaded wasm backend', () => {
  it('runs a pool of two threads (one worker besides the calling thread)', () => {
    expect(threads).toBe(2);
    const pthreads = (tf.backend() as unknown as { wasm: { PThread: { runningWorkers: unknown[] } } }).wasm.PThread;
    expect(pthreads.runningWorkers).toHaveLength(1);
    const x = tf.randomNormal([4, 32, 32, 64]) as tf.Tensor4D;
    const w = tf.randomNormal([3, 3, 64, 64]) as tf.Tensor4D;
    tf.conv2d(x, w, 1, 'same').dispose(); // creates the operator
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < 6; i++) tf.conv2d(x, w, 1, 'same').dispose();
    const wall = performance.now() - t0;
    const cpu = process.cpuUsage(c0);
    // Informative only: on a loaded machine the worker may get no core, and the calling thread
    // then does all the work (pthreadpool steals it), so the ratio is not asserted.
    console.log(`conv on 2 threads: CPU time / wall time = ${((cpu.user + cpu.system) / 1000 / wall).toFixed(2)}`);
    tf.dispose([x, w]);
  });

  it('refuses to start twice', async () => {
    await expect(enableWasmThreads(2)).rejects.toThrow(/already started/);
  });

  it('custom kernels give the cpu backend results: conv gradients, matMul, group norm, upsampling', async () => {
    const xv = rng.normalArray(2 * 12 * 12 * 8);
    const wv = rng.normalArray(3 * 3 * 8 * 16);
    const av = rng.normalArray(3 * 20 * 12);
    const [wasm, cpu] = await onBoth(() => {
      const x = tf.tensor(xv, [2, 12, 12, 8]) as tf.Tensor4D;
      const w = tf.tensor(wv, [3, 3, 8, 16]) as tf.Tensor4D;
      const a = tf.tensor(av, [3, 20, 12]);
      const params = new ParamStore(1);
      const ctx = context(params);
      const loss = (xx: tf.Tensor, ww: tf.Tensor) => {
        const h = tf.conv2d(xx as tf.Tensor4D, ww as tf.Tensor4D, 2, 'same');
        const n = groupNorm(ctx, 'gn', h, { groups: 4, activation: 'silu' }) as tf.Tensor4D;
        return upsampleNearest(n, 2).square().mean();
      };
      const grads = tf.grads(loss)([x, w]);
      const product = tf.matMul(a, a, true, false);
      const out = [...grads, product];
      params.dispose();
      return out;
    });
    wasm.forEach((values, i) => expect(maxRel(values, cpu[i]!), `output ${i}`).toBeLessThan(1e-4));
  });
});
