#!/usr/bin/env node
/**
 * A bounded load test of `ofm serve` on loopback, against `ofm detect` run once per image:
 * throughput and p50/p99 latency at several numbers of concurrent clients. The results of
 * docs/benchmarks.md ("Serving") come from it.
 *
 *   node scripts/serve-load.mjs --ckpt MODEL --images DIR [--clients 1,4,16] [--seconds 5]
 *     [--variants 'max-batch=1;max-batch=16'] [--detect-images 8] [--out result.json]
 *
 * Each variant is one `ofm serve` process (its flags: `name=value` pairs joined by commas) that
 * every client level runs against for --seconds, after a warm-up; each client sends one PNG per
 * request (round robin over the PNGs below --images) and waits for the answer. `ofm detect` runs
 * as a new process per image (load the model, detect, exit), that many processes at once per
 * level, over max(--detect-images, clients) images (--detect-images 0: not run). Build first:
 * `pnpm build`.
 */
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../apps/cli/dist/bin.js', import.meta.url));

function parseArgs(argv) {
  const opts = { clients: '1,4,16', seconds: '5', variants: 'max-batch=1;max-batch=16', detectImages: '8' };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    opts[key] = argv[++i];
  }
  if (!opts.ckpt || !opts.images) {
    console.error('usage: node scripts/serve-load.mjs --ckpt MODEL --images DIR [--clients 1,4,16] [--seconds 5] [--variants ...] [--detect-images 8] [--out FILE]');
    process.exit(2);
  }
  return opts;
}

function pngsBelow(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...pngsBelow(p));
    else if (name.endsWith('.png')) out.push(p);
  }
  return out;
}

function percentile(sorted, q) {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

function summary(latencies, seconds, errors) {
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    requests: latencies.length,
    errors,
    per_second: latencies.length / seconds,
    p50_ms: percentile(sorted, 0.5),
    p99_ms: percentile(sorted, 0.99),
  };
}

/** Start `ofm serve` and resolve with its URL and process. */
function startServer(ckpt, flags) {
  const args = [bin, 'serve', '--ckpt', ckpt, '--port', '0', '--reload-interval', '0', ...flags];
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  return new Promise((resolvePromise, reject) => {
    proc.stderr.on('data', (d) => {
      log += d;
      const m = /listening on (http:\/\/\S+)/.exec(log);
      if (m) resolvePromise({ url: m[1], proc, log: () => log });
    });
    proc.once('exit', (code) => reject(new Error(`ofm serve exited with ${code}: ${log}`)));
  });
}

async function runClients(url, bodies, clients, seconds) {
  const latencies = [];
  let errors = 0;
  let next = 0;
  const end = performance.now() + seconds * 1000;
  const client = async () => {
    while (performance.now() < end) {
      const body = bodies[next++ % bodies.length];
      const t0 = performance.now();
      const r = await fetch(`${url}/v1/detect`, { method: 'POST', body, headers: { 'content-type': 'image/png' } });
      await r.arrayBuffer();
      if (r.status === 200) latencies.push(performance.now() - t0);
      else errors++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: clients }, client));
  return summary(latencies, (performance.now() - t0) / 1000, errors);
}

function runDetect(ckpt, image) {
  return new Promise((resolvePromise, reject) => {
    const t0 = performance.now();
    const proc = spawn(process.execPath, [bin, 'detect', image, '--ckpt', ckpt, '--json'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    proc.stderr.on('data', (d) => {
      err += d;
    });
    proc.once('exit', (code) => (code === 0 ? resolvePromise(performance.now() - t0) : reject(new Error(`ofm detect exited with ${code}: ${err}`))));
  });
}

async function detectLevel(ckpt, files, clients, count) {
  const latencies = [];
  let next = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < count) {
      const image = files[next++ % files.length];
      latencies.push(await runDetect(ckpt, image));
    }
  };
  await Promise.all(Array.from({ length: clients }, worker));
  return summary(latencies, (performance.now() - t0) / 1000, 0);
}

const opts = parseArgs(process.argv.slice(2));
const ckpt = resolve(opts.ckpt);
const files = pngsBelow(resolve(opts.images));
if (files.length === 0) throw new Error(`no PNG below ${opts.images}`);
const bodies = files.map((f) => readFileSync(f));
const levels = opts.clients.split(',').map(Number);
const seconds = Number(opts.seconds);
const variants = opts.variants.split(';').filter(Boolean);
const started = Date.now();
const result = {
  command: `node scripts/serve-load.mjs ${process.argv.slice(2).join(' ')}`,
  machine: { cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version, loadavg_before: loadavg().map((x) => Math.round(x * 100) / 100) },
  images: files.length,
  serve: [],
  detect: [],
};

const fmt = (x) => (Number.isFinite(x) ? x.toFixed(x >= 100 ? 0 : 1) : '–');
console.log('| what | clients | requests | errors | images/s | p50 ms | p99 ms |');
console.log('|---|---|---|---|---|---|---|');
for (const variant of variants) {
  const flags = variant.split(',').flatMap((kv) => {
    const [k, v] = kv.split('=');
    return [`--${k}`, v];
  });
  const server = await startServer(ckpt, flags);
  try {
    await runClients(server.url, bodies, 2, 1); // warm-up: the first batches compile kernels
    for (const clients of levels) {
      const s = await runClients(server.url, bodies, clients, seconds);
      result.serve.push({ variant, clients, ...s });
      console.log(`| ofm serve (${variant}) | ${clients} | ${s.requests} | ${s.errors} | ${fmt(s.per_second)} | ${fmt(s.p50_ms)} | ${fmt(s.p99_ms)} |`);
    }
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const sum = Number(/^ofm_serve_detect_batch_images_sum (\S+)$/m.exec(metrics)?.[1]);
    const count = Number(/^ofm_serve_detect_batch_images_count (\S+)$/m.exec(metrics)?.[1]);
    const busy = Number(/^ofm_serve_detect_batch_seconds_sum (\S+)$/m.exec(metrics)?.[1]);
    result.serve.push({ variant, mean_batch_images: sum / count, detect_ms_per_image: (1000 * busy) / sum });
    console.log(`|   (${variant}): ${fmt(sum / count)} images per detection batch, ${fmt((1000 * busy) / sum)} ms of detection per image | | | | | | |`);
  } finally {
    server.proc.kill('SIGTERM');
    await new Promise((r) => server.proc.once('exit', r));
  }
}
for (const clients of Number(opts.detectImages) > 0 ? levels : []) {
  const count = Math.max(Number(opts.detectImages), clients);
  const s = await detectLevel(ckpt, files, clients, count);
  result.detect.push({ clients, ...s });
  console.log(`| ofm detect, a process per image | ${clients} | ${s.requests} | 0 | ${fmt(s.per_second)} | ${fmt(s.p50_ms)} | ${fmt(s.p99_ms)} |`);
}
result.machine.loadavg_after = loadavg().map((x) => Math.round(x * 100) / 100);
result.seconds = Math.round((Date.now() - started) / 100) / 10;
console.log(`\n${result.seconds} s; load average before ${result.machine.loadavg_before.join(' ')}, after ${result.machine.loadavg_after.join(' ')}`);
if (opts.out) writeFileSync(opts.out, `${JSON.stringify(result, null, 2)}\n`);
