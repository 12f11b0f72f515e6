/**
 * Detect on the test images of every given dataset folder with the model on disk, with no task
 * id: each image is routed to the nearest learned class. Prints the image AUROC per class and the
 * share of images routed to their own class.
 *
 *   tsx src/detect.ts --model DIR --data DIR [--data DIR ...]
 */
import { parseArgs } from 'node:util';
import { loadMvtec } from '@ofm/datasets';
import { loadDetector } from '@ofm/detector';
import { auroc } from '@ofm/metrics';
import { initBackend } from '@ofm/tensor';

const { values } = parseArgs({ options: { model: { type: 'string' }, data: { type: 'string', multiple: true } } });
if (!values.model || !values.data?.length) {
  console.error('usage: tsx src/detect.ts --model DIR --data DIR [--data DIR ...]');
  process.exit(2);
}
await initBackend();
const { detector } = await loadDetector(values.model);
const perClass: Record<string, { imageAuroc: number; routedToOwnClass: number; images: number }> = {};
for (const root of values.data) {
  const dataset = await loadMvtec(root, { size: detector.config.imageSize });
  for (const cls of dataset.classes) {
    const images: Float32Array[] = [];
    const labels: number[] = [];
    for await (const s of dataset.test(cls)) {
      images.push(s.image);
      labels.push(s.label);
    }
    const found = detector.detect(images);
    perClass[cls] = {
      imageAuroc: auroc(
        found.map((d) => d.score),
        labels,
      ),
      routedToOwnClass: found.filter((d) => d.className === cls).length / found.length,
      images: images.length,
    };
  }
}
console.log(JSON.stringify({ classes: detector.classNames(), perClass }));
detector.dispose();
