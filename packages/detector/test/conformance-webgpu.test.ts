/**
 * The tiny detector's model on wasm and on webgpu (Mesa's llvmpipe software adapter in CI): the
 * same seed, the same data, three training steps (the detector's loss: diffusion MSE under the
 * AMN's control plus the AMN feature loss, AdamW), then reconstruction-based detection scores.
 *
 * Stated tolerances: per-step losses within 1e-4 relative; weights after the steps each within
 * 3e-4 and on average within 1e-6 absolute (AdamW with lr 2e-3 moves a weight by up to ~2e-3 a
 * step, and normalises small gradients up; measured on llvmpipe: worst 9.2e-5), except the
 * attention key biases, whose exact gradient is zero (see `isKeyBias`); detection scores (max of
 * the anomaly map) within 1e-4.
 *
 * The loop is written out here, with asynchronous reads (WebGPU in Node.js has no synchronous
 * ones), so that the weights after each step can be compared: it runs the detector's own UNet,
 * AMN, schedule, feature extractor and anomaly map, with its config and seed. The whole detector
 * (`learnTask`, `detectAsync`) is compared through the CLI in apps/cli/test/webgpu.test.ts.
 */
import { AdamW, reconstruct } from '@ofm/diffusion';
import { type BackendReport, MESA_INSTALL, Rng, WEBGPU_NODE_PACKAGES, context, initBackend, tf } from '@ofm/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContinualDetector } from '../src/model/detector';
import { anomalyMap } from '../src/model/maps';
import { TINY_CONFIG } from './tiny';

const LOSS_TOL = 1e-4;
const WEIGHT_TOL = 3e-4;
const WEIGHT_MEAN_TOL = 1e-6;
const SCORE_TOL = 1e-4;
const STEPS = 3;
const SIZE = 16;
const BATCH = 4;
const verbose = process.env.OFM_CONFORMANCE_VERBOSE === '1';

interface Run {
  report: BackendReport;
  losses: number[];
  weights: Map<string, Float32Array>;
  scores: Float32Array;
  seconds: number;
}

/** Images in [0, 1] as `[N, 16, 16, 3]` data: smooth gradients plus a bright square (the "defect") on some. */
function images(seed: number, withDefect: boolean): Float32Array {
  const rng = new Rng(seed);
  const out = new Float32Array(BATCH * SIZE * SIZE * 3);
  for (let n = 0; n < BATCH; n++) {
    const base = rng.uniform() * 0.5 + 0.2;
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) {
        for (let c = 0; c < 3; c++) {
          let v = base + 0.2 * Math.sin((x + 2 * c + n) / 3) * Math.cos(y / 4) + 0.02 * rng.normal();
          if (withDefect && n % 2 === 1 && x >= 5 && x < 9 && y >= 6 && y < 10) v = 0.95;
          out[((n * SIZE + y) * SIZE + x) * 3 + c] = Math.min(1, Math.max(0, v));
        }
      }
    }
  }
  return out;
}

