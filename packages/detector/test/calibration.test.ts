import { Rng, tf } from '@ofm/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import { describeImages, fitClassCalibration, routeToClass } from '../src/calibration';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function images(rng: Rng, n: number, colour: [number, number, number], texture: number): tf.Tensor4D {
  return tf.tidy(() => {
    const base = tf.tensor1d(colour).reshape([1, 1, 1, 3]);
    return tf.clipByValue(tf.add(base, rng.randn([n, 16, 16, 3], 0, texture)), 0, 1) as tf.Tensor4D;
  });
}

describe('calibration', () => {
  const rng = new Rng(9);

  it('routes images to the class they came from', () => {
    const red = describeImages(images(rng, 12, [0.8, 0.2, 0.2], 0.05));
    const smoothGrey = describeImages(images(rng, 12, [0.5, 0.5, 0.5], 0.02));
    const roughGrey = describeImages(images(rng, 12, [0.5, 0.5, 0.5], 0.2));
    const classes = [
      fitClassCalibration('red', red.slice(0, 8), [1, 2, 3], [0.1, 0.2]),
      fitClassCalibration('smooth', smoothGrey.slice(0, 8), [1, 2, 3], [0.1, 0.2]),
      fitClassCalibration('rough', roughGrey.slice(0, 8), [1, 2, 3], [0.1, 0.2]),
    ];
    for (const d of red.slice(8)) expect(routeToClass(d, classes)).toBe(0);
    for (const d of smoothGrey.slice(8)) expect(routeToClass(d, classes)).toBe(1);
    for (const d of roughGrey.slice(8)) expect(routeToClass(d, classes)).toBe(2);
  });

  it('keeps score statistics and floors a degenerate spread', () => {
    const d = describeImages(images(rng, 3, [0.2, 0.4, 0.6], 0.1));
    const c = fitClassCalibration('x', d, [2, 4, 6], [1, 1, 1]);
    expect(c.scoreMean).toBeCloseTo(4, 6);
    expect(c.scoreStd).toBeCloseTo(2, 6);
    expect(c.pixelStd).toBeGreaterThan(0);
    expect(c.descriptorMean).toHaveLength(d[0]!.length);
    expect(() => fitClassCalibration('y', [], [1], [1])).toThrow(/at least one image/);
  });
});
