/**
 * Backend selection for tfjs: the fastest backend that works on this machine, and a report of
 * why the others were not used.
 *
 * Backends live in a registry ({@link registerBackendProvider}): each has a name, a priority, an
 * availability check that says why not, a start, and the registration of this project's kernels
 * for it. {@link initBackend} walks the registry by priority. The built-in order:
 * `tensorflow-gpu` (@tensorflow/tfjs-node-gpu) > `webgpu` on a GPU (@tensorflow/tfjs-backend-webgpu;
 * in Node.js through Dawn, the `webgpu` package) > `tensorflow` (@tensorflow/tfjs-node) > `webgl`
 * (browsers, a GPU that renders float32) > `wasm` (@tensorflow/tfjs-backend-wasm with the kernels of
 * `./kernels`) > `cpu` (pure JS, ~200x slower than wasm for training). A software WebGPU adapter
 * (llvmpipe, SwiftShader) or WebGL renderer is never chosen by `auto`, only when asked for by name.
 *
 * The tfjs-node and WebGPU packages are optional peer dependencies: they are loaded at run time
 * through `createRequire` with a computed specifier, so bundlers never see them and nothing fails
 * when they are absent.
 */
import { getThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { ConfigError } from '@ofm/errors';
import { registerWasmKernels } from './kernels';
import { registerOfmKernels } from './kernels/ofm_kernels';
import { tf } from './tf';
import { type GpuAdapterReport, adapterLabel, probeWebgpu, webgpuAdapter } from './webgpu';

/** The built-in backends, in preference order. */
export const BACKEND_NAMES = ['tensorflow-gpu', 'webgpu', 'tensorflow', 'webgl', 'wasm', 'cpu'] as const;

/** One of {@link BACKEND_NAMES}. */
export type BackendName = (typeof BACKEND_NAMES)[number];

/** What a caller may ask for: a concrete backend, or `auto` (the first that works). */
export type BackendRequest = 'auto' | BackendName;

/** Where the request came from. */
export type BackendRequestSource = 'option' | 'env' | 'default';

/** What happened to one candidate backend during selection. */
export interface BackendCandidate {
  name: BackendName;
  /**
   * `chosen`: in use. `skipped`: not available here (package not installed, not Node.js).
   * `failed`: available but it did not start (load error, `tf.setBackend` returned false).
   * `not-tried`: ranked before the request, or after the chosen backend.
   */
  status: 'chosen' | 'skipped' | 'failed' | 'not-tried';
  reason?: string;
}

/** The outcome of {@link initBackend}. */
export interface BackendReport {
  /** The backend in use (one of {@link BACKEND_NAMES}). */
  backend: BackendName;
  /** The tfjs engine's name for it (`tf.getBackend()`): both tfjs-node packages are 'tensorflow'. */
  tfjsBackend: string;
  /** The request after resolving the option and `OFM_BACKEND`. */
  requested: BackendRequest;
  /** Whether the request came from the option, the `OFM_BACKEND` variable, or the default. */
  requestSource: BackendRequestSource;
  /** Version of @tensorflow/tfjs-core. */
  tfjsVersion: string;
  /** Every backend in preference order, with what happened to it. */
  candidates: BackendCandidate[];
  /** wasm only: whether the SIMD build runs. */
  simd?: boolean;
  /** Threads the backend computes with (wasm: XNNPACK's pool; cpu: 1); absent when unknown. */
  threads?: number;
  /**
   * Custom kernels registered for the chosen backend: on wasm see `registerWasmKernels`; on
   * webgpu, webgl and tensorflow the project's kernels built from tfjs ops (`./kernels/composite`).
   */
  customKernels: string[];
  /** webgpu only: the adapter (GPU or software) it runs on. */
  adapter?: GpuAdapterReport;
  /** A short description of the device, e.g. 'WebGL 2' or the WebGPU adapter's name. */
  detail?: string;
}

/** What a backend provider is told when it is tried. */
export interface BackendContext {
  /** Whether this backend was asked for by name (not reached by `auto` or a fallback). */
  requested: boolean;
  /** See {@link InitBackendOptions.quiet}. */
  quiet: boolean;
  /** See {@link InitBackendOptions.wasmPaths}. */
  wasmPaths?: string | Record<string, string>;
  /** See {@link InitBackendOptions.syncReads}. */
  syncReads: boolean;
}

/**
 * One entry of the backend registry. {@link initBackend} tries the providers from the highest
 * priority down: `available`, then `start`, then `registerKernels` and `describe` for the chosen one.
 */
export interface BackendProvider {
  name: BackendName;
  /** Higher is tried first (the built-ins: 60 tensorflow-gpu ... 10 cpu). */
  priority: number;
  /** Null when the backend can run here; otherwise why not (the candidate is then 'skipped'). */
  available(ctx: BackendContext): Promise<string | null>;
  /** Make it tfjs's active backend: null on success, else why it failed (the candidate is 'failed'). */
  start(ctx: BackendContext): Promise<string | null>;
  /** Register this project's kernels for the backend (tfjs `registerKernel`); the names registered. */
  registerKernels(): string[];
  /** Report fields known once it runs (threads, SIMD, adapter, detail). */
  describe?(): Promise<Pick<BackendReport, 'simd' | 'threads' | 'adapter' | 'detail'>>;
}

/** Options of {@link initBackend}. */
export interface InitBackendOptions {
  /**
   * The backend to use, or `auto` (default). Overrides the `OFM_BACKEND` environment variable.
   * A concrete name starts the preference chain at that backend: when it cannot start, the next
   * ones are tried (and the report says why), unless `strict` is set.
   */
  backend?: BackendRequest;
  /**
   * With a concrete `backend`: try only that one, and throw (naming the reason) when it cannot
   * start, instead of falling back. The active backend is then left as it was.
   */
  strict?: boolean;
  /**
   * Silence tfjs's advisory console output (default true): the cpu backend's "looks like you
   * are running TensorFlow.js in Node.js" banner, and TensorFlow's C++ info logs when tfjs-node
   * loads (sets `TF_CPP_MIN_LOG_LEVEL=2` unless already set). Warnings and errors still print.
   */
  quiet?: boolean;
  /**
   * Where the wasm binaries are, for bundled apps (a folder URL ending in '/', or a map from
   * binary name to URL; see `setWasmPaths` of @tensorflow/tfjs-backend-wasm). In Node.js they are
   * found in the installed @tensorflow/tfjs-backend-wasm package. Applies only before the wasm
   * backend first starts in this process.
   */
  wasmPaths?: string | Record<string, string>;
  /**
   * Whether the caller reads tensors synchronously (`dataSync`, `arraySync`; default true: the
   * trainer and the detector do). The WebGPU backend in Node.js can only read GPU data
   * asynchronously (Dawn maps buffers with `mapAsync` and Node.js has no OffscreenCanvas), so it
   * is skipped unless this is false. In browsers WebGPU reads synchronously (slowly).
   */
  syncReads?: boolean;
}

/** The environment variable that picks the backend when the option does not. */
export const BACKEND_ENV_VAR = 'OFM_BACKEND';

const NODE_PACKAGES = {
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
  tensorflow: '@tensorflow/tfjs-node',
} as const;

const WASM_BINARY = 'tfjs-backend-wasm-simd.wasm';

type Attempt = { ok: true } | { ok: false; status: 'skipped' | 'failed'; reason: string };

const providers = new Map<BackendName, BackendProvider>();
/** Changes with every registration, so that {@link initBackend} selects again afterwards. */
let registryVersion = 0;

/**
 * Add a backend to the registry, or replace the provider of the same name (a page can supply its
 * own WebGL check, for example). Takes effect from the next {@link initBackend}.
 */
export function registerBackendProvider(provider: BackendProvider): void {
  if (!(BACKEND_NAMES as readonly string[]).includes(provider.name)) {
    throw new Error(`registerBackendProvider: '${provider.name}' is not a backend name (${BACKEND_NAMES.join(', ')})`);
  }
  providers.set(provider.name, provider);
  registryVersion++;
}

/** The registered providers, highest priority first. */
export function backendProviders(): BackendProvider[] {
  return [...providers.values()].sort((a, b) => b.priority - a.priority);
}

let current: { key: string; report: BackendReport } | undefined;
let pending: { key: string; promise: Promise<BackendReport> } | undefined;
let queue: Promise<unknown> = Promise.resolve();
let wasmPathsConfigured = false;

/**
 * Pick and initialise the tfjs backend; see {@link BackendRequest} for the order. Registers the
 * custom wasm kernels when wasm is chosen. Calling it again with the same request returns the
 * same report without re-initialising (unless the tfjs backend was switched in between).
 *
 * @throws when the request (option or `OFM_BACKEND`) is not a backend name, or, with `strict`,
 *   when the requested backend cannot start.
 */
export async function initBackend(options: InitBackendOptions = {}): Promise<BackendReport> {
  const { request, source } = resolveRequest(options.backend);
  const quiet = options.quiet ?? true;
  const syncReads = options.syncReads ?? true;
  const key = JSON.stringify([request, source, Boolean(options.strict), options.wasmPaths ?? null, quiet, syncReads, registryVersion]);
  if (current?.key === key && tf.getBackend() === current.report.tfjsBackend) return current.report;
  if (pending?.key === key) return pending.promise;
  // Selections run one at a time: tfjs has one global engine.
  const promise = queue
    .then(() => select(request, source, options, quiet))
    .then((report) => {
      current = { key, report };
      return report;
    });
  pending = { key, promise };
  queue = promise.catch(() => undefined);
  try {
    return await promise;
  } finally {
    if (pending?.promise === promise) pending = undefined;
  }
}

/** The report of the last successful {@link initBackend}, or undefined before the first. */
export function backendReport(): BackendReport | undefined {
  return current?.report;
}

function resolveRequest(option: string | undefined): { request: BackendRequest; source: BackendRequestSource } {
  const fromEnv = typeof process !== 'undefined' ? process.env?.[BACKEND_ENV_VAR]?.trim() : undefined;
  const [raw, source]: [string, BackendRequestSource] =
    option != null ? [option, 'option'] : fromEnv ? [fromEnv, 'env'] : ['auto', 'default'];
  const valid: readonly string[] = ['auto', ...backendProviders().map((p) => p.name)];
  if (!valid.includes(raw)) {
    const where = source === 'env' ? `the ${BACKEND_ENV_VAR} environment variable` : 'the backend option';
    throw new ConfigError(
      `Unknown tfjs backend '${raw}' (from ${where}). Valid names: ${valid.join(', ')}.` +
        (source === 'env' ? ` Set ${BACKEND_ENV_VAR} to one of them or unset it.` : ''),
    );
  }
  return { request: raw as BackendRequest, source };
}

async function select(
  request: BackendRequest,
  source: BackendRequestSource,
  options: InitBackendOptions,
  quiet: boolean,
): Promise<BackendReport> {
  const order = backendProviders();
  const names = order.map((p) => p.name);
  const start = request === 'auto' ? 0 : names.indexOf(request);
  if (start < 0) throw new Error(`No provider is registered for the tfjs backend '${request}'`);
  const strict = Boolean(options.strict) && request !== 'auto';
  const candidates: BackendCandidate[] = [];
  let chosen: BackendProvider | undefined;
  for (const [i, provider] of order.entries()) {
    const name = provider.name;
    if (i < start || (strict && i > start)) {
      const why = i < start ? 'was requested' : 'was requested in strict mode';
      candidates.push({ name, status: 'not-tried', reason: `'${request}' ${why} (${describeSource(source)})` });
      continue;
    }
    if (chosen != null) {
      candidates.push({ name, status: 'not-tried', reason: `'${chosen.name}' ranks higher and was chosen` });
      continue;
    }
    const attempt = await tryProvider(provider, {
      requested: name === request,
      quiet,
      wasmPaths: options.wasmPaths,
      syncReads: options.syncReads ?? true,
    });
    if (attempt.ok) {
      chosen = provider;
      candidates.push({ name, status: 'chosen' });
    } else {
      candidates.push({ name, status: attempt.status, reason: attempt.reason });
    }
  }
  if (chosen == null) {
    if (strict) {
      throw new ConfigError(
        `The requested tfjs backend '${request}' could not start (strict mode, no fallback):\n` +
          formatCandidates(candidates.filter((c) => c.status !== 'not-tried')),
      );
    }
    // cpu is pure JS and always starts; this is only reachable if tfjs itself is broken.
    throw new Error(`No tfjs backend could start:\n${formatCandidates(candidates)}`);
  }
  if (quiet) silenceCpuBanner();

  const report: BackendReport = {
    backend: chosen.name,
    tfjsBackend: tf.getBackend(),
    requested: request,
    requestSource: source,
    tfjsVersion: tf.version_core,
    candidates,
    customKernels: chosen.registerKernels(),
  };
  if (chosen.describe) {
    for (const [key, value] of Object.entries(await chosen.describe())) {
      if (value !== undefined) (report as unknown as Record<string, unknown>)[key] = value;
    }
  }
  return report;
}

async function tryProvider(provider: BackendProvider, ctx: BackendContext): Promise<Attempt> {
  try {
    const unavailable = await provider.available(ctx);
    if (unavailable != null) return { ok: false, status: 'skipped', reason: unavailable };
  } catch (err) {
    return { ok: false, status: 'failed', reason: `the availability check threw: ${firstLine(err)}` };
  }
  try {
    const failed = await provider.start(ctx);
    return failed == null ? { ok: true } : { ok: false, status: 'failed', reason: failed };
  } catch (err) {
    return { ok: false, status: 'failed', reason: `tf.setBackend('${provider.name}') threw: ${firstLine(err)}` };
  }
}

/** `tf.setBackend(name)`: null when it is active, else why not. */
async function setTfjsBackend(name: string, hint: string): Promise<string | null> {
  try {
    if (await tf.setBackend(name)) return null;
  } catch (err) {
    return `tf.setBackend('${name}') threw: ${firstLine(err)}`;
  }
  return `tf.setBackend('${name}') returned false (${hint})`;
}

function tfjsNodeProvider(name: 'tensorflow-gpu' | 'tensorflow', priority: number): BackendProvider {
  const pkg = NODE_PACKAGES[name];
  return {
    name,
    priority,
    async available() {
      const req = await nodeRequire();
      if (req == null) return `${pkg} needs Node.js`;
      if (resolveFrom(req, pkg) == null) return `not installed (${pkg} was not found; npm install ${pkg})`;
      return null;
    },
    async start(ctx) {
      return startTfjsNode(name, ctx.quiet);
    },
    registerKernels: () => registerOfmKernels('tensorflow').names,
  };
}

const builtinProviders: BackendProvider[] = [
  tfjsNodeProvider('tensorflow-gpu', 60),
  {
    name: 'webgpu',
    priority: 50,
    async available(ctx) {
      const req = await nodeRequire();
      if (req != null && ctx.syncReads) return WEBGPU_NODE_SYNC_READS;
      return probeWebgpu(ctx.requested, req == null ? null : { resolve: (id) => resolveFrom(req, id) });
    },
    async start() {
      const failed = await setTfjsBackend('webgpu', 'tfjs printed the cause above');
      if (failed == null && (await nodeRequire()) != null) guardSyncReads();
      return failed;
    },
    registerKernels: () => registerOfmKernels('webgpu').names,
    async describe() {
      const adapter = webgpuAdapter();
      return adapter == null ? {} : { adapter, detail: `${adapter.software ? 'software' : 'GPU'} adapter: ${adapterLabel(adapter)}` };
    },
  },
  tfjsNodeProvider('tensorflow', 40),
  {
    name: 'webgl',
    priority: 30,
    async available(ctx) {
      return webglUnavailable(ctx.requested);
    },
    async start() {
      const failed = await setTfjsBackend('webgl', 'no WebGL context: no GPU, or WebGL is disabled');
      if (failed != null) return failed;
      if (!tf.env().getBool('WEBGL_RENDER_FLOAT32_CAPABLE')) {
        return 'this GPU cannot render float32 textures (half precision is too coarse for diffusion sampling)';
      }
      return null;
    },
    registerKernels: () => registerOfmKernels('webgl').names,
    async describe() {
      return { detail: `WebGL ${tf.env().getNumber('WEBGL_VERSION')}` };
    },
  },
  {
    name: 'wasm',
    priority: 20,
    async available() {
      return typeof WebAssembly === 'undefined' ? 'WebAssembly is not available in this runtime' : null;
    },
    start: (ctx) => startWasm(ctx.wasmPaths),
    registerKernels: () => registerWasmKernels(),
    async describe() {
      const simd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
      const threads = getThreadsCount();
      return { simd, threads, detail: `${simd ? 'SIMD' : 'no SIMD'}, ${threads} thread${threads === 1 ? '' : 's'}` };
    },
  },
  {
    name: 'cpu',
    priority: 10,
    available: async () => null,
    start: () => setTfjsBackend('cpu', 'the pure-JS backend did not start'),
    registerKernels: () => [],
    async describe() {
      return { threads: 1, detail: 'pure JavaScript' };
    },
  },
];
for (const provider of builtinProviders) providers.set(provider.name, provider);

/** Why webgpu is skipped in Node.js for a caller that reads synchronously. */
export const WEBGPU_NODE_SYNC_READS =
  'in Node.js it reads GPU data only asynchronously, and this caller reads synchronously ' +
  '(dataSync, as the trainer and detector do; initBackend option syncReads)';

/**
 * Whether the active backend can read tensors synchronously (`dataSync`, `arraySync`): every
 * backend can, except WebGPU in Node.js. Code paths that must read synchronously (gradient
 * projection's layer taps, for instance) check it to fail early with a clear message.
 */
export function canReadSync(): boolean {
  const node = typeof process !== 'undefined' && process.versions?.node != null;
  return !(node && tf.getBackend() === 'webgpu');
}

/**
 * In Node.js the WebGPU backend's synchronous read goes through OffscreenCanvas, which Node.js
 * lacks ("OffscreenCanvas is not defined" from deep in tfjs). Replace that with one clear error;
 * data still held on the CPU (never uploaded) reads as before.
 */
function guardSyncReads(): void {
  type Backend = { readSync(dataId: object): unknown; tensorMap?: { get(id: object): { values?: unknown; dtype?: string } | undefined } };
  const backend = tf.engine().registry.webgpu as unknown as Backend | undefined;
  if (backend == null || (backend as { ofmSyncGuard?: boolean }).ofmSyncGuard) return;
  const original = backend.readSync.bind(backend);
  backend.readSync = (dataId: object) => {
    const data = backend.tensorMap?.get(dataId);
    if (data?.values != null || data?.dtype === 'string') return original(dataId);
    throw new ConfigError(
      'The webgpu backend cannot read GPU data synchronously in Node.js (dataSync/arraySync); ' +
        'read with `await tensor.data()`, or use another backend (--backend wasm) for code that reads synchronously',
    );
  };
  (backend as { ofmSyncGuard?: boolean }).ofmSyncGuard = true;
}

/** Renderers that run WebGL on the CPU: slower than wasm for this model by far. */
const SOFTWARE_RENDERER = /swiftshader|llvmpipe|softpipe|software|basic render/i;

/** Why WebGL cannot serve here (null when it may): a browser with WebGL 2 on a GPU. */
function webglUnavailable(requested: boolean): string | null {
  const doc = (globalThis as { document?: { createElement(tag: string): unknown } }).document;
  if (doc == null) return 'needs a browser (WebGL 2)';
  type Gl = {
    RENDERER: number;
    getExtension(name: string): { UNMASKED_RENDERER_WEBGL?: number; loseContext?(): void } | null;
    getParameter(p: number): unknown;
  };
  const canvas = doc.createElement('canvas') as { getContext(kind: string): Gl | null };
  const gl = canvas.getContext('webgl2');
  if (gl == null) return 'no WebGL 2 context (no GPU, or WebGL is disabled)';
  const debug = gl.getExtension('WEBGL_debug_renderer_info');
  const renderer = String(gl.getParameter(debug?.UNMASKED_RENDERER_WEBGL ?? gl.RENDERER));
  gl.getExtension('WEBGL_lose_context')?.loseContext?.();
  const software = renderer.match(SOFTWARE_RENDERER);
  if (!requested && software) return `software renderer (${software[0]}), slower than wasm`;
  return null;
}

async function startTfjsNode(name: 'tensorflow-gpu' | 'tensorflow', quiet: boolean): Promise<string | null> {
  const pkg = NODE_PACKAGES[name];
  const req = await nodeRequire();
  const resolved = req == null ? undefined : resolveFrom(req, pkg);
  if (resolved == null) return `${pkg} could not be resolved`;
  if (tf.findBackendFactory('tensorflow') == null) {
    if (quiet && process.env.TF_CPP_MIN_LOG_LEVEL == null) process.env.TF_CPP_MIN_LOG_LEVEL = '2';
    try {
      resolved.require(resolved.path);
    } catch (err) {
      return `failed to load ${pkg}: ${firstLine(err)}`;
    }
    if (tf.findBackendFactory('tensorflow') == null) {
      return (
        `${pkg} loaded but registered no 'tensorflow' backend with this copy of @tensorflow/tfjs-core ` +
        `(${tf.version_core}); install a matching version (npm install ${pkg}@${tf.version_core})`
      );
    }
  }
  return setTfjsBackend('tensorflow', pkg);
}

async function startWasm(wasmPaths: InitBackendOptions['wasmPaths']): Promise<string | null> {
  const initialised = tf.engine().registry.wasm != null;
  if (!initialised && !wasmPathsConfigured) {
    try {
      if (wasmPaths != null) {
        setWasmPaths(wasmPaths);
      } else {
        const folder = await installedWasmFolder();
        if (folder != null) setWasmPaths(folder);
      }
      wasmPathsConfigured = true;
    } catch (err) {
      return `could not set the wasm binary paths: ${firstLine(err)}`;
    }
  }
  return setTfjsBackend('wasm', 'tfjs printed the cause above; check the wasm binary paths');
}

/** In Node.js: the wasm-out folder of the installed @tensorflow/tfjs-backend-wasm, with a trailing '/'. */
async function installedWasmFolder(): Promise<string | undefined> {
  const req = await nodeRequire();
  if (req == null) return undefined;
  const resolved = resolveFrom(req, `@tensorflow/tfjs-backend-wasm/wasm-out/${WASM_BINARY}`);
  if (resolved == null) return undefined;
  return resolved.path.slice(0, resolved.path.length - WASM_BINARY.length);
}

type RequireFn = ((id: string) => unknown) & { resolve(id: string): string };

/**
 * A CommonJS `require` anchored at this module (falling back to the working directory), loaded
 * through a computed specifier so that browser bundles never pull in `node:module`.
 */
async function nodeRequire(): Promise<{ here: RequireFn; cwd: RequireFn } | null> {
  if (typeof process === 'undefined' || process.versions?.node == null) return null;
  const specifier = 'node:module';
  const { createRequire } = (await import(/* @vite-ignore */ specifier)) as {
    createRequire(from: string): RequireFn;
  };
  const anchor = typeof __filename === 'string' ? __filename : import.meta.url;
  return { here: createRequire(anchor), cwd: createRequire(`${process.cwd()}/`) };
}

function resolveFrom(
  req: { here: RequireFn; cwd: RequireFn },
  id: string,
): { path: string; require: RequireFn } | undefined {
  for (const r of [req.here, req.cwd]) {
    try {
      return { path: r.resolve(id), require: r };
    } catch {
      // not resolvable from this anchor; try the next
    }
  }
  return undefined;
}

/**
 * The cpu backend prints a "looks like you are running TensorFlow.js in Node.js" banner on its
 * first tensor. It guards that with its instance's `firstUse` flag; clearing the flag silences
 * just that banner (tfjs has no option for it short of `enableProdMode`, which also drops checks).
 */
function silenceCpuBanner(): void {
  const cpu = tf.findBackend('cpu') as { firstUse?: boolean } | null;
  if (cpu != null && typeof cpu.firstUse === 'boolean') cpu.firstUse = false;
}

function describeSource(source: BackendRequestSource): string {
  return source === 'env' ? `${BACKEND_ENV_VAR}` : source === 'option' ? 'backend option' : 'default';
}

function formatCandidates(candidates: BackendCandidate[]): string {
  return candidates.map((c) => `  ${c.name}: ${c.status}${c.reason ? ` (${c.reason})` : ''}`).join('\n');
}

function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0].trim();
}
