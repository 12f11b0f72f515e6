/**
 * Figures as plain SVG strings and RGB pixel buffers (no DOM, no fonts bundled): usable in Node,
 * where they are rasterised to PNG, and in the browser demo as they are.
 */
import type { ContinualReport } from './report-format';

/** A perceptually ordered colormap (dark blue -> cyan -> yellow -> red) for t in [0, 1]. */
export function heatColor(t: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0));
  const stops: [number, [number, number, number]][] = [
    [0, [48, 18, 59]],
    [0.25, [40, 120, 240]],
    [0.5, [40, 220, 160]],
    [0.75, [250, 200, 40]],
    [1, [200, 20, 20]],
  ];
  for (let i = 1; i < stops.length; i++) {
    const [t1, c1] = stops[i]!;
    const [t0, c0] = stops[i - 1]!;
    if (x <= t1) {
      const f = (x - t0) / (t1 - t0);
      return [0, 1, 2].map((k) => Math.round(c0[k]! + f * (c1[k]! - c0[k]!))) as [number, number, number];
    }
  }
  return stops[stops.length - 1]![1];
}

/**
 * Blend a heatmap over an image. `image` is HWC RGB in [0, 1]; `map` is H*W, normalised to
 * [0, 1] by `range` (default: the map's own min..max). Returns interleaved RGB bytes.
 */
export function overlayHeatmap(
  image: Float32Array,
  map: ArrayLike<number>,
  width: number,
  height: number,
  opts: { alpha?: number; range?: [number, number] } = {},
): Uint8Array {
  const n = width * height;
  if (image.length !== n * 3) throw new Error(`overlayHeatmap: image has ${image.length} values, expected ${n * 3}`);
  if (map.length !== n) throw new Error(`overlayHeatmap: map has ${map.length} values, expected ${n}`);
  let [lo, hi] = opts.range ?? [Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];
  if (!opts.range) {
    for (let i = 0; i < n; i++) {
      lo = Math.min(lo, map[i]!);
      hi = Math.max(hi, map[i]!);
    }
  }
  const span = hi > lo ? hi - lo : 1;
  const alpha = opts.alpha ?? 0.5;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const c = heatColor((map[i]! - lo) / span);
    for (let k = 0; k < 3; k++) {
      out[i * 3 + k] = Math.round((1 - alpha) * 255 * Math.min(1, Math.max(0, image[i * 3 + k]!)) + alpha * c[k]!);
    }
  }
  return out;
}

/** An image (HWC RGB in [0, 1]) as RGB bytes. */
export function toRgbBytes(image: Float32Array): Uint8Array {
  const out = new Uint8Array(image.length);
  for (let i = 0; i < image.length; i++) out[i] = Math.round(255 * Math.min(1, Math.max(0, image[i]!)));
  return out;
}

/** A 0/1 mask as RGB bytes: white where 1, black elsewhere. */
export function maskToRgbBytes(mask: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(mask.length * 3);
  for (let i = 0; i < mask.length; i++) out.fill(mask[i] ? 255 : 0, i * 3, i * 3 + 3);
  return out;
}

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

function fmt(v: number | null | undefined, digits = 3): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits);
}

/**
 * The task-by-task metric matrix as a heatmap: row i = after learning task i, column j = task j's
 * classes; cells never evaluated (j > i) are left blank.
 */