async function runOn(backend: 'wasm' | 'webgpu'): Promise<Run> {
  const report = await initBackend({ backend, strict: true, syncReads: false });
  const started = performance.now();
  const det = new ContinualDetector({ ...TINY_CONFIG, imageSize: SIZE, unet: { ...TINY_CONFIG.unet, attention_resolutions: [8] } });
  const amn = det.amn!;
  const amnWeight = det.config.training.amnWeight;
  const vars = new Map(det.params.entries().map(([, v]) => [v.name, v]));
  const varList = [...vars.values()];
  const optimizer = new AdamW({ lr: det.config.training.lr, weightDecay: 0.01 });
  const amnCtx = context(det.params, { training: true, rng: new Rng(5) });
  const shape: [number, number, number, number] = [BATCH, SIZE, SIZE, 3];
  const losses: number[] = [];
  const dataRng = new Rng(11);
  for (let step = 0; step < STEPS; step++) {
    const clean01 = images(100 + step, false);
    const corrupted01 = images(100 + step, true);
    const t = Array.from({ length: BATCH }, () => dataRng.int(det.config.training.maxTimestep));
    const noise = dataRng.normalArray(BATCH * SIZE * SIZE * 3);
    const [clean, corrupted, eps] = tf.tidy(() => [
      tf.sub(tf.mul(tf.tensor4d(clean01, shape), 2), 1) as tf.Tensor4D,
      tf.sub(tf.mul(tf.tensor4d(corrupted01, shape), 2), 1) as tf.Tensor4D,
      tf.tensor4d(noise, shape),
    ]);
    const { value, grads } = tf.variableGrads(() => {
      const xt = det.schedule.qSample(clean, t, eps);
      const cond = amn.condition(amnCtx, corrupted, clean);
      const predicted = det.unet.forward(xt, t, { control: cond.control });
      return tf.add(tf.mean(tf.squaredDifference(predicted, eps)), tf.mul(cond.loss, amnWeight)) as tf.Scalar;
    }, varList);
    optimizer.update(vars, grads);
    losses.push((await value.data())[0]!);
    tf.dispose([value, clean, corrupted, eps, ...Object.values(grads)]);
  }
  const weights = new Map<string, Float32Array>();
  for (const [name, v] of det.params.entries()) weights.set(name, (await v.data()) as Float32Array);

  // Detection: the detector's reconstruction (AMN control from the input, fixed seeds) and map.
  const test01 = tf.tensor4d(images(7, true), shape);
  const maps = tf.tidy(() => {
    const x = tf.sub(tf.mul(test01, 2), 1) as tf.Tensor4D;
    const recon = reconstruct(det.unet, det.schedule, x, {
      tStart: det.config.reconstruction.tStartCandidates[0]!,
      steps: det.config.reconstruction.steps,
      eta: det.config.reconstruction.eta,
      seeds: [1, 2, 3, 4],
      control: amn.forward(context(det.params), x),
    });
    const recon01 = tf.clipByValue(tf.div(tf.add(recon, 1), 2), 0, 1) as tf.Tensor4D;
    return anomalyMap(det.extractor, test01, recon01, { aggregate: det.config.map.aggregate, blurSigma: det.config.map.blurSigma });
  });
  const scoreTensor = tf.max(maps.reshape([BATCH, -1]), 1);
  const scores = (await scoreTensor.data()) as Float32Array;
  tf.dispose([test01, maps, scoreTensor]);
  optimizer.dispose();
  det.params.dispose();
  return { report, losses, weights, scores, seconds: (performance.now() - started) / 1000 };
}

/**
 * Whether element `i` of parameter `name` is an attention key bias: in the UNet's `qkv` each
 * head's `3d` channels are q | k | v (ADM layout), in the AMN's `qk` the second half is k. Its exact
 * gradient is zero (a constant added to every key shifts each query's logits uniformly, which
 * softmax ignores), so what a backend computes there is float32 noise that AdamW, normalising by
 * the gradient's own size, turns into steps of about the learning rate on any backend.
 */
function isKeyBias(name: string, length: number, i: number): boolean {
  if (name.startsWith('unet.') && name.endsWith('.qkv.bias')) {
    const d = length / (3 * TINY_CONFIG.unet!.num_heads!);
    const o = i % (3 * d);
    return o >= d && o < 2 * d;
  }
  return name.endsWith('.qk.bias') && i >= length / 2;
}

const runs = new Map<string, Run>();
let webgpuFailure: string | undefined;

beforeAll(async () => {
  runs.set('wasm', await runOn('wasm'));
  try {
    runs.set('webgpu', await runOn('webgpu'));
  } catch (err) {
    webgpuFailure = err instanceof Error ? err.message : String(err);
  }
}, 240_000);

afterAll(async () => {
  await initBackend({ backend: 'wasm' });
});

