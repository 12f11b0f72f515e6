/**
 * `ofm serve` through the built binary, over real HTTP on ephemeral ports, with real PNGs and a
 * real tiny checkpoint: the scores of `ofm detect`, bad and oversized bodies, a full queue, the
 * reload token, hot reload while `ofm train --resume` adds a task in another process, a corrupt
 * checkpoint refused while the old model serves on, graceful drain, startup errors.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, readdirSync, watch } from 'node:fs';
import { cp, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bin, expectRefused, ofm, tinyFixture } from './helpers';

let dir: string;
let data: string;
let ckpt: string;
const children: ChildProcess[] = [];
/** A copy of the three-task checkpoint the hot reload test trains (empty until then). */
let threeTasks = '';

interface Served {
  url: string;
  proc: ChildProcess;
  log(): string;
  exit: Promise<number | null>;
  stop(): Promise<number | null>;
}

/** Start `ofm serve --port 0 ...args` and wait for its "listening on" line. */
async function serve(args: string[], env: Record<string, string | undefined> = {}): Promise<Served> {
  const childEnv: Record<string, string | undefined> = { ...process.env, OFM_SERVE_TOKEN: undefined, ...env };
  for (const key of Object.keys(childEnv)) if (childEnv[key] === undefined) delete childEnv[key];
  const proc = spawn(process.execPath, [bin, 'serve', '--port', '0', '--backend', 'wasm', ...args], {
    env: childEnv as NodeJS.ProcessEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(proc);
  let log = '';
  proc.stderr!.on('data', (d: Buffer) => {
    log += d.toString();
  });
  proc.stdout!.resume();
  const exit = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setInterval(() => {
      const m = /listening on (http:\/\/\S+)/.exec(log);
      if (m) {
        clearInterval(timer);
        resolve(m[1]!);
      }
    }, 25);
    void exit.then((code) => {
      clearInterval(timer);
      reject(new Error(`ofm serve exited with ${code} before listening: ${log}`));
    });
  });
  return {
    url,
    proc,
    log: () => log,
    exit,
    stop: async () => {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      return exit;
    },
  };
}

interface DetectReply {
  status: number;
  headers: Headers;
  body: Record<string, unknown> & { images: Record<string, unknown>[]; error?: string; message?: string };
}

async function post(url: string, body: BodyInit, contentType?: string, query = ''): Promise<DetectReply> {
  const r = await fetch(`${url}/v1/detect${query}`, { method: 'POST', body, headers: contentType ? { 'content-type': contentType } : {} });
  return { status: r.status, headers: r.headers, body: (await r.json()) as DetectReply['body'] };
}

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(url);
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

