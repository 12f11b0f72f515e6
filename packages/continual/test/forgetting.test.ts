/**
 * Forgetting: a small conv net learns task A, then task B with Adam (the detector's optimiser).
 * With GPM (projectUpdate after each step) task A's loss must stay within 5% of its value before
 * B; without protection it must rise by a large factor. Both are measured here, on the wasm
 * backend (the cpu backend trains this net about 30x slower).
 */
import { context, initBackend, tf } from '@ofm/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GradientProjectionMemory } from '../src/gpm';
import { type Task, lossValue, makeTask, mse, tinyNet, tinyStore } from './model';

const STEPS = 200;
const LR = 0.01;

let taskA: Task;
let taskB: Task;

beforeAll(async () => {
  await initBackend({ backend: 'wasm', quiet: true });
  taskA = makeTask(10, [1, 0, 0], 128);
  taskB = makeTask(20, [0, Math.SQRT1_2, Math.SQRT1_2], 128);
});

afterAll(() => {
  tf.dispose([taskA.x, taskA.y, taskB.x, taskB.y]);
});

describe('forgetting with and without gradient projection (Adam)', () => {
  it('keeps task A within 5% while learning B; without projection A degrades by a large factor', () => {
    const params = tinyStore(1);
    const all = params.entries().map(([, v]) => v);
    // During B only weights train: biases are frozen (the caller's freeze policy for unprotected
    // parameters), in both runs, so the runs differ only by the projection.
    const weights = params.entries().filter(([n]) => n.endsWith('.weight')).map(([, v]) => v);

    const adamA = tf.train.adam(LR);
    for (let i = 0; i < STEPS; i++) adamA.minimize(() => mse(params, taskA), false, all);
    adamA.dispose();
    const lossA = lossValue(params, taskA);
    const lossBInitial = lossValue(params, taskB);
    const afterA = params.snapshot();

    // Without projection.
    const free = tf.train.adam(LR);
    for (let i = 0; i < STEPS; i++) free.minimize(() => mse(params, taskB), false, weights);
    free.dispose();
    const freeA = lossValue(params, taskA);
    const freeB = lossValue(params, taskB);

    // With GPM: collect task A's layer inputs (all rows), consolidate, learn B with projected updates.
    params.assign(afterA);
    const gpm = new GradientProjectionMemory(params, { threshold: 0.9999, compression: 0.99999, maxRowsPerCall: 8192 });
    gpm.collect((tap) => tf.tidy(() => void tinyNet(context(params, { tap }), taskA.x)));
    const report = gpm.consolidate();
    const adamB = tf.train.adam(LR);
    for (let i = 0; i < STEPS; i++) gpm.withProjectedUpdate(() => adamB.minimize(() => mse(params, taskB), false, weights));
    adamB.dispose();
    const gpmA = lossValue(params, taskA);
    const gpmB = lossValue(params, taskB);

    // The whole change of each protected weight during B is orthogonal to A's basis.
    const drift = params.entries().filter(([n]) => n.endsWith('.weight')).map(([n, v]) =>
      tf.tidy(() => {
        const u = gpm.basisTensor(n.slice(0, -'.weight'.length))!;
        const delta = tf.sub(v, afterA[n]!).reshape([u.shape[0], -1]);
        return tf.norm(tf.matMul(u, delta, true, false)).dataSync()[0]! / tf.norm(delta).dataSync()[0]!;
      }),
    );

    console.log(
      [
        `task A loss after A: ${lossA.toExponential(3)}; task B loss before B: ${lossBInitial.toFixed(3)}`,
        `bases: ${report.layers.map((l) => `${l.layer} ${l.rank}/${l.inDim}`).join(', ')}`,
        `without projection: A ${freeA.toExponential(3)} (x${(freeA / lossA).toFixed(2)}), B ${freeB.toExponential(3)}`,
        `GPM projectUpdate:  A ${gpmA.toExponential(3)} (x${(gpmA / lossA).toFixed(4)}), B ${gpmB.toExponential(3)}`,
        `max relative weight drift into A's span: ${Math.max(...drift).toExponential(2)}`,
      ].join('\n'),
    );

    expect(Math.abs(gpmA / lossA - 1)).toBeLessThanOrEqual(0.05);
    // Measured: x13.7 on wasm. A factor of 5 is the stated floor.
    expect(freeA / lossA).toBeGreaterThan(5);
    // B is still learned under projection: its loss falls by > 30x and stays within 2x of unprotected learning.
    expect(gpmB).toBeLessThan(lossBInitial / 30);
    expect(gpmB).toBeLessThan(2 * freeB);
    for (const d of drift) expect(d).toBeLessThan(1e-4);

    tf.dispose(Object.values(afterA));
    gpm.dispose();
    params.dispose();
  });
});
