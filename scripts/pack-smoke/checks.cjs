// The smoke checks of the packaging test (see ../pack-smoke.mjs): one per package, each a small
// computation with a known answer, run against the packages installed from their tarballs.
// CommonJS so that both runners load it; `load` is the runner's `import()` or `require()`, so each
// check goes through the package's ESM or CJS entry point. Each returns a one-line summary.
'use strict';
const assert = require('node:assert/strict');
const { mkdtempSync, rmSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');

/** Run `fn(dir)` with a fresh temporary directory, removed afterwards. */
async function withTempDir(fn) {
  const dir = mkdtempSync(join(tmpdir(), 'ofm-smoke-'));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Seeded uniform numbers in [-1, 1) (LCG): the same data for the ESM and CJS runs. */
function seeded(seed) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  };
}

/** `rows x cols` row-major matrix of seeded values. */
function randomData(rows, cols, seed) {
  const next = seeded(seed);
  return Float64Array.from({ length: rows * cols }, next);
}

/** Largest |Uᵀ x| over the columns of x (both row-major, U `[dim, rank]`, x `[dim, n]`). */
function largestComponentInSpan(U, x, n) {
  let worst = 0;
  for (let j = 0; j < n; j++) {
    for (let r = 0; r < U.cols; r++) {
      let dot = 0;
      for (let i = 0; i < U.rows; i++) dot += U.data[i * U.cols + r] * x[i * n + j];
      worst = Math.max(worst, Math.abs(dot));
    }
  }
  return worst;
}

/** The tiny detector of the detector package's own tests (24 px, a few steps). */
const TINY_DETECTOR = {
  imageSize: 24,
  unet: {
    in_channels: 3,
    out_channels: 3,
    model_channels: 8,
    channel_mult: [1, 2],
    num_res_blocks: 1,
    attention_resolutions: [12],
    num_heads: 2,
    groupnorm_groups: 4,
    time_embed_dim: 16,
  },
  amn: { enabled: true, hintChannels: [8, 8], dim: 8, layers: 1, heads: 2, ffn: 16, dropout: 0, maskSize: 3 },
  training: { steps: 6, batchSize: 4, lr: 2e-3, maxTimestep: 200 },
  reconstruction: { tStartCandidates: [40, 80], steps: 2, eta: 0 },
  continual: { collectImages: 4, maxRowsPerCall: 32 },
  validation: { fraction: 0.25, minImages: 2 },
  inferenceBatch: 8,
  seed: 3,
};

/** Start the default backend and check it is the wasm one with the training kernels. */
async function wasmBackend(tensor) {
  const report = await tensor.initBackend();
  assert.equal(report.backend, 'wasm', `expected the wasm backend (no tfjs-node installed), got ${report.backend}`);
  assert.ok(report.customKernels.length > 0, 'no training kernels were registered for wasm');
  assert.equal(tensor.tf.version_core, '4.22.0');
  return report;
}