/** A request that sends its headers and a few body bytes, then holds the connection open (it occupies a processing slot). */
function heldRequest(url: string): {
  response: Promise<{ status: number; body: string; headers: Record<string, unknown> }>;
  finish(rest: Buffer): void;
  abort(): void;
  sent: Buffer;
} {
  const u = new URL(`${url}/v1/detect`);
  const image = readFileSync(images()[0]!);
  const req = httpRequest({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { 'content-type': 'image/png', 'content-length': image.length } });
  const response = new Promise<{ status: number; body: string; headers: Record<string, unknown> }>((resolve, reject) => {
    req.on('response', (res) => {
      let body = '';
      res.on('data', (d: Buffer) => {
        body += d.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
  });
  response.catch(() => {});
  req.write(image.subarray(0, 16));
  return {
    response,
    sent: image,
    finish: (rest) => req.end(rest),
    abort: () => req.destroy(),
  };
}

/** Test images of tiles and washer: normal and defective. */
function images(): string[] {
  const out: string[] = [];
  for (const cls of ['tiles', 'washer']) {
    const test = join(data, cls, 'test');
    for (const kind of readdirSync(test).sort()) out.push(...readdirSync(join(test, kind)).sort().slice(0, 2).map((f) => join(test, kind, f)));
  }
  return out;
}

async function until(what: string, check: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ofm-cli-serve-'));
  ({ data, ckpt } = await tinyFixture(dir));
});
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.pid !== undefined) c.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

describe('ofm serve', () => {
  it('scores every image exactly as ofm detect does, alone, concurrently and in multipart; the export too', async () => {
    const files = images();
    const overlays = join(dir, 'overlays');
    const cli = await ofm(['detect', ...files, '--ckpt', ckpt, '--json', '--out', overlays]);
    expect(cli.code, cli.stderr).toBe(0);
    const expected = (JSON.parse(cli.stdout) as { images: { path: string; score: number; raw_score: number; anomalous: boolean; class: string; overlay: string }[] }).images;
    const compare = (got: Record<string, unknown>, want: (typeof expected)[number]) => {
      expect(Math.abs((got.score as number) - want.score), want.path).toBeLessThanOrEqual(1e-6);
      expect(Math.abs((got.raw_score as number) - want.raw_score), want.path).toBeLessThanOrEqual(1e-6);
      expect(got.anomalous).toBe(want.anomalous);
      expect(got.class).toBe(want.class);
    };

    // Batching on: concurrent requests share detection batches, and must still score as ofm detect.
    const s = await serve(['--ckpt', ckpt, '--concurrency', '16', '--max-batch', '8', '--batch-window-ms', '100']);
    try {
      // One at a time, each with map and overlay.
      const one = await post(s.url, readFileSync(files[0]!), 'image/png', '?map=1&overlay=1');
      expect(one.status).toBe(200);
      expect(one.body).toMatchObject({ checkpoint: ckpt, model_generation: 1, threshold: 3, map_range_max: 6 });
      expect(one.body.images).toHaveLength(1);
      const first = one.body.images[0]!;
      compare(first, expected[0]!);
      expect(first).toMatchObject({ name: null, map_size: 24, source_width: 24, source_height: 24 });
      // The overlay is the very PNG ofm detect --out wrote.
      expect(Buffer.from(first.overlay_png as string, 'base64').equals(readFileSync(expected[0]!.overlay))).toBe(true);
      // The map PNG: 24 x 24 grey, brightest at the reported peak.
      const mapPng = Buffer.from(first.map_png as string, 'base64');
      const mapMeta = await sharp(mapPng).metadata();
      expect([mapMeta.format, mapMeta.width, mapMeta.height, mapMeta.channels]).toEqual(['png', 24, 24, 1]);
      const map = await sharp(mapPng).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
      const peakGrey = map.data[(first.peak_y as number) * 24 + (first.peak_x as number)]!;
      expect(peakGrey).toBe(Math.max(...map.data));
      expect(peakGrey).toBe(Math.round(255 * Math.min(1, Math.max(0, (first.peak_value as number) / 6))));

      // All at once, one image per request: they share detection batches (--max-batch 8).
      const concurrent = await Promise.all(files.map((f) => post(s.url, readFileSync(f), 'image/png')));
      concurrent.forEach((r, i) => {
        expect(r.status).toBe(200);
        expect(r.body.images[0]!.map_png).toBeNull();
        compare(r.body.images[0]!, expected[i]!);
      });
      // Several images in one multipart request, in order, with their file names.
      const form = new FormData();
      for (const f of files) form.append('image', new Blob([readFileSync(f)], { type: 'image/png' }), f.split('/').slice(-2).join('_'));
      const multi = await post(s.url, form);
      expect(multi.status).toBe(200);
      expect(multi.body.images).toHaveLength(files.length);
      multi.body.images.forEach((img, i) => {
        expect(img.name).toBe(files[i]!.split('/').slice(-2).join('_'));
        compare(img, expected[i]!);
      });
      // A JPEG of a larger image is decoded and resized as ofm detect does.
      const big = join(dir, 'big.jpg');
      await sharp(files[1]!).resize(48, 48).jpeg({ quality: 95 }).toFile(big);
      const bigCli = JSON.parse((await ofm(['detect', big, '--ckpt', ckpt, '--json'])).stdout).images[0];
      const bigServed = await post(s.url, readFileSync(big), 'image/jpeg');
      compare(bigServed.body.images[0]!, bigCli);
      expect(bigServed.body.images[0]).toMatchObject({ source_width: 48, source_height: 48 });

      const model = await getJson(`${s.url}/v1/model`);
      expect(model.status).toBe(200);
      expect(model.body).toMatchObject({
        checkpoint: ckpt,
        kind: 'checkpoint',
        format: 'ofm-detector',
        format_version: 1,
        model_generation: 1,
        image_size: 24,
        tasks: [
          { index: 1, classes: ['tiles'] },
          { index: 2, classes: ['washer'] },
        ],
        reloads: 0,
        reload_failures: 0,
        last_reload_error: null,
      });
      expect(model.body.model_checksum).toMatch(/^[0-9a-f]{64}$/);
      expect((model.body.config as { imageSize: number }).imageSize).toBe(24);
      expect(await getJson(`${s.url}/healthz`)).toEqual({ status: 200, body: { status: 'ok' } });
      expect(await getJson(`${s.url}/readyz`)).toEqual({ status: 200, body: { status: 'ready', model_generation: 1 } });
      // Without a token the reload route is disabled.
      const reload = await fetch(`${s.url}/v1/reload`, { method: 'POST' });
      expect(reload.status).toBe(403);
      expect(((await reload.json()) as { error: string }).error).toBe('forbidden');
      const metrics = await (await fetch(`${s.url}/metrics`)).text();
      expect(metrics).toMatch(/^ofm_serve_requests_total\{method="POST",route="\/v1\/detect",status="200"\} (\d+)$/m);
      const ok = Number(/^ofm_serve_requests_total\{method="POST",route="\/v1\/detect",status="200"\} (\d+)$/m.exec(metrics)![1]);
      expect(ok).toBe(files.length + 3);
      expect(metrics).toMatch(/^ofm_serve_request_duration_seconds_bucket\{le="\+Inf",route="\/v1\/detect"\} \d+$/m);
      expect(metrics).toMatch(/^ofm_serve_queue_depth 0$/m);
      expect(metrics).toMatch(/^ofm_serve_model_generation 1$/m);
      expect(metrics).toMatch(/^ofm_serve_model_reload_failures_total 0$/m);
      const batches = Number(/^ofm_serve_detect_batch_images_count (\d+)$/m.exec(metrics)![1]);
      const detected = Number(/^ofm_serve_images_total (\d+)$/m.exec(metrics)![1]);
      expect(detected).toBe(2 * files.length + 2);
      // Fewer batches than images: some batch held images of several requests.
      expect(batches).toBeLessThan(detected);
      expect(await s.stop()).toBe(0);
    } finally {
      if (s.proc.exitCode === null) s.proc.kill('SIGKILL');
    }

    // The browser export of the checkpoint, served with --model, gives the same numbers.
    const web = join(dir, 'web');
    expect((await ofm(['export', ckpt, '--out', web])).code).toBe(0);
    const e = await serve(['--model', web]);
    try {
      const form = new FormData();
      for (const f of files) form.append('image', new Blob([readFileSync(f)], { type: 'image/png' }), 'x.png');
      const multi = await post(e.url, form);
      expect(multi.status).toBe(200);
      multi.body.images.forEach((img, i) => compare(img, expected[i]!));
      expect((await getJson(`${e.url}/v1/model`)).body).toMatchObject({ kind: 'export', format: 'ofm-detector-export' });
    } finally {
      await e.stop();
    }
  });

  it('refuses non-image, empty, oversized and too-large images with a clear JSON error', async () => {
    const s = await serve(['--ckpt', ckpt, '--max-body-mb', '0.05', '--max-pixels', '1000', '--max-images', '3', '--quiet']);
    try {
      const png = readFileSync(images()[0]!);
      const expectError = (r: DetectReply, status: number, error: string, message: RegExp) => {
        expect(r.status, JSON.stringify(r.body)).toBe(status);
        expect(r.body.error).toBe(error);
        expect(r.body.message).toMatch(message);
      };
      expectError(await post(s.url, 'hello', 'text/plain'), 415, 'unsupported_media_type', /expected an image body.*got text\/plain/);
      expectError(await post(s.url, '{"image":1}', 'application/json'), 415, 'unsupported_media_type', /application\/json/);
      expectError(await post(s.url, 'not a png at all', 'image/png'), 400, 'bad_image', /cannot decode the image/);
      expectError(await post(s.url, png.subarray(0, png.length >> 1), 'image/png'), 400, 'bad_image', /cannot decode/);
      expectError(await post(s.url, new Uint8Array(0), 'image/png'), 400, 'no_image', /empty/);
      const noFile = new FormData();
      noFile.append('note', 'no image here');
      expectError(await post(s.url, noFile), 400, 'no_image', /no file part/);
      const badPart = new FormData();
      badPart.append('a', new Blob([png], { type: 'image/png' }), 'good.png');
      badPart.append('b', new Blob(['junk'], { type: 'image/png' }), 'junk.png');
      expectError(await post(s.url, badPart), 400, 'bad_image', /image 'junk.png'/);
      // 64 KiB > 0.05 MiB: refused before decoding, as a body and as a multipart file.
      const large = new Uint8Array(64 * 1024).fill(7);
      expectError(await post(s.url, large, 'image/png'), 413, 'body_too_large', /0\.05 MiB \(--max-body-mb\)/);
      const largeForm = new FormData();
      largeForm.append('a', new Blob([large], { type: 'image/png' }), 'large.png');
      expectError(await post(s.url, largeForm), 413, 'body_too_large', /--max-body-mb/);
      const many = new FormData();
      for (let i = 0; i < 4; i++) many.append('a', new Blob([png], { type: 'image/png' }), `${i}.png`);
      expectError(await post(s.url, many), 413, 'too_many_images', /at most 3 images/);
      // 40 x 40 = 1600 pixels > --max-pixels 1000 (a small file).
      const wide = await sharp({ create: { width: 40, height: 40, channels: 3, background: '#808080' } }).png().toBuffer();
      expectError(await post(s.url, new Uint8Array(wide), 'image/png'), 413, 'image_too_large', /40 x 40 pixels, more than 1000 \(--max-pixels\)/);
      expectError(await post(s.url, png, 'image/png', '?threshold=abc'), 400, 'bad_request', /\?threshold must be a number, got "abc"/);
      expectError(await post(s.url, png, 'image/png', '?threshold=1&threshold=2'), 400, 'bad_request', /\?threshold is given more than once/);
      // A per-request threshold: far below any score, every image is anomalous.
      const low = await post(s.url, png, 'image/png', '?threshold=-1000');
      expect(low.status).toBe(200);
      expect(low.body).toMatchObject({ threshold: -1000, map_range_max: 1 });
      expect(low.body.images[0]!.anomalous).toBe(true);
      expect((await fetch(`${s.url}/v1/nothing`)).status).toBe(404);
      // The server is unharmed.
      const fine = await post(s.url, png, 'image/png');
      expect(fine.status).toBe(200);
      const metrics = await (await fetch(`${s.url}/metrics`)).text();
      expect(metrics).toMatch(/^ofm_serve_requests_total\{method="POST",route="\/v1\/detect",status="413"\} 4$/m);
      expect(metrics).toMatch(/^ofm_serve_requests_total\{method="POST",route="\/v1\/detect",status="415"\} 2$/m);
      expect(await s.stop()).toBe(0);
      // --quiet: the listening line only.
      expect(s.log().trim().split('\n')).toEqual([expect.stringMatching(/^serve: listening on http/)]);
    } finally {
      await s.stop();
    }
  });

  it('answers 503 with Retry-After when the queue is full, and times out a request that waits too long', async () => {
    const s = await serve(['--ckpt', ckpt, '--concurrency', '1', '--queue', '1', '--timeout-ms', '1500']);
    try {
      // A holds the only processing slot (its body is still coming); B waits in the queue.
      const a = heldRequest(s.url);
      await new Promise((r) => setTimeout(r, 200));
      const b = heldRequest(s.url);
      await new Promise((r) => setTimeout(r, 200));
      const c = await post(s.url, readFileSync(images()[0]!), 'image/png');
      expect(c.status).toBe(503);
      expect(c.headers.get('retry-after')).toBe('1');
      expect(c.body.error).toBe('busy');
      expect(c.body.message).toMatch(/1 request\(s\) in progress and 1 waiting/);
      // B's deadline passes in the queue: 503 timeout.
      const bReply = await b.response;
      expect(bReply.status).toBe(503);
      expect(JSON.parse(bReply.body).error).toBe('timeout');
      expect(bReply.headers['retry-after']).toBe('1');
      a.abort();
      b.abort();
      // Once A is gone the slot is free again.
      await until('a free slot', async () => (await post(s.url, readFileSync(images()[0]!), 'image/png')).status === 200, 10_000);
      const metrics = await (await fetch(`${s.url}/metrics`)).text();
      expect(metrics).toMatch(/^ofm_serve_requests_total\{method="POST",route="\/v1\/detect",status="503"\} 2$/m);
    } finally {
      await s.stop();
    }
  });

  it('reloads on POST /v1/reload only with the bearer token', async () => {
    const s = await serve(['--ckpt', ckpt, '--reload-interval', '0'], { OFM_SERVE_TOKEN: 'sesame' });
    try {
      const reload = (auth?: string) => fetch(`${s.url}/v1/reload`, { method: 'POST', headers: auth ? { authorization: auth } : {} });
      const none = await reload();
      expect(none.status).toBe(401);
      expect(none.headers.get('www-authenticate')).toBe('Bearer');
      expect((await reload('Bearer wrong')).status).toBe(401);
      expect((await reload('Basic c2VzYW1l')).status).toBe(401);
      const ok = await reload('Bearer sesame');
      expect(ok.status).toBe(200);
      expect(await ok.json()).toMatchObject({ status: 'unchanged', model_generation: 1 });
      expect(s.log()).toContain('reload route enabled');
    } finally {
      await s.stop();
    }
  });

  describe('hot reload', () => {
    const served = () => join(dir, 'served');

    it('takes the task ofm train --resume adds in another process while serving, without a failed request', async () => {
      await cp(ckpt, served(), { recursive: true });
      const s = await serve(['--ckpt', served(), '--reload-interval', '200']);
      const statuses: number[] = [];
      const generations = new Set<number>();
      let stop = false;
      const png = readFileSync(images()[0]!);
      const client = async () => {
        while (!stop) {
          // A request that fails outright (connection refused or reset) counts as status 0.
          const r = await post(s.url, png, 'image/png').catch(() => null);
          statuses.push(r?.status ?? 0);
          if (r?.status === 200) generations.add(r.body.model_generation as number);
        }
      };
      const clients = [client(), client()];
      try {
        const train = await ofm(['train', '--data', data, '--tasks', 'tiles|washer|chip', '--resume', served(), '--backend', 'wasm', '--quiet']);
        expect(train.code, train.stderr).toBe(0);
        await until('generation 2', async () => (await getJson(`${s.url}/v1/model`)).body.model_generation === 2);
        // Some requests on the new model too.
        const after = statuses.length;
        await until('requests on generation 2', async () => statuses.length > after + 4);
        stop = true;
        await Promise.all(clients);
        expect(statuses.length).toBeGreaterThan(10);
        expect(statuses.filter((x) => x !== 200)).toEqual([]);
        expect([...generations].sort()).toEqual([1, 2]);
        const model = (await getJson(`${s.url}/v1/model`)).body;
        expect(model).toMatchObject({ model_generation: 2, reloads: 1, reload_failures: 0, last_reload_failed: false });
        expect((model.tasks as { classes: string[] }[]).map((t) => t.classes)).toEqual([['tiles'], ['washer'], ['chip']]);
        expect(s.log()).toMatch(/loaded generation 2 \(3 task\(s\): tiles, washer, chip/);
        threeTasks = join(dir, 'three');
        await cp(served(), threeTasks, { recursive: true });
      } finally {
        stop = true;
        await Promise.all(clients);
        expect(await s.stop()).toBe(0);
      }
    });

    it('refuses a damaged, half-copied checkpoint and serves on with the old model; takes it once whole', async () => {
      expect(threeTasks).not.toBe('');
      const target = join(dir, 'copied');
      await cp(ckpt, target, { recursive: true });
      const s = await serve(['--ckpt', target, '--reload-interval', '200'], { OFM_SERVE_TOKEN: 'sesame' });
      try {
        const png = readFileSync(images()[0]!);
        const before = await post(s.url, png, 'image/png');
        expect(before.status).toBe(200);
        // Copy the three-task checkpoint over it in place (no atomic rename), one weight file damaged.
        const shard = readdirSync(threeTasks).find((f) => f.endsWith('.bin'))!;
        const good = await readFile(join(threeTasks, shard));
        const damaged = Buffer.from(good);
        damaged[damaged.length >> 1] = damaged[damaged.length >> 1]! ^ 0xff;
        await writeFile(join(target, shard), damaged);
        await writeFile(join(target, 'manifest.json'), await readFile(join(threeTasks, 'manifest.json')));
        await until('a refused reload', async () => ((await getJson(`${s.url}/v1/model`)).body.reload_failures as number) > 0);
        const model = (await getJson(`${s.url}/v1/model`)).body;
        expect(model).toMatchObject({ model_generation: 1, reloads: 0, reload_failures: 1, last_reload_failed: true });
        expect(model.last_reload_error).toMatch(new RegExp(`${shard}.*SHA-256`));
        expect((model.tasks as unknown[]).length).toBe(2);
        expect(s.log()).toMatch(/reload refused, the served model stays: .*SHA-256/);
        const metrics = await (await fetch(`${s.url}/metrics`)).text();
        expect(metrics).toMatch(/^ofm_serve_model_reload_failures_total 1$/m);
        expect(metrics).toMatch(/^ofm_serve_model_last_reload_failed 1$/m);
        // Asked to reload it now: refused the same way, 409.
        const forced = await fetch(`${s.url}/v1/reload`, { method: 'POST', headers: { authorization: 'Bearer sesame' } });
        expect(forced.status).toBe(409);
        const refusal = (await forced.json()) as { error: string; message: string };
        expect(refusal.error).toBe('reload_refused');
        expect(refusal.message).toMatch(/SHA-256.*; generation 1 keeps serving$/);
        // The old model keeps serving, with the same numbers.
        const during = await post(s.url, png, 'image/png');
        expect(during.status).toBe(200);
        expect(during.body.model_generation).toBe(1);
        expect(during.body.images[0]).toEqual(before.body.images[0]);
        // The copy completes: the next poll takes it.
        await writeFile(join(target, shard), good);
        await until('generation 2', async () => (await getJson(`${s.url}/v1/model`)).body.model_generation === 2);
        const healed = (await getJson(`${s.url}/v1/model`)).body;
        expect(healed).toMatchObject({ reloads: 1, reload_failures: 2, last_reload_failed: false });
        expect((healed.tasks as unknown[]).length).toBe(3);
        expect((await post(s.url, png, 'image/png')).body.model_generation).toBe(2);
      } finally {
        expect(await s.stop()).toBe(0);
      }
    });
  });

  it('serves on when ofm train is killed while it saves the next task, and takes the task once a resume saves it', async () => {
    const parent = join(dir, 'killed');
    const target = join(parent, 'model');
    await cp(ckpt, target, { recursive: true });
    const s = await serve(['--ckpt', target, '--reload-interval', '100']);
    const statuses: number[] = [];
    let stop = false;
    const png = readFileSync(images()[0]!);
    const client = async () => {
      while (!stop) statuses.push((await post(s.url, png, 'image/png').catch(() => null))?.status ?? 0);
    };
    const clients = [client(), client()];
    try {
      // SIGKILL the trainer the moment its checkpoint save has started writing (the temporary folder beside the checkpoint).
      const train = spawn(process.execPath, [bin, 'train', '--data', data, '--tasks', 'tiles|washer|chip', '--resume', target, '--backend', 'wasm', '--quiet'], {
        stdio: 'ignore',
      });
      children.push(train);
      const trainExit = new Promise<number | null>((resolve) => train.once('exit', (code) => resolve(code)));
      // Watched (inotify), not polled: the save of a tiny model takes milliseconds.
      let killedInSave = false;
      const watcher = watch(parent, (_event, name) => {
        if (!killedInSave && String(name).startsWith('.model.ofm-tmp-') && train.exitCode === null) {
          killedInSave = train.kill('SIGKILL');
        }
      });
      try {
        await trainExit;
      } finally {
        watcher.close();
      }
      await trainExit;
      expect(killedInSave).toBe(true);
      await new Promise((r) => setTimeout(r, 500));
      const during = (await getJson(`${s.url}/v1/model`)).body;
      // Killed before its rename (generation 1 serves on) or, rarely, just after it (the whole checkpoint is taken): never a refused, half-written one.
      expect(during).toMatchObject({ reload_failures: 0 });
      expect([1, 2]).toContain(during.model_generation);
      const resumed = await ofm(['train', '--data', data, '--tasks', 'tiles|washer|chip', '--resume', target, '--backend', 'wasm', '--quiet']);
      expect(resumed.code, resumed.stderr).toBe(0);
      await until('generation 2', async () => (await getJson(`${s.url}/v1/model`)).body.model_generation === 2);
      expect(((await getJson(`${s.url}/v1/model`)).body.tasks as unknown[]).length).toBe(3);
      stop = true;
      await Promise.all(clients);
      expect(statuses.length).toBeGreaterThan(10);
      expect(statuses.filter((x) => x !== 200)).toEqual([]);
      expect((await getJson(`${s.url}/v1/model`)).body).toMatchObject({ reloads: 1, reload_failures: 0 });
    } finally {
      stop = true;
      await Promise.all(clients);
      expect(await s.stop()).toBe(0);
    }
  });

  it('takes a new export written over the served one (--model)', async () => {
    expect(threeTasks).not.toBe('');
    const web = join(dir, 'web-reload');
    expect((await ofm(['export', ckpt, '--out', web])).code).toBe(0);
    const s = await serve(['--model', web, '--reload-interval', '200']);
    try {
      expect((await getJson(`${s.url}/v1/model`)).body).toMatchObject({ kind: 'export', model_generation: 1 });
      const exported = await ofm(['export', threeTasks, '--out', web]);
      expect(exported.code, exported.stderr).toBe(0);
      await until('generation 2', async () => (await getJson(`${s.url}/v1/model`)).body.model_generation === 2);
      const model = (await getJson(`${s.url}/v1/model`)).body;
      expect((model.tasks as { classes: string[] }[]).map((t) => t.classes)).toEqual([['tiles'], ['washer'], ['chip']]);
      expect(model).toMatchObject({ reload_failures: 0 });
      // It scores as ofm detect does with the checkpoint it was exported from.
      const png = images()[0]!;
      const cli = JSON.parse((await ofm(['detect', png, '--ckpt', threeTasks, '--json'])).stdout).images[0];
      const served = (await post(s.url, readFileSync(png), 'image/png')).body.images[0]!;
      expect(Math.abs((served.score as number) - cli.score)).toBeLessThanOrEqual(1e-6);
      expect(Math.abs((served.raw_score as number) - cli.raw_score)).toBeLessThanOrEqual(1e-6);
      expect(served.class).toBe(cli.class);
    } finally {
      expect(await s.stop()).toBe(0);
    }
  });

  it('keeps a swapped-out model for the request holding it, then releases every tensor of it', async () => {
    expect(threeTasks).not.toBe('');
    const { initBackend, tf } = await import('@ofm/tensor');
    await initBackend({ backend: 'wasm' });
    const { ModelHost } = await import('../src/serve/model');
    const { modelLoader } = await import('../src/serve/server');
    const { readImage } = await import('@ofm/datasets');
    const folder = join(dir, 'in-process', 'model');
    await cp(ckpt, folder, { recursive: true });
    const image = (await readImage(images()[0]!, { size: 24 })).data;
    // Detection caches a few constant tensors once per process: count from after a first detection.
    const warm = await modelLoader('checkpoint')(folder);
    warm.detector.detect([image]);
    warm.detector.dispose();
    const baseline = tf.memory().numTensors;
    const host = new ModelHost(folder, 'checkpoint', modelLoader('checkpoint'));
    const first = await host.start();
    const scoreBefore = first.detector.detect([image])[0]!.score;
    const lease = host.acquire();
    // An atomic replacement, as a save does it: the new folder renamed over the old one.
    await cp(threeTasks, `${folder}.new`, { recursive: true });
    await rename(folder, `${folder}.old`);
    await rename(`${folder}.new`, folder);
    expect((await host.poll())?.status).toBe('swapped');
    expect(host.model.generation).toBe(2);
    expect(host.model.loaded.tasks).toHaveLength(3);
    // The request that started on generation 1 still detects on it, with its numbers.
    expect(lease.model).toBe(first);
    expect(first.isDisposed).toBe(false);
    expect(lease.model.detector.detect([image])[0]!.score).toBe(scoreBefore);
    lease.release();
    expect(first.isDisposed).toBe(true);
    expect(() => first.detector).toThrow(/used after it was released/);
    // The same folder again: nothing to do.
    expect((await host.reload()).status).toBe('unchanged');
    await host.close();
    expect(host.model.isDisposed).toBe(true);
    expect(tf.memory().numTensors).toBe(baseline);
  });

  it('drains on SIGTERM: a request in flight is answered, then the process exits 0', async () => {
    const s = await serve(['--ckpt', ckpt]);
    const held = heldRequest(s.url);
    await new Promise((r) => setTimeout(r, 300));
    s.proc.kill('SIGTERM');
    await until('the drain notice', async () => /SIGTERM: no new requests/.test(s.log()), 10_000);
    expect((await getJson(`${s.url}/readyz`).catch(() => ({ status: 0 }))).status).not.toBe(200);
    held.finish(held.sent.subarray(16));
    const reply = await held.response;
    expect(reply.status).toBe(200);
    expect(JSON.parse(reply.body).images).toHaveLength(1);
    expect(await s.exit).toBe(0);
    expect(s.log()).toMatch(/serve: stopped/);
  });

  it('fails to start with one clear line: missing checkpoint, both or neither source, port in use', async () => {
    expectRefused(await ofm(['serve', '--ckpt', join(dir, 'nope')]), /--ckpt '.*nope' does not exist/);
    expectRefused(await ofm(['serve']), /exactly one of --ckpt DIR .* or --model DIR/);
    expectRefused(await ofm(['serve', '--ckpt', ckpt, '--model', ckpt]), /exactly one of/);
    expectRefused(await ofm(['serve', '--ckpt', ckpt, '--port', '70000']), /--port must be an integer in \[0, 65535\]/);
    expectRefused(await ofm(['serve', '--ckpt', join(dir, 'web')]), /is a browser export/);
    expectRefused(await ofm(['serve', '--model', ckpt, '--port', '0']), /is a training checkpoint, not an exported model; make one with 'ofm export/);
    const empty = join(dir, 'empty');
    await cp(data, empty, { recursive: true });
    expectRefused(await ofm(['serve', '--ckpt', empty, '--port', '0']), /no manifest\.json/);
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as { port: number }).port;
    try {
      expectRefused(await ofm(['serve', '--ckpt', ckpt, '--port', String(port)]), new RegExp(`--port ${port}: 127.0.0.1:${port} is already in use`));
    } finally {
      blocker.close();
    }
  });
});
