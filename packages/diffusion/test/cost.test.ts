/**
 * The cost of a UNet forward pass read from its plan: conv shapes with counts (what `ofm bench perf`
 * times) and forward GFLOP per image, against the PyTorch twin's counts for the benchmark spec
 * (test/fixtures/torch-twin-params.txt).
 */
import { ParamStore } from '@ofm/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import { UNet, convGflop, forwardGflopPerImage, parseUNetConfig, specConvShapes } from '../src/index';
import { TINY, readFixture, useBackend } from './helpers';

beforeAll(async () => {
  await useBackend('wasm');
});

describe('specConvShapes', () => {
  it("lists every conv layer of the spec once per shape, with counts and the twin's FLOPs", () => {
    const spec = JSON.parse(readFixture('unet_spec.json'));
    const config = parseUNetConfig(spec);
    const shapes = specConvShapes(new UNet(new ParamStore(0), config).plan, config);
    // 36 conv layers in the benchmark UNet (the dense qkv/proj of attention are not convs).
    expect(shapes.reduce((n, s) => n + s.count, 0)).toBe(36);
    const gflop = shapes.reduce((g, s) => g + (s.count * 2 * (s.size / s.stride) ** 2 * s.cout * s.cin * s.k * s.k) / 1e9, 0);
    // The twin counts 12.058 conv GFLOP per 64 px image; 0.537 of it are the attention qkv and
    // proj_out 1x1 convs (4 blocks x 2·256·256·(768 + 256)), which are dense layers here.
    expect(gflop).toBeCloseTo(12.058 - (4 * 2 * 256 * 256 * (768 + 256)) / 1e9, 3);
    // convGflop is the same count per shape and image.
    expect(shapes.reduce((g, s) => g + s.count * convGflop(s, 1), 0)).toBeCloseTo(gflop, 9);
  });

  it('counts a downsampling conv at its input size with stride 2, an upsampling one at the output size', () => {
    const shapes = specConvShapes(new UNet(new ParamStore(0), TINY).plan, TINY);
    expect(shapes.find((s) => s.stride === 2)).toMatchObject({ size: 8, cin: 8, cout: 8, k: 3, count: 1 });
    // conv-in and the output conv are 3x3 at the image size.
    expect(shapes.filter((s) => s.size === TINY.image_size && s.k === 3 && (s.cin === 1 || s.cout === 1)).map((s) => [s.cin, s.cout])).toEqual([
      [1, 8],
      [8, 1],
    ]);
    expect(convGflop({ size: 8, cin: 8, cout: 8, k: 3, stride: 2 }, 2)).toBeCloseTo((2 * 2 * 4 * 4 * 8 * 8 * 9) / 1e9, 12);
  });
});

describe('forwardGflopPerImage', () => {
  it("matches the twin's forward GFLOP per image of the benchmark spec", () => {
    const unet = new UNet(new ParamStore(0), parseUNetConfig(JSON.parse(readFixture('unet_spec.json'))));
    // torch-twin-params.txt: forward GFLOP/image = 12.3271 (conv, linear and attention matmuls).
    expect(Math.abs(forwardGflopPerImage(unet) - 12.3271)).toBeLessThan(1e-3 * 12.3271);
    unet.params.dispose();
  });
});
