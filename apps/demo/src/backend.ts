/**
 * The tfjs backend in the browser: WebGL when a GPU (not a software rasteriser) can render float32
 * textures (diffusion sampling needs full precision), else WebAssembly through `@ofm/tensor`'s
 * `initBackend` (which falls back to the pure-JS cpu backend and says why). The wasm binaries are
 * emitted by Vite as assets of this app, so the app needs no CDN. `?backend=webgl|wasm|cpu` in the
 * page URL forces one.
 */
import { initBackend, tf } from '@ofm/tensor';
import wasmPlain from '@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm.wasm?url';
import wasmSimd from '@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-simd.wasm?url';
import wasmThreaded from '@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.wasm?url';

/** The backends this page can run on, fastest first. */
export const BROWSER_BACKENDS = ['webgl', 'wasm', 'cpu'] as const;
export type BrowserBackend = (typeof BROWSER_BACKENDS)[number];

/** Which backend runs, and why the faster ones do not. */
export interface BackendInfo {
  name: BrowserBackend;
  /** e.g. 'SIMD, 1 thread' for wasm, 'WebGL 2' for webgl. */
  detail: string;
  /** Why a faster backend was passed over (empty when the first choice runs). */
  notes: string[];
}

const WASM_PATHS: Record<string, string> = {
  'tfjs-backend-wasm.wasm': wasmPlain,
  'tfjs-backend-wasm-simd.wasm': wasmSimd,
  'tfjs-backend-wasm-threaded-simd.wasm': wasmThreaded,
};

/** Renderers that run WebGL on the CPU: slower than wasm for this model by far. */
const SOFTWARE_RENDERER = /swiftshader|llvmpipe|softpipe|software|basic render/i;

/** The WebGL renderer's name (the GPU, or a software rasteriser), or null without WebGL. */
function webglRenderer(): string | null {
  const gl = document.createElement('canvas').getContext('webgl2');
  if (!gl) return null;
  const info = gl.getExtension('WEBGL_debug_renderer_info');
  const renderer = String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
  gl.getExtension('WEBGL_lose_context')?.loseContext();
  return renderer;
}

/**
 * The reason WebGL cannot serve this model, or null when it can (and is now the backend). Unless
 * `force`d, a software renderer counts as no GPU.
 */
async function tryWebgl(force: boolean): Promise<string | null> {
  const renderer = webglRenderer();
  if (renderer === null) return 'no WebGL 2 context (no GPU, or WebGL is disabled)';
  const software = renderer.match(SOFTWARE_RENDERER);
  if (!force && software) return `software renderer (${software[0]}), slower than wasm`;
  try {
    if (!(await tf.setBackend('webgl'))) return 'no WebGL context (no GPU, or WebGL is disabled)';
  } catch (err) {
    return `WebGL failed to start: ${(err as Error).message}`;
  }
  if (!tf.env().getBool('WEBGL_RENDER_FLOAT32_CAPABLE')) {
    return 'this GPU cannot render float32 textures (half precision is too coarse for diffusion sampling)';
  }
  return null;
}

/** Start the fastest backend that works here (or the one `requested`, falling back after it). */
export async function startBackend(requested: BrowserBackend | null): Promise<BackendInfo> {
  const notes: string[] = [];
  if (requested === null || requested === 'webgl') {
    const reason = await tryWebgl(requested === 'webgl');
    if (reason === null) return { name: 'webgl', detail: `WebGL ${tf.env().getNumber('WEBGL_VERSION')}`, notes };
    notes.push(`webgl: ${reason}`);
  }
  const report = await initBackend({ backend: requested === 'cpu' ? 'cpu' : 'wasm', wasmPaths: WASM_PATHS });
  for (const c of report.candidates) {
    if (c.status === 'failed' || (c.status === 'skipped' && c.name === 'wasm')) notes.push(`${c.name}: ${c.reason}`);
  }
  if (report.backend === 'wasm') {
    const threads = report.threads ?? 1;
    return { name: 'wasm', detail: `${report.simd ? 'SIMD' : 'no SIMD'}, ${threads} thread${threads === 1 ? '' : 's'}`, notes };
  }
  return { name: 'cpu', detail: 'pure JavaScript (slow)', notes };
}

/** The backend asked for by `?backend=` in the page URL, or null. */
export function requestedBackend(search: string): BrowserBackend | null {
  const value = new URLSearchParams(search).get('backend');
  return (BROWSER_BACKENDS as readonly string[]).includes(value ?? '') ? (value as BrowserBackend) : null;
}
