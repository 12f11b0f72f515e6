import { Rng, tf } from '@ofm/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import { MAX_ROUTING_KEYS, describeImages, fitClassCalibration, routeImages, routeToClass } from '../src/model/calibration';
import { chooseStartTimestep } from '../src/model/detector';

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

  it('routes by the nearest routing key where a broad class would swallow a tight one', () => {
    // A tight class whose test images drifted (brighter, as crops from another part of a photograph
    // do) and a broad class that spans them: the nearest prototype picks the broad class, the
    // nearest training descriptor the tight one.
    const tight = describeImages(images(rng, 24, [0.3, 0.5, 0.3], 0.05));
    const broad = [0.1, 0.3, 0.5, 0.7, 0.9].flatMap((v) => describeImages(images(rng, 5, [v, v, v], 0.25)));
    const drifted = describeImages(images(rng, 8, [0.34, 0.54, 0.34], 0.05));
    const classes = [fitClassCalibration('tight', tight, [1], [1]), fitClassCalibration('broad', broad, [1], [1])];
    expect(classes[0]!.routingKeys).toHaveLength(24);
    expect(drifted.map((d) => routeToClass(d, classes))).toContain(1);
    expect(routeImages(drifted, classes)).toEqual(drifted.map(() => 0));
    // A class of an older checkpoint (52-number prototype, no keys): every image uses the prototypes.
    const legacy = classes.map(({ routingKeys: _, ...c }) => ({ ...c, descriptorMean: c.descriptorMean.slice(0, 52), descriptorStd: c.descriptorStd.slice(0, 52) }));
    expect(routeImages(drifted, legacy)).toEqual(drifted.map((d) => routeToClass(d, legacy)));
  });

  it('keeps at most MAX_ROUTING_KEYS keys, spread over the training images', () => {
    const many = describeImages(images(rng, MAX_ROUTING_KEYS * 2 + 1, [0.5, 0.5, 0.5], 0.1));
    const c = fitClassCalibration('many', many, [1], [1]);
    expect(c.routingKeys).toHaveLength(MAX_ROUTING_KEYS);
    expect(c.routingKeys![0]).toEqual(Array.from(many[0]!));
    expect(c.routingKeys![MAX_ROUTING_KEYS - 1]).toEqual(Array.from(many[Math.floor((MAX_ROUTING_KEYS - 1) * (many.length / MAX_ROUTING_KEYS))]!));
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

describe('chooseStartTimestep', () => {
  const labels = [...Array(9).fill(0), ...Array(9).fill(1)];
  it('keeps the smallest start timestep within one standard error of the best', () => {
    // A validation split of 9 + 9 images (measured on the quick start's washer): the best image
    // AUROC, 0.963 at t = 100, has a standard error of about 0.05, so t = 10 is as good.
    const selection = [
      { tStart: 10, imageAuroc: 0.914, pixelAuroc: 0.975 },
      { tStart: 25, imageAuroc: 0.938, pixelAuroc: 0.974 },
      { tStart: 50, imageAuroc: 0.951, pixelAuroc: 0.973 },
      { tStart: 100, imageAuroc: 0.963, pixelAuroc: 0.97 },
    ];
    expect(chooseStartTimestep(selection, labels)).toBe(0);
  });

  it('keeps the best when the smaller timesteps are clearly worse, in any candidate order', () => {
    const selection = [
      { tStart: 200, imageAuroc: 0.99, pixelAuroc: 0.97 },
      { tStart: 25, imageAuroc: 0.7, pixelAuroc: 0.9 },
      { tStart: 100, imageAuroc: 0.97, pixelAuroc: 0.97 },
    ];
    expect(chooseStartTimestep(selection, labels)).toBe(2);
    // With many validation images the standard error is small: only the best remains.
    const many = [...Array(400).fill(0), ...Array(400).fill(1)];
    expect(chooseStartTimestep(selection, many)).toBe(0);
  });

  it('treats an undefined AUROC (a split without anomalies) as chance', () => {
    const selection = [
      { tStart: 10, imageAuroc: Number.NaN, pixelAuroc: Number.NaN },
      { tStart: 50, imageAuroc: 0.9, pixelAuroc: 0.9 },
    ];
    expect(chooseStartTimestep(selection, labels)).toBe(1);
  });
});
