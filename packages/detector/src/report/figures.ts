/**
 * Figures as plain SVG strings and RGB pixel buffers (no DOM, no fonts bundled): usable in Node,
 * where they are rasterised to PNG, and in the browser demo as they are.
 */
import type { ContinualReport } from './report-format';
import { fmt } from './text';

type Rgb = [number, number, number];

/** Linear interpolation along colour stops `[t, rgb]` (t ascending from 0 to 1); t is clamped, NaN is 0. */
function rampColor(stops: readonly (readonly [number, Rgb])[], t: number): Rgb {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0));
  for (let i = 1; i < stops.length; i++) {
    const [t1, c1] = stops[i]!;
    const [t0, c0] = stops[i - 1]!;
    if (x <= t1) {
      const f = (x - t0) / (t1 - t0);
      return [0, 1, 2].map((k) => Math.round(c0[k]! + f * (c1[k]! - c0[k]!))) as Rgb;
    }
  }
  return [...stops[stops.length - 1]![1]] as Rgb;
}

const HEAT_STOPS: readonly (readonly [number, Rgb])[] = [
  [0, [48, 18, 59]],
  [0.25, [40, 120, 240]],
  [0.5, [40, 220, 160]],
  [0.75, [250, 200, 40]],
  [1, [200, 20, 20]],
];

