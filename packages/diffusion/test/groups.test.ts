import { ParamStore } from '@ofm/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UNet, parseUNetConfig, protectedLayers, trainableParams } from '../src/index';
import { TINY, readFixture, useBackend } from './helpers';

describe('parameter groups', () => {
  let store: ParamStore;
  let unet: UNet;
  beforeAll(async () => {
    await useBackend('cpu');
    store = new ParamStore(0);
    unet = new UNet(store, { ...TINY, control_channels: 4 }).init();
    // Another model in the same store: never part of the UNet's groups.
    store.param('amn.encoder.weight', [3, 3], { kind: 'zeros' }, { layer: 'amn.encoder', role: 'weight', layerKind: 'dense' });
  });
  afterAll(() => store.dispose());

  it('first task: every UNet parameter, nothing else', () => {
    expect(trainableParams(store, 'first-task')).toEqual(unet.paramNames());
  });

  it('later tasks (authors default): conv/dense weights only, time-embedding MLP frozen', () => {
    const later = trainableParams(store, 'later-task');
    expect(later.length).toBeGreaterThan(0);
    for (const name of later) {
      const info = store.info(name);
      expect(info.role).toBe('weight');
      expect(['conv', 'dense']).toContain(info.layerKind);
      expect(name.startsWith('unet.time_embed.')).toBe(false);
    }
    const frozen = unet.paramNames().filter((n) => !later.includes(n));
    // Every frozen one is a bias, a norm parameter or part of the time-embedding MLP.
    for (const name of frozen) {
      const info = store.info(name);
      expect(info.role !== 'weight' || info.layerKind === 'norm' || name.startsWith('unet.time_embed.')).toBe(true);
    }
    expect(later).toContain('unet.input_blocks.1.0.emb_layers.1.weight');
    expect(later).toContain('unet.control.proj.weight');
    expect(later).toContain('unet.middle_block.1.qkv.weight');
  });

  it('the policy switches each group', () => {
    const count = (policy: object) => trainableParams(store, 'later-task', { policy }).length;
    const base = count({});
    const nBias = unet.paramNames().filter((n) => store.info(n).role === 'bias' && !n.startsWith('unet.time_embed')).length;
    const nNorm = unet.paramNames().filter((n) => store.info(n).layerKind === 'norm').length;
    expect(count({ biases: true })).toBe(base + nBias);
    expect(count({ norms: true })).toBe(base + nNorm);
    expect(count({ timeEmbedding: true })).toBe(base + 2); // two weights; biases stay frozen
    const nEmb = unet.paramNames().filter((n) => n.includes('.emb_layers.') && n.endsWith('.weight')).length;
    expect(count({ resBlockTimeProjections: false })).toBe(base - nEmb);
    expect(count({ control: false })).toBe(base - 1);
  });

  it('protected layers: the later-task weights, with the matrix shape projection works on', () => {
    const layers = protectedLayers(store);
    expect(layers.map((l) => l.weight)).toEqual(trainableParams(store, 'later-task'));
    const conv = layers.find((l) => l.layer === 'unet.input_blocks.1.0.in_layers.2')!;
    expect(conv).toEqual({ layer: 'unet.input_blocks.1.0.in_layers.2', weight: 'unet.input_blocks.1.0.in_layers.2.weight', kind: 'conv', inDim: 9 * 8, outDim: 8 });
    const qkv = layers.find((l) => l.layer === 'unet.middle_block.1.qkv')!;
    expect(qkv).toMatchObject({ kind: 'dense', inDim: 16, outDim: 48 });
  });

  it('on the benchmark spec: 55 protected weights (conv + linear, time MLP excluded)', () => {
    const s = new ParamStore(0);
    new UNet(s, parseUNetConfig(JSON.parse(readFixture('unet_spec.json')))).init();
    // The twin's 168 tensors are 84 weight/bias pairs: 27 GroupNorms (11 ResBlocks x 2, 4 attention
    // blocks, out.0), 2 time-MLP linears, and 55 conv/linear layers that are protected.
    const norms = s.infosList().filter((i) => i.layerKind === 'norm').length;
    expect(norms).toBe(54);
    expect(protectedLayers(s)).toHaveLength((168 - 54) / 2 - 2);
    s.dispose();
  });
});
