/**
 * `ofm serve`: detection over HTTP (fastify), with hot reload of the model folder.
 *
 * Routes: `POST /v1/detect` (an image body, or multipart with several images), `GET /v1/model`,
 * `POST /v1/reload` (bearer token), `GET /healthz`, `GET /readyz`, `GET /metrics`. Every JSON key
 * is snake_case and flat, as in the other commands' `--json` output; the detection entries carry
 * the keys of `ofm detect --json` (score, raw_score, anomalous, class) with the same numbers.
 */
import { timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import multipart from '@fastify/multipart';
import { DatasetError, decodeImage } from '@ofm/datasets';
import { type Detection, loadDetector, loadExportedDetector } from '@ofm/detector';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import sharp from 'sharp';
import { detectionOverlay } from '../images';
import { type ServeMetrics, createMetrics } from './metrics';
import { type LoadedModel, ModelHost, type ModelKind, type ModelLease, type ModelLoader, type ServedModel } from './model';
import { AdmissionQueue, DeadlineError, DetectBatcher, type Ticket } from './queue';

/** Everything `ofm serve` is started with. */
export interface ServeOptions {
  /** The folder served: a training checkpoint or a browser export (`kind`). */
  source: string;
  kind: ModelKind;
  host: string;
  /** 0: any free port. */
  port: number;
  /** Calibrated score above which an image is called anomalous (`?threshold=` overrides it per request). */
  threshold: number;
  /** Bearer token for state-changing routes; null disables them (403). */
  token: string | null;
  /** Largest request body (an image, or all images of a multipart request). */
  maxBodyBytes: number;
  /** Largest image, in pixels (width x height as stored in the file). */
  maxPixels: number;
  /** Most images in one multipart request. */
  maxImages: number;
  /** Requests processed at once. */
  concurrency: number;
  /** Requests waiting beyond `concurrency`; more get 503 with Retry-After. */
  queue: number;
  /** A request not answered within this time gets 503. */
  timeoutMs: number;
  /** Most images in one detection batch (1: no batching across requests). */
  maxBatch: number;
  /** How long an image waits for others to share its detection batch. */
  batchWindowMs: number;
  /** Poll the model folder this often for a new checkpoint (0: no hot reload). */
  reloadIntervalMs: number;
  /** Lines for the operator: model swaps. */
  log?: (line: string) => void;
  /** Lines about problems: refused reloads, internal errors (default: `log`). */
  warn?: (line: string) => void;
}

/** A started server. */
export interface RunningServer {
  /** `http://host:port`. */
  url: string;
  port: number;
  app: FastifyInstance;
  host: ModelHost;
  /** Stop accepting requests, let the ones in flight finish, stop polling and release the model. */
  drain(): Promise<void>;
}

/** The error body of every refused request: `{ "error": code, "message": text }`. */
export interface ServeErrorJson {
  error: string;
  message: string;
}

/** One image's entry in the `POST /v1/detect` response. */
export interface ServeDetectJsonImage {
  /** The multipart file name; null for an image body. */
  name: string | null;
  /** Calibrated score, as `ofm detect` prints it (4 decimals). */
  score: number;
  raw_score: number;
  anomalous: boolean;
  class: string;
  /** Where the calibrated anomaly map peaks, in the model's pixel grid (`map_size` x `map_size`). */
  peak_x: number;
  peak_y: number;
  peak_value: number;
  map_size: number;
  /** The image's size as sent. */
  source_width: number;
  source_height: number;
  /** With `?map=1`: the calibrated map as an 8-bit grey PNG (base64), 0 to `map_range_max` linear. */
  map_png: string | null;
  /** With `?overlay=1`: the heatmap overlay PNG (base64), the bytes `ofm detect --out` writes. */
  overlay_png: string | null;
}

/** The `POST /v1/detect` response. */
export interface ServeDetectJson {
  checkpoint: string;
  model_generation: number;
  model_checksum: string;
  threshold: number;
  /** The map value drawn as full intensity in map and overlay PNGs: max(2 x threshold, 1), as `ofm detect`. */
  map_range_max: number;
  images: ServeDetectJsonImage[];
}

/** An error with an HTTP status and a stable code, answered as {@link ServeErrorJson}. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** The loader of a model folder: training checkpoints and browser exports, every file checked against its SHA-256. */
export function modelLoader(kind: ModelKind): ModelLoader {
  return async (dir: string): Promise<LoadedModel> => {
    if (kind === 'checkpoint') {
      const { detector, meta } = await loadDetector(dir);
      return { detector, format: meta.format, formatVersion: meta.version, config: meta.config, classes: meta.classes, tasks: meta.tasks };
    }
    const { detector, meta } = await loadExportedDetector(dir, { verify: true });
    return { detector, format: meta.format, formatVersion: meta.version, config: meta.config, classes: meta.classes, tasks: meta.tasks };
  };
}

function round(v: number): number {
  return Math.round(v * 1e4) / 1e4;
}

/** The query parameters as single strings; one given twice is refused (400). */
function queryStrings(query: unknown): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [key, value] of Object.entries((query ?? {}) as Record<string, unknown>)) {
    if (typeof value !== 'string') throw new HttpError(400, 'bad_request', `?${key} is given more than once; give it once`);
    out[key] = value;
  }
  return out;
}

