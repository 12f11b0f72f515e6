/**
 * The continual-learning report: `report.json` (stable keys, read by scripts and the demo's
 * dashboard), `report.md` (for people) and PNG figures (the task-by-task matrix, average AUROC and
 * forgetting over tasks, a grid of sample heatmaps). Node only (writes files, rasterises with sharp).
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { DEFAULT_SCORE_THRESHOLD } from '../model/calibration';
import { colorBarHeight, colorBarSvg, maskToRgbBytes, matrixHeatmapSvg, overlayHeatmap, reportCurveSvg, resizeMap, toRgbBytes } from './figures';
import type { ContinualReport, ReportSample } from './report-format';
import { fmt } from './text';

export * from './report-format';

const FONT = 'DejaVu Sans, Arial, sans-serif';

async function svgToPng(svg: string): Promise<Uint8Array> {
  return new Uint8Array(await sharp(Buffer.from(svg)).png().toBuffer());
}

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

/** The colour range of anomaly maps in figures: 0 to twice the threshold, in standard deviations. */
export function mapRange(threshold = DEFAULT_SCORE_THRESHOLD): [number, number] {
  return [0, Math.max(2 * threshold, 1)];
}

const MAP_CAPTION = 'anomaly map: standard deviations (σ) above the class’s normal pixels';
const OVERLAY_CAPTION = 'map: σ above the class’s normal pixels';

/**
 * A grid of samples: input | reconstruction | heatmap overlay | ground truth, one row each, with
 * each image's calibrated score and decision, and a colour bar for the maps. Every map is drawn on
 * the same scale (`range`, default {@link mapRange}), so a normal image looks calm and a defect hot.
 */
export async function sampleGridPng(
  samples: ReportSample[],
  range: [number, number] = mapRange(),
  opts: { threshold?: number } = {},
): Promise<Uint8Array | null> {
  if (samples.length === 0) return null;
  const threshold = opts.threshold ?? DEFAULT_SCORE_THRESHOLD;
  const { width: srcW, height: srcH } = samples[0]!;
  // Small model images are enlarged (nearest neighbour, so pixels stay honest) to at least 96 px.
  const zoom = Math.max(1, Math.ceil(96 / Math.max(srcW, srcH)));
  const w = srcW * zoom;
  const h = srcH * zoom;
  const cols = 4;
  const pad = 4;
  const labelW = 190;
  const gridW = Math.max(labelW + cols * (w + pad) + pad, 500);
  const legendTop = 24 + pad + samples.length * (h + pad) + 10;
  const gridH = legendTop + colorBarHeight() + 24;
  const tilePromises: Promise<sharp.OverlayOptions>[] = [];
  const svg: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${gridW}" height="${gridH}" font-family="${FONT}">`];
  ['input', 'reconstruction', 'anomaly map', 'ground truth'].forEach((t, c) =>
    svg.push(`<text x="${labelW + pad + c * (w + pad) + w / 2}" y="16" font-size="11" text-anchor="middle">${t}</text>`),
  );
  samples.forEach((s, r) => {
    const top = 24 + pad + r * (h + pad);
    const anomalous = s.score > threshold;
    svg.push(
      `<text x="6" y="${top + h / 2 - 8}" font-size="11">${esc(s.className)} · truth: ${s.label ? 'defect' : 'good'}</text>`,
      `<text x="6" y="${top + h / 2 + 7}" font-size="11" fill="#333">score ${s.score.toFixed(2)} σ</text>`,
      `<text x="6" y="${top + h / 2 + 22}" font-size="11" fill="${anomalous ? '#b00' : '#555'}">${anomalous ? `anomalous (above ${threshold})` : `normal (not above ${threshold})`}</text>`,
    );
    const mask = s.mask ?? new Uint8Array(srcW * srcH);
    const tiles = [toRgbBytes(s.image), toRgbBytes(s.reconstruction), overlayHeatmap(s.image, s.map, srcW, srcH, { range }), maskToRgbBytes(mask)];
    tiles.forEach((bytes, c) =>
      tilePromises.push(
        sharp(Buffer.from(bytes), { raw: { width: srcW, height: srcH, channels: 3 } })
          .resize(w, h, { kernel: 'nearest' })
          .png()
          .toBuffer()
          .then((input) => ({ input, left: labelW + pad + c * (w + pad), top })),
      ),
    );
  });
  svg.push(
    colorBarSvg(6, legendTop, 360, range, {
      caption: MAP_CAPTION,
      tickLabels: [`${range[0]} σ`, `${(range[0] + range[1]) / 2} σ`, `${range[1]} σ or more`],
    }),
    `<text x="6" y="${legendTop + colorBarHeight() + 14}" font-size="11" fill="#333">score: the image's, in σ above its class's normal scores; anomalous above ${threshold}</text>`,
    '</svg>',
  );
  const composites = [{ input: Buffer.from(svg.join('\n')), left: 0, top: 0 }, ...(await Promise.all(tilePromises))];
  const png = await sharp({ create: { width: gridW, height: gridH, channels: 3, background: '#ffffff' } })
    .composite(composites)
    .png()
    .toBuffer();
  return new Uint8Array(png);
}

