/**
 * The WebGPU backend (@tensorflow/tfjs-backend-webgpu) in Node.js through Dawn's binding (the
 * `webgpu` npm package), and in browsers that offer `navigator.gpu`.
 *
 * Node.js: Dawn runs on Vulkan (Linux, Windows), Metal (macOS) or D3D12 (Windows) at full feature
 * level. Without a GPU, Mesa's llvmpipe gives a software adapter through Dawn's OpenGL backend at
 * the `compatibility` feature level (Debian/Ubuntu: `apt-get install -y libegl1 libgles2
 * libgl1-mesa-dri`; it needs `XDG_RUNTIME_DIR` and `EGL_PLATFORM=surfaceless`, set here when
 * unset). A software adapter is slow and is used only when asked for by name.
 *
 * tfjs-backend-webgpu registers itself only when `navigator.gpu` exists at import time, and its
 * factory calls `navigator.gpu.requestAdapter()` itself; in Node.js `navigator.gpu` is provided
 * here and hands over the adapter chosen below. Both packages are optional peer dependencies,
 * loaded at run time from computed specifiers so that bundlers never see them.
 */
import { tf } from './tf';

/** Install line for the two packages the WebGPU backend needs in Node.js. */
export const WEBGPU_NODE_PACKAGES = ['webgpu@0.6.2', '@tensorflow/tfjs-backend-webgpu@4.22.0'] as const;

/** Install line for Mesa's software rasteriser (the adapter CI tests WebGPU on). */
export const MESA_INSTALL = 'apt-get install -y libegl1 libgles2 libgl1-mesa-dri';

/** What `ofm info` and the backend report say about a WebGPU adapter. */
export interface GpuAdapterReport {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** Whether it computes on the CPU (llvmpipe, SwiftShader, lavapipe, a fallback adapter). */
  software: boolean;
  /** What marked it as software (e.g. 'llvmpipe'); absent for a GPU. */
  softwareReason?: string;
  /** The WebGPU feature level asked for: `core` (a GPU) or `compatibility` (Dawn's OpenGL path). */
  featureLevel: 'core' | 'compatibility';
  /** Where it comes from: Dawn in Node.js (with the Dawn backend used), or the browser. */
  via: 'dawn' | 'dawn-opengl' | 'browser';
  limits: {
    maxBufferSize: number;
    maxStorageBufferBindingSize: number;
    maxComputeWorkgroupStorageSize: number;
  };
}

/** The subset of the WebGPU API used here (the DOM typings are not part of this package's lib). */
interface GpuAdapterLike {
  readonly info?: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean };
  readonly isFallbackAdapter?: boolean;
  readonly limits: { maxBufferSize: number; maxStorageBufferBindingSize: number; maxComputeWorkgroupStorageSize: number };
  requestAdapterInfo?(): Promise<GpuAdapterLike['info']>;
}
interface GpuLike {
  requestAdapter(options?: Record<string, unknown>): Promise<GpuAdapterLike | null>;
  readonly wgslLanguageFeatures?: unknown;
  getPreferredCanvasFormat?(): string;
}
interface DawnModule {
  create(options: string[]): GpuLike;
  globals: Record<string, unknown>;
}

/** Names that mark a software adapter in its vendor, architecture, device or description. */
const SOFTWARE_ADAPTER = /llvmpipe|lavapipe|swiftshader|softpipe|software rasterizer|microsoft basic render/i;

/** Why an adapter is a software one, or null for a GPU. */
export function softwareAdapterReason(info: {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}): string | null {
  if (info.isFallbackAdapter) return 'a fallback adapter';
  const text = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ');
  const match = text.match(SOFTWARE_ADAPTER);
  return match ? match[0] : null;
}

async function adapterReport(
  adapter: GpuAdapterLike,
  featureLevel: GpuAdapterReport['featureLevel'],
  via: GpuAdapterReport['via'],
): Promise<GpuAdapterReport> {
  const info = adapter.info ?? (adapter.requestAdapterInfo ? await adapter.requestAdapterInfo() : undefined) ?? {};
  const fields = {
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    device: info.device ?? '',
    description: info.description ?? '',
    isFallbackAdapter: info.isFallbackAdapter ?? adapter.isFallbackAdapter ?? false,
  };
  const softwareReason = softwareAdapterReason(fields);
  return {
    vendor: fields.vendor,
    architecture: fields.architecture,
    device: fields.device,
    description: fields.description,
    software: softwareReason != null,
    ...(softwareReason != null ? { softwareReason } : {}),
    featureLevel,
    via,
    limits: {
      maxBufferSize: adapter.limits.maxBufferSize,
      maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
      maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize,
    },
  };
}