/** Whether a query flag is on (`?map=1`, `?map=true`, `?map`). */
function flag(value: unknown): boolean {
  return value === '' || value === '1' || value === 'true' || value === 'yes';
}

interface RequestState {
  ticket?: Ticket;
  lease?: ModelLease;
  deadline: AbortController;
  timer?: NodeJS.Timeout;
  started: number;
}

declare module 'fastify' {
  interface FastifyRequest {
    ofm?: RequestState;
  }
}

/** One decoded image of a request. */
interface InputImage {
  name: string | null;
  /** The bytes as sent (overlays are drawn at the image's own aspect ratio from them). */
  bytes: Buffer;
  data: Float32Array;
  sourceWidth: number;
  sourceHeight: number;
}

/**
 * Build the server (not listening yet) around a started {@link ModelHost}: the routes, limits and
 * metrics, without loading the model or binding a port ({@link startServer} does both).
 */
export async function buildServer(opts: ServeOptions, host: ModelHost): Promise<{ app: FastifyInstance; metrics: ServeMetrics; setDraining(): void }> {
  const admission = new AdmissionQueue(opts.concurrency, opts.queue);
  const batcher = new DetectBatcher(opts.maxBatch, opts.batchWindowMs);
  const metrics = createMetrics(host, admission, batcher);
  batcher.onBatch = (stats) => {
    metrics.batchSize.observe(stats.images);
    metrics.batchSeconds.observe(stats.seconds);
  };
  let draining = false;

  const app = Fastify({
    logger: false,
    bodyLimit: opts.maxBodyBytes,
    // A client that sends its request slower than this is cut off (slow-loris protection).
    requestTimeout: Math.max(opts.timeoutMs, 1000),
    // Requests that arrive on open connections while draining get the server's own 503 (below).
    return503OnClosing: false,
    forceCloseConnections: 'idle',
  });
  await app.register(multipart, {
    limits: { fileSize: opts.maxBodyBytes, files: opts.maxImages, fields: 16, parts: opts.maxImages + 16, headerPairs: 64 },
  });
  for (const type of [/^image\/[\w.+-]+$/, 'application/octet-stream']) {
    app.addContentTypeParser(type, { parseAs: 'buffer', bodyLimit: opts.maxBodyBytes }, (_req, body, done) => done(null, body));
  }

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _request, reply) => {
    const e = toHttpError(err, opts);
    if (e.status >= 500 && e.code === 'internal') (opts.warn ?? opts.log)?.(`internal error: ${err.message}`);
    for (const [k, v] of Object.entries(e.headers)) reply.header(k, v);
    return reply.code(e.status).send({ error: e.code, message: e.message } satisfies ServeErrorJson);
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({
      error: 'not_found',
      message: `no route ${request.method} ${request.url}; routes: POST /v1/detect, GET /v1/model, POST /v1/reload, GET /healthz, GET /readyz, GET /metrics`,
    } satisfies ServeErrorJson),
  );

  app.addHook('onRequest', async (request) => {
    request.ofm = { deadline: new AbortController(), started: performance.now() };
    if (draining && !PROBE_ROUTES.has(request.routeOptions.url ?? '')) throw drainingError();
  });
  // While draining, every answer closes its connection: a kept-alive one would hold the exit back.
  app.addHook('onSend', async (_request, reply, payload) => {
    if (draining) reply.header('Connection', 'close');
    return payload;
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.requests.inc({ method: request.method, route, status: String(reply.statusCode) });
    if (request.ofm) metrics.duration.observe({ route }, (performance.now() - request.ofm.started) / 1000);
  });

  /** Admission before the body is read: a full queue costs the client no upload. */
  const admit = async (request: FastifyRequest, reply: FastifyReply) => {
    const state = request.ofm!;
    const ticket = admission.enter(state.deadline.signal);
    if (!ticket) {
      throw new HttpError(
        503,
        'busy',
        `the server is busy: ${admission.concurrency} request(s) in progress and ${admission.limit} waiting (--concurrency, --queue); retry later`,
        { 'Retry-After': '1' },
      );
    }
    state.ticket = ticket;
    state.lease = host.acquire();
    state.timer = setTimeout(() => state.deadline.abort(), opts.timeoutMs);
    reply.raw.once('close', () => finish(state));
    try {
      await ticket.ready;
    } catch (err) {
      if (err instanceof DeadlineError) throw timeoutError(opts);
      throw err;
    }
  };

  app.post('/v1/detect', { onRequest: admit }, async (request) => {
    const state = request.ofm!;
    try {
      const query = queryStrings(request.query);
      let threshold = opts.threshold;
      if (query.threshold !== undefined) {
        threshold = Number(query.threshold);
        if (query.threshold.trim() === '' || !Number.isFinite(threshold)) {
          throw new HttpError(400, 'bad_request', `?threshold must be a number, got "${query.threshold}"`);
        }
      }
      const model = state.lease!.model;
      const size = model.loaded.config.imageSize;
      const inputs = await readImages(request, opts, size);
      if (state.deadline.signal.aborted) throw timeoutError(opts);
      const detections = await Promise.all(inputs.map((img) => batcher.detect(model, img.data, state.deadline.signal)));
      metrics.images.inc(inputs.length);
      const range: [number, number] = [0, Math.max(threshold * 2, 1)];
      const images: ServeDetectJsonImage[] = [];
      for (let i = 0; i < inputs.length; i++) {
        images.push(await describe(inputs[i]!, detections[i]!, size, threshold, range, flag(query.map), flag(query.overlay)));
      }
      return {
        checkpoint: host.dir,
        model_generation: model.generation,
        model_checksum: model.checksum,
        threshold,
        map_range_max: range[1],
        images,
      } satisfies ServeDetectJson;
    } catch (err) {
      if (err instanceof DeadlineError) throw timeoutError(opts);
      throw err;
    } finally {
      finish(state);
    }
  });

  app.get('/v1/model', async () => modelJson(host, opts));

  app.post('/v1/reload', async (request) => {
    authorize(request, opts.token);
    const outcome = await host.reload();
    if (outcome.status === 'refused') {
      throw new HttpError(409, 'reload_refused', `${outcome.error}; generation ${outcome.generation} keeps serving`);
    }
    return { status: outcome.status, model_generation: outcome.generation, model_checksum: outcome.checksum };
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    if (draining) return reply.code(503).send({ status: 'draining', model_generation: host.model.generation });
    return { status: 'ready', model_generation: host.model.generation };
  });
  app.get('/metrics', async (_request, reply) => {
    reply.header('Content-Type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });

  return {
    app,
    metrics,
    setDraining: () => {
      draining = true;
    },
  };
}

/** End a request's hold on its queue place, model and deadline timer (idempotent). */
function finish(state: RequestState): void {
  if (state.timer) clearTimeout(state.timer);
  state.timer = undefined;
  state.ticket?.leave();
  state.lease?.release();
}

/** Routes that answer while the server drains: probes and metrics. */
const PROBE_ROUTES = new Set(['/healthz', '/readyz', '/metrics']);

function drainingError(): HttpError {
  return new HttpError(503, 'draining', 'the server is shutting down; send the request to another replica', { 'Retry-After': '1' });
}

function timeoutError(opts: ServeOptions): HttpError {
  return new HttpError(503, 'timeout', `the request was not answered within ${opts.timeoutMs} ms (--timeout-ms); retry later`, {
    'Retry-After': '1',
  });
}

/** Throw 403 when state-changing routes are disabled, 401 when the bearer token is missing or wrong. */
function authorize(request: FastifyRequest, token: string | null): void {
  if (token === null) {
    throw new HttpError(403, 'forbidden', 'state-changing routes are disabled: start ofm serve with --token or $OFM_SERVE_TOKEN to enable them');
  }
  const header = request.headers.authorization ?? '';
  const match = /^Bearer\s+(.+)$/i.exec(header);
  const given = Buffer.from(match?.[1]?.trim() ?? '');
  const expected = Buffer.from(token);
  if (!match || given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new HttpError(401, 'unauthorized', 'this route needs the header "Authorization: Bearer <token>" with the token ofm serve was started with', {
      'WWW-Authenticate': 'Bearer',
    });
  }
}

/** The request's images: one image body, or every file part of a multipart request; decoded and resized to the model's size. */
async function readImages(request: FastifyRequest, opts: ServeOptions, size: number): Promise<InputImage[]> {
  const raw: { name: string | null; bytes: Buffer }[] = [];
  if (request.isMultipart()) {
    let total = 0;
    for await (const part of request.parts()) {
      if (part.type !== 'file') continue;
      const bytes = await part.toBuffer();
      total += bytes.length;
      if (total > opts.maxBodyBytes) {
        throw new HttpError(413, 'body_too_large', `the images of the request exceed ${opts.maxBodyBytes} bytes (--max-body-mb)`);
      }
      raw.push({ name: part.filename || part.fieldname, bytes });
    }
    if (raw.length === 0) throw new HttpError(400, 'no_image', 'the multipart request holds no file part; send each image as a file field');
  } else if (Buffer.isBuffer(request.body)) {
    if (request.body.length === 0) throw new HttpError(400, 'no_image', 'the request body is empty; send the image bytes');
    raw.push({ name: null, bytes: request.body });
  } else {
    throw new HttpError(
      415,
      'unsupported_media_type',
      `expected an image body (Content-Type image/png, image/jpeg, image/webp, image/tiff or application/octet-stream) or multipart/form-data with image files, got ${request.headers['content-type'] ?? 'no Content-Type'}`,
    );
  }
  const out: InputImage[] = [];
  for (const { name, bytes } of raw) {
    const what = name === null ? 'the image' : `image '${name}'`;
    let width = 0;
    let height = 0;
    try {
      const meta = await sharp(bytes, { limitInputPixels: false }).metadata();
      width = meta.width ?? 0;
      height = meta.height ?? 0;
    } catch (err) {
      const reason = (err instanceof Error ? err.message : String(err)).replace(/\s+/g, ' ').trim();
      throw new HttpError(400, 'bad_image', `cannot decode ${what} (${reason}); send a PNG, JPEG, WebP or TIFF image`);
    }
    if (width * height > opts.maxPixels) {
      throw new HttpError(413, 'image_too_large', `${what} is ${width} x ${height} pixels, more than ${opts.maxPixels} (--max-pixels); downscale it first`);
    }
    try {
      const decoded = await decodeImage(bytes, { size, source: what });
      out.push({ name, bytes, data: decoded.data, sourceWidth: decoded.sourceWidth, sourceHeight: decoded.sourceHeight });
    } catch (err) {
      if (err instanceof DatasetError) throw new HttpError(400, 'bad_image', `cannot decode ${what}: ${err.message}`);
      throw err;
    }
  }
  return out;
}

/** One image's JSON entry, with the PNGs asked for. */
async function describe(
  input: InputImage,
  d: Detection,
  size: number,
  threshold: number,
  range: [number, number],
  withMap: boolean,
  withOverlay: boolean,
): Promise<ServeDetectJsonImage> {
  let peak = 0;
  for (let i = 1; i < d.map.length; i++) if (d.map[i]! > d.map[peak]!) peak = i;
  let mapPng: string | null = null;
  if (withMap) {
    const grey = new Uint8Array(d.map.length);
    const span = range[1] - range[0];
    for (let i = 0; i < grey.length; i++) grey[i] = Math.round(255 * Math.min(1, Math.max(0, (d.map[i]! - range[0]) / span)));
    mapPng = (await sharp(Buffer.from(grey), { raw: { width: size, height: size, channels: 1 } }).toColourspace('b-w').png().toBuffer()).toString(
      'base64',
    );
  }
  let overlayPng: string | null = null;
  if (withOverlay) {
    // What `ofm detect --out` writes for the image, byte for byte.
    const png = await detectionOverlay(input.bytes, { width: input.sourceWidth, height: input.sourceHeight }, d, size, threshold);
    overlayPng = Buffer.from(png).toString('base64');
  }
  return {
    name: input.name,
    score: round(d.score),
    raw_score: round(d.rawScore),
    anomalous: d.score > threshold,
    class: d.className,
    peak_x: peak % size,
    peak_y: Math.floor(peak / size),
    peak_value: round(d.map[peak]!),
    map_size: size,
    source_width: input.sourceWidth,
    source_height: input.sourceHeight,
    map_png: mapPng,
    overlay_png: overlayPng,
  };
}

/** `GET /v1/model`: the model serving new requests and the state of hot reload. */
export function modelJson(host: ModelHost, opts: Pick<ServeOptions, 'reloadIntervalMs' | 'threshold'>) {
  const m: ServedModel = host.model;
  const { loaded } = m;
  return {
    checkpoint: host.dir,
    kind: host.kind,
    format: loaded.format,
    format_version: loaded.formatVersion,
    model_checksum: m.checksum,
    model_generation: m.generation,
    loaded_at: m.loadedAt.toISOString(),
    load_ms: Math.round(m.loadMs),
    image_size: loaded.config.imageSize,
    weights_mode: loaded.config.continual.weights,
    threshold: opts.threshold,
    tasks: loaded.tasks.map((t) => ({ index: t.index + 1, classes: t.classes })),
    classes: loaded.classes.map((c) => ({ class: c.className, task: c.task + 1, t_start: c.tStart })),
    reload_interval_ms: opts.reloadIntervalMs,
    reloads: host.reloads,
    reload_failures: host.reloadFailures,
    last_reload_attempt_at: host.lastReloadAttemptAt?.toISOString() ?? null,
    last_reload_failed: host.lastReloadFailed,
    last_reload_error: host.lastReloadError,
    last_reload_error_at: host.lastReloadErrorAt?.toISOString() ?? null,
    config: loaded.config,
  };
}

/** Map framework and library errors to the server's statuses and codes. */
function toHttpError(err: Error & { statusCode?: number; code?: string }, opts: ServeOptions): HttpError {
  if (err instanceof HttpError) return err;
  const limitMb = (opts.maxBodyBytes / 1048576).toFixed(opts.maxBodyBytes % 1048576 === 0 ? 0 : 2);
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
    case 'FST_REQ_FILE_TOO_LARGE':
      return new HttpError(413, 'body_too_large', `the request body exceeds ${limitMb} MiB (--max-body-mb)`);
    case 'FST_FILES_LIMIT':
    case 'FST_PARTS_LIMIT':
      return new HttpError(413, 'too_many_images', `a request may hold at most ${opts.maxImages} images (--max-images)`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_INVALID_MULTIPART_CONTENT_TYPE':
      return new HttpError(
        415,
        'unsupported_media_type',
        'expected an image body (Content-Type image/png, image/jpeg, image/webp, image/tiff or application/octet-stream) or multipart/form-data with image files',
      );
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new HttpError(400, 'bad_request', err.message);
  }
  const status = err.statusCode ?? 500;
  if (status >= 400 && status < 500) return new HttpError(status, 'bad_request', err.message);
  return new HttpError(500, 'internal', `internal error: ${err.message}`);
}

/** Load the model, start polling it and listen. Errors before listening propagate (no model, port in use). */
export async function startServer(opts: ServeOptions, loader: ModelLoader = modelLoader(opts.kind)): Promise<RunningServer> {
  const host = new ModelHost(opts.source, opts.kind, loader, {
    onSwap: (next, previous) =>
      opts.log?.(
        `loaded generation ${next.generation} (${next.loaded.tasks.length} task(s): ${next.loaded.classes.map((c) => c.className).join(', ')}; ` +
          `checksum ${next.checksum.slice(0, 12)}) in ${Math.round(next.loadMs)} ms; generation ${previous.generation} is released when its ${previous.inUse} request(s) end`,
      ),
    onRefused: (error) => (opts.warn ?? opts.log)?.(`reload refused, the served model stays: ${error}`),
  });
  await host.start();
  const { app, setDraining } = await buildServer(opts, host);
  try {
    await app.listen({ host: opts.host, port: opts.port });
  } catch (err) {
    await app.close().catch(() => {});
    await host.close();
    throw err;
  }
  host.watch(opts.reloadIntervalMs);
  const address = app.server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let drained: Promise<void> | null = null;
  return {
    url: `http://${shownHost}:${address.port}`,
    port: address.port,
    app,
    host,
    drain: () => {
      drained ??= (async () => {
        setDraining();
        // A client that never finishes sending its request is cut off once a request's time is up.
        const force = setTimeout(() => app.server.closeAllConnections(), opts.timeoutMs + 1000);
        try {
          await app.close();
        } finally {
          clearTimeout(force);
        }
        await host.close();
      })();
      return drained;
    },
  };
}
