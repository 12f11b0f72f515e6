/**
 * `ofm metrics` through the built binary, in a subprocess. Build first:
 * `pnpm --filter @ofm/cli... build`.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writePng } from '@ofm/datasets';
import { encodeScoreMap, evaluateDetections } from '@ofm/metrics';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bin, ofm } from './helpers';


let dir: string;
async function inputFile(name: string, content: unknown): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

// Three 4 x 3 images: one normal, two with defects; maps that mostly find them.
const W = 4;
const H = 3;
const masks = [
  [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
  [1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
  [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 1],
];
const maps = [
  [0.1, 0.2, 0.1, 0.3, 0.2, 0.1, 0.4, 0.1, 0.2, 0.1, 0.1, 0.2],
  [0.9, 0.8, 0.1, 0.2, 0.5, 0.1, 0.2, 0.3, 0.1, 0.6, 0.2, 0.1],
  [0.2, 0.1, 0.3, 0.2, 0.1, 0.2, 0.1, 0.7, 0.2, 0.1, 0.8, 0.4],
];
const imageScores = [0.4, 0.9, 0.8];
const imageLabels = [0, 1, 1];

beforeAll(async () => {
  if (!existsSync(bin)) {
    throw new Error(`${bin} does not exist: build the CLI first with \`pnpm --filter @ofm/cli... build\``);
  }
  dir = await mkdtemp(join(tmpdir(), 'ofm-cli-metrics-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('ofm metrics', () => {
  it('--json on image scores only: the scikit-learn example', async () => {
    const input = await inputFile('image.json', { image_scores: [0.1, 0.4, 0.35, 0.8], image_labels: [0, 0, 1, 1] });
    const { stdout, stderr, code } = await ofm(['metrics', '--input', input, '--json']);
    expect(code, stderr).toBe(0);
    const out = JSON.parse(stdout);
    expect(Object.keys(out)).toEqual(['image_auroc', 'image_ap', 'image_f1max']);
    expect(out.image_auroc).toBeCloseTo(0.75, 12);
    expect(out.image_ap).toBeCloseTo(5 / 6, 12);
    expect(out.image_f1max).toBeCloseTo(0.8, 12);
  });

  it('computes pixel metrics from inline arrays, equal to @ofm/metrics', async () => {
    const input = await inputFile('inline.json', {
      image_scores: imageScores,
      image_labels: imageLabels,
      pixel_scores: maps,
      pixel_masks: masks,
      width: W,
      height: H,
    });
    const { stdout, stderr, code } = await ofm(['metrics', '--input', input, '--json']);
    expect(code, stderr).toBe(0);
    const expected = evaluateDetections({ imageScores, imageLabels, pixelScores: maps, pixelMasks: masks, width: W, height: H });
    expect(JSON.parse(stdout)).toEqual(expected);
  });

  it('reads PNG masks and OFMS score-map files, relative to the input file', async () => {
    await mkdir(join(dir, 'files', 'gt'), { recursive: true });
    await mkdir(join(dir, 'files', 'maps'), { recursive: true });
    for (let i = 0; i < 3; i++) {
      const bytes = Uint8Array.from(masks[i]!, (m) => m * 255);
      await writePng(join(dir, 'files', 'gt', `${i}.png`), { data: bytes, width: W, height: H, channels: 1 });
      await writeFile(join(dir, 'files', 'maps', `${i}.ofms`), encodeScoreMap({ data: maps[i]!, width: W, height: H }));
    }
    const input = await inputFile('files/input.json', {
      image_scores: imageScores,
      image_labels: imageLabels,
      pixel_scores: ['maps/0.ofms', maps[1], 'maps/2.ofms'],
      pixel_masks: ['gt/0.png', 'gt/1.png', masks[2]],
    });
    const { stdout, stderr, code } = await ofm(['metrics', '--input', input, '--json']);
    expect(code, stderr).toBe(0);
    const f32 = maps.map((m) => Float32Array.from(m));
    const expected = evaluateDetections({ imageScores, imageLabels, pixelScores: [f32[0]!, maps[1]!, f32[2]!], pixelMasks: masks, width: W, height: H });
    expect(JSON.parse(stdout)).toEqual(expected);

    const table = await ofm(['metrics', '--input', input]);
    expect(table.stdout).toMatch(/^metric\s+value\n/);
    expect(table.stdout).toMatch(new RegExp(`pixel AUPRO \\(FPR <= 0.3\\)\\s+${expected.pixel_aupro!.toFixed(4)}`));
    expect(table.stdout).toMatch(new RegExp(`image AUROC\\s+${expected.image_auroc.toFixed(4)}`));
  });

  it('prints null / n/a for a metric that needs both classes', async () => {
    const input = await inputFile('oneclass.json', { image_scores: [0.2, 0.3], image_labels: [1, 1] });
    const json = JSON.parse((await ofm(['metrics', '--input', input, '--json'])).stdout);
    expect(json.image_auroc).toBeNull();
    expect(json.image_ap).toBe(1);
    expect((await ofm(['metrics', '--input', input])).stdout).toMatch(/image AUROC\s+n\/a/);
  });

  it('gives one clear line and exit code 2 for bad input', async () => {
    await writeFile(join(dir, 'bad.ofms'), 'not a map');
    const cases: Array<[unknown, RegExp]> = [
      ['{ not json', /not valid JSON/],
      [{ image_labels: [0, 1] }, /image_scores must be an array of finite numbers/],
      [{ image_scores: [0.1, 0.2, 0.3], image_labels: [0, 1] }, /3 scores but 2 labels/],
      [{ image_scores: [0.1, 0.2], image_labels: [0, 1], pixel_scores: [[0.1], [0.2]] }, /need both pixel_scores and pixel_masks/],
      [{ image_scores: [0.1, 0.2], image_labels: [0, 1], pixel_scores: ['bad.ofms', [0]], pixel_masks: [[0], [1]] }, /bad.ofms: not an OFMS score map/],
      [{ image_scores: [0.1, 0.2], image_labels: [0, 1], pixel_scores: ['missing.ofms', [0]], pixel_masks: [[0], [1]] }, /missing.ofms: cannot read this score map \(listed as pixel_scores\[0\]/],
      [{ image_scores: [0.1, 0.2], image_labels: [0, 1], pixel_scores: [[0.1], [0.2]], pixel_masks: [[0], 'nope.png'] }, /nope.png: cannot read the mask \(no such file\)/],
      [{ image_scores: [0.1, 0.2], image_labels: [0, 1], pixel_scores: [[0.1, 0.2], [0.2]], pixel_masks: [[0], [1]] }, /anomaly map 0 is .* but its mask has 1 values|2 scores but 1 labels/],
    ];
    const inputs = await Promise.all(cases.map(([content], i) => inputFile(`bad-${i}.json`, content)));
    // Independent runs: start them together (each CLI process spends most of its time starting up).
    const [missing, limit, ...results] = await Promise.all([
      ofm(['metrics', '--input', join(dir, 'absent.json')]),
      ofm(['metrics', '--input', join(dir, 'inline.json'), '--fpr-limit', '2']),
      ...inputs.map((input) => ofm(['metrics', '--input', input])),
    ]);
    results.forEach((r, i) => {
      const [content, message] = cases[i]!;
      expect(r!.code, JSON.stringify(content)).toBe(2);
      expect(r!.stderr, JSON.stringify(content)).toMatch(message);
      expect(r!.stderr.trim().split('\n'), r!.stderr).toHaveLength(1);
    });
    expect(missing!.code).toBe(2);
    expect(missing!.stderr).toMatch(/absent.json: cannot read the input file/);
    expect(limit!.code).toBe(2);
    expect(limit!.stderr).toMatch(/--fpr-limit must be a number in \(0, 1\], got "2"/);
  });
});
