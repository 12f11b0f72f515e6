/**
 * How the start timestep and the image-score reduction act on a trained checkpoint: per class,
 * the test image / pixel AUROC at each start timestep, and the per-class and pooled (all classes,
 * one threshold) image AUROC of each score reduction at each class's selected timestep.
 * `pnpm tsx bench/start-timestep.ts CKPT DATA [T1,T2,...]` (a design measurement on synthetic
 * data; it reads test images, so it informs defaults and is never part of a run's selection).
 */
import { loadMvtec } from '@ofm/datasets';
import { auroc } from '@ofm/metrics';
import { initBackend, tf } from '@ofm/tensor';
import { type ScoreReduction, anomalyMap, imageScores, loadDetector, scoreReduction } from '../src/index';
import { loadClassSplit } from './class-split';

const REDUCTIONS: ScoreReduction[] = [{ kind: 'max' }, { kind: 'max-minus-mean' }, { kind: 'topk-mean', fraction: 0.01 }];

async function main() {
  const [ckpt, data, list = '10,25,50,100,200'] = process.argv.slice(2);
  if (!ckpt || !data) throw new Error('usage: tsx bench/start-timestep.ts CKPT DATA [T1,T2,...]');
  await initBackend({ backend: 'wasm' });
  const { detector } = await loadDetector(ckpt);
  const size = detector.config.imageSize;
  const dataset = await loadMvtec(data, { size });
  const pooled = new Map<string, { scores: number[]; labels: number[] }>();
  for (const cls of detector.classes) {
    const { xt: x, xc, labels, masks } = await loadClassSplit(dataset, cls.className, size, 0);
    xc.dispose();
    const cells: string[] = [];
    detector.useClassWeights(cls.className);
    for (const t of [...new Set([...list.split(',').map(Number), cls.tStart])].sort((a, b) => a - b)) {
      const recon = detector.reconstructBatch(x, t);
      const maps = anomalyMap(detector.extractor, x, recon, {
        aggregate: detector.config.map.aggregate,
        blurSigma: detector.config.map.blurSigma,
      });
      const image = auroc(imageScores(maps, scoreReduction(detector.config.map)), labels);
      cells.push(`t${t}${t === cls.tStart ? '*' : ''} ${image.toFixed(3)}/${auroc(maps.dataSync(), masks).toFixed(3)}`);
      if (t === cls.tStart) {
        for (const r of REDUCTIONS) {
          const scores = Array.from(imageScores(maps, r));
          const entry = pooled.get(r.kind) ?? { scores: [], labels: [] };
          entry.scores.push(...scores);
          entry.labels.push(...labels);
          pooled.set(r.kind, entry);
          cells.push(`${r.kind} ${auroc(scores, labels).toFixed(3)}`);
        }
      }
      tf.dispose([recon, maps]);
    }
    x.dispose();
    console.log(`${cls.className.padEnd(8)} ${cells.join(' | ')}`);
  }
  const line = [...pooled].map(([k, v]) => `${k} ${auroc(v.scores, v.labels).toFixed(3)}`);
  console.log(`pooled raw image AUROC at the selected timesteps: ${line.join(' | ')}`);
  detector.dispose();
}
main();
