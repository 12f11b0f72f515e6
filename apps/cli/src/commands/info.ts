import os from 'node:os';
import type { BackendReport, BackendRequest } from '@ofm/tensor';
import type { Command } from 'commander';
import { CliError } from '../errors';

/** `ofm info --json`: stable, flat keys (lists stay lists); absent values are null. */
export interface InfoJson {
  ofmVersion: string | null;
  backend: string;
  tfjsBackend: string;
  requested: string;
  requestSource: string;
  tfjsVersion: string;
  simd: boolean | null;
  threads: number | null;
  customKernels: string[];
  /** A short description of the device (e.g. 'SIMD, 1 thread', the WebGPU adapter's name). */
  detail: string | null;
  /** webgpu only: the adapter it runs on, with the limits that bound tensor sizes. */
  adapter: {
    vendor: string;
    architecture: string;
    device: string;
    description: string;
    software: boolean;
    featureLevel: string;
    limits: { maxBufferSize: number; maxStorageBufferBindingSize: number; maxComputeWorkgroupStorageSize: number };
  } | null;
  candidates: Array<{ name: string; status: string; reason: string | null }>;
  nodeVersion: string;
  platform: string;
  arch: string;
  cpuCount: number;
  cpuModel: string | null;
  rssBytes: number;
  heapUsedBytes: number;
  totalMemoryBytes: number;
  freeMemoryBytes: number;
}

interface InfoOptions {
  backend?: string;
  json?: boolean;
}

// Kept in step with @ofm/tensor's BACKEND_NAMES (a test checks); listed here so that `--help`
// does not have to load tfjs.
export const BACKEND_REQUESTS: readonly string[] = ['auto', 'tensorflow-gpu', 'webgpu', 'tensorflow', 'webgl', 'wasm', 'cpu'];
const REQUESTS = BACKEND_REQUESTS;

/** The help text of every command's `--backend` option. */
export const BACKEND_OPTION_HELP = `tfjs backend: ${REQUESTS.join(', ')} (default $OFM_BACKEND, else auto; see ofm info)`;

/** How to get a GPU backend, printed by `ofm info` (and in the README). */
export const GPU_CHOICES = [
  'tensorflow-gpu  npm install @tensorflow/tfjs-node-gpu@4.22.0: libtensorflow 2.9.1 for CUDA 11.2 / cuDNN 8.1',
  '                (an NVIDIA GPU with that CUDA era installed; no prebuilt binary for Node.js 22)',
  'webgpu          npm install webgpu@0.6.2 @tensorflow/tfjs-backend-webgpu@4.22.0: Dawn on Vulkan, Metal or D3D12',
  '                (any GPU with a current driver); without a GPU, --backend webgpu runs on Mesa llvmpipe',
  '                (apt-get install -y libegl1 libgles2 libgl1-mesa-dri), for tests only: slow',
];

/** `ofm info`: the tfjs backend in use and why the others were not, plus the runtime. */
export function registerInfo(program: Command): void {
  program
    .command('info')
    .description('show the tfjs backend chosen (and why the others were not), kernels, Node.js and memory')
    .option('--backend <name>', `backend to request: ${REQUESTS.join(', ')} (default: $OFM_BACKEND, else auto)`)
    .option('--json', 'print one JSON object instead of text')
    .action(async (options: InfoOptions, command: Command) => {
      const info = await collectInfo(options.backend, command.parent?.version() ?? null);
      process.stdout.write(options.json ? `${JSON.stringify(info, null, 2)}\n` : formatInfo(info));
    });
}