/** A perceptually ordered colormap (dark blue -> cyan -> yellow -> red) for t in [0, 1]. */
export function heatColor(t: number): [number, number, number] {
  return rampColor(HEAT_STOPS, t);
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

/** Width in pixels of `text` at `fontSize` in DejaVu Sans (an upper estimate, used for layout). */
function textWidth(text: string, fontSize: number): number {
  return text.length * fontSize * 0.62;
}

const METRIC_STOPS: readonly (readonly [number, Rgb])[] = [
  [0, [179, 88, 6]],
  [0.25, [241, 163, 64]],
  [0.5, [247, 247, 247]],
  [0.75, [103, 169, 207]],
  [1, [33, 102, 172]],
];

/**
 * The colormap of metric figures (AUROC and similar), for t in [0, 1] where 0 is chance and 1 is
 * perfect: orange (bad) -> white -> blue (good). Diverging and readable with red-green colour
 * blindness; kept apart from {@link heatColor}, whose red means "anomalous".
 */
export function metricColor(t: number): [number, number, number] {
  return rampColor(METRIC_STOPS, t);
}

let gradientIds = 0;

/**
 * A horizontal colour bar (SVG elements, no `<svg>` wrapper) at (x, y): the colormap over
 * [range[0], range[1]] with labelled ends and middle, and a caption above it.
 */
export function colorBarSvg(
  x: number,
  y: number,
  width: number,
  range: [number, number],
  opts: { colormap?: (t: number) => [number, number, number]; caption?: string; tickLabels?: [string, string, string]; fontSize?: number } = {},
): string {
  const colormap = opts.colormap ?? heatColor;
  const size = opts.fontSize ?? 11;
  const id = `ofm-bar-${++gradientIds}`;
  const stops = Array.from({ length: 11 }, (_, i) => {
    const [r, g, b] = colormap(i / 10);
    return `<stop offset="${i * 10}%" stop-color="rgb(${r},${g},${b})"/>`;
  });
  const mid = (range[0] + range[1]) / 2;
  const labels = opts.tickLabels ?? [String(range[0]), String(Number(mid.toFixed(3))), String(range[1])];
  const barY = y + (opts.caption ? size + 4 : 0);
  const parts = [
    `<defs><linearGradient id="${id}" x1="0" x2="1" y1="0" y2="0">${stops.join('')}</linearGradient></defs>`,
    opts.caption ? `<text x="${x}" y="${y + size - 1}" font-size="${size}" fill="#333">${esc(opts.caption)}</text>` : '',
    `<rect x="${x}" y="${barY}" width="${width}" height="10" fill="url(#${id})" stroke="#888" stroke-width="0.5"/>`,
    `<text x="${x}" y="${barY + 10 + size + 2}" font-size="${size}" text-anchor="start">${esc(labels[0])}</text>`,
    `<text x="${x + width / 2}" y="${barY + 10 + size + 2}" font-size="${size}" text-anchor="middle">${esc(labels[1])}</text>`,
    `<text x="${x + width}" y="${barY + 10 + size + 2}" font-size="${size}" text-anchor="end">${esc(labels[2])}</text>`,
  ];
  return parts.filter(Boolean).join('\n');
}

/** Height taken by {@link colorBarSvg} with a caption. */
export function colorBarHeight(fontSize = 11): number {
  return fontSize + 4 + 10 + fontSize + 4;
}

/**
 * The task-by-task metric matrix as a heatmap: row i = after learning task i, column j = task j's
 * classes; cells never evaluated (j > i) are left blank. Colours run from chance (`range[0]`,
 * orange) to perfect (`range[1]`, blue), with a colour bar and a caption that says how to read it.
 */
export function matrixHeatmapSvg(
  matrix: (number | null)[][],
  rowLabels: string[],
  colLabels: string[],
  title: string,
  range: [number, number] = [0.5, 1],
): string {
  const cell = 64;
  const left = 20 + Math.max(60, ...rowLabels.map((l) => textWidth(l, 11)));
  // Long class names are drawn at an angle so that they do not run into each other.
  const slanted = colLabels.some((l) => textWidth(l, 11) > cell - 6);
  const top = 44 + (slanted ? Math.min(90, Math.max(...colLabels.map((l) => textWidth(l, 11))) * 0.6) + 10 : 16);
  const caption = [
    'Rows: after learning task i. Columns: the classes, in the order learned.',
    `Blank: not learned yet. Colour from ${range[0]} (chance) to ${range[1]} (perfect); lower values drawn as ${range[0]}.`,
  ];
  const gridW = cell * colLabels.length;
  const width = Math.ceil(Math.max(left + gridW + 20, 20 + Math.max(...caption.map((c) => textWidth(c, 11))) + 20, textWidth(title, 16) + 40));
  const barTop = top + cell * rowLabels.length + 16;
  const height = barTop + colorBarHeight() + 12 + caption.length * 15 + 8;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans, Arial, sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="24" font-size="16" text-anchor="middle" font-weight="bold">${esc(title)}</text>`,
  ];
  colLabels.forEach((l, j) => {
    const x = left + cell * j + cell / 2;
    parts.push(
      slanted
        ? `<text x="${x}" y="${top - 8}" font-size="11" text-anchor="start" transform="rotate(-35 ${x} ${top - 8})">${esc(l)}</text>`
        : `<text x="${x}" y="${top - 8}" font-size="11" text-anchor="middle">${esc(l)}</text>`,
    );
  });
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
      const [r, g, b] = metricColor((v - range[0]) / (range[1] - range[0]));
      const light = 0.299 * r + 0.587 * g + 0.114 * b > 140;
      parts.push(`<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="rgb(${r},${g},${b})" stroke="white"/>`);
      parts.push(
        `<text x="${x + cell / 2}" y="${y + cell / 2 + 5}" font-size="13" text-anchor="middle" fill="${light ? 'black' : 'white'}">${fmt(v)}</text>`,
      );
    });
  });
  parts.push(
    colorBarSvg(left, barTop, Math.max(gridW, 180), range, {
      colormap: metricColor,
      tickLabels: [`${range[0]} chance`, String((range[0] + range[1]) / 2), `${range[1]} perfect`],
    }),
  );
  caption.forEach((c, k) =>
    parts.push(`<text x="20" y="${barTop + colorBarHeight() + 12 + 15 * k + 11}" font-size="11" fill="#555">${esc(c)}</text>`),
  );
  parts.push('</svg>');
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
  /** SVG dash pattern, e.g. `'6 4'` (default: the next of solid, dashed, dotted, dash-dot). */
  dash?: string;
  /** Point marker (default: the next of circle, square, triangle, diamond). */
  marker?: 'circle' | 'square' | 'triangle' | 'diamond';
}

/** Options of {@link lineChartSvg}. */
export interface LineChartOptions {
  /** The y axis: fixed, or `'auto'` to zoom onto the data (within `clamp`). Default [0, 1]. */
  yRange?: [number, number] | 'auto';
  /** Limits of an automatic y axis (default [0, 1]). */
  clamp?: [number, number];
  /** Smallest span of an automatic y axis (default 0.1), so noise is not blown up. */
  minSpan?: number;
  /** A line under the title, e.g. "higher is better". */
  subtitle?: string;
  /** Print each series' last value in the legend (default true). */
  legendValues?: boolean;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];
const DASHES = ['', '7 4', '2 3', '8 3 2 3'];
const MARKERS = ['circle', 'square', 'triangle', 'diamond'] as const;

/**
 * A y range that holds `values` with a margin, inside `clamp`, whose four grid steps are a round
 * number (0.01, 0.025, 0.05, ...), so the tick labels read cleanly.
 */
function autoRange(values: number[], clamp: [number, number], minSpan: number): [number, number] {
  if (values.length === 0) return clamp;
  const min = Math.min(...values);
  const max = Math.max(...values);
  const pad = Math.max(max - min, minSpan) * 0.1;
  const steps = [0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
  for (const step of steps) {
    // Data that never goes below 0 gets an axis from 0 (no empty negative half).
    let lo = min >= 0 && min - pad < 0 ? 0 : Math.floor((min - pad) / step) * step;
    let hi = lo + 4 * step;
    if (hi > clamp[1]) {
      hi = clamp[1];
      lo = hi - 4 * step;
    }
    lo = Math.max(lo, clamp[0]);
    if (4 * step >= minSpan && lo <= min && hi >= max + (hi === clamp[1] ? 0 : pad)) return [Number(lo.toFixed(6)), Number(hi.toFixed(6))];
  }
  return clamp;
}

function markerSvg(kind: LineSeries['marker'], x: number, y: number, color: string): string {
  switch (kind) {
    case 'square':
      return `<rect x="${(x - 3.5).toFixed(1)}" y="${(y - 3.5).toFixed(1)}" width="7" height="7" fill="${color}"/>`;
    case 'triangle':
      return `<polygon points="${x.toFixed(1)},${(y - 5).toFixed(1)} ${(x - 4.5).toFixed(1)},${(y + 3.5).toFixed(1)} ${(x + 4.5).toFixed(1)},${(y + 3.5).toFixed(1)}" fill="none" stroke="${color}" stroke-width="1.5"/>`;
    case 'diamond':
      return `<polygon points="${x.toFixed(1)},${(y - 5).toFixed(1)} ${(x + 5).toFixed(1)},${y.toFixed(1)} ${x.toFixed(1)},${(y + 5).toFixed(1)} ${(x - 5).toFixed(1)},${y.toFixed(1)}" fill="none" stroke="${color}" stroke-width="1.5"/>`;
    default:
      return `<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="3.5" fill="${color}"/>`;
  }
}

const CHART_W = 560;
const CHART_H = 340;

/** The elements of one chart in a CHART_W x CHART_H box at (ox, oy). */
function chartBody(series: LineSeries[], xLabels: string[], title: string, opts: LineChartOptions, ox: number, oy: number): string[] {
  const legendW = Math.max(150, ...series.map((s) => textWidth(`${s.name} 0.000`, 11) + 46));
  const left = 60;
  const top = opts.subtitle ? 60 : 44;
  const bottom = 50;
  const plotW = CHART_W - left - legendW;
  const plotH = CHART_H - top - bottom;
  const finite = series.flatMap((s) => s.values.filter((v): v is number => v !== null && Number.isFinite(v)));
  const yRange = opts.yRange === 'auto' || opts.yRange === undefined
    ? opts.yRange === 'auto' ? autoRange(finite, opts.clamp ?? [0, 1], opts.minSpan ?? 0.1) : ([0, 1] as [number, number])
    : opts.yRange;
  const xAt = (i: number) => ox + left + (xLabels.length <= 1 ? plotW / 2 : (plotW * i) / (xLabels.length - 1));
  const yAt = (v: number) => oy + top + plotH * (1 - (Math.min(yRange[1], Math.max(yRange[0], v)) - yRange[0]) / (yRange[1] - yRange[0]));
  const parts: string[] = [
    `<text x="${ox + left + plotW / 2}" y="${oy + 24}" font-size="15" text-anchor="middle" font-weight="bold">${esc(title)}</text>`,
  ];
  if (opts.subtitle) parts.push(`<text x="${ox + left + plotW / 2}" y="${oy + 42}" font-size="11" text-anchor="middle" fill="#555">${esc(opts.subtitle)}</text>`);
  parts.push(`<rect x="${ox + left}" y="${oy + top}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>`);
  const digits = yRange[1] - yRange[0] < 0.2 ? 3 : 2;
  for (let k = 0; k <= 4; k++) {
    const v = yRange[0] + ((yRange[1] - yRange[0]) * k) / 4;
    const y = yAt(v);
    parts.push(`<line x1="${ox + left}" x2="${ox + left + plotW}" y1="${y}" y2="${y}" stroke="#eee"/>`);
    parts.push(`<text x="${ox + left - 6}" y="${y + 4}" font-size="11" text-anchor="end">${v.toFixed(digits)}</text>`);
  }
  xLabels.forEach((l, i) =>
    parts.push(`<text x="${xAt(i)}" y="${oy + top + plotH + 18}" font-size="11" text-anchor="middle">${esc(l)}</text>`),
  );
  series.forEach((s, k) => {
    const color = s.color ?? PALETTE[k % PALETTE.length]!;
    const dash = s.dash ?? DASHES[k % DASHES.length]!;
    const marker = s.marker ?? MARKERS[k % MARKERS.length]!;
    const pts = s.values.flatMap((v, i) => (v === null || !Number.isFinite(v) ? [] : [[xAt(i), yAt(v)] as const]));
    const dashAttr = dash ? ` stroke-dasharray="${dash}"` : '';
    if (pts.length > 1) {
      parts.push(
        `<polyline points="${pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' ')}" fill="none" stroke="${color}" stroke-width="2"${dashAttr}/>`,
      );
    }
    for (const [x, y] of pts) parts.push(markerSvg(marker, x, y, color));
    const ly = oy + top + 14 + 22 * k;
    const lx = ox + left + plotW + 14;
    const last = [...s.values].reverse().find((v) => v !== null && Number.isFinite(v));
    const label = opts.legendValues === false || last == null ? s.name : `${s.name} ${fmt(last)}`;
    parts.push(`<line x1="${lx}" x2="${lx + 24}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"${dashAttr}/>`);
    parts.push(markerSvg(marker, lx + 12, ly, color));
    parts.push(`<text x="${lx + 30}" y="${ly + 4}" font-size="11">${esc(label)}</text>`);
  });
  if (opts.legendValues !== false && series.length > 0) {
    parts.push(`<text x="${ox + left + plotW + 14}" y="${oy + top + 14 + 22 * series.length + 4}" font-size="10" fill="#777">(value after the last task)</text>`);
  }
  parts.push(`<text x="${ox + left + plotW / 2}" y="${oy + CHART_H - 10}" font-size="11" text-anchor="middle" fill="#555">after task</text>`);
  return parts;
}

/**
 * A line chart over tasks (x = task index), with a legend. Series differ by colour, dash and
 * marker, so a line that lies on another stays visible; `yRange: 'auto'` zooms onto the data.
 * The fourth argument may be a fixed y range (the older signature) or {@link LineChartOptions}.
 */
export function lineChartSvg(
  series: LineSeries[],
  xLabels: string[],
  title: string,
  options: [number, number] | LineChartOptions = {},
): string {
  const opts: LineChartOptions = Array.isArray(options) ? { yRange: options } : options;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${CHART_W}" height="${CHART_H}" font-family="DejaVu Sans, Arial, sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...chartBody(series, xLabels, title, opts, 0, 0),
    '</svg>',
  ].join('\n');
}

