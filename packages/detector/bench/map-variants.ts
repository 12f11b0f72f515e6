/**
 * Which anomaly-map feature space works best: per-class test AUROCs of a trained checkpoint with
 * the filter bank and with plain pixels, each class at its selected start timestep.
 * `pnpm tsx bench/map-variants.ts CKPT DATA` (a one-time design measurement on synthetic data).
 */
import { loadMvtec } from '@ofm/datasets';
import { initBackend } from '@ofm/tensor';
import { FilterBankExtractor, PixelExtractor, evaluateClass, loadDetector } from '../src/index';

async function main() {
  const [ckpt, data] = process.argv.slice(2);
  if (!ckpt || !data) throw new Error('usage: tsx bench/map-variants.ts CKPT DATA');
  await initBackend({ backend: 'wasm' });
  for (const extractor of [new FilterBankExtractor(), new PixelExtractor()]) {
    const { detector } = await loadDetector(ckpt, { extractor });
    const dataset = await loadMvtec(data, { size: detector.config.imageSize });
    const rows: string[] = [];
    for (const cls of detector.classNames()) {
      const { metrics } = await evaluateClass(detector, dataset, cls);
      rows.push(`${cls}: image ${metrics.image_auroc?.toFixed(3)} pixel ${metrics.pixel_auroc?.toFixed(3)} aupro ${metrics.pixel_aupro?.toFixed(3)}`);
    }
    console.log(`${extractor.name.padEnd(10)} ${rows.join(' | ')}`);
    detector.dispose();
  }
}
main();
