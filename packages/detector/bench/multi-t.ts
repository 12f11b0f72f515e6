/**
 * Design measurement: does fusing several start timesteps beat choosing one? Per class of a
 * per-task checkpoint: image / pixel AUROC of the test set at each start timestep alone, and of the
 * mean of per-timestep standardised maps (each timestep's map minus the mean, over the std, of the
 * same maps on normal calibration images: the last N training images, a proxy for the held-out split).
 * `pnpm tsx bench/multi-t.ts CKPT DATA [T1,T2,...] [N]` — reads test images: informs defaults only.
 */
import { loadMvtec } from '@ofm/datasets';
import { auroc } from '@ofm/metrics';
import { initBackend, tf } from '@ofm/tensor';
import { anomalyMap, imageScores, loadDetector, scoreReduction } from '../src/index';
import { loadClassSplit } from './class-split';

async function main() {
  const [ckpt, data, list = '10,25,50,100,200,300', nCal = '9'] = process.argv.slice(2);
  if (!ckpt || !data) throw new Error('usage: tsx bench/multi-t.ts CKPT DATA [T1,T2,...] [N]');
  await initBackend({ backend: 'wasm' });
  const { detector } = await loadDetector(ckpt);
  const size = detector.config.imageSize;
  const dataset = await loadMvtec(data, { size });
  const ts = list.split(',').map(Number);
  const sets: Record<string, number[]> = JSON.parse(process.env.FUSE_SETS ?? '{"fuse-all":' + JSON.stringify(ts) + '}');
  const rows: Record<string, { img: number[]; pix: number[] }> = {};
  const add = (k: string, img: number, pix: number) => {
    rows[k] ??= { img: [], pix: [] };
    rows[k]!.img.push(img);
    rows[k]!.pix.push(pix);
  };
  const mapsAt = (x: tf.Tensor4D, t: number) => {
    const recon = detector.reconstructBatch(x, t);
    const maps = anomalyMap(detector.extractor, x, recon, { aggregate: detector.config.map.aggregate, blurSigma: detector.config.map.blurSigma });
    recon.dispose();
    return maps;
  };
  for (const cls of detector.classes) {
    const { xc, xt, labels, masks } = await loadClassSplit(dataset, cls.className, size, Number(nCal));
    detector.useClassWeights(cls.className);
    const z = new Map<number, tf.Tensor>();
    const cells: string[] = [];
    for (const t of ts) {
      const mc = mapsAt(xc, t);
      const mt = mapsAt(xt, t);
      const { mean, variance } = tf.moments(mc);
      const m = mean.dataSync()[0]!;
      const sd = Math.sqrt(variance.dataSync()[0]!) + 1e-6;
      z.set(t, tf.div(tf.sub(mt, m), sd));
      const img = auroc(imageScores(mt as tf.Tensor3D, scoreReduction(detector.config.map)), labels);
      const pix = auroc(mt.dataSync(), masks);
      add(`t${t}`, img, pix);
      cells.push(`t${t} ${img.toFixed(3)}/${pix.toFixed(3)}`);
      tf.dispose([mc, mt, mean, variance]);
    }
    for (const [name, set] of Object.entries(sets)) {
      const fused = tf.tidy(() => tf.div(tf.addN(set.map((t) => z.get(t)!)), set.length)) as tf.Tensor3D;
      const img = auroc(imageScores(fused, scoreReduction(detector.config.map)), labels);
      const pix = auroc(fused.dataSync(), masks);
      add(name, img, pix);
      cells.push(`${name} ${img.toFixed(3)}/${pix.toFixed(3)}`);
      fused.dispose();
    }
    tf.dispose([xc, xt, ...z.values()]);
    console.log(`${cls.className.padEnd(9)} chosen t${cls.tStart} | ${cells.join(' | ')}`);
  }
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  for (const [k, v] of Object.entries(rows)) console.log(`avg ${k.padEnd(16)} image ${mean(v.img).toFixed(3)} pixel ${mean(v.pix).toFixed(3)}`);
  detector.dispose();
}
main();
