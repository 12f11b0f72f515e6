/**
 * The tfjs backend in the browser, chosen by `@ofm/tensor`'s backend registry (the same one the
 * CLI uses): WebGPU on a GPU, then WebGL on a GPU that renders float32 (diffusion sampling needs
 * full precision), then WebAssembly, then the pure-JS cpu backend, with the reason for each one
 * passed over. Software WebGPU adapters and WebGL renderers (SwiftShader, llvmpipe) are slower than
 * wasm and are used only when forced. tfjs-backend-webgpu is loaded (as its own chunk) only when the
 * browser offers `navigator.gpu`. The wasm binaries are emitted by Vite as assets of this app, so the
 * app needs no CDN. `?backend=webgpu|webgl|wasm|cpu` in the page URL forces one.
 */
import { type BackendReport, initBackend } from '@ofm/tensor';
import wasmPlain from '@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm.wasm?url';
import wasmSimd from '@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-simd.wasm?url';
import wasmThreaded from '@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.wasm?url';

/** The backends this page can run on, fastest first. */
export const BROWSER_BACKENDS = ['webgpu', 'webgl', 'wasm', 'cpu'] as const;
export type BrowserBackend = (typeof BROWSER_BACKENDS)[number];

/** Which backend runs, and why the faster ones do not. */
export interface BackendInfo {
  name: BrowserBackend;
  /** e.g. 'SIMD, 1 thread' for wasm, 'WebGL 2' for webgl, the adapter for webgpu. */
  detail: string;
  /** Why a faster backend was passed over (empty when the first choice runs). */
  notes: string[];
}

const WASM_PATHS: Record<string, string> = {
  'tfjs-backend-wasm.wasm': wasmPlain,
  'tfjs-backend-wasm-simd.wasm': wasmSimd,
  'tfjs-backend-wasm-threaded-simd.wasm': wasmThreaded,
};

/** Load tfjs-backend-webgpu when the browser offers WebGPU (it registers itself on import). */
async function loadWebgpuBackend(): Promise<string | null> {
  if (!('gpu' in navigator) || navigator.gpu == null) return null;
  try {
    await import('@tensorflow/tfjs-backend-webgpu');
    return null;
  } catch (err) {
    return `webgpu: @tensorflow/tfjs-backend-webgpu did not load: ${(err as Error).message}`;
  }
}

/** Start the fastest backend that works here (or the one `requested`, falling back after it). */
export async function startBackend(requested: BrowserBackend | null): Promise<BackendInfo> {
  const notes: string[] = [];
  const loadFailure = await loadWebgpuBackend();
  if (loadFailure) notes.push(loadFailure);
  const report: BackendReport = await initBackend({ backend: requested ?? 'auto', wasmPaths: WASM_PATHS });
  for (const c of report.candidates) {
    // tfjs-node is never an option in a page; the rest say why they were passed over.
    if (c.name === 'tensorflow' || c.name === 'tensorflow-gpu') continue;
    if (c.status === 'failed' || c.status === 'skipped') notes.push(`${c.name}: ${c.reason}`);
  }
  const name = (BROWSER_BACKENDS as readonly string[]).includes(report.backend) ? (report.backend as BrowserBackend) : 'cpu';
  const detail = name === 'cpu' ? 'pure JavaScript (slow)' : (report.detail ?? report.backend);
  return { name, detail, notes };
}

/** The backend asked for by `?backend=` in the page URL, or null. */
export function requestedBackend(search: string): BrowserBackend | null {
  const value = new URLSearchParams(search).get('backend');
  return (BROWSER_BACKENDS as readonly string[]).includes(value ?? '') ? (value as BrowserBackend) : null;
}