describe('the tiny detector model: wasm and webgpu agree', () => {
  it('webgpu starts (CI: Mesa llvmpipe through Dawn)', () => {
    if (webgpuFailure) {
      throw new Error(
        `webgpu could not run, so wasm and webgpu were not compared: ${webgpuFailure}\n` +
          `It needs \`npm install ${WEBGPU_NODE_PACKAGES.join(' ')}\` and, without a GPU, Mesa: \`${MESA_INSTALL}\`.`,
      );
    }
    expect(runs.get('webgpu')!.report.backend).toBe('webgpu');
    if (verbose) {
      for (const [name, r] of runs) console.log(`${name}: ${r.seconds.toFixed(1)} s, losses ${r.losses.join(', ')}, scores ${Array.from(r.scores).join(', ')}`);
    }
  });

  it(`${STEPS} training steps with the same seed: losses within ${LOSS_TOL} (relative)`, () => {
    const a = runs.get('wasm')!.losses;
    const b = runs.get('webgpu')?.losses;
    expect(b, 'webgpu did not run').toBeDefined();
    for (let i = 0; i < STEPS; i++) {
      expect(Number.isFinite(a[i]!)).toBe(true);
      const rel = Math.abs(a[i]! - b![i]!) / Math.abs(a[i]!);
      if (verbose) console.log(`step ${i}: loss relative difference ${rel.toExponential(2)}`);
      expect(rel, `step ${i}`).toBeLessThanOrEqual(LOSS_TOL);
    }
    // The steps changed the model (a comparison of untouched weights would prove nothing).
    expect(a[STEPS - 1]).not.toBe(a[0]);
  });

  it(`weights after the steps: each within ${WEIGHT_TOL}, on average within ${WEIGHT_MEAN_TOL} (absolute), attention key biases aside`, () => {
    const a = runs.get('wasm')!.weights;
    const b = runs.get('webgpu')?.weights;
    expect(b, 'webgpu did not run').toBeDefined();
    let worst = 0;
    let worstName = '';
    let count = 0;
    let sum = 0;
    let keyBiases = 0;
    for (const [name, wa] of a) {
      const wb = b!.get(name)!;
      for (let i = 0; i < wa.length; i++) {
        if (isKeyBias(name, wa.length, i)) {
          keyBiases++;
          continue;
        }
        count++;
        const d = Math.abs(wa[i]! - wb[i]!);
        sum += d;
        if (!(d <= worst)) [worst, worstName] = [d, name];
      }
    }
    if (verbose) {
      console.log(
        `weights: worst absolute difference ${worst.toExponential(2)} (${worstName}), mean ${(sum / count).toExponential(2)}, ` +
          `over ${count} weights; ${keyBiases} key biases aside`,
      );
    }
    expect(sum / count, 'mean absolute difference').toBeLessThanOrEqual(WEIGHT_MEAN_TOL);
    expect(count).toBeGreaterThan(1000);
    expect(keyBiases).toBeLessThan(count / 100);
    expect(worst, worstName).toBeLessThanOrEqual(WEIGHT_TOL);
  });

  it('gradient projection (shared weights) reads synchronously: refused on webgpu with the way out', async () => {
    expect(webgpuFailure).toBeUndefined();
    await initBackend({ backend: 'webgpu', strict: true, syncReads: false });
    const det = new ContinualDetector({ ...TINY_CONFIG, imageSize: SIZE, unet: { ...TINY_CONFIG.unet, attention_resolutions: [8] } });
    try {
      expect(det.config.continual).toMatchObject({ weights: 'shared', projection: 'update' });
      const pixels = images(1, false);
      const one = (i: number) => pixels.slice(i * SIZE * SIZE * 3, (i + 1) * SIZE * SIZE * 3);
      await expect(det.learnTask({ classes: ['a'], images: new Map([['a', [0, 1, 2, 3].map(one)]]) })).rejects.toThrow(
        /continual\.weights 'shared' with projection 'update' reads layer inputs synchronously, which the 'webgpu' backend in Node\.js cannot; use per-task weights/,
      );
      expect(det.tasks).toHaveLength(0);
    } finally {
      det.dispose();
    }
  });

  it(`detection scores (max of the anomaly map) within ${SCORE_TOL}`, () => {
    const a = runs.get('wasm')!.scores;
    const b = runs.get('webgpu')?.scores;
    expect(b, 'webgpu did not run').toBeDefined();
    const worst = Math.max(...Array.from(a, (v, i) => Math.abs(v - b![i]!)));
    if (verbose) console.log(`scores: worst absolute difference ${worst.toExponential(2)}`);
    expect(a.every(Number.isFinite)).toBe(true);
    expect(worst).toBeLessThanOrEqual(SCORE_TOL);
  });
});
