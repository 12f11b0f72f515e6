/**
 * The web demo end to end, in real headless Chromium (Debian's `chromium`, driven by
 * playwright-core; flags in DEVELOPERS.md): build the app with Vite, train a small model on the
 * synthetic data with the built `ofm` CLI and export it, serve both, then load the model in the page,
 * drop a good and a defective image, and check the heatmap's peak against the defect's ground truth;
 * bad input (a non-image, a huge image, an oversized image, an export of another format version, a
 * training checkpoint) must show a clear message; the dashboard must show the run's report.
 * Screenshots land in `apps/demo/.artifacts/`.
 *
 * Needs: `pnpm --filter @ofm/demo... build` (the CLI and the packages' dist) and
 * `apt-get install chromium` (set OFM_CHROMIUM to use another binary).
 */
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCheckpointArrays, saveCheckpoint } from '@ofm/tensor';
import { type Browser, type Page, chromium } from 'playwright-core';
import sharp from 'sharp';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ofm } from '../../cli/test/helpers';
import { DEMO_ROOT, type StaticServer, serveStatic } from '../scripts/serve';

/** The flags documented in DEVELOPERS.md. */
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];
const CHROMIUM = process.env.OFM_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = join(DEMO_ROOT, '.artifacts');

/**
 * A model that localises the synthetic "hole" defect on tiles after one minute of CPU training:
 * 32 px, a 0.16 M-parameter UNet (16/32 channels, no attention), a one-layer AMN, 60 steps.
 */
const E2E_CONFIG = {
  imageSize: 32,
  unet: { model_channels: 16, channel_mult: [1, 2], attention_resolutions: [], num_heads: 2, groupnorm_groups: 4, time_embed_dim: 32 },
  amn: { enabled: true, hintChannels: [8, 16], dim: 16, layers: 1, heads: 2, ffn: 32, dropout: 0, maskSize: 3 },
  training: { steps: 60, batchSize: 8, lr: 2e-3, maxTimestep: 300 },
  reconstruction: { tStartCandidates: [100, 200], steps: 3 },
  continual: { collectImages: 4, maxRowsPerCall: 32 },
  validation: { fraction: 0.2, minImages: 4 },
  seed: 1,
};

let dir: string;
let data: string;
let server: StaticServer;
let browser: Browser;
let page: Page;