/**
 * The report's headline chart (`figures/curve.png`, and the web demo's dashboard): two panels,
 * average AUROC over the classes seen after each task (axis zoomed onto the values), and
 * forgetting (the average drop of the earlier classes from their best AUROC; its own axis).
 */
export function reportCurveSvg(curve: ContinualReport['curve'], taskLabels: string[]): string {
  const auroc = chartBody(
    [
      { name: 'image AUROC', values: curve.map((c) => c.avg_image_auroc), color: PALETTE[0], dash: '', marker: 'circle' },
      { name: 'pixel AUROC', values: curve.map((c) => c.avg_pixel_auroc), color: PALETTE[1], dash: '7 4', marker: 'square' },
    ],
    taskLabels,
    'Average AUROC of the classes seen',
    { yRange: 'auto', clamp: [0, 1], subtitle: 'higher is better; 0.5 is chance, 1 is perfect' },
    0,
    0,
  );
  const forgetting = chartBody(
    [
      { name: 'image forgetting', values: curve.map((c) => c.image_auroc_forgetting), color: PALETTE[2], dash: '', marker: 'triangle' },
      { name: 'pixel forgetting', values: curve.map((c) => c.pixel_auroc_forgetting), color: PALETTE[3], dash: '7 4', marker: 'diamond' },
    ],
    taskLabels,
    'Forgetting of earlier classes',
    { yRange: 'auto', clamp: [-1, 1], minSpan: 0.1, subtitle: 'average AUROC drop from each class\u2019s best; lower is better' },
    CHART_W,
    0,
  );
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * CHART_W}" height="${CHART_H}" font-family="DejaVu Sans, Arial, sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...auroc,
    ...forgetting,
    '</svg>',
  ].join('\n');
}

