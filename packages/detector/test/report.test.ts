import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { initBackend } from '@ofm/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { heatColor, lineChartSvg, matrixHeatmapSvg, metricColor, overlayHeatmap, reportCurveSvg, resizeMap } from '../src/report/figures';
import { ContinualDetector } from '../src/model/detector';
import { type ContinualReport, detectionOverlayPng, OVERLAY_LEGEND_HEIGHT, REPORT_FORMAT_VERSION, reportMarkdown, sampleGridPng, writeReport } from '../src/report/report';
import { buildReport } from '../src/run/continual';
import { TINY_CONFIG } from './tiny';

const dir = mkdtempSync(join(tmpdir(), 'ofm-report-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fakeRun(): ContinualReport {
  // Numbers of a made-up 2-task run: the report writer must carry them through unchanged.
  const m = [
    [0.9, null],
    [0.85, 0.95],
  ];
  const metrics = { image_auroc: m, image_ap: m, pixel_auroc: m, pixel_ap: m, pixel_aupro: m };
  return {
    formatVersion: REPORT_FORMAT_VERSION,
    createdAt: '2026-11-28T00:00:00.000Z',
    backend: 'wasm',
    seed: 1,
    projection: true,
    tasks: [
      { index: 0, classes: ['a'], steps: 10, trainSeconds: 1.5, finalLoss: 0.1, tStart: { a: 200 }, basisRank: 10, basisBytes: 4096 },
      { index: 1, classes: ['b'], steps: 10, trainSeconds: 1.6, finalLoss: 0.2, tStart: { b: 300 }, segmenterSeconds: 0.7, basisRank: 20, basisBytes: 8192 },
    ],
    classes: ['a', 'b'],
    classMatrices: metrics,
    taskMatrices: metrics,
    curve: [
      { task: 1, avg_image_auroc: 0.9, avg_pixel_auroc: 0.9, avg_pixel_ap: 0.9, avg_pixel_aupro: 0.9, image_auroc_forgetting: null, pixel_auroc_forgetting: null, pooled_image_auroc_raw: 0.8, pooled_image_auroc_calibrated: 0.9, routing_accuracy: 1 },
      { task: 2, avg_image_auroc: 0.9, avg_pixel_auroc: 0.9, avg_pixel_ap: 0.9, avg_pixel_aupro: 0.9, image_auroc_forgetting: 0.05, pixel_auroc_forgetting: 0.05, pooled_image_auroc_raw: 0.7, pooled_image_auroc_calibrated: 0.85, routing_accuracy: 0.95 },
    ],
    summary: { avg_image_auroc: 0.9, image_auroc_forgetting: 0.05 },
  };
}

describe('figures', () => {
  it('colormap runs from dark blue to red and clamps', () => {
    expect(heatColor(0)).toEqual([48, 18, 59]);
    expect(heatColor(1)).toEqual([200, 20, 20]);
    expect(heatColor(-3)).toEqual(heatColor(0));
    expect(heatColor(Number.NaN)).toEqual(heatColor(0));
  });

  it('overlay blends the map colour over the image and checks sizes', () => {
    const image = new Float32Array(2 * 1 * 3).fill(1);
    const out = overlayHeatmap(image, [0, 1], 2, 1, { alpha: 0.5 });
    expect(Array.from(out.slice(3, 6))).toEqual([Math.round(127.5 + 100), Math.round(127.5 + 10), Math.round(127.5 + 10)]);
    expect(() => overlayHeatmap(image, [0], 2, 1)).toThrow(/map has 1 values, expected 2/);
  });

  it('matrix heatmap leaves unevaluated cells blank and prints values', () => {
    const svg = matrixHeatmapSvg([[0.9, null]], ['task 1'], ['a', 'b'], 'title <x>');
    expect(svg).toContain('0.900');
    expect(svg).toContain('#f4f4f4');
    expect(svg).toContain('title &lt;x&gt;');
    expect(lineChartSvg([{ name: 's', values: [0.5, null, 1] }], ['1', '2', '3'], 't')).toContain('<polyline');
    const curve = reportCurveSvg(
      [
        { avg_image_auroc: 1, avg_pixel_auroc: 0.9, image_auroc_forgetting: null, pixel_auroc_forgetting: null },
        { avg_image_auroc: 0.8, avg_pixel_auroc: 0.85, image_auroc_forgetting: 0.2, pixel_auroc_forgetting: 0.05 },
      ] as unknown as Parameters<typeof reportCurveSvg>[0],
      ['task 1', 'task 2'],
    );
    for (const name of ['Average AUROC', 'image AUROC', 'pixel AUROC', 'image forgetting', 'pixel forgetting', 'task 2']) expect(curve).toContain(name);
    // Forgetting is undefined after task 1: its series draws a single point, the AUROC series a line.
    expect(curve.match(/<polyline/g)?.length).toBe(2);
  });
});

describe('figures read well (issue 19, item 16)', () => {
  it('metric colours run from orange at chance to blue at perfect, never red for the best', () => {
    const [r1, , b1] = metricColor(1);
    const [r0, , b0] = metricColor(0);
    expect(b1).toBeGreaterThan(r1 + 100);
    expect(r0).toBeGreaterThan(b0 + 100);
    const svg = matrixHeatmapSvg([[0.99]], ['after task 1'], ['a'], 'Image AUROC per class');
    const [r, g, b] = metricColor(0.98);
    expect(svg).toContain(`fill="rgb(${r},${g},${b})"`);
  });

  it('the matrix has a colour bar and a caption that fits inside the figure', () => {
    const svg = matrixHeatmapSvg([[0.9, null]], ['after task 1'], ['concrete', 'b'], 'Image AUROC per class');
    expect(svg).toContain('<linearGradient');
    expect(svg).toContain('0.5 chance');
    expect(svg).toContain('1 perfect');
    const width = Number(/width="(\d+)"/.exec(svg)![1]);
    const captions = [...svg.matchAll(/<text x="(\d+)"[^>]*fill="#555">([^<]+)</g)];
    expect(captions.length).toBe(2);
    // DejaVu Sans at 11 px averages under 0.62 em per character.
    for (const [, x, text] of captions) expect(Number(x) + text!.length * 11 * 0.62).toBeLessThanOrEqual(width);
  });

  it('the curve has an AUROC panel zoomed onto the data and a forgetting panel on its own axis', () => {
    const curve = reportCurveSvg(
      [
        { avg_image_auroc: 0.95, avg_pixel_auroc: 0.97, image_auroc_forgetting: null, pixel_auroc_forgetting: null },
        { avg_image_auroc: 0.93, avg_pixel_auroc: 0.96, image_auroc_forgetting: 0.01, pixel_auroc_forgetting: 0.01 },
      ] as unknown as Parameters<typeof reportCurveSvg>[0],
      ['task 1', 'task 2'],
    );
    const ticks = [...curve.matchAll(/text-anchor="end">(-?[\d.]+)</g)].map((m) => Number(m[1]));
    expect(ticks.length).toBe(10);
    const auroc = ticks.slice(0, 5);
    const forget = ticks.slice(5);
    // Not the flat 0-1 axis: both panels span a tenth or less.
    expect(Math.max(...auroc) - Math.min(...auroc)).toBeLessThanOrEqual(0.1 + 1e-9);
    expect(Math.min(...auroc)).toBeGreaterThan(0.8);
    expect(Math.max(...forget)).toBeLessThanOrEqual(0.1 + 1e-9);
    // Equal forgetting values lie on one another: the two series differ in dash and marker.
    expect(curve).toContain('stroke-dasharray="7 4"');
    expect(curve).toContain('<polygon');
    expect(curve).toContain('image forgetting 0.010');
  });

  it('resizeMap keeps constants and interpolates between pixel centres', () => {
    expect(Array.from(resizeMap([2, 2, 2, 2], 2, 2, 5, 3))).toEqual(new Array(15).fill(2));
    expect(Array.from(resizeMap([0, 4], 2, 1, 4, 1))).toEqual([0, 1, 3, 4]);
    expect(() => resizeMap([0], 2, 1, 4, 1)).toThrow(/map has 1 values, expected 2/);
  });

  it('a detection overlay keeps the image size and aspect ratio, with a legend strip under it', async () => {
    const width = 50;
    const height = 30;
    const image = { data: new Float32Array(width * height * 3).fill(0.5), width, height };
    const map = new Float32Array(16 * 16);
    map[0] = 100; // hot in the top-left corner only
    const png = await detectionOverlayPng({ image, map, mapWidth: 16, mapHeight: 16, score: 7.5, className: 'tiles' });
    const { data, info } = await sharp(Buffer.from(png)).raw().toBuffer({ resolveWithObject: true });
    expect(info.height).toBe(height + OVERLAY_LEGEND_HEIGHT);
    expect(info.width).toBeGreaterThan(width); // the legend is wider than this small image, which keeps its 50 px
    const px = (x: number, y: number) => [0, 1, 2].map((k) => data[(y * info.width + x) * info.channels + k]!);
    expect(px(0, 0)[0]).toBeGreaterThan(px(0, 0)[2]! + 50); // hot: red
    expect(px(width - 1, height - 1)[2]).toBeGreaterThan(px(width - 1, height - 1)[0]!); // calm: blue-ish
  });

  it('the sample grid draws every map on one scale, so a calm map is not stretched to full colour', async () => {
    const size = 8;
    const image = new Float32Array(size * size * 3).fill(0.5);
    const calm = Float32Array.from({ length: size * size }, (_, i) => (i % 2) * 0.2);
    const sample = { className: 'a', label: 0 as const, score: 0.3, width: size, height: size, image, reconstruction: image, map: calm };
    const png = await sampleGridPng([sample]);
    const { data, info } = await sharp(Buffer.from(png!)).raw().toBuffer({ resolveWithObject: true });
    // The map tile is the third tile; its brightest red stays far from the colormap's top.
    const zoom = Math.ceil(96 / size);
    const left = 190 + 4 + 2 * (size * zoom + 4);
    let maxRed = 0;
    for (let y = 28; y < 28 + size * zoom; y++) for (let x = left; x < left + size * zoom; x++) maxRed = Math.max(maxRed, data[(y * info.width + x) * info.channels]!);
    expect(maxRed).toBeLessThan(120);
  });

  it('report.md names metrics in words and explains a calibrated pooled AUROC below raw', () => {
    const report = fakeRun();
    report.summary = { ...report.summary, pooled_image_auroc_raw: 0.97, pooled_image_auroc_calibrated: 0.91 };
    const md = reportMarkdown(report);
    expect(md).toContain('| image AUROC (average over classes) | 0.900 |');
    expect(md).toContain('`avg_image_auroc`');
    expect(md).toMatch(/Calibrated pooled AUROC \(0\.910\) is below raw \(0\.970\)/);
    expect(md).toContain('**start timestep**');
    expect(md).toContain('**basis rank / size**');
    // Every cell of the per-class tables has three decimals, whatever its column.
    expect(md).toContain('| 1 | 0.900 | – |');
    expect(md).toContain('| 2 | 0.850 | 0.950 |');
  });
});

describe('writeReport', () => {
  it('writes report.json, report.md and real PNG figures', async () => {
    const out = join(dir, 'run', 'report');
    const w = 8;
    const h = 8;
    const sample = {
      className: 'a',
      label: 1 as const,
      score: 2.5,
      width: w,
      height: h,
      image: new Float32Array(w * h * 3).fill(0.5),
      reconstruction: new Float32Array(w * h * 3).fill(0.4),
      map: Float32Array.from({ length: w * h }, (_, i) => i),
      mask: new Uint8Array(w * h).fill(1),
    };
    await writeReport(out, fakeRun(), [sample, { ...sample, label: 0 as const }]);
    const json = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    expect(json.summary.image_auroc_forgetting).toBe(0.05);
    expect(json.classMatrices.image_auroc[0][1]).toBeNull();
    const md = readFileSync(join(out, 'report.md'), 'utf8');
    // A task without a segmenter shows a dash, one with it its training time.
    expect(md).toContain('| 1 | a | 10 | 1.5 | – | 0.1000 | 200 | 10 | 4 |');
    expect(md).toContain('| 2 | b | 10 | 1.6 | 0.7 | 0.2000 | 300 | 20 | 8 |');
    expect(md).toContain('0.700 → 0.850');
    expect(md).toContain('figures/samples.png');
    for (const f of ['matrix_image_auroc.png', 'matrix_pixel_auroc.png', 'curve.png', 'samples.png']) {
      const meta = await sharp(join(out, 'figures', f)).metadata();
      expect(meta.format).toBe('png');
      expect(meta.width).toBeGreaterThan(100);
    }
    // Rewriting replaces the report whole and leaves no temporary directory behind.
    await writeReport(out, fakeRun());
    expect(existsSync(join(out, 'figures', 'samples.png'))).toBe(false);
    // ...and the report links no heatmap grid it does not have.
    expect(readFileSync(join(out, 'report.md'), 'utf8')).not.toContain('samples.png');
    expect(readFileSync(join(out, 'report.json'), 'utf8')).toContain('"formatVersion": 1');
  });
});

describe('buildReport', () => {
  beforeAll(async () => {
    await initBackend({ backend: 'cpu' });
  });

  it('reports null, not a failure, where a task was learned without evaluation', () => {
    const det = new ContinualDetector(TINY_CONFIG);
    const calibration = { className: 'a', descriptorMean: [0], descriptorStd: [1], scoreMean: 0, scoreStd: 1, pixelMean: 0, pixelStd: 1 };
    const task = (index: number, cls: string) => ({
      index,
      classes: [cls],
      steps: 1,
      trainSeconds: 1,
      finalLoss: 0.1,
      lossCurve: [0.1],
      projection: 'none' as const,
      basisRank: 0,
      basisBytes: 0,
    });
    const learned = (cls: string, index: number) => ({
      className: cls,
      task: index,
      tStart: 40,
      selection: [],
      calibration: { ...calibration, className: cls },
      trainImages: 4,
      validationImages: 2,
    });
    det.restore([learned('a', 0), learned('b', 1)], [task(0, 'a'), task(1, 'b')]);
    const metrics = (v: number, pixel: number | null) => ({ image_auroc: v, image_ap: v, pixel_auroc: pixel, pixel_ap: pixel, pixel_aupro: pixel });
    // Task 1 learned with evaluation off; task 2 evaluated, on a dataset without masks.
    const report = buildReport(
      det,
      {
        rows: [{}, { a: metrics(0.8, null), b: metrics(0.9, null) }],
        pooled: [
          { raw: Number.NaN, calibrated: Number.NaN, routing: Number.NaN },
          { raw: 0.7, calibrated: 0.75, routing: 1 },
        ],
        seed: 0,
      },
      true,
    );
    det.dispose();
    expect(report.curve[0]).toMatchObject({ avg_image_auroc: null, avg_pixel_auroc: null, pooled_image_auroc_raw: null });
    expect(report.curve[1]!.avg_image_auroc).toBeCloseTo(0.85, 12);
    expect(report.curve[1]!.avg_pixel_auroc).toBeNull();
    // Forgetting needs the score right after class a was learned, which was not measured.
    expect(report.curve[1]!.image_auroc_forgetting).toBeNull();
    expect(report.curve[1]!.pooled_image_auroc_calibrated).toBe(0.75);
  });
});
