/**
 * Design measurement of the reference PatchKnnDetector: learn the classes one task each, then
 * evaluate every class on its test split without a task id (or, with `--oracle`, against its own
 * bank only) and print the class-averaged image / pixel AUROC, pixel AP and AUPRO, the routing
 * accuracy, the bank bytes and the times, as one JSON line.
 * `pnpm tsx bench/knn-variants.ts DATA SIZE CLASSES ['{"bankSize":1024,"coreset":"random"}'] [--oracle]`
 * (a one-time measurement on test splits; it sets defaults, no run uses it to choose anything).
 */
import { loadMvtec } from '@ofm/datasets';
import { initBackend } from '@ofm/tensor';
import { type ClassMetrics, PatchKnnDetector, type PatchKnnOptions, classMetrics } from '../src/index';

async function main() {
  const args = process.argv.slice(2).filter((a) => a !== '--oracle');
  const oracle = process.argv.includes('--oracle');
  const [data, sizeArg, classesArg, optsArg] = args;
  if (!data || !sizeArg || !classesArg) throw new Error('usage: tsx bench/knn-variants.ts DATA SIZE CLASSES [OPTIONS_JSON] [--oracle]');
  await initBackend({ backend: 'wasm' });
  const size = Number(sizeArg);
  const classes = classesArg.split(',');
  const opts = JSON.parse(optsArg ?? '{}') as PatchKnnOptions;
  const dataset = await loadMvtec(data, { size });
  const det = new PatchKnnDetector({ imageSize: size, ...opts });
  const started = Date.now();
  for (const cls of classes) {
    const images: Float32Array[] = [];
    for await (const s of dataset.train(cls)) images.push(s.image);
    await det.learnTask({ classes: [cls], images: new Map([[cls, images]]) });
  }
  const learnSeconds = (Date.now() - started) / 1000;
  const evalStart = Date.now();
  const metrics: Record<string, ClassMetrics> = {};
  let routed = 0;
  let count = 0;
  for (const cls of classes) {
    const tests = await Promise.all((await dataset.testFiles(cls)).map((r) => dataset.load(r)));
    const found = det.detect(
      tests.map((t) => t.image),
      oracle ? { classes: [cls] } : {},
    );
    metrics[cls] = classMetrics(found, tests, size);
    routed += found.filter((d) => d.className === cls).length;
    count += found.length;
  }
  const mean = (k: keyof ClassMetrics) => Number((classes.reduce((a, c) => a + (metrics[c]![k] ?? Number.NaN), 0) / classes.length).toFixed(3));
  console.log(
    JSON.stringify({
      opts,
      size,
      oracle,
      learn_s: learnSeconds,
      eval_s: (Date.now() - evalStart) / 1000,
      bank_kib: det.bankBytes() / 1024,
      routing: routed / count,
      image_auroc: mean('image_auroc'),
      pixel_auroc: mean('pixel_auroc'),
      pixel_ap: mean('pixel_ap'),
      pixel_aupro: mean('pixel_aupro'),
      per_class: Object.fromEntries(classes.map((c) => [c, [metrics[c]!.image_auroc?.toFixed(3), metrics[c]!.pixel_auroc?.toFixed(3)]])),
    }),
  );
  det.dispose();
}
main();