export function matrixHeatmapSvg(
  matrix: (number | null)[][],
  rowLabels: string[],
  colLabels: string[],
  title: string,
  range: [number, number] = [0.5, 1],
): string {
  const cell = 64;
  const left = 150;
  const top = 60;
  const width = left + cell * colLabels.length + 20;
  const height = top + cell * rowLabels.length + 40;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans, Arial, sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="24" font-size="16" text-anchor="middle" font-weight="bold">${esc(title)}</text>`,
  ];
  colLabels.forEach((l, j) =>
    parts.push(`<text x="${left + cell * j + cell / 2}" y="${top - 8}" font-size="11" text-anchor="middle">${esc(l)}</text>`),
  );
  rowLabels.forEach((l, i) => {
    parts.push(`<text x="${left - 8}" y="${top + cell * i + cell / 2 + 4}" font-size="11" text-anchor="end">${esc(l)}</text>`);
    colLabels.forEach((_, j) => {
      const v = matrix[i]?.[j];
      const x = left + cell * j;
      const y = top + cell * i;
      if (v === null || v === undefined || !Number.isFinite(v)) {
        parts.push(`<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="#f4f4f4" stroke="white"/>`);
        return;
      }
      const [r, g, b] = heatColor((v - range[0]) / (range[1] - range[0]));
      const light = 0.299 * r + 0.587 * g + 0.114 * b > 140;
      parts.push(`<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="rgb(${r},${g},${b})" stroke="white"/>`);
      parts.push(
        `<text x="${x + cell / 2}" y="${y + cell / 2 + 5}" font-size="13" text-anchor="middle" fill="${light ? 'black' : 'white'}">${fmt(v)}</text>`,
      );
    });
  });
  parts.push(
    `<text x="${left}" y="${height - 12}" font-size="11" fill="#555">rows: after learning task i · columns: classes of task j · colour ${range[0]}–${range[1]}</text>`,
    '</svg>',
  );
  return parts.join('\n');
}

/** One line of {@link lineChartSvg}. */
export interface LineSeries {
  /** Legend label. */
  name: string;
  /** One y value per x label (task); null or non-finite entries are left out. */
  values: (number | null)[];
  /** SVG stroke colour (default: the next colour of a six-colour palette). */
  color?: string;
}

/** A line chart over tasks (x = task index), with a legend. */
export function lineChartSvg(series: LineSeries[], xLabels: string[], title: string, yRange: [number, number] = [0, 1]): string {
  const width = 560;
  const height = 340;
  const left = 60;
  const right = 170;
  const top = 44;
  const bottom = 50;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const palette = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];
  const xAt = (i: number) => left + (xLabels.length <= 1 ? plotW / 2 : (plotW * i) / (xLabels.length - 1));
  const yAt = (v: number) => top + plotH * (1 - (v - yRange[0]) / (yRange[1] - yRange[0]));
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans, Arial, sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left + plotW / 2}" y="24" font-size="16" text-anchor="middle" font-weight="bold">${esc(title)}</text>`,
    `<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>`,
  ];
  for (let k = 0; k <= 4; k++) {
    const v = yRange[0] + ((yRange[1] - yRange[0]) * k) / 4;
    const y = yAt(v);
    parts.push(`<line x1="${left}" x2="${left + plotW}" y1="${y}" y2="${y}" stroke="#eee"/>`);
    parts.push(`<text x="${left - 6}" y="${y + 4}" font-size="11" text-anchor="end">${v.toFixed(2)}</text>`);
  }
  xLabels.forEach((l, i) =>
    parts.push(`<text x="${xAt(i)}" y="${top + plotH + 18}" font-size="11" text-anchor="middle">${esc(l)}</text>`),
  );
  series.forEach((s, k) => {
    const color = s.color ?? palette[k % palette.length]!;
    const pts = s.values
      .map((v, i) => (v === null || !Number.isFinite(v) ? null : `${xAt(i).toFixed(1)},${yAt(v).toFixed(1)}`))
      .filter((p): p is string => p !== null);
    if (pts.length > 1) parts.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${color}" stroke-width="2"/>`);
    for (const p of pts) {
      const [x, y] = p.split(',');
      parts.push(`<circle cx="${x}" cy="${y}" r="3.5" fill="${color}"/>`);
    }
    const ly = top + 14 + 20 * k;
    parts.push(`<line x1="${left + plotW + 14}" x2="${left + plotW + 34}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"/>`);
    parts.push(`<text x="${left + plotW + 40}" y="${ly + 4}" font-size="11">${esc(s.name)}</text>`);
  });
  parts.push(`<text x="${left + plotW / 2}" y="${height - 10}" font-size="11" text-anchor="middle" fill="#555">after task</text>`);
  parts.push('</svg>');
  return parts.join('\n');
}

/**
 * The report's headline chart: average image and pixel AUROC and their forgetting after each task
 * (`report.curve`), as drawn in `figures/curve.png` and in the web demo.
 */
export function reportCurveSvg(curve: ContinualReport['curve'], taskLabels: string[]): string {
  return lineChartSvg(
    [
      { name: 'avg image AUROC', values: curve.map((c) => c.avg_image_auroc) },
      { name: 'avg pixel AUROC', values: curve.map((c) => c.avg_pixel_auroc) },
      { name: 'image forgetting', values: curve.map((c) => c.image_auroc_forgetting) },
      { name: 'pixel forgetting', values: curve.map((c) => c.pixel_auroc_forgetting) },
    ],
    taskLabels,
    'Average AUROC and forgetting over tasks',
  );
}
