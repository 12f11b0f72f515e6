import type { Command } from 'commander';
import { refuseExport, requireFolder } from '../checks';
import { CliError } from '../errors';
import { Progress, integer, positiveNumber } from '../util';
import { BACKEND_OPTION_HELP } from './info';
import { initRuntime } from './run-shared';

interface ServeCliOptions {
  ckpt?: string;
  model?: string;
  host: string;
  port: string;
  backend?: string;
  threshold: string;
  token?: string;
  maxBodyMb: string;
  maxPixels: string;
  maxImages: string;
  concurrency: string;
  queue: string;
  timeoutMs: string;
  maxBatch: string;
  batchWindowMs: string;
  reloadInterval: string;
  quiet?: boolean;
}

/** Hosts that only this machine can reach. */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** `ofm serve`: detection as an HTTP service, with hot reload of the checkpoint. */
export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('serve detection over HTTP: POST /v1/detect with images, hot reload when the checkpoint learns a new task')
    .option('--ckpt <dir>', 'checkpoint directory written by ofm train (reloaded when a new task is saved to it)')
    .option('--model <dir>', 'or: a model written by ofm export (reloaded when exported again)')
    .option('--host <host>', 'address to listen on (0.0.0.0: every interface, e.g. in a container)', '127.0.0.1')
    .option('--port <n>', 'port to listen on (0: any free port, printed at start)', '8080')
    .option('--backend <name>', BACKEND_OPTION_HELP)
    .option('--threshold <z>', 'calibrated score above which an image is called anomalous (a request may pass ?threshold=)', '3')
    .option('--token <token>', 'bearer token for POST /v1/reload (default $OFM_SERVE_TOKEN; without one, that route answers 403)')
    .option('--max-body-mb <n>', 'largest request body in MiB (413 beyond)', '16')
    .option('--max-pixels <n>', 'largest image in pixels, width x height as sent (413 beyond)', '40000000')
    .option('--max-images <n>', 'most images in one multipart request (413 beyond)', '64')
    .option('--concurrency <n>', 'requests processed at once', '4')
    .option('--queue <n>', 'requests waiting beyond --concurrency (503 with Retry-After beyond)', '64')
    .option('--timeout-ms <n>', 'a request not answered in this time gets 503', '30000')
    .option('--max-batch <n>', 'most images of concurrent requests detected in one batch (1: no batching; it did not raise throughput on 2 CPU cores, see docs/benchmarks.md)', '1')
    .option('--batch-window-ms <n>', 'with --max-batch > 1: how long an image waits for others to share its batch (0: only images already there)', '0')
    .option('--reload-interval <ms>', 'poll the model folder for a new checkpoint this often (0: no hot reload)', '2000')
    .option('--quiet', 'on stderr only the listening line and problems (refused reloads, errors)')
    .addHelpText(
      'after',
      `
Routes:
  POST /v1/detect     an image body (Content-Type image/png, image/jpeg, ...) or multipart/form-data
                      with image files; ?map=1 and ?overlay=1 add the anomaly map and the overlay as
                      base64 PNG, ?threshold=Z overrides --threshold. Scores equal ofm detect's.
  GET  /v1/model      tasks, classes, config, format version, checksum, generation, reload state
  POST /v1/reload     load the model folder now (Authorization: Bearer <token>)
  GET  /healthz       200 while the process runs
  GET  /readyz        200 while requests are taken, 503 while shutting down
  GET  /metrics       Prometheus text

When a new task is saved to the checkpoint (ofm train --resume in another process), the new model is
loaded in the background, every file checked against its SHA-256, and swapped in; requests in flight
finish on the model they started with. A damaged or half-written checkpoint is refused and the old
model keeps serving (the error is in /v1/model and /metrics). SIGTERM or Ctrl-C stops taking
requests, finishes those in flight and exits 0.

Examples:
  ofm serve --ckpt model
  curl -s --data-binary @photo.png -H 'Content-Type: image/png' http://127.0.0.1:8080/v1/detect
  curl -s -F a=@a.png -F b=@b.png 'http://127.0.0.1:8080/v1/detect?overlay=1'`,
    )
    .action(async (o: ServeCliOptions) => {
      if ((o.ckpt === undefined) === (o.model === undefined)) {
        throw new CliError('give the model to serve with exactly one of --ckpt DIR (a checkpoint of ofm train) or --model DIR (an ofm export)');
      }
      const threshold = Number(o.threshold);
      if (o.threshold.trim() === '' || !Number.isFinite(threshold)) throw new CliError(`--threshold must be a number, got "${o.threshold}"`);
      const port = integer('--port', o.port, 0, 65535);
      const maxBodyMb = positiveNumber('--max-body-mb', o.maxBodyMb);
      const options = {
        threshold,
        host: o.host,
        port,
        token: o.token ?? process.env.OFM_SERVE_TOKEN ?? null,
        maxBodyBytes: Math.round(maxBodyMb * 1024 * 1024),
        maxPixels: integer('--max-pixels', o.maxPixels, 1),
        maxImages: integer('--max-images', o.maxImages, 1, 4096),
        concurrency: integer('--concurrency', o.concurrency, 1, 1024),
        queue: integer('--queue', o.queue, 0, 100_000),
        timeoutMs: integer('--timeout-ms', o.timeoutMs, 1),
        maxBatch: integer('--max-batch', o.maxBatch, 1, 1024),
        batchWindowMs: integer('--batch-window-ms', o.batchWindowMs, 0, 10_000),
        reloadIntervalMs: integer('--reload-interval', o.reloadInterval, 0),
      };
      if (options.token === '') throw new CliError('--token (or $OFM_SERVE_TOKEN) is empty; give a non-empty token or leave it unset');
      const source = (o.ckpt ?? o.model)!;
      const flag = o.ckpt !== undefined ? '--ckpt' : '--model';
      requireFolder(source, `${flag} '${source}'`);
      if (o.ckpt !== undefined) refuseExport(source, `--ckpt '${source}'`);
      const progress = new Progress('serve', o.quiet === true);
      await initRuntime(o.backend, progress, { asyncReads: true });
      const { startServer } = await import('../serve/server');
      let server: Awaited<ReturnType<typeof startServer>>;
      try {
        server = await startServer({ ...options, source, kind: o.ckpt !== undefined ? 'checkpoint' : 'export', log: (line) => progress.note(line), warn: (line) => progress.warn(line) });
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        if (e.code === 'EADDRINUSE') throw new CliError(`--port ${port}: ${options.host}:${port} is already in use; stop what listens there or choose another --port`);
        if (e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN') {
          throw new CliError(`--host '${options.host}' is not an address of this machine (${e.code}); use 127.0.0.1, 0.0.0.0 or one of its addresses`);
        }
        if (e.code === 'EACCES') throw new CliError(`--port ${port}: not allowed to listen there (ports below 1024 need privileges); choose another --port`);
        throw err;
      }
      const model = server.host.model;
      progress.warn(
        `listening on ${server.url} (${model.loaded.tasks.length} task(s): ${model.loaded.classes.map((c) => c.className).join(', ')}; ` +
          `generation ${model.generation}; ${options.reloadIntervalMs > 0 ? `checking ${source} every ${options.reloadIntervalMs} ms` : 'no hot reload'}; ` +
          `reload route ${options.token ? 'enabled' : 'disabled (no --token)'})`,
      );
      if (!isLoopback(options.host)) {
        progress.warn(`listening on ${options.host}: reachable from other machines; put it behind TLS and access control`);
      }
      await new Promise<void>((resolveDone) => {
        let stopping = false;
        const onSignal = (signal: NodeJS.Signals) => {
          if (stopping) process.exit(signal === 'SIGTERM' ? 143 : 130);
          stopping = true;
          progress.note(`${signal}: no new requests; finishing the ${server.host.model.inUse} in flight (again to quit at once)`);
          server.drain().then(
            () => {
              process.off('SIGINT', onSignal);
              process.off('SIGTERM', onSignal);
              progress.note('stopped');
              resolveDone();
            },
            (err) => {
              progress.warn(`error while stopping: ${(err as Error).message}`);
              process.exit(1);
            },
          );
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
      });
    });
}
