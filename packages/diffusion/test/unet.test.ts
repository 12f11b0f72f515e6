import { existsSync, readFileSync } from 'node:fs';
import { ParamStore, type TapEvent, tf } from '@ofm/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UNet, type UNetConfig, parseUNetConfig } from '../src/index';
import { TINY, fixturePath, maxAbsDiff, readFixture, useBackend } from './helpers';

/**
 * The PyTorch twin's numbers for the benchmark spec, printed by
 *   /usr/bin/python3 ../shared/peers/torch_unet.py --spec ../shared/peers/unet_spec.json --mode params
 * (torch 1.13.1; run from the repository root). The full output is test/fixtures/torch-twin-params.txt.
 */
const TWIN = {
  paramCount: 10_917_827,
  tensors: 168,
  breakdown: {
    time_embed: 82_432,
    'input_blocks.0': 1_792,
    'input_blocks.1': 90_560,
    'input_blocks.2': 36_928,
    'input_blocks.3': 263_040,
    'input_blocks.4': 147_584,
    'input_blocks.5': 1_248_512,
    middle_block: 2_757_632,
    'output_blocks.0': 2_232_320,
    'output_blocks.1': 2_494_464,
    'output_blocks.2': 673_280,
    'output_blocks.3': 574_720,
    'output_blocks.4': 176_896,
    'output_blocks.5': 135_808,
    out: 1_859,
  },
};

/** The per-tensor lines of the twin's `--mode params` output: name and PyTorch shape. */
function twinTensors(): { name: string; shape: number[] }[] {
  return readFixture('torch-twin-params.txt')
    .split('\n')
    .map((line) => /^ {2}(\S+)\s+\(([\d, ]*)\)/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ name: m[1]!, shape: m[2]!.split(',').filter((s) => s.trim()).map(Number) }));
}

/** Our name and shape for a twin tensor: conv [o,i,kh,kw] -> [kh,kw,i,o], linear [o,i] -> [i,o], attention 1x1 convs -> dense. */
function ourLayout(name: string, shape: number[]): { name: string; shape: number[] } {
  const attention1x1 = /\.(qkv|proj_out)\.weight$/.test(name);
  let ours = shape;
  if (attention1x1) ours = [shape[1]!, shape[0]!];
  else if (shape.length === 4) ours = [shape[2]!, shape[3]!, shape[1]!, shape[0]!];
  else if (shape.length === 2) ours = [shape[1]!, shape[0]!];
  return { name: `unet.${name}`, shape: ours };
}

/** A PyTorch-layout value as a tensor in our layout. */
function toOurLayout(torchName: string, torchShape: number[], data: Float32Array): tf.Tensor {
  return tf.tidy(() => {
    const t = tf.tensor(data, torchShape);
    if (/\.(qkv|proj_out)\.weight$/.test(torchName)) return t.reshape([torchShape[0]!, torchShape[1]!]).transpose();
    if (torchShape.length === 4) return t.transpose([2, 3, 1, 0]);
    if (torchShape.length === 2) return t.transpose();
    return t;
  });
}

/** The fixture generator's fill formula (make_torch_reference.py), in float64 then float32. */
function formula(shape: number[], k: number): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const scale = shape.length >= 2 ? 1 / Math.sqrt(n / shape[0]!) : 0.5;
  for (let i = 0; i < n; i++) out[i] = Math.sin(0.7 * i + 1.3 * k + 0.1) * scale;
  return out;
}

