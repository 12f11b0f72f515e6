/**
 * The continual-learning report: `report.json` (stable keys, read by scripts and the demo's
 * dashboard), `report.md` (for people) and PNG figures (the task-by-task matrix, average AUROC and
 * forgetting over tasks, a grid of sample heatmaps). Node only (writes files, rasterises with sharp).
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { maskToRgbBytes, matrixHeatmapSvg, overlayHeatmap, reportCurveSvg, toRgbBytes } from './figures';
import type { ContinualReport, ReportSample } from './report-format';

export * from './report-format';

async function svgToPng(svg: string): Promise<Uint8Array> {
  return new Uint8Array(await sharp(Buffer.from(svg)).png().toBuffer());
}

/** A grid of samples: input | reconstruction | heatmap overlay | ground truth, one row each. */
export async function sampleGridPng(samples: ReportSample[], range?: [number, number]): Promise<Uint8Array | null> {
  if (samples.length === 0) return null;
  const { width: srcW, height: srcH } = samples[0]!;
  // Small model images are enlarged (nearest neighbour, so pixels stay honest) to at least 96 px.
  const zoom = Math.max(1, Math.ceil(96 / Math.max(srcW, srcH)));
  const w = srcW * zoom;
  const h = srcH * zoom;
  const cols = 4;
  const pad = 4;
  const labelW = 150;
  const gridW = labelW + cols * (w + pad) + pad;
  const gridH = samples.length * (h + pad) + pad + 24;
  const composites: sharp.OverlayOptions[] = [];
  const tilePromises: Promise<sharp.OverlayOptions>[] = [];
  const svgLabels: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${gridW}" height="${gridH}" font-family="DejaVu Sans, Arial, sans-serif">`,
  ];
  ['input', 'reconstruction', 'anomaly map', 'ground truth'].forEach((t, c) =>
    svgLabels.push(`<text x="${labelW + pad + c * (w + pad) + w / 2}" y="16" font-size="11" text-anchor="middle">${t}</text>`),
  );
  samples.forEach((s, r) => {
    const top = 24 + pad + r * (h + pad);
    svgLabels.push(
      `<text x="6" y="${top + h / 2}" font-size="11">${s.className} · ${s.label ? 'defect' : 'good'}</text>`,
      `<text x="6" y="${top + h / 2 + 14}" font-size="11" fill="#555">score ${s.score.toFixed(2)}</text>`,
    );
    const mask = s.mask ?? new Uint8Array(srcW * srcH);
    const tiles = [
      toRgbBytes(s.image),
      toRgbBytes(s.reconstruction),
      overlayHeatmap(s.image, s.map, srcW, srcH, { range }),
      maskToRgbBytes(mask),
    ];
    tiles.forEach((bytes, c) => tilePromises.push(
      sharp(Buffer.from(bytes), { raw: { width: srcW, height: srcH, channels: 3 } })
        .resize(w, h, { kernel: 'nearest' })
        .png()
        .toBuffer()
        .then((input) => ({ input, left: labelW + pad + c * (w + pad), top })),
    ));
  });
  composites.push(...(await Promise.all(tilePromises)));
  svgLabels.push('</svg>');
  composites.unshift({ input: Buffer.from(svgLabels.join('\n')), left: 0, top: 0 });
  const png = await sharp({ create: { width: gridW, height: gridH, channels: 3, background: '#ffffff' } })
    .composite(composites)
    .png()
    .toBuffer();
  return new Uint8Array(png);
}

function fmt(v: number | null | undefined): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(3);
}

