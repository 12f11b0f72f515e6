/**
 * Design measurement behind the segmenter (`src/model/segmenter.ts`): per class, a discriminative
 * segmentation network trained from scratch on synthetic anomalies of the class's normal training
 * images (the last NCAL held out as calibration normals), scored on the test split, alone
 * (`disc`) and, with CKPT (a trained detector at any size), beside the checkpoint's calibrated
 * reconstruction map (`recon`, upsampled to SIZE) and mixed with it at weights 0.25 / 0.5 / 0.75
 * (`mixW`: both maps and both image scores standardised by the calibration normals; `mapmixW`:
 * the same mixed map scored as the product scores it, its max minus its mean).
 * `pnpm tsx bench/discriminative.ts DATA SIZE CLASSES STEPS [CKPT]`
 * Env: AUG=1 (flips, transposition, brightness/contrast jitter), WIDTHS (16,32,64,64), LR, BATCH,
 * NCAL (9), MAPKIND=logit, SEGBLUR (pixels, default SIZE / 32), TINT (share of texture-keeping
 * colour anomalies), ENSEMBLE (segmenters averaged, default 1), INIT=uniform and MIX=product (the
 * product's initialisation and anomaly shares). Reads test images: informs design only.
 * It is the prototype the segmenter was built from and keeps its own network, anomaly mix and
 * scoring (He-initialised convs, the max of a pooled probability map) so the numbers in
 * docs/benchmarks.md reproduce; the product's are in src/model/segmenter.ts and detector.ts.
 */
import { cutPasteAnomaly, loadMvtec, nsaAnomaly, perlinAnomaly, type RgbImage, type SyntheticAnomaly } from '@ofm/datasets';
import { Rng, initBackend, tf } from '@ofm/tensor';
import { classMetrics, loadDetector } from '../src/index';
import { gaussianBlur } from '../src/model/features';

const [data, sizeArg, classesArg, stepsArg, ckpt] = process.argv.slice(2);
const nCal = Number(process.env.NCAL ?? 9);
const size = Number(sizeArg);
const steps = Number(stepsArg ?? 300);
const batch = Number(process.env.BATCH ?? 8);
const widths = (process.env.WIDTHS ?? '16,32,64,64').split(',').map(Number);
const lr = Number(process.env.LR ?? 1e-3);
const ensemble = Number(process.env.ENSEMBLE ?? 1);
const tintShare = Number(process.env.TINT ?? 0);
// MIX=product: the product's shares (NSA 0.5, CutPaste 0.25, Perlin 0.25) instead of 0.4 / 0.2 / 0.4.
const [nsaShare, cutPasteEnd] = process.env.MIX === 'product' ? [0.5, 0.75] : [0.4, 0.6];

/**
 * A colour anomaly that keeps the texture: a Perlin-shaped region, soft-edged, where each channel
 * is scaled by its own gain (darker, lighter or tinted).
 */
function tint(image: Float32Array, rng: Rng): SyntheticAnomaly {
  const black = { data: new Float32Array(size * size * 3), width: size, height: size, channels: 3 } as RgbImage;
  const shape = perlinAnomaly({ data: image, width: size, height: size, channels: 3 }, { rng, cleanProbability: 0, areaRange: [0.01, 0.1], texture: black, opacityRange: [1, 1] });
  // Soft edges: the mask's 3 x 3 mean over the pixels inside the image (tf.avgPool's 'same'
  // border differs, and the TINT numbers in docs/benchmarks.md were measured with this one).
  const alpha = new Float32Array(size * size);
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++) {
      let s = 0;
      let n = 0;
      for (let dy = -1; dy <= 1; dy++)
        for (let dx = -1; dx <= 1; dx++) {
          const yy = y + dy;
          const xx = x + dx;
          if (yy < 0 || xx < 0 || yy >= size || xx >= size) continue;
          s += shape.mask[yy * size + xx]!;
          n++;
        }
      alpha[y * size + x] = s / n;
    }
  const base = rng.uniform() < 0.6 ? 0.5 + rng.uniform() * 0.35 : 1.15 + rng.uniform() * 0.35;
  const gains = [0, 1, 2].map(() => Math.max(0.3, base + (rng.uniform() - 0.5) * 0.3));
  const out = Float32Array.from(image);
  const mask = new Uint8Array(size * size);
  for (let i = 0; i < size * size; i++) {
    const a = alpha[i]!;
    if (a <= 0) continue;
    for (let c = 0; c < 3; c++) out[3 * i + c] = Math.min(1, image[3 * i + c]! * (1 - a + a * gains[c]!));
    if (a >= 0.5) mask[i] = 1;
  }
  return { image: out, mask, area: mask.reduce((a, b) => a + b, 0), clean: false } as SyntheticAnomaly;
}