describe('UNet (cpu)', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  describe('the benchmark spec against the PyTorch twin', () => {
    const spec = parseUNetConfig(JSON.parse(readFixture('unet_spec.json')), fixturePath('unet_spec.json'));
    let store: ParamStore;
    let unet: UNet;
    beforeAll(() => {
      store = new ParamStore(1);
      unet = new UNet(store, spec).init();
    });
    afterAll(() => store.dispose());

    it('has exactly the twin parameter count and tensor count', () => {
      expect(unet.paramCount()).toBe(TWIN.paramCount);
      expect(unet.paramNames()).toHaveLength(TWIN.tensors);
    });

    it('matches the per-block breakdown', () => {
      expect(unet.paramBreakdown()).toEqual(TWIN.breakdown);
    });

    it('has every twin tensor under the same name, with the shape transposed to tfjs layout, in the same order', () => {
      const twin = twinTensors();
      expect(twin).toHaveLength(TWIN.tensors);
      const ours = unet.paramNames().map((name) => ({ name, shape: store.info(name).shape }));
      expect(ours).toEqual(twin.map((t) => ourLayout(t.name, t.shape)));
    });

    it('is the spec the twin reads (when the shared peers folder is present)', () => {
      const shared = new URL('../../../../shared/peers/unet_spec.json', import.meta.url).pathname;
      if (!existsSync(shared)) return; // the fixture copy is authoritative outside this workspace
      expect(JSON.parse(readFileSync(shared, 'utf8'))).toEqual(JSON.parse(readFixture('unet_spec.json')));
    });

    it('adds exactly the 1x1 control projection when control_channels is set', () => {
      const s2 = new ParamStore(1);
      const withControl = new UNet(s2, { ...spec, control_channels: 32 }).init();
      const extra = withControl.paramNames().filter((n) => !unet.paramNames().includes(n));
      expect(extra).toEqual(['unet.control.proj.weight', 'unet.control.proj.bias']);
      expect(withControl.paramCount() - unet.paramCount()).toBe(32 * spec.model_channels + spec.model_channels);
      s2.dispose();
    });
  });

  it('computes what the PyTorch twin computes (same weights, two configs)', () => {
    const fixture = JSON.parse(readFixture('torch-reference.json')) as {
      cases: {
        config: UNetConfig;
        batch: number;
        timesteps: number[];
        param_names: string[];
        param_shapes: number[][];
        output_nchw: number[];
      }[];
    };
    expect(fixture.cases.length).toBe(2);
    for (const c of fixture.cases) {
      const store = new ParamStore(0);
      const unet = new UNet(store, parseUNetConfig(c.config)).init();
      expect(unet.paramNames()).toEqual(c.param_names.map((n) => `unet.${n}`));
      const values: Record<string, tf.Tensor> = {};
      c.param_names.forEach((name, k) => {
        values[`unet.${name}`] = toOurLayout(name, c.param_shapes[k]!, formula(c.param_shapes[k]!, k));
      });
      store.assign(values);
      Object.values(values).forEach((t) => t.dispose());
      const { in_channels: ci, out_channels: co, image_size: s } = c.config;
      const xData = new Float32Array(c.batch * ci * s * s).map((_, i) => Math.sin(0.37 * i));
      const x = tf.tidy(() => tf.tensor4d(xData, [c.batch, ci, s, s]).transpose([0, 2, 3, 1])) as tf.Tensor4D;
      const y = unet.forward(x, c.timesteps);
      const want = tf.tidy(() => tf.tensor4d(c.output_nchw, [c.batch, co, s, s]).transpose([0, 2, 3, 1]));
      expect(y.shape).toEqual([c.batch, s, s, co]);
      expect(maxAbsDiff(y, want)).toBeLessThan(2e-5);
      tf.dispose([x, y, want]);
      store.dispose();
    }
  });

  it('gives output shapes for several configs, including non-square inputs', () => {
    const configs: [UNetConfig, [number, number, number, number]][] = [
      [TINY, [2, 8, 8, 1]],
      [{ ...TINY, in_channels: 3, out_channels: 6, channel_mult: [1, 1, 2], attention_resolutions: [] }, [1, 16, 8, 3]],
      [{ ...TINY, num_res_blocks: 2, attention_resolutions: [8, 4], time_embed_dim: 24 }, [3, 8, 8, 1]],
      [{ ...TINY, channel_mult: [1], attention_resolutions: [8] }, [1, 6, 6, 1]],
    ];
    for (const [config, shape] of configs) {
      const store = new ParamStore(2);
      const unet = new UNet(store, config);
      const x = tf.randomNormal(shape) as tf.Tensor4D;
      const y = unet.forward(x, [...Array(shape[0]).keys()].map((i) => 10 * i));
      expect(y.shape).toEqual([shape[0], shape[1], shape[2], config.out_channels]);
      expect(Array.from(y.dataSync()).every(Number.isFinite)).toBe(true);
      tf.dispose([x, y]);
      store.dispose();
    }
  });

  describe('control input', () => {
    const config: UNetConfig = { ...TINY, control_channels: 5 };
    let store: ParamStore;
    let unet: UNet;
    let x: tf.Tensor4D;
    beforeAll(() => {
      store = new ParamStore(3);
      unet = new UNet(store, config).init();
      x = tf.randomNormal([2, 8, 8, 1], 0, 1, 'float32', 4) as tf.Tensor4D;
    });
    afterAll(() => {
      x.dispose();
      store.dispose();
    });

    it('starts as a no-op (zero-initialised projection)', () => {
      const control = tf.randomNormal([2, 4, 4, 5], 0, 1, 'float32', 5) as tf.Tensor4D;
      const a = unet.forward(x, [1, 500]);
      const b = unet.forward(x, [1, 500], { control });
      expect(maxAbsDiff(a, b)).toBe(0);
      tf.dispose([a, b, control]);
    });

    it('upsamples a lower-resolution map by its integer factor before the projection', () => {
      const w = store.get('unet.control.proj.weight');
      const saved = tf.clone(w);
      w.assign(tf.randomNormal(w.shape, 0, 1, 'float32', 6));
      const low = tf.randomNormal([2, 2, 2, 5], 0, 1, 'float32', 7) as tf.Tensor4D;
      // The same map given at full resolution (each value repeated over its 4x4 cell).
      const full = tf.tidy(() => tf.image.resizeNearestNeighbor(low, [8, 8]) as tf.Tensor4D);
      const plain = unet.forward(x, [1, 500]);
      const fromLow = unet.forward(x, [1, 500], { control: low });
      const fromFull = unet.forward(x, [1, 500], { control: full });
      expect(maxAbsDiff(plain, fromLow)).toBeGreaterThan(1e-3);
      expect(maxAbsDiff(fromLow, fromFull)).toBeLessThan(1e-5);
      w.assign(saved);
      tf.dispose([saved, low, full, plain, fromLow, fromFull]);
    });

    it('rejects maps of a non-integer factor, wrong channels, or a model without control_channels', () => {
      const odd = tf.zeros([2, 3, 3, 5]) as tf.Tensor4D;
      const wrongChannels = tf.zeros([2, 4, 4, 4]) as tf.Tensor4D;
      expect(() => unet.forward(x, [1, 2], { control: odd })).toThrow(/integer factor/);
      expect(() => unet.forward(x, [1, 2], { control: wrongChannels })).toThrow(/control must be \[2, hc, wc, 5\]/);
      const s2 = new ParamStore(0);
      const plainUnet = new UNet(s2, TINY);
      expect(() => plainUnet.forward(x, [1, 2], { control: wrongChannels })).toThrow(/no control_channels/);
      tf.dispose([odd, wrongChannels]);
      s2.dispose();
    });
  });

  it('taps the input of every conv and dense layer, shaped to match its weight', () => {
    const store = new ParamStore(4);
    const unet = new UNet(store, { ...TINY, control_channels: 2 }).init();
    const seen = new Map<string, number[]>();
    const x = tf.randomNormal([2, 8, 8, 1]) as tf.Tensor4D;
    const control = tf.randomNormal([2, 4, 4, 2]) as tf.Tensor4D;
    const y = unet.forward(x, [3, 4], {
      control,
      tap: (e: TapEvent) => {
        seen.set(e.layer, e.input.shape);
      },
    });
    const weights = store.infosList().filter((i) => i.role === 'weight' && i.layerKind !== 'norm');
    expect([...seen.keys()].sort()).toEqual(weights.map((w) => w.layer).sort());
    for (const w of weights) {
      const inDim = w.shape.slice(0, -1).reduce((a, b) => a * b, 1);
      expect(seen.get(w.layer)![1]).toBe(inDim);
    }
    tf.dispose([x, control, y]);
    store.dispose();
  });

  it('leaks no tensors in a forward pass', () => {
    const store = new ParamStore(5);
    const unet = new UNet(store, TINY).init();
    const x = tf.randomNormal([2, 8, 8, 1]) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    const y = unet.forward(x, 7);
    expect(tf.memory().numTensors).toBe(before + 1);
    y.dispose();
    x.dispose();
    store.dispose();
  });

  it('rejects bad configs and inputs with messages that name the problem', () => {
    expect(() => parseUNetConfig({ ...TINY, chanel_mult: [1] }, 'my.json')).toThrow(/my\.json: unknown field 'chanel_mult'/);
    expect(() => parseUNetConfig({ ...TINY, attention_resolutions: [3] })).toThrow(/attention resolution 3 is not the size of any level/);
    expect(() => parseUNetConfig({ ...TINY, groupnorm_groups: 3 })).toThrow(/not divisible by groupnorm_groups 3/);
    expect(() => parseUNetConfig({ ...TINY, image_size: 7 })).toThrow(/must be divisible by 2/);
    const spec = JSON.parse(readFixture('unet_spec.json'));
    expect(parseUNetConfig(spec)).not.toHaveProperty('batch_size');
    const store = new ParamStore(0);
    const unet = new UNet(store, TINY);
    const bad = tf.zeros([1, 8, 8, 3]) as tf.Tensor4D;
    expect(() => unet.forward(bad, 0)).toThrow(/3 channels but in_channels is 1/);
    const odd = tf.zeros([1, 6, 6, 1]) as tf.Tensor4D;
    expect(() => unet.forward(odd, 0)).not.toThrow(); // 6 is divisible by 2 (two levels)
    expect(() => unet.forward(tf.zeros([1, 5, 5, 1]) as tf.Tensor4D, 0)).toThrow(/divisible by 2/);
    tf.dispose([bad, odd]);
    store.dispose();
  });
});