/** Initialise the backend as `ofm` would and gather what `ofm info` prints. */
export async function collectInfo(backend: string | undefined, ofmVersion: string | null): Promise<InfoJson> {
  if (backend != null && !REQUESTS.includes(backend)) {
    throw new CliError(`--backend '${backend}' is not a backend; use one of: ${REQUESTS.join(', ')}`);
  }
  // tfjs is loaded only when a command needs it, so `ofm --help` and friends start fast.
  const { initBackend } = await import('@ofm/tensor');
  // As `ofm train`, `eval` and `detect` choose (they read asynchronously, so WebGPU in Node.js
  // can serve them). The only request-time failure left is a bad OFM_BACKEND value: a ConfigError
  // (exit 2).
  const report: BackendReport = await initBackend({ backend: backend as BackendRequest | undefined, syncReads: false });
  const memory = process.memoryUsage();
  const cpus = os.cpus();
  return {
    ofmVersion,
    backend: report.backend,
    tfjsBackend: report.tfjsBackend,
    requested: report.requested,
    requestSource: report.requestSource,
    tfjsVersion: report.tfjsVersion,
    simd: report.simd ?? null,
    threads: report.threads ?? null,
    customKernels: [...report.customKernels],
    detail: report.detail ?? null,
    adapter:
      report.adapter == null
        ? null
        : {
            vendor: report.adapter.vendor,
            architecture: report.adapter.architecture,
            device: report.adapter.device,
            description: report.adapter.description,
            software: report.adapter.software,
            featureLevel: report.adapter.featureLevel,
            limits: { ...report.adapter.limits },
          },
    candidates: report.candidates.map((c) => ({ name: c.name, status: c.status, reason: c.reason ?? null })),
    nodeVersion: process.version,
    platform: process.platform,
    arch: process.arch,
    cpuCount: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? null,
    rssBytes: memory.rss,
    heapUsedBytes: memory.heapUsed,
    totalMemoryBytes: os.totalmem(),
    freeMemoryBytes: os.freemem(),
  };
}

/** The text form of `ofm info`. */
export function formatInfo(info: InfoJson): string {
  const source = { option: 'with --backend', env: 'by OFM_BACKEND', default: 'by default' }[info.requestSource] ?? '';
  const width = Math.max(...info.candidates.map((c) => c.name.length));
  const lines = [
    `backend         ${info.backend}  (requested ${info.requested} ${source}; tfjs ${info.tfjsVersion})`,
    'candidates',
    ...info.candidates.map(
      (c) => `  ${c.name.padEnd(width)}  ${c.status.padEnd(9)}${c.reason ? `  ${c.reason}` : ''}`.trimEnd(),
    ),
    `threads         ${info.threads ?? 'unknown'}`,
    `simd            ${info.simd == null ? 'n/a' : info.simd ? 'yes' : 'no'}`,
    `custom kernels  ${info.customKernels.length > 0 ? info.customKernels.join(', ') : 'none'}`,
    ...formatAdapter(info),
    `node            ${info.nodeVersion} (${info.platform} ${info.arch}, ${info.cpuCount} CPUs${info.cpuModel ? `: ${info.cpuModel}` : ''})`,
    `memory          process RSS ${formatBytes(info.rssBytes)} (JS heap ${formatBytes(info.heapUsedBytes)}); ` +
      `system ${formatBytes(info.totalMemoryBytes)} total, ${formatBytes(info.freeMemoryBytes)} free`,
  ];
  if (info.ofmVersion) lines.push(`ofm             ${info.ofmVersion}`);
  lines.push('gpu choices', ...GPU_CHOICES.map((line) => `  ${line}`));
  return `${lines.join('\n')}\n`;
}

function formatAdapter(info: InfoJson): string[] {
  const a = info.adapter;
  if (a == null) return [];
  const name = a.description || a.device || 'unnamed';
  const vendor = [a.vendor || '(vendor not given)', a.architecture].filter(Boolean).join(', ');
  return [
    `adapter         ${name} (${a.software ? 'software: runs on the CPU, for tests only' : 'hardware GPU'})`,
    `                ${vendor}; device ${a.device || 'n/a'}; feature level ${a.featureLevel}`,
    `                maxBufferSize ${formatBytes(a.limits.maxBufferSize)}, maxStorageBufferBindingSize ` +
      `${formatBytes(a.limits.maxStorageBufferBindingSize)}, maxComputeWorkgroupStorageSize ${formatBytes(a.limits.maxComputeWorkgroupStorageSize)}`,
  ];
}

function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}