/** What {@link detectionOverlayPng} draws. */
export interface DetectionOverlayInput {
  /** The image as it should be shown (HWC RGB in [0, 1]), at any size and aspect ratio. */
  image: { data: Float32Array; width: number; height: number };
  /** The calibrated anomaly map at the model's size (row-major `mapWidth` x `mapHeight`). */
  map: Float32Array;
  mapWidth: number;
  mapHeight: number;
  /** Calibrated image score and the class the image was routed to. */
  score: number;
  className: string;
  /** Decision threshold (default {@link DEFAULT_SCORE_THRESHOLD}). */
  threshold?: number;
}

/** Height in pixels of the legend strip under a {@link detectionOverlayPng} image. */
export const OVERLAY_LEGEND_HEIGHT = 22 + colorBarHeight() + 6;

/**
 * One detection as a PNG: the map stretched back onto the image at the image's own aspect ratio
 * and size, and under it a legend strip with the decision, the score and a colour bar.
 */
export async function detectionOverlayPng(d: DetectionOverlayInput): Promise<Uint8Array> {
  const threshold = d.threshold ?? DEFAULT_SCORE_THRESHOLD;
  const range = mapRange(threshold);
  const { width, height } = d.image;
  const map = resizeMap(d.map, d.mapWidth, d.mapHeight, width, height);
  const blended = overlayHeatmap(d.image.data, map, width, height, { range });
  const anomalous = d.score > threshold;
  const line = ` · ${d.className} · score ${d.score.toFixed(2)} σ (threshold ${threshold})`;
  // Wide enough for the verdict line and the caption (DejaVu Sans: under 0.62 em per character).
  const stripW = Math.ceil(Math.max(width, 12 + (line.length + 10) * 12 * 0.62, 12 + OVERLAY_CAPTION.length * 10 * 0.62));
  const stripH = OVERLAY_LEGEND_HEIGHT;
  const svg = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${stripW}" height="${stripH}" font-family="${FONT}">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="6" y="15" font-size="12"><tspan font-weight="bold" fill="${anomalous ? '#b00' : '#222'}">${anomalous ? 'ANOMALOUS' : 'normal'}</tspan>${esc(line)}</text>`,
    colorBarSvg(6, 22, stripW - 12, range, {
      caption: OVERLAY_CAPTION,
      tickLabels: [`${range[0]} σ`, `${(range[0] + range[1]) / 2} σ`, `${range[1]} σ+`],
      fontSize: 10,
    }),
    '</svg>',
  ].join('\n');
  const image = await sharp(Buffer.from(blended), { raw: { width, height, channels: 3 } }).png().toBuffer();
  const png = await sharp({ create: { width: stripW, height: height + stripH, channels: 3, background: '#ffffff' } })
    .composite([
      { input: image, left: 0, top: 0 },
      { input: Buffer.from(svg), left: 0, top: height },
    ])
    .png()
    .toBuffer();
  return new Uint8Array(png);
}