/** A short name for an adapter: its description, else device, else vendor/architecture. */
export function adapterLabel(a: GpuAdapterReport): string {
  return a.description || a.device || [a.vendor, a.architecture].filter(Boolean).join(' ') || 'unnamed adapter';
}

type RequireFn = ((id: string) => unknown) & { resolve(id: string): string };
/** How webgpu.ts finds the optional packages (passed in by backend.ts). */
export interface PackageResolver {
  resolve(id: string): { path: string; require: RequireFn } | undefined;
}

/** The adapter chosen by {@link probeWebgpu}, kept alive with its GPU instance for the factory. */
interface Chosen {
  gpu: GpuLike;
  adapter: GpuAdapterLike;
  requestOptions: Record<string, unknown>;
  report: GpuAdapterReport;
}
let chosen: Chosen | undefined;

/** The adapter the webgpu backend runs on (after a successful probe), for the report. */
export function webgpuAdapter(): GpuAdapterReport | undefined {
  return chosen?.report;
}

function isNode(): boolean {
  return typeof process !== 'undefined' && process.versions?.node != null;
}

/**
 * Find a WebGPU adapter for tfjs. A software adapter is accepted only when `allowSoftware` (the
 * backend was asked for by name). Returns the reason when there is none to use.
 */
export async function probeWebgpu(allowSoftware: boolean, packages: PackageResolver | null): Promise<string | null> {
  if (chosen != null && (allowSoftware || !chosen.report.software)) return null;
  if (!isNode()) return probeBrowser(allowSoftware);
  if (packages == null) return 'needs Node.js or a browser with WebGPU';
  const dawnPath = packages.resolve('webgpu');
  const tfjsWebgpu = packages.resolve('@tensorflow/tfjs-backend-webgpu');
  const missing = [dawnPath == null ? 'webgpu' : null, tfjsWebgpu == null ? '@tensorflow/tfjs-backend-webgpu' : null].filter(Boolean);
  if (missing.length > 0) {
    return `not installed (${missing.join(' and ')} ${missing.length > 1 ? 'were' : 'was'} not found; npm install ${WEBGPU_NODE_PACKAGES.join(' ')})`;
  }
  let dawn: DawnModule;
  try {
    const { pathToFileURL } = (await import(/* @vite-ignore */ nodeBuiltin('url'))) as typeof import('node:url');
    dawn = (await import(/* @vite-ignore */ pathToFileURL(dawnPath!.path).href)) as DawnModule;
  } catch (err) {
    return `failed to load Dawn (the webgpu package): ${firstLine(err)}`;
  }
  // A GPU first: Dawn's default backends (Vulkan, Metal, D3D12) at full feature level.
  let hardwareWhy: string;
  const vulkanMissing = await missingVulkanLoader();
  if (vulkanMissing != null) {
    hardwareWhy = vulkanMissing;
  } else {
    const gpu = dawn.create([]);
    const options = { powerPreference: 'high-performance' };
    const adapter = await gpu.requestAdapter(options).catch(() => null);
    if (adapter != null) {
      const report = await adapterReport(adapter, 'core', 'dawn');
      const software = report.softwareReason;
      if (software == null || allowSoftware) {
        chosen = { gpu, adapter, requestOptions: options, report };
        return installNavigatorGpu(dawn, tfjsWebgpu!);
      }
      hardwareWhy = `the only adapter is a software one (${software}: ${adapterLabel(report)})`;
    } else {
      hardwareWhy = 'Dawn found no Vulkan, Metal or D3D12 GPU';
    }
  }
  if (!allowSoftware) {
    return `no GPU adapter (${hardwareWhy}); a software adapter is used only when asked for (--backend webgpu)`;
  }
  // No GPU, and WebGPU was asked for by name: Mesa's llvmpipe through Dawn's OpenGL backend.
  await prepareSoftwareEnvironment();
  const gpu = dawn.create(['backend=opengl']);
  const options = { featureLevel: 'compatibility' };
  const adapter = await gpu.requestAdapter(options).catch(() => null);
  if (adapter == null) {
    return (
      `no adapter: ${hardwareWhy}, and Dawn's OpenGL backend found no OpenGL either ` +
      `(for the software adapter install Mesa: ${MESA_INSTALL})`
    );
  }
  chosen = { gpu, adapter, requestOptions: options, report: await adapterReport(adapter, 'compatibility', 'dawn-opengl') };
  return installNavigatorGpu(dawn, tfjsWebgpu!);
}