/**
 * Resize a one-channel map (row-major `width` x `height`) to `outWidth` x `outHeight` with bilinear
 * interpolation (pixel centres aligned), e.g. an anomaly map at the model's size back onto the
 * image as the user gave it.
 */
export function resizeMap(map: ArrayLike<number>, width: number, height: number, outWidth: number, outHeight: number): Float32Array {
  if (map.length !== width * height) throw new Error(`resizeMap: map has ${map.length} values, expected ${width * height}`);
  const out = new Float32Array(outWidth * outHeight);
  const sx = width / outWidth;
  const sy = height / outHeight;
  for (let y = 0; y < outHeight; y++) {
    const fy = Math.min(height - 1, Math.max(0, (y + 0.5) * sy - 0.5));
    const y0 = Math.floor(fy);
    const y1 = Math.min(height - 1, y0 + 1);
    const wy = fy - y0;
    for (let x = 0; x < outWidth; x++) {
      const fx = Math.min(width - 1, Math.max(0, (x + 0.5) * sx - 0.5));
      const x0 = Math.floor(fx);
      const x1 = Math.min(width - 1, x0 + 1);
      const wx = fx - x0;
      const top = map[y0 * width + x0]! * (1 - wx) + map[y0 * width + x1]! * wx;
      const bottom = map[y1 * width + x0]! * (1 - wx) + map[y1 * width + x1]! * wx;
      out[y * outWidth + x] = top * (1 - wy) + bottom * wy;
    }
  }
  return out;
}
