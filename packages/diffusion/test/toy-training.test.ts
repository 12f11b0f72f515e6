import { Rng, tf } from '@ofm/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import { sample } from '../src/index';
import { useBackend } from './helpers';
import { TOY_SIZE, mean, nearestPattern, trainToy } from './toy';

const STEPS = 200;

describe('a tiny model on two patterns (wasm)', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  it(`lowers its loss at least 3x in ${STEPS} steps and samples near the patterns`, () => {
    const { store, unet, schedule, trainer, losses, seconds } = trainToy(STEPS);
    const curve = Array.from({ length: 10 }, (_, i) => mean(losses.slice((i * STEPS) / 10, ((i + 1) * STEPS) / 10)));
    const first = mean(losses.slice(0, 20));
    const last = mean(losses.slice(-50));
    console.log(
      `toy training: ${STEPS} steps in ${seconds.toFixed(1)} s; loss per tenth: ${curve.map((v) => v.toFixed(3)).join(' ')}; ` +
        `first 20 steps ${first.toFixed(4)}, last 50 ${last.toFixed(4)} (${(first / last).toFixed(1)}x lower)`,
    );
    expect(first / last).toBeGreaterThan(3);

    // DDIM from pure noise (x̂0 clipped to the image range, as is usual in pixel space).
    const n = 16;
    const shape: [number, number, number, number] = [n, TOY_SIZE, TOY_SIZE, 1];
    const samples = sample(unet, schedule, shape, { steps: 20, seed: 3, clipDenoised: true });
    const noise = new Rng(4).randn(shape) as tf.Tensor4D;
    const fromSamples = nearestPattern(samples);
    const sampleDist = mean(fromSamples.map((r) => r.dist));
    const noiseDist = mean(nearestPattern(noise).map((r) => r.dist));
    console.log(
      `toy samples: mean RMS distance to the nearest pattern ${sampleDist.toFixed(3)} (noise: ${noiseDist.toFixed(3)}); ` +
        `pattern counts ${[0, 1].map((k) => fromSamples.filter((r) => r.pattern === k).length).join('/')}`,
    );
    expect(sampleDist).toBeLessThan(0.4 * noiseDist);
    expect(new Set(fromSamples.map((r) => r.pattern)).size).toBe(2); // both patterns, no collapse
    tf.dispose([samples, noise]);
    trainer.dispose();
    store.dispose();
  });
});