/** How each summary key reads in `report.md`: a label and what it means. Keys stay as in report.json. */
const SUMMARY_ROWS: Record<string, [string, string]> = {
  tasks_learned: ['tasks learned', ''],
  avg_image_auroc: ['image AUROC (average over classes)', 'chance that a defective image scores above a good one of the same class: 0.5 is chance, 1 is perfect'],
  avg_pixel_auroc: ['pixel AUROC (average)', 'the same for pixels: defect pixels against good pixels'],
  avg_pixel_ap: ['pixel AP (average)', 'average precision of the defect pixels; sensitive to small defects, chance = the defect area share'],
  avg_pixel_aupro: ['AUPRO (average)', 'per-region overlap up to 30% false-positive rate: small defects count as much as large ones'],
  image_auroc_forgetting: ['image forgetting', 'average drop of the earlier classes from their best image AUROC; 0 = nothing forgotten'],
  pixel_auroc_forgetting: ['pixel forgetting', 'the same for pixel AUROC'],
  pooled_image_auroc_raw: ['pooled image AUROC, raw scores', 'every test image of every class ranked together, with no task id'],
  pooled_image_auroc_calibrated: ['pooled image AUROC, calibrated', 'the same after each score is standardised by its routed class (what --threshold uses)'],
  routing_accuracy: ['routing accuracy', 'share of test images sent to their own class'],
};

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
  lines.push('| metric | value | what it means | key in report.json |', '|---|---|---|---|');
  for (const [k, v] of Object.entries(report.summary)) {
    const [label, meaning] = SUMMARY_ROWS[k] ?? [k, ''];
    lines.push(`| ${label} | ${k === 'tasks_learned' ? String(v) : fmt(v)} | ${meaning} | \`${k}\` |`);
  }
  const raw = report.summary.pooled_image_auroc_raw;
  const calibrated = report.summary.pooled_image_auroc_calibrated;
  if (raw != null && calibrated != null && Number.isFinite(raw) && Number.isFinite(calibrated)) {
    lines.push(
      '',
      calibrated < raw
        ? `Calibrated pooled AUROC (${fmt(calibrated)}) is below raw (${fmt(raw)}) here. Calibration divides each score by the spread of its class's held-out normal scores, estimated from a few images; where that spread is underestimated, that class's normal test images get large calibrated scores and rank above other classes' defects. Raw scores pool well only while every class happens to share one scale; the calibrated score is the one whose threshold means the same for every class.`
        : `Calibrated pooled AUROC (${fmt(calibrated)}) is at or above raw (${fmt(raw)}): standardising each score by its class's normal scores puts the classes on one scale.`,
    );
  }
  lines.push(
    '',
    '## Tasks',
    '',
    '| task | classes | training steps | training time (s) | segmenter training (s) | final loss | start timestep | basis rank | basis size (KiB) |',
    '|---|---|---|---|---|---|---|---|---|',
  );
  for (const t of report.tasks) {
    lines.push(
      `| ${t.index + 1} | ${t.classes.join(', ')} | ${t.steps} | ${fmt(t.trainSeconds, 1)} | ${t.segmenterSeconds !== undefined ? fmt(t.segmenterSeconds, 1) : '–'} | ${fmt(t.finalLoss, 4)} | ${t.classes.map((c) => (t.fusedTStarts?.[c] ? `${t.fusedTStarts[c]!.join('+')} (fused)` : String(t.tStart[c] ?? '–'))).join(', ')} | ${t.basisRank} | ${(t.basisBytes / 1024).toFixed(0)} |`,
    );
  }
  lines.push(
    '',
    '- **segmenter training**: each task also trains a small network that marks what does not belong to its classes\' normal images (taught with synthetic defects); its map is mixed with the reconstruction\'s (– : no segmenter).',
    '- **start timestep** (t_start, per class): how much noise the diffusion model adds before it reconstructs a test image (of 1000 steps). "10+100+300 (fused)": the map is the mean of the maps from each start, each standardised by the class\'s held-out normal images; a single number: the one start chosen per class on held-out normal images and synthetic defects.',
    '- **basis rank / size**: the directions of earlier tasks that gradient projection protects, summed over layers (0 with per-task weights, which need no projection); the size is what the bases add to the checkpoint.',
  );
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
  const titles = { image_auroc: 'Image AUROC per class', pixel_auroc: 'Pixel AUROC per class' } as const;
  for (const metric of ['image_auroc', 'pixel_auroc'] as const) {
    lines.push('', `## ${titles[metric]} (rows: after task)`, '');
    lines.push(`| after task | ${report.classes.join(' | ')} |`, `|---|${report.classes.map(() => '---').join('|')}|`);
    report.classMatrices[metric].forEach((row, i) => lines.push(`| ${i + 1} | ${row.map((v) => fmt(v)).join(' | ')} |`));
  }
  lines.push('', '## Figures', '', '![image AUROC per class](figures/matrix_image_auroc.png)', '', '![pixel AUROC per class](figures/matrix_pixel_auroc.png)', '');
  lines.push('![average AUROC and forgetting](figures/curve.png)', '');
  // A run without sample detections (e.g. the knn reference) has no heatmap grid to link.
  if (opts.samples !== false) {
    lines.push(
      '![sample heatmaps](figures/samples.png)',
      '',
      `Samples: the first good and the first two defective test images of each class. The reconstruction shown is the one from the class's first start timestep (with fused starts, the first of \`reconstruction.tStartCandidates\`: 10 by default); the map is drawn from 0 to ${mapRange()[1]} σ above the class's normal pixels on every row; the score is the image's, in σ of its class's normal scores, and an image is called anomalous above ${DEFAULT_SCORE_THRESHOLD} (the default of \`ofm detect --threshold\`).`,
      '',
    );
  }
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
  const titles = { image_auroc: 'Image AUROC per class', pixel_auroc: 'Pixel AUROC per class' } as const;
  for (const metric of ['image_auroc', 'pixel_auroc'] as const) {
    files[`figures/matrix_${metric}.png`] = await svgToPng(
      matrixHeatmapSvg(report.classMatrices[metric], taskLabels.map((l) => `after ${l}`), report.classes, titles[metric]),
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
