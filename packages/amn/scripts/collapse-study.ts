/**
 * How the feature-reconstruction loss's gradient routing affects the hint encoder, on the test
 * suite's toy surfaces (32 px images, 8x8 tokens, 300 Adam steps of 8 images, wasm):
 *
 *   package      the package's loss (target detached, transformer only)      — the default
 *   via-input    lossTrainsHintEncoder: true (target detached)
 *   attached     the reference code: target attached, everything trained
 * each alone and with a stand-in for the diffusion loss ("+ readout": rebuild the clean image, pooled
 * to the token grid, from the control map through a learned 1x1 readout; weight 1).
 *
 * Prints one JSON line per run: the share of the hint features' spread that depends on the image
 * (ratio), and distances to the clean images' hint features (normalised by their spread across
 * images) of the AMN output and of the corrupted images' own features, on corrupted tokens.
 *
 *   pnpm --filter @ofm/amn exec tsx scripts/collapse-study.ts
 */
import { ParamStore, Rng, context, dense, initBackend, scope, tf } from '@ofm/tensor';
import { createAmn, featureDistance, featureSpread, pixelMaskToTokens } from '../src/index';
import { disposeBatch, toyBatch } from '../test/toy';

type Routing = 'package' | 'via-input' | 'attached';

await initBackend({ backend: 'wasm', quiet: true });
const SIZE = 32;
const STEPS = 300;
const held = toyBatch(new Rng(99), 32, SIZE);

function run(routing: Routing, readout: boolean): void {
  const amn = createAmn({
    hintChannels: [8, 16, 16],
    dim: 32,
    layers: 2,
    heads: 2,
    ffn: 64,
    dropout: 0,
    maskSize: 5,
    lossTrainsHintEncoder: routing === 'via-input',
  });
  const params = new ParamStore(1);
  const ctx = context(params);
  amn.initialize(ctx);
  const optimizer = tf.train.adam(3e-3);
  const rng = new Rng(7);
  const started = Date.now();
  for (let step = 0; step < STEPS; step++) {
    const batch = toyBatch(rng, 8, SIZE);
    const loss = optimizer.minimize(() => {
      let control: tf.Tensor4D;
      let total: tf.Scalar;
      if (routing === 'attached') {
        control = amn.forward(ctx, batch.corrupted);
        total = tf.losses.meanSquaredError(amn.hintFeatures(ctx, batch.clean), control) as tf.Scalar;
      } else {
        ({ control, loss: total } = amn.condition(ctx, batch.corrupted, batch.clean));
      }
      if (readout) {
        const target = tf.avgPool(batch.clean, amn.geometry.stride, amn.geometry.stride, 'valid');
        const predicted = dense(scope(ctx, 'readout'), 'fc', control, { units: 3 });
        total = tf.add(total, tf.losses.meanSquaredError(target, predicted)) as tf.Scalar;
      }
      return total;
    }, true);
    loss?.dispose();
    disposeBatch(batch);
  }
  const seconds = (Date.now() - started) / 1000;
  tf.engine().startScope();
  const clean = amn.hintFeatures(ctx, held.clean);
  const spread = featureSpread(clean);
  const defect = pixelMaskToTokens(held.mask, amn.geometry.stride);
  const distance = (a: tf.Tensor4D) => +(featureDistance(a, clean, defect) / spread.acrossImages).toFixed(3);
  console.log(
    JSON.stringify({
      routing,
      readout,
      steps: STEPS,
      seconds,
      ratio: +spread.ratio.toFixed(3),
      acrossImages: +spread.acrossImages.toFixed(3),
      overall: +spread.overall.toFixed(3),
      corruptedTokens: { amn: distance(amn.forward(ctx, held.corrupted)), identity: distance(amn.hintFeatures(ctx, held.corrupted)) },
    }),
  );
  tf.engine().endScope();
  optimizer.dispose();
  params.dispose();
}

for (const readout of [false, true]) for (const routing of ['package', 'via-input', 'attached'] as const) run(routing, readout);
disposeBatch(held);