/** The Markdown summary of a report. */
export function reportMarkdown(report: ContinualReport, opts: { samples?: boolean } = {}): string {
  const lines: string[] = [];
  const last = report.curve[report.curve.length - 1];
  lines.push('# one-for-more: continual anomaly detection report', '');
  lines.push(
    `Created ${report.createdAt} · backend ${report.backend} · seed ${report.seed} · projection ${report.projection ? 'on' : 'off'}`,
    '',
  );
  lines.push('## Summary after the last task', '');
  lines.push('| metric | value |', '|---|---|');
  for (const [k, v] of Object.entries(report.summary)) lines.push(`| ${k} | ${k === 'tasks_learned' ? String(v) : fmt(v)} |`);
  lines.push('', '## Tasks', '', '| task | classes | steps | train s | final loss | t_start | basis rank | basis KiB |', '|---|---|---|---|---|---|---|---|');
  for (const t of report.tasks) {
    lines.push(
      `| ${t.index + 1} | ${t.classes.join(', ')} | ${t.steps} | ${t.trainSeconds.toFixed(1)} | ${t.finalLoss.toFixed(4)} | ${Object.values(t.tStart).join(', ')} | ${t.basisRank} | ${(t.basisBytes / 1024).toFixed(0)} |`,
    );
  }
  lines.push('', '## Average over the classes seen, after each task', '');
  lines.push(
    '| after task | image AUROC | pixel AUROC | pixel AP | AUPRO | image forgetting | pixel forgetting | pooled image AUROC raw → calibrated | routing |',
    '|---|---|---|---|---|---|---|---|---|',
  );
  for (const c of report.curve) {
    lines.push(
      `| ${c.task} | ${fmt(c.avg_image_auroc)} | ${fmt(c.avg_pixel_auroc)} | ${fmt(c.avg_pixel_ap)} | ${fmt(c.avg_pixel_aupro)} | ${fmt(c.image_auroc_forgetting)} | ${fmt(c.pixel_auroc_forgetting)} | ${fmt(c.pooled_image_auroc_raw)} → ${fmt(c.pooled_image_auroc_calibrated)} | ${fmt(c.routing_accuracy)} |`,
    );
  }
  lines.push(
    '',
    'Pooled image AUROC ranks the test images of every class seen with one threshold, as a deployed model must without a task id; calibration standardises each score by the statistics of the class it is routed to.',
  );
  for (const metric of ['image_auroc', 'pixel_auroc'] as const) {
    lines.push('', `## ${metric} per class (rows: after task)`, '');
    lines.push(`| after task | ${report.classes.join(' | ')} |`, `|---|${report.classes.map(() => '---').join('|')}|`);
    report.classMatrices[metric].forEach((row, i) => lines.push(`| ${i + 1} | ${row.map(fmt).join(' | ')} |`));
  }
  lines.push('', '## Figures', '', '![metric matrix](figures/matrix_image_auroc.png)', '', '![pixel matrix](figures/matrix_pixel_auroc.png)', '');
  lines.push('![average AUROC and forgetting](figures/curve.png)', '');
  // A run without sample detections (e.g. the knn reference) has no heatmap grid to link.
  if (opts.samples !== false) lines.push('![sample heatmaps](figures/samples.png)', '');
  if (last) lines.push(`Final average image AUROC ${fmt(last.avg_image_auroc)}, pixel AUROC ${fmt(last.avg_pixel_auroc)}.`, '');
  return lines.join('\n');
}

/**
 * The report's files, by relative path: `report.json`, `report.md` and `figures/*.png`. Kept in
 * memory so that a caller can write them together with a checkpoint in one atomic save.
 */
export async function renderReport(report: ContinualReport, samples: ReportSample[] = []): Promise<Record<string, Uint8Array | string>> {
  const grid = await sampleGridPng(samples);
  const files: Record<string, Uint8Array | string> = {
    'report.json': `${JSON.stringify(report, null, 2)}\n`,
    'report.md': reportMarkdown(report, { samples: grid !== null }),
  };
  const taskLabels = report.tasks.map((t) => `task ${t.index + 1}`);
  for (const metric of ['image_auroc', 'pixel_auroc'] as const) {
    files[`figures/matrix_${metric}.png`] = await svgToPng(
      matrixHeatmapSvg(report.classMatrices[metric], taskLabels, report.classes, `${metric.replace('_', ' ')} per class`),
    );
  }
  files['figures/curve.png'] = await svgToPng(reportCurveSvg(report.curve, taskLabels));
  if (grid) files['figures/samples.png'] = grid;
  return files;
}

/**
 * Write the report into `dir` atomically: into a temporary sibling first, then renamed into place,
 * so a reader never sees half a report.
 */
export async function writeReport(dir: string, report: ContinualReport, samples: ReportSample[] = []): Promise<void> {
  const files = await renderReport(report, samples);
  const tmp = join(dirname(dir), `.${dir.split(/[\\/]/).pop()}.tmp-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(dirname(join(tmp, rel)), { recursive: true });
    await writeFile(join(tmp, rel), content);
  }
  await mkdir(dirname(dir), { recursive: true });
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
}