async function runOfm(args: string[]): Promise<string> {
  const r = await ofm(args);
  if (r.code !== 0) throw new Error(`ofm ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** Synthetic data, a trained checkpoint and its export. */
async function makeModel(): Promise<void> {
  await runOfm(['synth', '--out', data, '--classes', 'tiles', '--size', '32', '--n-train', '30', '--n-test-good', '2', '--n-test-bad', '3', '--seed', '1']);
  await writeFile(join(dir, 'config.json'), JSON.stringify(E2E_CONFIG));
  await runOfm(['train', '--data', data, '--tasks', 'tiles', '--out', join(dir, 'checkpoint'), '--config', join(dir, 'config.json'), '--backend', 'wasm', '--quiet']);
  const exported = JSON.parse(await runOfm(['export', join(dir, 'checkpoint'), '--out', join(dir, 'model'), '--json']));
  expect(exported).toMatchObject({ classes: ['tiles'], format_version: 1, report: 'report/report.json' });
  // The same export, written as a format version this build does not read.
  const { arrays, meta } = await loadCheckpointArrays<Record<string, unknown>>(join(dir, 'model'));
  await saveCheckpoint(join(dir, 'model-v99'), arrays, { ...meta, version: 99 });
}

/** The 0/1 ground-truth mask of a synthetic defect image, at 32 x 32. */
async function groundTruth(defect: string): Promise<Uint8Array> {
  const { data: bytes, info } = await sharp(join(data, 'tiles', 'ground_truth', defect, '000_mask.png')).raw().toBuffer({ resolveWithObject: true });
  return Uint8Array.from({ length: info.width * info.height }, (_, i) => (bytes[i * info.channels]! > 127 ? 1 : 0));
}

/** Set the page's file input and wait for the result (or a message) for that file. */
async function detect(file: string, name: string): Promise<{ score: number; peak: { x: number; y: number } }> {
  await page.getByTestId('file-input').setInputFiles(file);
  const result = page.locator(`[data-testid=result][data-image="${name}"]`);
  await result.waitFor({ timeout: 60_000 });
  return {
    score: Number(await result.getAttribute('data-score')),
    peak: { x: Number(await result.getAttribute('data-peak-x')), y: Number(await result.getAttribute('data-peak-y')) },
  };
}

async function openModel(model: string): Promise<string> {
  await page.goto(`${server.url}?model=${model}`);
  const status = page.locator('[data-testid=model-status]:not([data-state=loading])');
  await status.waitFor({ timeout: 60_000 });
  return (await status.getAttribute('data-state'))!;
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium) or set OFM_CHROMIUM`);
  dir = await mkdtemp(join(tmpdir(), 'ofm-demo-e2e-'));
  data = join(dir, 'data');
  await mkdir(ARTIFACTS, { recursive: true });
  const app = join(dir, 'app');
  await Promise.all([build({ root: DEMO_ROOT, logLevel: 'warn', build: { outDir: app, emptyOutDir: true } }), makeModel()]);
  server = await serveStatic({
    app,
    mounts: { '/model/': join(dir, 'model'), '/model-v99/': join(dir, 'model-v99'), '/checkpoint/': join(dir, 'checkpoint') },
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS });
  page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('web demo in headless Chromium', () => {
  it('loads the exported model and localises a defect inside its ground truth', async () => {
    expect(await openModel('model/')).toBe('ready');
    expect(await page.getByTestId('known-classes').innerText()).toContain('tiles');
    // The backend registry of @ofm/tensor chose it: no GPU here (--disable-gpu), so WebGPU and
    // WebGL were passed over, each with its reason, and wasm runs.
    const backend = page.getByTestId('backend');
    expect(await backend.innerText()).toMatch(/tfjs backend: wasm \(SIMD, 1 thread\)/);
    const notes = (await backend.getAttribute('title')) ?? '';
    expect(notes).toMatch(/^webgpu: .+/m);
    expect(notes).toMatch(/^webgl: .+/m);
    const good = await detect(join(data, 'tiles', 'test', 'good', '000.png'), '000.png');
    await expect.poll(() => page.getByTestId('verdict').innerText()).toMatch(/normal/i);
    const hole = join(dir, 'hole.png');
    await cp(join(data, 'tiles', 'test', 'hole', '000.png'), hole);
    const bad = await detect(hole, 'hole.png');
    const mask = await groundTruth('hole');
    expect(mask.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    expect(mask[bad.peak.y * 32 + bad.peak.x], `peak (${bad.peak.x}, ${bad.peak.y}) outside the hole`).toBe(1);
    expect(bad.score).toBeGreaterThan(good.score);
    expect(await page.getByTestId('verdict').innerText()).toMatch(/anomalous/i);
    await page.screenshot({ path: join(ARTIFACTS, 'e2e.png'), fullPage: true });
  });

  it('shows a clear message for a non-image, a huge image and an oversized image', async () => {
    expect(await openModel('model/')).toBe('ready');
    const notImage = join(dir, 'notes.png');
    await writeFile(notImage, 'these are notes, not pixels');
    await page.getByTestId('file-input').setInputFiles(notImage);
    await expect.poll(() => page.getByTestId('message').innerText()).toMatch(/notes\.png is not an image this page can read/);

    // 6000 x 4000: decoded straight to the preview size and resized for the model.
    const huge = join(dir, 'huge.png');
    await sharp({ create: { width: 6000, height: 4000, channels: 3, background: '#b4643c' } }).png().toFile(huge);
    await detect(huge, 'huge.png');
    expect(await page.getByTestId('message').innerText()).toMatch(/Resized from 6000×4000 to 32×32/);

    // A header claiming 20000 x 20000 pixels is refused before any decoding.
    const header = Buffer.from((await readFile(huge)).subarray(0, 33));
    header.writeUInt32BE(20_000, 16);
    header.writeUInt32BE(20_000, 20);
    const oversized = join(dir, 'oversized.png');
    await writeFile(oversized, header);
    await page.getByTestId('file-input').setInputFiles(oversized);
    await expect.poll(() => page.getByTestId('message').innerText()).toMatch(/20000×20000 \(400 megapixels\).*Downscale it first/);
  });

  it('refuses an export of another format version and a training checkpoint, saying what to do', async () => {
    expect(await openModel('model-v99/')).toBe('error');
    expect(await page.getByTestId('message').innerText()).toMatch(/format version 99.*reads version 1.*ofm export/);
    expect(await openModel('checkpoint/')).toBe('error');
    expect(await page.getByTestId('message').innerText()).toMatch(/is a training checkpoint, not an exported model.*ofm export/);
  });

  it("shows the run's report on the dashboard", async () => {
    await page.goto(`${server.url}?model=model/#/dashboard`);
    const summary = page.getByTestId('summary');
    await summary.waitFor({ timeout: 60_000 });
    expect(await summary.innerText()).toMatch(/avg image AUROC\s+[01]\.\d{3}/);
    const matrix = page.getByTestId('matrix');
    expect(await matrix.locator('thead').innerText()).toContain('tiles');
    expect(await matrix.locator('tbody td').first().innerText()).toMatch(/^[01]\.\d{3}$/);
    await page.screenshot({ path: join(ARTIFACTS, 'e2e-dashboard.png'), fullPage: true });
  });
});
