/**
 * Design measurement: which map of the residual (input minus reconstruction) separates real defects
 * best? Reconstructs each class's test images and calibration normals once per start timestep
 * (cached), then scores map variants of the same reconstructions, each fused over the start
 * timesteps as the detector fuses them (standardised by the calibration maps' mean and std).
 * Calibration proxy: the last N training images. Reads test images: informs defaults only.
 * `pnpm tsx bench/map-residual.ts CKPT DATA [T1,T2,...] [N]`
 * Environment: VARIANTS=a,b (a subset of the variants), BY_DEFECT=1 (image AUROC per defect type),
 * PER_T=1 (the first variant at each start alone), INPUT_GAUSS=1,2,4 (a per-class Gaussian of the
 * input's own filter-bank features at these scales, alone and mixed with 'l2-b2'), MULTI=0 (no mixes).
 */
import { loadMvtec } from '@ofm/datasets';
import { auroc } from '@ofm/metrics';
import { initBackend, tf } from '@ofm/tensor';
import { FilterBankExtractor, gaussianBlur } from '../src/model/features';
import { imageScores, loadDetector, scoreReduction } from '../src/index';
import { batchOf, loadClassSplit } from './class-split';

type Variant = (r: tf.Tensor4D, cal: tf.Tensor4D) => tf.Tensor3D;

const l2 = (r: tf.Tensor4D) => tf.sqrt(tf.add(tf.sum(tf.square(r), 3), 1e-12)) as tf.Tensor3D;
const blur3 = (m: tf.Tensor3D, s: number) => (s > 0 ? gaussianBlur(m.expandDims(3) as tf.Tensor4D, s).squeeze([3]) : m) as tf.Tensor3D;

/** Colour Mahalanobis distance of the residual under the calibration residuals' mean and covariance. */
function mahalanobis(r: tf.Tensor4D, cal: tf.Tensor4D): tf.Tensor3D {
  const flat = cal.reshape([-1, 3]);
  const mu = tf.mean(flat, 0);
  const c = tf.sub(flat, mu);
  const cov = tf.div(tf.matMul(c, c, true, false), flat.shape[0]);
  const covArr = cov.arraySync() as number[][];
  const reg = covArr.map((row, i) => row.map((v, j) => v + (i === j ? 1e-6 : 0)));
  const inv = tf.tensor2d(invert3(reg));
  const d = tf.sub(r.reshape([-1, 3]), mu);
  const q = tf.sum(tf.mul(tf.matMul(d, inv), d), 1);
  const [n, h, w] = r.shape;
  return tf.sqrt(tf.relu(q)).reshape([n, h, w]) as tf.Tensor3D;
}

function invert3(m: number[][]): number[][] {
  const [[a, b, c], [d, e, f], [g, h, i]] = m as [[number, number, number], [number, number, number], [number, number, number]];
  const A = e * i - f * h;
  const B = -(d * i - f * g);
  const C = d * h - e * g;
  const det = a * A + b * B + c * C;
  return [
    [A / det, -(b * i - c * h) / det, (b * f - c * e) / det],
    [B / det, (a * i - c * g) / det, -(a * f - c * d) / det],
    [C / det, -(a * h - b * g) / det, (a * e - b * d) / det],
  ];
}

/** Inverse of a symmetric positive-definite matrix (Gauss-Jordan; small sizes). */
function invert(m: number[][]): number[][] {
  const n = m.length;
  const a = m.map((row, i) => [...row, ...Array.from({ length: n }, (_, j) => (i === j ? 1 : 0))]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r]![c]!) > Math.abs(a[p]![c]!)) p = r;
    [a[c], a[p]] = [a[p]!, a[c]!];
    const piv = a[c]![c]!;
    for (let j = 0; j < 2 * n; j++) a[c]![j]! /= piv;
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = a[r]![c]!;
      if (f !== 0) for (let j = 0; j < 2 * n; j++) a[r]![j]! -= f * a[c]![j]!;
    }
  }
  return a.map((row) => row.slice(n));
}

/**
 * A per-class Gaussian of the input's own filter-bank features (position-free: textures are
 * stationary): the Mahalanobis distance of each pixel's feature vector, smoothed. Needs only the
 * mean and covariance of the normal training images' features, not the images.
 */
function inputGaussian(train: tf.Tensor4D, sigmas: number[]) {
  const fb = new FilterBankExtractor({ sigmas });
  const feats = (x: tf.Tensor4D) => tf.tidy(() => tf.concat(fb.extract(x), 3) as tf.Tensor4D);
  const ft = feats(train);
  const d = ft.shape[3];
  const flat = ft.reshape([-1, d]);
  const mu = tf.mean(flat, 0);
  const c = tf.sub(flat, mu);
  const cov = (tf.div(tf.matMul(c, c, true, false), flat.shape[0]).arraySync() as number[][]).map((row, i) => row.map((v, j) => v + (i === j ? 1e-4 : 0)));
  const inv = tf.tensor2d(invert(cov));
  tf.dispose([ft, flat, c]);
  return {
    map: (x: tf.Tensor4D) =>
      tf.tidy(() => {
        const f = feats(x);
        const [n, h, w] = f.shape;
        const z = tf.sub(f.reshape([-1, d]), mu);
        const q = tf.sum(tf.mul(tf.matMul(z, inv), z), 1);
        return blur3(tf.sqrt(tf.relu(q)).reshape([n, h, w]) as tf.Tensor3D, 2);
      }),
    dispose: () => tf.dispose([mu, inv]),
  };
}

