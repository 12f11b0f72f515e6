import { tf } from '@ofm/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import { AdamW } from '../src/index';
import { readFixture, useBackend } from './helpers';

/** The trajectory of torch.optim.AdamW (fixtures/make_torch_adamw.py documents the setup). */
const TORCH = JSON.parse(readFixture('torch-adamw.json')) as { lr: number; weight_decay: number; params_after_each_step: number[][] };

const p0 = () => tf.variable(tf.tensor2d(Float32Array.from({ length: 12 }, (_, i) => Math.sin(0.9 * i)), [3, 4]));
const gradAt = (s: number) => tf.tensor2d(Float32Array.from({ length: 12 }, (_, i) => Math.cos(0.5 * i + s) * (1 + 0.3 * s)), [3, 4]);

describe('AdamW', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it('follows torch.optim.AdamW step by step', () => {
    const p = p0();
    const vars = new Map([['w', p]]);
    const opt = new AdamW({ lr: TORCH.lr, weightDecay: TORCH.weight_decay });
    TORCH.params_after_each_step.forEach((want, k) => {
      const g = gradAt(k + 1);
      opt.update(vars, { w: g });
      g.dispose();
      const got = p.dataSync();
      want.forEach((v, i) => expect(Math.abs(got[i]! - v)).toBeLessThan(2e-6));
    });
    expect(opt.stepsOf('w')).toBe(6);
    opt.dispose();
    p.dispose();
  });

  it('decays decoupled from the gradient: zero gradients shrink weights by (1 - lr·λ)', () => {
    const p = tf.variable(tf.tensor1d([2, -4]));
    const opt = new AdamW({ lr: 0.1, weightDecay: 0.5 });
    const g = tf.zeros([2]);
    opt.update(new Map([['p', p]]), { p: g });
    const decayed = [2 * 0.95, -4 * 0.95].map((v) => Math.fround(v));
    expect(Array.from(p.dataSync())).toEqual(decayed);
    const noDecay = new AdamW({ lr: 0.1, weightDecay: 0.5, decays: () => false });
    noDecay.update(new Map([['p', p]]), { p: g });
    expect(Array.from(p.dataSync())).toEqual(decayed); // no decay, and a zero gradient moves nothing
    tf.dispose([p, g]);
    opt.dispose();
    noDecay.dispose();
  });

  it('saves and restores its state: 3 + 3 steps across a restore equal 6 steps', () => {
    const run = (restoreAfter?: number) => {
      const p = p0();
      const vars = new Map([['w', p]]);
      let opt = new AdamW({ lr: 0.05, weightDecay: 0.1 });
      for (let s = 1; s <= 6; s++) {
        if (s === restoreAfter) {
          const state = opt.state();
          expect(Object.keys(state).sort()).toEqual(['adamw.m.w', 'adamw.step.w', 'adamw.v.w']);
          opt.dispose();
          opt = new AdamW({ lr: 0.05, weightDecay: 0.1 });
          opt.loadState(state);
          tf.dispose(Object.values(state));
        }
        const g = gradAt(s);
        opt.update(vars, { w: g });
        g.dispose();
      }
      opt.dispose();
      const out = Array.from(p.dataSync());
      p.dispose();
      return out;
    };
    expect(run(4)).toEqual(run());
    // And the restore matters: a fresh optimiser mid-way gives another trajectory.
    const fresh = (() => {
      const p = p0();
      const vars = new Map([['w', p]]);
      for (let s = 1; s <= 6; s++) {
        const opt = new AdamW({ lr: 0.05, weightDecay: 0.1 });
        const g = gradAt(s);
        opt.update(vars, { w: g });
        tf.dispose(g);
        opt.dispose();
      }
      const out = Array.from(p.dataSync());
      p.dispose();
      return out;
    })();
    expect(fresh).not.toEqual(run());
  });

  it('rejects gradients of unknown parameters or of the wrong shape', () => {
    const p = tf.variable(tf.zeros([2]));
    const opt = new AdamW();
    const g3 = tf.zeros([3]);
    expect(() => opt.update(new Map([['p', p]]), { q: g3 })).toThrow(/'q', which is not among the parameters/);
    expect(() => opt.update(new Map([['p', p]]), { p: g3 })).toThrow(/shape \[3\], parameter \[2\]/);
    tf.dispose([p, g3]);
    opt.dispose();
  });

  it('leaks no tensors', () => {
    const p = p0();
    const opt = new AdamW();
    const g = gradAt(1);
    opt.update(new Map([['w', p]]), { w: g }); // creates the state
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) opt.update(new Map([['w', p]]), { w: g });
    expect(tf.memory().numTensors).toBe(before);
    opt.dispose();
    expect(tf.memory().numTensors).toBe(before - 2);
    tf.dispose([p, g]);
  });
});
