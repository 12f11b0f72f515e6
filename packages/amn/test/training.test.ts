/**
 * Short trainings on the toy surfaces (32 px, 8x8 tokens), on wasm:
 * - the collapse guard: after training with the package's loss, hint features of held-out images
 *   still differ across images (their spread across images is at least SPREAD_FLOOR of their overall
 *   spread); constant encoders and the reference code's attached target fail the same metric;
 * - the AMN rebuilds normal features: on held-out corrupted images its output is closer to the clean
 *   images' hint features than the corrupted images' own hint features are.
 * Measured numbers are printed as JSON lines starting with "amn-training".
 */
import { ParamStore, Rng, context, tf } from '@ofm/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Amn, clearAmnCaches, createAmn } from '../src/amn';
import type { AmnConfig } from '../src/config';
import { featureDistance, featureSpread, pixelMaskToTokens } from '../src/diagnostics';
import { scoped, useBackend } from './helpers';
import { type ToyBatch, disposeBatch, toyBatch } from './toy';

/** The stated fraction: hint features must keep at least this share of their spread across images. */
const SPREAD_FLOOR = 0.3;
const SIZE = 32;
const CONFIG: Partial<AmnConfig> = { hintChannels: [8, 16, 16], dim: 32, layers: 2, heads: 2, ffn: 64, dropout: 0, maskSize: 5 };

let held: ToyBatch;

beforeAll(async () => {
  await useBackend('wasm');
  held = toyBatch(new Rng(99), 32, SIZE);
});
afterAll(() => {
  disposeBatch(held);
  clearAmnCaches();
});

type Objective = (amn: Amn, params: ParamStore, batch: ToyBatch) => tf.Scalar;

/** Adam (lr 3e-3) for `steps` batches of 8 fresh toy images; returns the trained store. */
function train(amn: Amn, steps: number, objective: Objective): ParamStore {
  const params = new ParamStore(1);
  amn.initialize(context(params));
  const optimizer = tf.train.adam(3e-3);
  const rng = new Rng(7);
  for (let step = 0; step < steps; step++) {
    const batch = toyBatch(rng, 8, SIZE);
    const loss = optimizer.minimize(() => objective(amn, params, batch), true);
    const value = loss!.dataSync()[0]!;
    loss!.dispose();
    disposeBatch(batch);
    if (!Number.isFinite(value)) throw new Error(`loss is ${value} at step ${step}`);
  }
  optimizer.dispose();
  return params;
}

/** Spread of the held-out clean images' hint features, and normalised distances to them. */
function evaluate(amn: Amn, params: ParamStore) {
  return scoped(() => {
    const ctx = context(params);
    const clean = amn.hintFeatures(ctx, held.clean);
    const own = amn.hintFeatures(ctx, held.corrupted);
    const rebuilt = amn.forward(ctx, held.corrupted);
    const spread = featureSpread(clean);
    const defect = pixelMaskToTokens(held.mask, amn.geometry.stride);
    const normal = tf.sub(1, defect) as tf.Tensor3D;
    const distance = (a: tf.Tensor4D, tokens?: tf.Tensor3D) => featureDistance(a, clean, tokens) / spread.acrossImages;
    return {
      spread,
      defectTokens: tf.sum(defect).dataSync()[0]!,
      defect: { amn: distance(rebuilt, defect), identity: distance(own, defect) },
      normal: { amn: distance(rebuilt, normal), identity: distance(own, normal) },
      all: { amn: distance(rebuilt), identity: distance(own) },
    };
  });
}

const report = (label: string, value: unknown) => console.log(`amn-training ${label} ${JSON.stringify(value)}`);

describe('collapse guard (metric)', () => {
  it('fails input-independent hint features', () => {
    const amn = createAmn(CONFIG);
    const params = new ParamStore(1);
    tf.tidy(() => {
      const features = amn.hintFeatures(context(params), held.clean);
      const informative = featureSpread(features).ratio;
      // The same map for every image (their mean), with and without a little noise.
      const constant = tf.tile(tf.mean(features, 0, true), [features.shape[0], 1, 1, 1]) as tf.Tensor4D;
      const nearlyConstant = tf.add(constant, tf.mul(0.02, new Rng(1).randn(constant.shape))) as tf.Tensor4D;
      report('negative-controls', {
        informative,
        constant: featureSpread(constant).ratio,
        nearlyConstant: featureSpread(nearlyConstant).ratio,
      });
      expect(informative).toBeGreaterThan(SPREAD_FLOOR);
      expect(featureSpread(constant).ratio).toBeLessThan(1e-5); // 0 up to float32 rounding
      expect(featureSpread(nearlyConstant).ratio).toBeLessThan(SPREAD_FLOOR);
    });
    // A real hint encoder made input-independent: its first conv zeroed.
    const first = params.get('amn.hint.0.weight');
    first.assign(tf.zerosLike(first));
    const zeroed = scoped(() => featureSpread(amn.hintFeatures(context(params), held.clean)));
    expect(zeroed.ratio).toBe(0);
    params.dispose();
  });
});

describe('training on toy surfaces (wasm)', () => {
  it('with the package loss, hint features stay informative and the AMN rebuilds normal features', () => {
    const amn = createAmn(CONFIG);
    const initial = scoped(() => {
      const params = new ParamStore(1);
      const ratio = featureSpread(amn.hintFeatures(context(params), held.clean)).ratio;
      params.dispose();
      return ratio;
    });
    const started = Date.now();
    const params = train(amn, 300, (a, p, batch) => a.loss(context(p), batch.corrupted, batch.clean));
    const seconds = (Date.now() - started) / 1000;
    const result = evaluate(amn, params);
    report('package-loss', { steps: 300, seconds, initialRatio: initial, ...result });

    expect(result.spread.ratio).toBeGreaterThanOrEqual(SPREAD_FLOOR);
    // By design this loss trains the transformer only (lossTrainsHintEncoder: false); the hint
    // encoder learns from the caller's loss on the control map. Were it trained here, the ratio
    // would fall (measured: 0.48 -> 0.19 in 300 steps with the target detached).
    const fresh = new ParamStore(1);
    amn.initialize(context(fresh));
    for (const [name, value] of params.entries()) {
      const same = tf.tidy(() => tf.max(tf.abs(tf.sub(value, fresh.get(name)))).dataSync()[0] === 0);
      expect(same, name).toBe(name.startsWith('amn.hint.'));
    }
    fresh.dispose();
    expect(result.defectTokens).toBeGreaterThan(50);
    // Measurably closer on the corrupted tokens: at most 85% of the corrupted features' distance.
    expect(result.defect.amn).toBeLessThan(0.85 * result.defect.identity);
    // And it does not pay for that elsewhere.
    expect(result.all.amn).toBeLessThan(result.all.identity);
    params.dispose();
  });

  it('the reference code\'s attached target collapses the hint encoder below the floor', () => {
    const amn = createAmn(CONFIG);
    const started = Date.now();
    const params = train(amn, 100, (a, p, batch) => {
      const ctx = context(p);
      return tf.losses.meanSquaredError(a.hintFeatures(ctx, batch.clean), a.forward(ctx, batch.corrupted)) as tf.Scalar;
    });
    const seconds = (Date.now() - started) / 1000;
    const result = evaluate(amn, params);
    report('attached-target', { steps: 100, seconds, ...result });
    expect(result.spread.ratio).toBeLessThan(SPREAD_FLOOR);
    params.dispose();
  });
});
