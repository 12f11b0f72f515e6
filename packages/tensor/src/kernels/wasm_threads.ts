/**
 * The multi-threaded wasm build of tfjs under Node.js: XNNPACK's thread pool over worker threads.
 *
 * tfjs-backend-wasm 4.22 ships a threaded SIMD binary but never uses it in Node.js
 * (`WASM_HAS_MULTITHREAD_SUPPORT` is forced off there, tfjs issue #3830), and three things stand
 * in the way of turning it on:
 *
 * 1. Emscripten starts each pthread from a worker script that tfjs hands over as a `blob:` URL;
 *    Node's worker threads load files only. The script is written to a temporary file instead.
 * 2. That worker then loads the main script from another blob (`mainScriptUrlOrBlob`), which
 *    Node cannot read synchronously; the worker file is rewritten to load a file written next to it.
 * 3. The C++ side caps the pool at `logical cores / 2` (it assumes two hyperthreads per core),
 *    which is 1 on a 2-vCPU machine; the core count it reads (`os.cpus()`) is reported as
 *    `2 · threads` while the module starts.
 *
 * All three patches are in force only while the backend initialises, and the files are removed
 * when the process exits. Everything is checked against the installed tfjs files: where they do
 * not look as expected, {@link enableWasmThreads} throws and nothing is changed.
 */
import { setThreadsCount, setWasmPaths, getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { ConfigError } from '@ofm/errors';
import { tf } from '../tf';

/** The branch of tfjs's pthread worker that loads the main script from `urlOrBlob`. */
const WORKER_LOAD_MAIN =
  'if(typeof e.data.urlOrBlob=="string"){importScripts(e.data.urlOrBlob)}else{var objectUrl=URL.createObjectURL(e.data.urlOrBlob);importScripts(objectUrl);URL.revokeObjectURL(objectUrl)}';

const THREADED = 'tfjs-backend-wasm-threaded-simd';

/** What {@link enableWasmThreads} did. */
export interface WasmThreadsReport {
  /** Threads in XNNPACK's pool (the calling thread included). */
  threads: number;
  /** The temporary folder holding the worker scripts (removed at exit). */
  scriptFolder: string;
}

type NodeRequire = ((id: string) => unknown) & { resolve(id: string): string };

async function nodeModules(): Promise<{
  require: NodeRequire;
  fs: typeof import('node:fs');
  os: typeof import('node:os');
  path: typeof import('node:path');
}> {
  if (typeof process === 'undefined' || process.versions?.node == null) {
    throw new Error('enableWasmThreads: only for Node.js (in browsers tfjs picks the threaded build itself)');
  }
  // Computed specifiers keep node: modules out of browser bundles.
  const load = (name: string) => import(/* @vite-ignore */ `node:${name}`);
  const { createRequire } = (await load('module')) as typeof import('node:module');
  const anchor = typeof __filename === 'string' ? __filename : import.meta.url;
  return {
    require: createRequire(anchor) as NodeRequire,
    fs: (await load('fs')) as typeof import('node:fs'),
    os: ((await load('os')) as { default: typeof import('node:os') }).default,
    path: (await load('path')) as typeof import('node:path'),
  };
}

/**
 * Start the tfjs wasm backend with its multi-threaded build and a pool of `threads` threads, in
 * Node.js. Call it before anything starts the wasm backend (before `initBackend`); afterwards
 * `initBackend({backend: 'wasm'})` (or `auto`) uses the threaded backend. The main thread blocks
 * while the pool works, as in the browser build.
 *
 * @throws when the wasm backend has already started, when `threads` is not an integer in [1, 8]
 *   (tfjs pre-creates 8 workers), or when the installed tfjs files are not the expected ones.
 */
export async function enableWasmThreads(threads: number): Promise<WasmThreadsReport> {
  if (!Number.isInteger(threads) || threads < 1 || threads > 8) {
    throw new ConfigError(`enableWasmThreads: threads must be an integer from 1 to 8 (tfjs pre-creates 8 workers), got ${threads}`);
  }
  if (tf.engine().registry.wasm != null) {
    throw new Error('enableWasmThreads: the wasm backend has already started; call it before initBackend() or tf.setBackend("wasm")');
  }
  const { require, fs, os, path } = await nodeModules();
  const script = require.resolve(`@tensorflow/tfjs-backend-wasm/wasm-out/${THREADED}.js`);
  const folder = path.dirname(script);
  const factory = require(script) as { default?: () => unknown } & (() => unknown);
  const worker = (require(path.join(folder, `${THREADED}.worker.js`)) as { wasmWorkerContents?: string }).wasmWorkerContents;
  if (typeof worker !== 'string' || !worker.includes(WORKER_LOAD_MAIN)) {
    throw new Error(`enableWasmThreads: ${THREADED}.worker.js is not the tfjs 4.22 worker this patch expects`);
  }

  const scriptFolder = fs.mkdtempSync(path.join(os.tmpdir(), 'ofm-wasm-threads-'));
  process.once('exit', () => fs.rmSync(scriptFolder, { recursive: true, force: true }));
  const mainPath = path.join(scriptFolder, 'main.cjs');
  const workerPath = path.join(scriptFolder, 'worker.cjs');
  // What tfjs would put in the blob: the module factory as a global.
  fs.writeFileSync(mainPath, `var WasmBackendModuleThreadedSimd = ${(factory.default ?? factory).toString()};\n`);
  // The worker script is one line; its newlines are inside string literals (tfjs escapes them too).
  fs.writeFileSync(workerPath, worker.replace(WORKER_LOAD_MAIN, `importScripts(${JSON.stringify(mainPath)});`).replace(/\n/g, '\\n'));

  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  setThreadsCount(threads);
  setWasmPaths(`${folder}${path.sep}`);
  const createObjectURL = URL.createObjectURL;
  const cpus = os.cpus;
  URL.createObjectURL = ((blob: Blob) =>
    blob.type === 'application/javascript' ? workerPath : createObjectURL(blob)) as typeof URL.createObjectURL;
  os.cpus = () => Array.from({ length: 2 * threads }, () => cpus()[0]!);
  const previous = tf.getBackend();
  try {
    if (!(await tf.setBackend('wasm'))) throw new Error('enableWasmThreads: the threaded wasm backend did not start');
  } finally {
    URL.createObjectURL = createObjectURL;
    os.cpus = cpus;
  }
  // The pool's workers must not keep the process alive.
  const pthreads = (tf.backend() as unknown as { wasm: { PThread?: { unusedWorkers: unknown[]; runningWorkers: unknown[] } } })
    .wasm.PThread;
  for (const w of [...(pthreads?.unusedWorkers ?? []), ...(pthreads?.runningWorkers ?? [])]) {
    (w as { unref?: () => void }).unref?.();
  }
  if (previous != null && previous !== 'wasm') await tf.setBackend(previous);
  return { threads: getThreadsCount(), scriptFolder };
}