const checks = {
  async '@ofm/metrics'(load) {
    const m = await load('@ofm/metrics');
    const scores = [0.1, 0.4, 0.35, 0.8];
    const labels = [0, 0, 1, 1];
    assert.equal(m.auroc(scores, labels), 0.75);
    assert.ok(Math.abs(m.averagePrecision(scores, labels) - 5 / 6) < 1e-12);
    const maps = [Float32Array.of(0.1, 0.2, 0.1, 0.9), Float32Array.of(0.2, 0.1, 0.3, 0.2)];
    const masks = [Uint8Array.of(0, 0, 0, 1), Uint8Array.of(0, 0, 0, 0)];
    assert.equal(m.aupro(maps, masks), 1);
    const f = m.forgetting([
      [0.9, null],
      [0.8, 0.95],
    ]);
    assert.ok(Math.abs(f - 0.1) < 1e-12);
    return 'auroc 0.75, AP 5/6, AUPRO 1, forgetting 0.1';
  },

  async '@ofm/errors'(load) {
    const e = await load('@ofm/errors');
    const d = await load('@ofm/datasets');
    const err = new e.ConfigError('bad value');
    assert.ok(err instanceof e.OfmError && err instanceof Error);
    assert.deepEqual([err.name, err.kind, err.code], ['ConfigError', 'config', 'config']);
    assert.equal(new e.AbortError().name, 'AbortError');
    // One copy of @ofm/errors: the datasets' error is a DataError of the package the user imports.
    const missing = await d.loadMvtec('/no/such/dataset').then(
      () => assert.fail('loadMvtec of a missing folder resolved'),
      (x) => x,
    );
    assert.ok(missing instanceof d.DatasetError && missing instanceof e.DataError, `not a DataError: ${missing}`);
    assert.equal(e.errorKind(missing), 'data');
    return 'ConfigError and AbortError have their names and codes; a DatasetError of @ofm/datasets is a DataError';
  },

  async '@ofm/datasets'(load) {
    const d = await load('@ofm/datasets');
    const browser = await load('@ofm/datasets/browser');
    assert.equal(typeof browser.renderSynthImage, 'function');
    assert.equal(browser.loadMvtec, undefined, 'the browser entry must leave out the file loaders');
    return withTempDir(async (dir) => {
      const out = join(dir, 'synth');
      await d.synth({ out, classes: ['tiles'], size: 16, nTrain: 4, nTestGood: 1, nTestBad: 2, seed: 1 });
      const ds = await d.loadMvtec(out, { size: 16 });
      assert.deepEqual(ds.classes, ['tiles']);
      let train = 0;
      for await (const s of ds.train('tiles')) {
        assert.equal(s.image.length, 16 * 16 * 3);
        assert.ok(s.image.every((v) => v >= 0 && v <= 1));
        assert.equal(s.label, 0);
        train++;
      }
      assert.equal(train, 4);
      let defective = 0;
      for await (const s of ds.test('tiles')) {
        const area = s.mask.reduce((a, v) => a + v, 0);
        assert.equal(area > 0, s.label === 1, `${s.path}: mask area ${area} but label ${s.label}`);
        defective += s.label;
      }
      assert.equal(defective, 2);
      return 'synth wrote 4 train + 3 test images (16 px), loadMvtec read them back with masks; /browser entry has no fs';
    });
  },

  async '@ofm/tensor'(load) {
    const t = await load('@ofm/tensor');
    const report = await wasmBackend(t);
    const exact = t.svd(t.matrix(3, 2, [3, 0, 0, 4, 0, 0]), { computeV: true });
    assert.deepEqual(Array.from(exact.S), [4, 3]);
    const rows = 12;
    const cols = 5;
    const a = t.matrix(rows, cols, randomData(rows, cols, 7));
    const { U, S, V } = t.svd(a, { computeV: true });
    let err = 0;
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < cols; j++) {
        let v = 0;
        for (let k = 0; k < S.length; k++) v += U.data[i * U.cols + k] * S[k] * V.data[j * V.cols + k];
        err = Math.max(err, Math.abs(v - a.data[i * cols + j]));
      }
    }
    assert.ok(err < 1e-10, `U S Vᵀ differs from A by ${err}`);
    const product = t.tf.tidy(() => t.tf.matMul(t.tf.ones([2, 3]), t.tf.ones([3, 2])).dataSync());
    assert.deepEqual(Array.from(product), [3, 3, 3, 3]);
    return `backend ${report.backend} (${report.customKernels.length} custom kernels), svd: S = [4, 3] exact, 12x5 rebuilt to ${err.toExponential(1)}`;
  },

  async '@ofm/isvd'(load) {
    const t = await load('@ofm/tensor');
    const { IncrementalSvd, subspaceAgreement } = await load('@ofm/isvd');
    const dim = 8;
    // A rank-2 stream: rows are combinations of two fixed directions.
    const basis = t.svd(t.matrix(dim, 2, randomData(dim, 2, 3))).U;
    const isvd = new IncrementalSvd({ dim, energy: 0.999 });
    const next = seeded(11);
    for (let block = 0; block < 5; block++) {
      const rows = new Float64Array(6 * dim);
      for (let r = 0; r < 6; r++) {
        const c0 = next();
        const c1 = next();
        for (let i = 0; i < dim; i++) rows[r * dim + i] = c0 * basis.data[i * 2] + c1 * basis.data[i * 2 + 1];
      }
      isvd.push(t.matrix(6, dim, rows));
    }
    const { U } = isvd.factor();
    assert.equal(U.cols, 2, `expected rank 2, got ${U.cols}`);
    const agreement = subspaceAgreement(U, basis);
    assert.ok(agreement.minCosine > 1 - 1e-9, `subspace agreement ${agreement.minCosine}`);
    return `5 blocks of a rank-2 stream: rank ${U.cols}, min cosine to the true span ${agreement.minCosine.toFixed(9)}`;
  },

  async '@ofm/continual'(load) {
    const t = await load('@ofm/tensor');
    const { GradientProjectionMemory } = await load('@ofm/continual');
    await wasmBackend(t);
    const { tf } = t;
    const params = new t.ParamStore(1);
    const net = (ctx, x) => t.dense(ctx, 'head', x, { units: 2 });
    // Task inputs in R^6 that only use their first three coordinates.
    const inputs = tf.tensor2d(Float32Array.from(randomData(16, 6, 5), (v, i) => (i % 6 < 3 ? v : 0)), [16, 6]);
    tf.tidy(() => void net(t.context(params), inputs));
    const gpm = new GradientProjectionMemory(params, { threshold: 0.999, compression: 0.99999 });
    gpm.collect((tap) => tf.tidy(() => void net(t.context(params, { tap }), inputs)));
    gpm.consolidate();
    assert.equal(gpm.rank('head'), 3);
    const grad = tf.tensor2d(Float32Array.from(randomData(6, 2, 9)), [6, 2]);
    const projected = gpm.project({ 'head.weight': grad })['head.weight'];
    const leak = largestComponentInSpan(gpm.basis('head'), projected.dataSync(), 2);
    assert.ok(leak < 1e-5, `the projected gradient keeps ${leak} inside the protected span`);
    tf.dispose([inputs, grad, projected]);
    gpm.dispose();
    params.dispose();
    return `basis rank 3 of 6 after one task; projected gradient's component in it ${leak.toExponential(1)}`;
  },

  async '@ofm/diffusion'(load) {
    const t = await load('@ofm/tensor');
    const { NoiseSchedule, UNet, parseUNetConfig, reconstruct } = await load('@ofm/diffusion');
    await wasmBackend(t);
    const { tf } = t;
    const schedule = new NoiseSchedule({ kind: 'linear' });
    assert.ok(schedule.alphaBar(0) > schedule.alphaBar(500) && schedule.alphaBar(500) > schedule.alphaBar(999));
    const config = parseUNetConfig({
      image_size: 8,
      in_channels: 3,
      out_channels: 3,
      model_channels: 8,
      channel_mult: [1, 2],
      num_res_blocks: 1,
      attention_resolutions: [4],
      num_heads: 2,
      groupnorm_groups: 4,
      time_embed_dim: 16,
    });
    const unet = new UNet(new t.ParamStore(0), config).init();
    const x = tf.randomUniform([2, 8, 8, 3], -1, 1, 'float32', 1);
    const rebuilt = reconstruct(unet, schedule, x, { tStart: 100, steps: 2, seed: 1 });
    assert.deepEqual(rebuilt.shape, [2, 8, 8, 3]);
    assert.ok(rebuilt.dataSync().every(Number.isFinite));
    const again = reconstruct(unet, schedule, x, { tStart: 100, steps: 2, seed: 1 });
    assert.deepEqual(Array.from(again.dataSync()), Array.from(rebuilt.dataSync()), 'same seed, different reconstruction');
    tf.dispose([x, rebuilt, again]);
    return `${unet.paramCount()}-parameter UNet: 2-step DDIM reconstruction of [2, 8, 8, 3], finite and reproducible`;
  },

  async '@ofm/amn'(load) {
    const t = await load('@ofm/tensor');
    const { createAmn, neighbourMaskBits } = await load('@ofm/amn');
    await wasmBackend(t);
    const { tf } = t;
    const amn = createAmn({ hintChannels: [4, 8], dim: 8, layers: 1, heads: 2, ffn: 16, maskSize: 3 });
    const params = new t.ParamStore(0);
    const images = tf.randomUniform([2, 16, 16, 3], -1, 1, 'float32', 2);
    const control = amn.forward(t.context(params), images);
    assert.deepEqual(control.shape, [2, 8, 8, 8]);
    assert.ok(control.dataSync().every(Number.isFinite));
    // Token (1, 1) of a 4 x 4 grid may not attend to its 3 x 3 neighbourhood: 9 blocked keys.
    const bits = neighbourMaskBits(4, 4, 3);
    const blocked = bits.subarray(5 * 16, 6 * 16).reduce((a, v) => a + v, 0);
    assert.equal(blocked, 9);
    tf.dispose([images, control]);
    params.dispose();
    return 'control map [2, 8, 8, 8] from 16 px images, finite; 3x3 neighbour mask blocks 9 keys';
  },

  async '@ofm/detector'(load) {
    const t = await load('@ofm/tensor');
    const { loadMvtec, synth } = await load('@ofm/datasets');
    const { ContinualDetector, loadDetector, saveDetector } = await load('@ofm/detector');
    const browser = await load('@ofm/detector/browser');
    assert.equal(typeof browser.loadDetector, 'function');
    assert.equal(browser.saveDetector, undefined, 'the browser entry must leave out saving (Node file system)');
    const experiments = await load('@ofm/detector/experiments');
    const plan = await experiments.planContinualBenchmark({
      base: TINY_DETECTOR,
      methods: ['ofm', 'joint'],
      seeds: [1],
      tasks: [['washer'], ['tiles']],
      data: { data: 'data', format: 'mvtec' },
    });
    assert.deepEqual(plan.runs.map((r) => [r.id, r.tasks.length]), [['ofm-seed1', 2], ['joint-seed1', 1]]);
    await wasmBackend(t);
    return withTempDir(async (dir) => {
      const data = join(dir, 'data');
      await synth({ out: data, classes: ['washer'], size: 24, nTrain: 10, nTestGood: 1, nTestBad: 2, seed: 1 });
      const ds = await loadMvtec(data, { size: 24 });
      const train = [];
      for await (const s of ds.train('washer')) train.push(s.image);
      const test = [];
      for await (const s of ds.test('washer')) test.push(s.image);
      const detector = new ContinualDetector(TINY_DETECTOR);
      const record = await detector.learnTask({ classes: ['washer'], images: new Map([['washer', train]]) });
      // The default keeps each task's own weights: nothing to project, so no bases are collected.
      assert.equal(detector.config.continual.weights, 'per-task');
      assert.equal(record.basisRank, 0, 'per-task weights collected projection bases');
      const found = detector.detect(test);
      assert.equal(found.length, 3);
      for (const d of found) {
        assert.equal(d.className, 'washer');
        assert.equal(d.map.length, 24 * 24);
        assert.ok(Number.isFinite(d.score) && d.map.every(Number.isFinite));
      }
      await saveDetector(detector, join(dir, 'model'));
      const { detector: loaded } = await loadDetector(join(dir, 'model'));
      const reloaded = loaded.detect(test);
      assert.deepEqual(
        reloaded.map((d) => d.score),
        found.map((d) => d.score),
        'the reloaded detector scores differently',
      );
      detector.dispose();
      loaded.dispose();
      return `learned 1 task (${record.steps} steps, per-task weights), detected 3 images, saved and reloaded with identical scores; /browser entry has no saveDetector; /experiments plans runs`;
    });
  },
};

module.exports = { checks };
