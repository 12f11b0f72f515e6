/**
 * Design measurement: which image score, from the maps detection already makes, ranks test images
 * best? Per class of a checkpoint, detects the test images once (routed to their own class, as the
 * report scores them) and scores the detection maps several ways: the product's reduction
 * (`max-minus-mean`, `max`, `topk-mean`) after extra Gaussian smoothing of the map (0 = the map as
 * detected). Smoothing the calibrated map by `s` equals detecting with a blur of
 * sqrt(blurSigma² + s²) under the old calibration (the calibration is affine per map). Reads test
 * images: informs defaults only.
 * `pnpm tsx bench/rescore.ts CKPT DATA [SIGMAS]` (SIGMAS: extra smoothing in pixels, default 0,1,2,3,4)
 */
import { loadMvtec } from '@ofm/datasets';
import { auroc } from '@ofm/metrics';
import { initBackend, tf } from '@ofm/tensor';
import { classMetrics, imageScores, loadDetector } from '../src/index';
import { gaussianBlur } from '../src/model/features';

const REDUCTIONS = [
  { name: 'max-minus-mean', kind: 'max-minus-mean' },
  { name: 'max', kind: 'max' },
  { name: 'top1%', kind: 'topk-mean', fraction: 0.01 },
  { name: 'top5%', kind: 'topk-mean', fraction: 0.05 },
] as const;

async function main() {
  const [ckpt, data, sigmasArg] = process.argv.slice(2);
  if (!ckpt || !data) throw new Error('usage: tsx bench/rescore.ts CKPT DATA [SIGMAS]');
  const sigmas = (sigmasArg ?? '0,1,2,3,4').split(',').map(Number);
  await initBackend({ backend: 'wasm' });
  const { detector } = await loadDetector(ckpt);
  const size = detector.config.imageSize;
  const dataset = await loadMvtec(data, { size });
  const table: Record<string, Record<string, number>> = {};
  for (const cls of detector.classNames()) {
    const tests = await Promise.all((await dataset.testFiles(cls)).map((r) => dataset.load(r)));
    const labels = tests.map((t) => t.label);
    const dets = detector.detect(tests.map((t) => t.image), { className: cls });
    const maps = tf.tensor3d(Float32Array.from(dets.flatMap((d) => Array.from(d.map))), [dets.length, size, size]);
    for (const s of sigmas) {
      const smooth = s > 0 ? (gaussianBlur(maps.expandDims(3) as tf.Tensor4D, s).squeeze([3]) as tf.Tensor3D) : maps;
      const data = smooth.dataSync();
      const pixel = classMetrics(
        dets.map((d, i) => ({ ...d, map: data.slice(i * size * size, (i + 1) * size * size) })),
        tests,
        size,
      ).pixel_auroc;
      for (const r of REDUCTIONS) {
        const scores = imageScores(smooth, r.kind === 'topk-mean' ? { kind: r.kind, fraction: r.fraction } : { kind: r.kind });
        const key = `blur+${s} ${r.name}`;
        table[key] ??= {};
        table[key]![cls] = auroc(scores, labels);
      }
      table[`blur+${s} pixel`] ??= {};
      table[`blur+${s} pixel`]![cls] = pixel ?? Number.NaN;
      if (smooth !== maps) smooth.dispose();
    }
    maps.dispose();
    console.error(`${cls}: done`);
  }
  const classes = detector.classNames();
  console.log(`| variant | ${classes.join(' | ')} | mean |`);
  console.log(`|---|${classes.map(() => '---').join('|')}|---|`);
  for (const [name, cells] of Object.entries(table)) {
    const values = classes.map((c) => cells[c]!);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    console.log(`| ${name} | ${values.map((v) => v.toFixed(3)).join(' | ')} | ${mean.toFixed(3)} |`);
  }
  detector.dispose();
}
main();
