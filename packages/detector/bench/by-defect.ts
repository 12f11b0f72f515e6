/**
 * Design measurement: which defect types the segmenter adds. Per class of a checkpoint trained
 * with the segmenter, the image AUROC of the normal test images against each defect type (the test
 * folder names), scored as detection scores them (the mixed map) and with the reconstruction map
 * alone (the class's segmenter statistics dropped; a class's AUROC does not depend on its
 * calibration, which is affine).
 * `pnpm tsx bench/by-defect.ts CKPT DATA` — reads test images: informs design only.
 */
import { loadMvtec } from '@ofm/datasets';
import { auroc } from '@ofm/metrics';
import { initBackend } from '@ofm/tensor';
import { loadDetector } from '../src/index';

async function main() {
  const [ckpt, data] = process.argv.slice(2);
  if (!ckpt || !data) throw new Error('usage: tsx bench/by-defect.ts CKPT DATA');
  await initBackend({ backend: 'wasm' });
  const { detector } = await loadDetector(ckpt);
  const dataset = await loadMvtec(data, { size: detector.config.imageSize });
  const rows: Record<string, Record<string, string>> = {};
  for (const cls of detector.classes) {
    if (!cls.segmenter) throw new Error(`class '${cls.className}' has no segmenter: train with the segmenter on`);
    const refs = await dataset.testFiles(cls.className);
    const tests = await Promise.all(refs.map((r) => dataset.load(r)));
    const kind = refs.map((r) => r.defect);
    const mixed = detector.detect(tests.map((t) => t.image), { className: cls.className }).map((d) => d.rawScore);
    const stats = cls.segmenter;
    cls.segmenter = undefined;
    const recon = detector.detect(tests.map((t) => t.image), { className: cls.className }).map((d) => d.rawScore);
    cls.segmenter = stats;
    for (const defect of [...new Set(kind)].filter((k) => k !== 'good').sort()) {
      const pick = kind.map((k, i) => (k === 'good' || k === defect ? i : -1)).filter((i) => i >= 0);
      const labels = pick.map((i) => (kind[i] === 'good' ? 0 : 1));
      const a = auroc(Float32Array.from(pick.map((i) => recon[i]!)), labels);
      const b = auroc(Float32Array.from(pick.map((i) => mixed[i]!)), labels);
      rows[defect] ??= {};
      rows[defect]![cls.className] = `${a.toFixed(2)} → ${b.toFixed(2)}`;
    }
  }
  const classes = detector.classNames();
  console.log(`| defect (reconstruction → with segmenter) | ${classes.join(' | ')} |`);
  console.log(`|---|${classes.map(() => '---').join('|')}|`);
  for (const [defect, cells] of Object.entries(rows)) console.log(`| ${defect} | ${classes.map((c) => cells[c] ?? '–').join(' | ')} |`);
  detector.dispose();
}
main();