const VARIANTS: Record<string, Variant> = {
  'l2-b2': (r) => blur3(l2(r), 2),
  'l2-b1': (r) => blur3(l2(r), 1),
  'l2-b3': (r) => blur3(l2(r), 3),
  'l2-b4': (r) => blur3(l2(r), 4),
  'maha-b2': (r, cal) => blur3(mahalanobis(r, cal), 2),
  'blurfirst-b2': (r) => l2(gaussianBlur(r, 2)),
  'blurfirst-b1': (r) => blur3(l2(gaussianBlur(r, 1)), 1),
  'blurfirst-b4': (r) => l2(gaussianBlur(r, 4)),
};

async function main() {
  const [ckpt, data, list = '10,100,300', nCal = '9'] = process.argv.slice(2);
  if (!ckpt || !data) throw new Error('usage: tsx bench/map-residual.ts CKPT DATA [T1,T2,...] [N]');
  await initBackend({ backend: 'wasm' });
  const { detector } = await loadDetector(ckpt);
  const size = detector.config.imageSize;
  const dataset = await loadMvtec(data, { size });
  const ts = list.split(',').map(Number);
  const only = process.env.VARIANTS?.split(',');
  const variants = Object.entries(VARIANTS).filter(([k]) => !only || only.includes(k));
  const multi = process.env.MULTI !== '0';
  const rows: Record<string, { img: number[]; pix: number[] }> = {};
  const reduction = scoreReduction(detector.config.map);
  for (const cls of detector.classes) {
    const { test, train, xc, xt, labels, masks } = await loadClassSplit(dataset, cls.className, size, Number(nCal));
    detector.useClassWeights(cls.className);
    const resid = ts.map((t) => {
      const rc = detector.reconstructBatch(xc, t);
      const rt = detector.reconstructBatch(xt, t);
      const out = { cal: tf.sub(xc, rc) as tf.Tensor4D, test: tf.sub(xt, rt) as tf.Tensor4D };
      tf.dispose([rc, rt]);
      return out;
    });
    const cells: string[] = [];
    const zOf = (variant: Variant, i: number) =>
      tf.tidy(() => {
        const mc = variant(resid[i]!.cal, resid[i]!.cal);
        const mt = variant(resid[i]!.test, resid[i]!.cal);
        const { mean, variance } = tf.moments(mc);
        return tf.div(tf.sub(mt, mean), tf.add(tf.sqrt(variance), 1e-6)) as tf.Tensor3D;
      });
    const score = (name: string, fused: tf.Tensor3D) => {
      const scores = imageScores(fused, reduction);
      const img = auroc(scores, labels);
      if (process.env.BY_DEFECT) {
        const types = [...new Set(test.map((s) => s.defect))].filter((d) => d !== 'good');
        const per = types.map((d) => {
          const keep = test.map((s, i) => (s.defect === 'good' || s.defect === d ? i : -1)).filter((i) => i >= 0);
          return `${d} ${auroc(Float32Array.from(keep.map((i) => scores[i]!)), keep.map((i) => labels[i]!)).toFixed(2)}`;
        });
        cells.push(`[${per.join(' ')}]`);
      }
      const pix = auroc(fused.dataSync(), masks);
      rows[name] ??= { img: [], pix: [] };
      rows[name]!.img.push(img);
      rows[name]!.pix.push(pix);
      cells.push(`${name} ${img.toFixed(3)}/${pix.toFixed(3)}`);
    };
    const zs: Record<string, tf.Tensor3D> = {};
    if (process.env.PER_T) {
      const [name, variant] = variants[0]!;
      ts.forEach((t, i) => {
        const z = zOf(variant, i);
        score(`${name}@${t}`, z);
        z.dispose();
      });
    }
    for (const [name, variant] of variants) {
      const z = ts.map((_, i) => zOf(variant, i));
      const fused = tf.tidy(() => tf.div(tf.addN(z), z.length)) as tf.Tensor3D;
      tf.dispose(z);
      score(name, fused);
      zs[name] = fused;
    }
    if (process.env.INPUT_GAUSS) {
      const sigmas = process.env.INPUT_GAUSS.split(',').map(Number);
      const xtr = batchOf(train, size);
      const g = inputGaussian(xtr, sigmas);
      xtr.dispose();
      const gz = tf.tidy(() => {
        const mc = g.map(xc);
        const mt = g.map(xt);
        const { mean, variance } = tf.moments(mc);
        return tf.div(tf.sub(mt, mean), tf.add(tf.sqrt(variance), 1e-6)) as tf.Tensor3D;
      });
      g.dispose();
      score('input-gauss', gz);
      if (zs['l2-b2']) {
        for (const w of [0.25, 0.5]) {
          const f = tf.tidy(() => tf.add(tf.mul(zs['l2-b2']!, 1 - w), tf.mul(gz, w))) as tf.Tensor3D;
          score(`l2+gauss${w}`, f);
          f.dispose();
        }
      }
      gz.dispose();
    }
    if (multi && zs['l2-b2'] && zs['maha-b2']) {
      const f = tf.tidy(() => tf.div(tf.add(zs['l2-b2']!, zs['maha-b2']!), 2)) as tf.Tensor3D;
      score('l2+maha', f);
      f.dispose();
    }
    if (multi && zs['l2-b1'] && zs['l2-b4']) {
      const f = tf.tidy(() => tf.div(tf.add(zs['l2-b1']!, zs['l2-b4']!), 2)) as tf.Tensor3D;
      score('l2-b1+b4', f);
      f.dispose();
    }
    tf.dispose([xc, xt, ...resid.flatMap((r) => [r.cal, r.test]), ...Object.values(zs)]);
    console.log(`${cls.className.padEnd(9)} | ${cells.join(' | ')}`);
  }
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  for (const [k, v] of Object.entries(rows)) console.log(`avg ${k.padEnd(14)} image ${mean(v.img).toFixed(3)} pixel ${mean(v.pix).toFixed(3)}`);
  detector.dispose();
}
main();
