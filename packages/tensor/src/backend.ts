/**
 * Backend selection for tfjs: the fastest backend that works on this machine, and a report of
 * why the others were not used.
 *
 * Preference order: `tensorflow-gpu` (@tensorflow/tfjs-node-gpu) > `tensorflow`
 * (@tensorflow/tfjs-node) > `wasm` (@tensorflow/tfjs-backend-wasm with the kernels of
 * `./kernels`) > `cpu` (pure JS, ~200x slower than wasm for training).
 *
 * The two tfjs-node packages are optional peer dependencies: they are loaded at run time through
 * `createRequire` with a computed specifier, so bundlers never see them and nothing fails when
 * they are absent.
 */
import { getThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { registerWasmKernels } from './kernels';
import { tf } from './tf';

/** A concrete backend, in preference order. */
export const BACKEND_NAMES = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;

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
  /** Custom kernels registered for the chosen backend (see `registerWasmKernels`). */
  customKernels: string[];
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
}

/** The environment variable that picks the backend when the option does not. */
export const BACKEND_ENV_VAR = 'OFM_BACKEND';

const NODE_PACKAGES = {
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
  tensorflow: '@tensorflow/tfjs-node',
} as const;

const WASM_BINARY = 'tfjs-backend-wasm-simd.wasm';

type Attempt = { ok: true } | { ok: false; status: 'skipped' | 'failed'; reason: string };

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
  const key = JSON.stringify([request, source, Boolean(options.strict), options.wasmPaths ?? null, quiet]);
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
  const valid: readonly string[] = ['auto', ...BACKEND_NAMES];
  if (!valid.includes(raw)) {
    const where = source === 'env' ? `the ${BACKEND_ENV_VAR} environment variable` : 'the backend option';
    throw new Error(
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
  const start = request === 'auto' ? 0 : BACKEND_NAMES.indexOf(request);
  const strict = Boolean(options.strict) && request !== 'auto';
  const candidates: BackendCandidate[] = [];
  let chosen: BackendName | undefined;
  for (const [i, name] of BACKEND_NAMES.entries()) {
    if (i < start || (strict && i > start)) {
      const why = i < start ? 'was requested' : 'was requested in strict mode';
      candidates.push({ name, status: 'not-tried', reason: `'${request}' ${why} (${describeSource(source)})` });
      continue;
    }
    if (chosen != null) {
      candidates.push({ name, status: 'not-tried', reason: `'${chosen}' ranks higher and was chosen` });
      continue;
    }
    const attempt = await tryBackend(name, options, quiet);
    if (attempt.ok) {
      chosen = name;
      candidates.push({ name, status: 'chosen' });
    } else {
      candidates.push({ name, status: attempt.status, reason: attempt.reason });
    }
  }
  if (chosen == null) {
    if (strict) {
      throw new Error(
        `The requested tfjs backend '${request}' could not start (strict mode, no fallback):\n` +
          formatCandidates(candidates.filter((c) => c.status !== 'not-tried')),
      );
    }
    // cpu is pure JS and always starts; this is only reachable if tfjs itself is broken.
    throw new Error(`No tfjs backend could start:\n${formatCandidates(candidates)}`);
  }
  if (quiet) silenceCpuBanner();

  const report: BackendReport = {
    backend: chosen,
    tfjsBackend: tf.getBackend(),
    requested: request,
    requestSource: source,
    tfjsVersion: tf.version_core,
    candidates,
    customKernels: [],
  };
  if (chosen === 'wasm') {
    report.customKernels = registerWasmKernels();
    report.simd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
    report.threads = getThreadsCount();
  } else if (chosen === 'cpu') {
    report.threads = 1;
  }
  return report;
}

async function tryBackend(name: BackendName, options: InitBackendOptions, quiet: boolean): Promise<Attempt> {
  switch (name) {
    case 'tensorflow-gpu':
    case 'tensorflow':
      return tryTfjsNode(name, quiet);
    case 'wasm':
      return tryWasm(options.wasmPaths);
    case 'cpu':
      return (await tf.setBackend('cpu'))
        ? { ok: true }
        : { ok: false, status: 'failed', reason: "tf.setBackend('cpu') returned false" };
  }
}

async function tryTfjsNode(name: 'tensorflow-gpu' | 'tensorflow', quiet: boolean): Promise<Attempt> {
  const pkg = NODE_PACKAGES[name];
  const req = await nodeRequire();
  if (req == null) return { ok: false, status: 'skipped', reason: `${pkg} needs Node.js` };
  const resolved = resolveFrom(req, pkg);
  if (resolved == null) {
    return { ok: false, status: 'skipped', reason: `not installed (${pkg} was not found; npm install ${pkg})` };
  }
  if (tf.findBackendFactory('tensorflow') == null) {
    if (quiet && process.env.TF_CPP_MIN_LOG_LEVEL == null) process.env.TF_CPP_MIN_LOG_LEVEL = '2';
    try {
      resolved.require(resolved.path);
    } catch (err) {
      return { ok: false, status: 'failed', reason: `failed to load ${pkg}: ${firstLine(err)}` };
    }
    if (tf.findBackendFactory('tensorflow') == null) {
      return {
        ok: false,
        status: 'failed',
        reason:
          `${pkg} loaded but registered no 'tensorflow' backend with this copy of @tensorflow/tfjs-core ` +
          `(${tf.version_core}); install a matching version (npm install ${pkg}@${tf.version_core})`,
      };
    }
  }
  try {
    if (await tf.setBackend('tensorflow')) return { ok: true };
  } catch (err) {
    return { ok: false, status: 'failed', reason: `tf.setBackend('tensorflow') threw: ${firstLine(err)}` };
  }
  return { ok: false, status: 'failed', reason: `tf.setBackend('tensorflow') returned false (${pkg})` };
}

async function tryWasm(wasmPaths: InitBackendOptions['wasmPaths']): Promise<Attempt> {
  if (typeof WebAssembly === 'undefined') {
    return { ok: false, status: 'skipped', reason: 'WebAssembly is not available in this runtime' };
  }
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
      return { ok: false, status: 'failed', reason: `could not set the wasm binary paths: ${firstLine(err)}` };
    }
  }
  try {
    if (await tf.setBackend('wasm')) return { ok: true };
  } catch (err) {
    return { ok: false, status: 'failed', reason: `tf.setBackend('wasm') threw: ${firstLine(err)}` };
  }
  return {
    ok: false,
    status: 'failed',
    reason: "tf.setBackend('wasm') returned false (tfjs printed the cause above; check the wasm binary paths)",
  };
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
