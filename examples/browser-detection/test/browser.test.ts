// The browser example end to end: train the page's model in Node, bundle the page with Vite,
// serve the bundle, and in headless Chromium (Debian's `chromium` through playwright-core) pick a
// good and a defective image. The page must score both exactly as the same checkpoint does in Node.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execFileSync } from 'node:child_process';
import { readImage } from '@ofm/datasets';
import { loadDetector } from '@ofm/detector';
import { initBackend } from '@ofm/tensor';
import { type Browser, chromium } from 'playwright-core';
import { type PreviewServer, build, preview } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'ofm-example-browser-'));
const publicDir = join(work, 'public');
const outDir = join(work, 'dist');
let server: PreviewServer;
let browser: Browser;

beforeAll(async () => {
  execFileSync(process.execPath, ['--import', 'tsx', 'scripts/make-model.ts', publicDir], { cwd: ROOT, stdio: 'inherit' });
  await build({ root: ROOT, publicDir, logLevel: 'warn', build: { outDir, emptyOutDir: true } });
  server = await preview({ root: ROOT, build: { outDir }, preview: { port: 0, host: '127.0.0.1' }, logLevel: 'warn' });
  // Debian's chromium (apt-get install -y chromium) or OFM_CHROMIUM; the flags of DEVELOPERS.md.
  const executablePath = process.env.OFM_CHROMIUM ?? '/usr/bin/chromium';
  if (!existsSync(executablePath)) throw new Error(`${executablePath} not found: install Debian's chromium (apt-get install -y chromium) or set OFM_CHROMIUM`);
  const args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
  browser = await chromium.launch({ executablePath, args });
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('browser example', () => {
  it('bundles the browser entry points only: no sharp and no Node file-system code in the page', () => {
    const assets = readdirSync(join(outDir, 'assets'));
    expect(assets.some((f) => /^tfjs-backend-wasm-simd-.*\.wasm$/.test(f))).toBe(true);
    const code = assets.filter((f) => f.endsWith('.js')).map((f) => readFileSync(join(outDir, 'assets', f), 'utf8')).join('\n');
    // Strings that survive minification: sharp's module name, the VisA loader's default split file,
    // the Node-only report's figure paths.
    expect(code).not.toMatch(/sharp/);
    expect(code).not.toMatch(/split_csv|figures\/matrix/);
  });

  it('detects in the page with the same scores as Node on the same checkpoint', async () => {
    await initBackend({ backend: 'wasm' });
    const { detector } = await loadDetector(join(publicDir, 'model'));
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    await page.goto(server.resolvedUrls!.local[0]!);
    await page.waitForFunction(() => !document.querySelector<HTMLInputElement>('#file')!.disabled, null, { timeout: 60_000 });
    expect(await page.textContent('#status')).toMatch(/^Model loaded \(washer; wasm backend\)/);

    for (const name of ['good', 'defect']) {
      const file = join(publicDir, 'samples', `${name}.png`);
      await page.setInputFiles('#file', file);
      await page.waitForFunction((n) => document.querySelector('#result')!.textContent!.startsWith(`${n}.png:`), name);
      const pageScore = Number(await page.getAttribute('#result', 'data-score'));
      const image = await readImage(file, { size: detector.config.imageSize });
      const [inNode] = detector.detect([image.data]);
      expect(Number.isFinite(pageScore)).toBe(true);
      expect(pageScore).toBeCloseTo(inNode!.score, 3);
      expect(await page.$eval('#heatmap', (c: HTMLCanvasElement) => c.width)).toBe(detector.config.imageSize);
    }
    expect(errors).toEqual([]);
    detector.dispose();
  });
});
