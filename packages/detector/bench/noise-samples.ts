/**
 * How averaging the maps of several reconstructions (independent noise) acts on a trained
 * checkpoint: per class, the test image / pixel AUROC with `reconstruction.samples` = each value,
 * at the class's selected start timestep. `pnpm tsx bench/noise-samples.ts CKPT DATA [1,2,4]` (a
 * design measurement: it reads test images, so it informs defaults and is never part of a run).
 */
import { loadMvtec } from '@ofm/datasets';
import { initBackend } from '@ofm/tensor';
import { evaluateClass, loadDetector } from '../src/index';

async function main() {
  const [ckpt, data, list = '1,2,4'] = process.argv.slice(2);
  if (!ckpt || !data) throw new Error('usage: tsx bench/noise-samples.ts CKPT DATA [N1,N2,...]');
  await initBackend({ backend: 'wasm' });
  const { detector } = await loadDetector(ckpt);
  const dataset = await loadMvtec(data, { size: detector.config.imageSize });
  for (const samples of list.split(',').map(Number)) {
    detector.config.reconstruction.samples = samples;
    const cells: string[] = [];
    let image = 0;
    let pixel = 0;
    for (const cls of detector.classNames()) {
      const { metrics } = await evaluateClass(detector, dataset, cls);
      image += metrics.image_auroc ?? Number.NaN;
      pixel += metrics.pixel_auroc ?? Number.NaN;
      cells.push(`${cls} ${metrics.image_auroc?.toFixed(3)}/${metrics.pixel_auroc?.toFixed(3)}`);
    }
    const n = detector.classNames().length;
    console.log(`samples ${samples}: average ${(image / n).toFixed(3)}/${(pixel / n).toFixed(3)} | ${cells.join(' | ')}`);
  }
  detector.dispose();
}
main();