async function probeBrowser(allowSoftware: boolean): Promise<string | null> {
  const gpu = (globalThis as { navigator?: { gpu?: GpuLike } }).navigator?.gpu;
  if (gpu == null) return 'this browser offers no WebGPU (navigator.gpu is missing)';
  if (tf.findBackendFactory('webgpu') == null) {
    return 'the page did not load @tensorflow/tfjs-backend-webgpu (import it before initBackend)';
  }
  const options = { powerPreference: 'high-performance' };
  const adapter = await gpu.requestAdapter(options).catch(() => null);
  if (adapter == null) return 'the browser offers no WebGPU adapter (no GPU, or WebGPU is disabled)';
  const report = await adapterReport(adapter, 'core', 'browser');
  const software = report.softwareReason;
  if (software != null && !allowSoftware) {
    return `software adapter (${software}: ${adapterLabel(report)}), slower than wasm; used only when asked for`;
  }
  chosen = { gpu, adapter, requestOptions: options, report };
  return null;
}

/**
 * Make Dawn's GPU the `navigator.gpu` tfjs-backend-webgpu looks for (its first `requestAdapter`
 * gets the adapter chosen here; later ones ask Dawn with the same options), put Dawn's WebGPU
 * globals (GPUBufferUsage, ...) on globalThis, then load tfjs-backend-webgpu.
 */
function installNavigatorGpu(dawn: DawnModule, tfjsWebgpu: { path: string; require: RequireFn }): string | null {
  const pick = chosen!;
  let handedOut = false;
  const shim: GpuLike = {
    requestAdapter: async (options) => {
      if (!handedOut) {
        handedOut = true;
        return pick.adapter;
      }
      return pick.gpu.requestAdapter({ ...options, ...pick.requestOptions });
    },
    wgslLanguageFeatures: pick.gpu.wgslLanguageFeatures,
    getPreferredCanvasFormat: () => 'rgba8unorm',
  };
  const g = globalThis as Record<string, unknown>;
  for (const [key, value] of Object.entries(dawn.globals)) if (!(key in g)) g[key] = value;
  const nav = g.navigator as Record<string, unknown> | undefined;
  if (nav == null) {
    Object.defineProperty(globalThis, 'navigator', { value: { gpu: shim }, configurable: true, writable: true });
  } else {
    Object.defineProperty(nav, 'gpu', { value: shim, configurable: true, writable: true });
  }
  if (tf.findBackendFactory('webgpu') == null) {
    try {
      tfjsWebgpu.require(tfjsWebgpu.path);
    } catch (err) {
      return `failed to load @tensorflow/tfjs-backend-webgpu: ${firstLine(err)}`;
    }
    if (tf.findBackendFactory('webgpu') == null) {
      return (
        `@tensorflow/tfjs-backend-webgpu loaded but registered no 'webgpu' backend with this copy of ` +
        `@tensorflow/tfjs-core (${tf.version_core}); install a matching version (npm install ` +
        `@tensorflow/tfjs-backend-webgpu@${tf.version_core}), and do not import it before initBackend in Node.js`
      );
    }
  }
  return null;
}

function nodeBuiltin(name: string): string {
  return `node:${name}`;
}

/**
 * On Linux, Dawn's Vulkan backend needs the Vulkan loader; without it Dawn prints a warning and
 * finds nothing. Checked in the dynamic loader's cache and LD_LIBRARY_PATH. Null when present (or
 * not Linux).
 */
async function missingVulkanLoader(): Promise<string | null> {
  if (process.platform !== 'linux') return null;
  const fs = (await import(/* @vite-ignore */ nodeBuiltin('fs'))) as typeof import('node:fs');
  const path = (await import(/* @vite-ignore */ nodeBuiltin('path'))) as typeof import('node:path');
  const lib = 'libvulkan.so.1';
  for (const dir of (process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean)) {
    if (fs.existsSync(path.join(dir, lib))) return null;
  }
  try {
    if (fs.readFileSync('/etc/ld.so.cache').includes(lib)) return null;
  } catch {
    // no loader cache (unusual): look in the usual folders below
  }
  for (const dir of ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib64', '/lib']) {
    if (fs.existsSync(path.join(dir, lib))) return null;
  }
  return `no Vulkan loader (${lib}) on this system: install the GPU's Vulkan driver`;
}

/** Mesa's EGL needs a runtime folder and, without a display, the surfaceless platform. */
async function prepareSoftwareEnvironment(): Promise<void> {
  if (!process.env.XDG_RUNTIME_DIR) {
    const fs = (await import(/* @vite-ignore */ nodeBuiltin('fs'))) as typeof import('node:fs');
    const os = (await import(/* @vite-ignore */ nodeBuiltin('os'))) as typeof import('node:os');
    const path = (await import(/* @vite-ignore */ nodeBuiltin('path'))) as typeof import('node:path');
    const uid = typeof process.getuid === 'function' ? process.getuid() : 'user';
    const dir = path.join(os.tmpdir(), `ofm-xdg-runtime-${uid}`);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    process.env.XDG_RUNTIME_DIR = dir;
  }
  process.env.EGL_PLATFORM ??= 'surfaceless';
}

function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0]!.trim();
}