function synth(image: Float32Array, same: Float32Array[], rng: Rng): SyntheticAnomaly {
  const rgb = (d: Float32Array): RgbImage => ({ data: d, width: size, height: size, channels: 3 });
  const options = { rng, cleanProbability: 0, areaRange: [0.005, 0.08] as const };
  if (tintShare > 0 && rng.uniform() < tintShare) return tint(image, rng);
  const u = rng.uniform();
  if (u < nsaShare) {
    let source = same[rng.int(same.length)]!;
    if (source === image) source = same[(same.indexOf(image) + 1) % same.length]!;
    return nsaAnomaly(rgb(image), rgb(source), options);
  }
  return u < cutPasteEnd ? cutPasteAnomaly(rgb(image), options) : perlinAnomaly(rgb(image), options);
}

interface Net {
  vars: tf.Variable[];
  apply(x: tf.Tensor4D): tf.Tensor4D;
}

function makeNet(cin: number, rng: Rng): Net {
  const vars: tf.Variable[] = [];
  const conv = (ci: number, co: number, k = 3) => {
    // INIT=uniform: the product's (PyTorch's default) U(-1/sqrt(fanIn), 1/sqrt(fanIn)) for weights and biases.
    const fanIn = ci * k * k;
    const uniform = process.env.INIT === 'uniform';
    const draw = (n: number) => Float32Array.from({ length: n }, () => (uniform ? (2 * rng.uniform() - 1) / Math.sqrt(fanIn) : rng.normal() * Math.sqrt(2 / fanIn)));
    const w = tf.variable(tf.tensor4d(draw(k * k * ci * co), [k, k, ci, co]));
    const b = tf.variable(uniform ? tf.tensor1d(draw(co)) : tf.zeros([co]));
    vars.push(w, b);
    return (x: tf.Tensor4D) => tf.add(tf.conv2d(x, w as tf.Variable<tf.Rank.R4>, 1, 'same'), b) as tf.Tensor4D;
  };
  const block = (ci: number, co: number) => {
    const c1 = conv(ci, co);
    const c2 = conv(co, co);
    return (x: tf.Tensor4D) => tf.relu(c2(tf.relu(c1(x)))) as tf.Tensor4D;
  };
  const enc = widths.map((w, i) => block(i === 0 ? cin : widths[i - 1]!, w));
  const dec = widths.slice(0, -1).map((w, i) => block(widths[i + 1]! + w, w));
  const head = conv(widths[0]!, 1, 1);
  return {
    vars,
    apply(x) {
      const skips: tf.Tensor4D[] = [];
      let h = x;
      enc.forEach((e, i) => {
        if (i > 0) h = tf.avgPool(h, 2, 2, 'valid');
        h = e(h);
        skips.push(h);
      });
      for (let i = dec.length - 1; i >= 0; i--) {
        const s = skips[i]!;
        h = tf.image.resizeNearestNeighbor(h, [s.shape[1], s.shape[2]]);
        h = dec[i]!(tf.concat([h, s], 3) as tf.Tensor4D);
      }
      return head(h);
    },
  };
}

