/**
 * `pnpm demo`: serve the built web demo with a model.
 *
 *   pnpm demo                  the small demo model: trained on the synthetic data on the first run
 *                              (tiles | washer | tablet, a few minutes on a CPU), then reused
 *   pnpm demo --model DIR      an exported model (ofm export), or a training checkpoint (exported first)
 *   pnpm demo --fresh          train the small demo model again
 *   --port N (default 5173)    --host H (default 127.0.0.1; 0.0.0.0 to serve the network)
 *
 * The root script builds the packages, the CLI and the app first (turbo), then runs this file
 * (`node --import tsx`: one process, no tsx wrapper in between). Relative paths are the caller's
 * (pnpm's INIT_CWD). It ends with pnpm: Ctrl-C, SIGTERM, or pnpm (or the shell it runs the script
 * in) going away stop the server, and a training run it started, within a second or so.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { exitWithParents } from './lifecycle';
import { DEMO_DIST, DEMO_ROOT, type StaticServer, serveStatic } from './serve';

const USAGE = 'usage: pnpm demo [--model DIR] [--fresh] [--port N] [--host H]';
/** Where the demo model, its data and checkpoint are kept between runs (git-ignored). */
const CACHE = join(DEMO_ROOT, '.cache');
/** The classes of the demo model, one task each. */
const DEMO_TASKS = 'tiles|washer|tablet';

const OFM_BIN = join(dirname(createRequire(import.meta.url).resolve('@ofm/cli/package.json')), 'dist', 'bin.js');

/** What runs now, for {@link shutdown}: the `ofm` child (training, export) or the server. */
let running: { child?: ChildProcess; server?: StaticServer } = {};
let stopping = false;

/**
 * Pass `signal` on to the `ofm` child (once: it is in a process group of its own, so a terminal's
 * Ctrl-C or a `timeout` reaches it only through here, and it keeps its training snapshot), close
 * the server, then exit: 0 when the server was stopped, else 130 / 143. A hard exit follows after
 * 10 s whatever hangs.
 */
function shutdown(signal: 'SIGINT' | 'SIGTERM', why?: string): void {
  if (stopping) return;
  stopping = true;
  if (why) console.error(`demo: ${why}; stopping`);
  const { child, server } = running;
  const code = server ? 0 : signal === 'SIGINT' ? 130 : 143;
  setTimeout(() => process.exit(code), 10_000).unref();
  const childDone = child && child.exitCode === null ? new Promise((done) => child.once('exit', done)) : Promise.resolve();
  child?.kill(signal);
  void Promise.all([childDone, server?.close()]).then(() => process.exit(code));
}

/** Run `ofm ...args` with its progress on this terminal; rejects on failure. */
function ofm(args: string[]): Promise<void> {
  return new Promise((done, fail) => {
    // A process group of its own: signals reach it once, through shutdown().
    const child = spawn(process.execPath, [OFM_BIN, ...args], { stdio: 'inherit', detached: true });
    running = { child };
    child.on('error', fail);
    child.on('exit', (code) => {
      running = {};
      if (code === 0) done();
      else fail(new Error(`ofm ${args[0]} failed (exit code ${code})`));
    });
  });
}

/** The format of the checkpoint or export in `dir` (from its manifest), or a clear error. */
async function formatOf(dir: string): Promise<string> {
  const { readManifest } = await import('@ofm/tensor');
  const manifest = await readManifest<{ format?: string }>(dir);
  return manifest.meta?.format ?? 'unknown';
}

/** The demo model: exported from the cached checkpoint, trained first when there is none. */
async function demoModel(fresh: boolean): Promise<string> {
  const model = join(CACHE, 'model');
  if (!fresh && existsSync(join(model, 'manifest.json'))) {
    console.log(`demo: using the demo model in ${model} (--fresh trains it again)`);
    return model;
  }
  await rm(CACHE, { recursive: true, force: true });
  const data = join(CACHE, 'data');
  const checkpoint = join(CACHE, 'checkpoint');
  console.log(`demo: training the demo model (${DEMO_TASKS.replaceAll('|', ' → ')}) on synthetic data; a few minutes on a CPU, once`);
  await ofm(['synth', '--out', data, '--classes', DEMO_TASKS.replaceAll('|', ','), '--size', '32', '--n-train', '40', '--n-test-good', '6', '--n-test-bad', '9']);
  await ofm(['train', '--data', data, '--tasks', DEMO_TASKS, '--out', checkpoint, '--config', join(DEMO_ROOT, 'scripts', 'demo-model.json')]);
  await ofm(['export', checkpoint, '--out', model]);
  return model;
}

/** A user's model: served as it is when exported, exported first when it is a training checkpoint. */
async function userModel(dir: string): Promise<string> {
  const format = await formatOf(dir);
  if (format === 'ofm-detector-export') return dir;
  if (format !== 'ofm-detector') throw new Error(`${dir} is neither an exported model nor a training checkpoint of one-for-more`);
  const model = join(CACHE, 'exported');
  await ofm(['export', dir, '--out', model]);
  return model;
}

async function main(): Promise<void> {
  // pnpm runs scripts in the repository root; relative paths (--model) are the caller's.
  if (process.env.npm_lifecycle_event === 'demo' && process.env.INIT_CWD) process.chdir(process.env.INIT_CWD);
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  exitWithParents(() => shutdown('SIGTERM', 'the process that started the demo (pnpm) has ended'));
  const { values } = parseArgs({
    options: {
      model: { type: 'string' },
      fresh: { type: 'boolean', default: false },
      port: { type: 'string', default: '5173' },
      host: { type: 'string', default: '127.0.0.1' },
    },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be a port number, got "${values.port}"\n${USAGE}`);
  if (!existsSync(join(DEMO_DIST, 'index.html'))) {
    throw new Error(`the app is not built (${DEMO_DIST} has no index.html): run pnpm demo from the repository root, which builds it`);
  }
  const model = values.model ? await userModel(resolve(values.model)) : await demoModel(values.fresh);
  const server = await serveStatic({ app: DEMO_DIST, mounts: { '/model/': model }, port, host: values.host });
  running = { server };
  if (stopping) return void server.close();
  console.log(`\ndemo: serving ${model}\ndemo: open ${server.url} (Ctrl-C to stop)`);
}

main().catch((err: Error) => {
  if (stopping) return;
  console.error(`demo: error: ${err.message}`);
  process.exit(err.name === 'CheckpointError' ? 2 : 1);
});