function flip(img: Float32Array, h: boolean, v: boolean): Float32Array {
  if (!h && !v) return img;
  const out = new Float32Array(img.length);
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++) {
      const sy = v ? size - 1 - y : y;
      const sx = h ? size - 1 - x : x;
      out.set(img.subarray((sy * size + sx) * 3, (sy * size + sx) * 3 + 3), (y * size + x) * 3);
    }
  return out;
}

/** Train one segmentation network on synthetic anomalies of `train` (the prototype's loop). */
function trainNet(cls: string, train: Float32Array[], rng: Rng, t0: number): Net {
  const net = makeNet(3, rng);
  const opt = tf.train.adam(lr);
  let lossAvg = 0;
  for (let step = 0; step < steps; step++) {
    const xs = new Float32Array(batch * size * size * 3);
    const ms = new Float32Array(batch * size * size);
    for (let b = 0; b < batch; b++) {
      let base = flip(train[rng.int(train.length)]!, rng.uniform() < 0.5, rng.uniform() < 0.5);
      if (process.env.AUG) {
        const gain = 1 + 0.2 * (rng.uniform() - 0.5);
        const shift = 0.1 * (rng.uniform() - 0.5);
        base = base.map((v) => Math.min(1, Math.max(0, v * gain + shift)));
        if (rng.uniform() < 0.5) base = transpose(base);
      }
      if (rng.uniform() < 0.5) {
        const a = synth(base, train, rng);
        xs.set(a.image, b * size * size * 3);
        for (let i = 0; i < size * size; i++) ms[b * size * size + i] = a.mask[i]!;
      } else xs.set(base, b * size * size * 3);
    }
    const loss = opt.minimize(
      () =>
        tf.tidy(() => {
          const x = tf.sub(tf.mul(tf.tensor4d(xs, [batch, size, size, 3]), 2), 1) as tf.Tensor4D;
          const y = tf.tensor4d(ms, [batch, size, size, 1]);
          const logits = net.apply(x);
          const p = tf.sigmoid(logits);
          const pt = tf.add(tf.mul(y, p), tf.mul(tf.sub(1, y), tf.sub(1, p)));
          const ce = tf.losses.sigmoidCrossEntropy(y, logits, undefined, 0, tf.Reduction.NONE);
          return tf.mean(tf.mul(tf.square(tf.sub(1, pt)), ce)) as tf.Scalar;
        }),
      true,
      net.vars,
    )!;
    lossAvg = 0.95 * lossAvg + 0.05 * loss.dataSync()[0]!;
    loss.dispose();
    if ((step + 1) % 50 === 0) console.error(`${cls} step ${step + 1} loss ${lossAvg.toFixed(4)} ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
  opt.dispose();
  return net;
}

async function main() {
  await initBackend({ backend: 'wasm' });
  const dataset = await loadMvtec(data!, { size });
  const classes = classesArg!.split(',');
  const results: Record<string, { image: number; pixel: number; ap: number; pro: number; per: Record<string, [string, string]> }> = {};
  const detector = ckpt ? (await loadDetector(ckpt)).detector : undefined;
  const small32 = detector?.config.imageSize ?? 32;
  const dataset32 = detector ? await loadMvtec(data!, { size: small32 }) : undefined;
  for (const cls of classes) {
    const rng = new Rng(hashSeedOf(cls));
    const train: Float32Array[] = [];
    for await (const s of dataset.train(cls)) train.push(s.image);
    const calibration = train.splice(train.length - nCal, nCal);
    const t0 = Date.now();
    const nets = Array.from({ length: ensemble }, () => trainNet(cls, train, rng, t0));
    const tests = await Promise.all((await dataset.testFiles(cls)).map((r) => dataset.load(r)));
    const scoreOf = (imgs: Float32Array[]) =>
      imgs.map((img) =>
        tf.tidy(() => {
          const x = tf.sub(tf.mul(tf.tensor4d(img, [1, size, size, 3]), 2), 1) as tf.Tensor4D;
          const outs = nets.map((net) => (process.env.MAPKIND === 'logit' ? net.apply(x) : tf.sigmoid(net.apply(x))));
          const m = gaussianBlur(tf.div(tf.addN(outs), outs.length) as tf.Tensor4D, Number(process.env.SEGBLUR ?? size / 32));
          const pooled = tf.avgPool(m, Math.max(1, Math.round(size / 8)) | 1, 1, 'same').max().dataSync()[0]!;
          return { score: pooled, map: Float32Array.from(m.dataSync()) };
        }),
      );
    const disc = scoreOf(tests.map((t) => t.image));
    const variants: Record<string, { score: number; rawScore: number; map: Float32Array; className: string }[]> = {
      disc: disc.map((d) => ({ ...d, rawScore: d.score, className: cls })),
    };
    if (detector) {
      const cal = scoreOf(calibration);
      const ms = mean(cal.map((c) => c.score));
      const ss = std(cal.map((c) => c.score), ms) + 1e-6;
      const all = cal.flatMap((c) => Array.from(c.map));
      const mp = mean(all);
      const sp = std(all, mp) + 1e-6;
      const small = await Promise.all((await dataset32!.testFiles(cls)).map((r) => dataset32!.load(r)));
      const det = detector.detect(small.map((t) => t.image), { className: cls });
      const up = det.map((d) => tf.tidy(() => Float32Array.from(tf.image.resizeBilinear(tf.tensor4d(d.map, [1, small32, small32, 1]), [size, size]).dataSync())));
      variants.recon = det.map((d, i) => ({ score: d.score, rawScore: d.score, map: up[i]!, className: cls }));
      for (const w of [0.25, 0.5, 0.75]) {
        variants[`mix${w}`] = det.map((d, i) => {
          const map = new Float32Array(size * size);
          for (let p = 0; p < map.length; p++) map[p] = (1 - w) * up[i]![p]! + (w * (disc[i]!.map[p]! - mp)) / sp;
          const score = (1 - w) * d.score + (w * (disc[i]!.score - ms)) / ss;
          return { score, rawScore: score, map, className: cls };
        });
        // The same mixed map scored as the product scores it: its max minus its mean.
        variants[`mapmix${w}`] = variants[`mix${w}`]!.map((d) => {
          let max = Number.NEGATIVE_INFINITY;
          let sum = 0;
          for (const v of d.map) {
            max = Math.max(max, v);
            sum += v;
          }
          const score = max - sum / d.map.length;
          return { ...d, score, rawScore: score };
        });
      }
    }
    for (const [name, dets] of Object.entries(variants)) {
      const m = classMetrics(dets, tests, size);
      results[name] ??= { image: 0, pixel: 0, ap: 0, pro: 0, per: {} };
      const r = results[name]!;
      r.per[cls] = [m.image_auroc!.toFixed(3), m.pixel_auroc!.toFixed(3)];
      r.image += m.image_auroc! / classes.length;
      r.pixel += m.pixel_auroc! / classes.length;
      r.ap += (m.pixel_ap ?? 0) / classes.length;
      r.pro += (m.pixel_aupro ?? 0) / classes.length;
      console.error(cls, name, r.per[cls], `${((Date.now() - t0) / 1000).toFixed(0)} s`);
    }
    for (const net of nets) net.vars.forEach((v) => v.dispose());
  }
  const r3 = (v: number) => Number(v.toFixed(3));
  for (const [name, r] of Object.entries(results)) {
    console.log(JSON.stringify({ variant: name, size, steps, batch, widths, lr, image_auroc: r3(r.image), pixel_auroc: r3(r.pixel), pixel_ap: r3(r.ap), aupro: r3(r.pro), per_class: r.per }));
  }
}

function transpose(img: Float32Array): Float32Array {
  const out = new Float32Array(img.length);
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++) out.set(img.subarray((x * size + y) * 3, (x * size + y) * 3 + 3), (y * size + x) * 3);
  return out;
}

function mean(v: number[]): number {
  return v.reduce((a, b) => a + b, 0) / v.length;
}

function std(v: number[], m: number): number {
  return Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / v.length);
}

function hashSeedOf(s: string): number {
  let h = 2166136261;
  for (const c of s) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0;
  return h;
}

main();
