/**
 * `ofm info` through the built binary, in a subprocess (as a user runs it). Build first:
 * `pnpm --filter @ofm/cli... build`. The workspace does not install the optional
 * @tensorflow/tfjs-node(-gpu) peers, so `auto` ends on wasm here.
 */
import { existsSync } from 'node:fs';
import { WASM_CUSTOM_KERNELS } from '@ofm/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import { bin, ofm as runOfm } from './helpers';

/** `ofm` with OFM_BACKEND cleared unless a test sets it. */
function ofm(args: string[], env: Record<string, string | undefined> = {}) {
  return runOfm(args, { OFM_BACKEND: undefined, ...env }, 60_000);
}

const KEYS = [
  'ofmVersion',
  'backend',
  'tfjsBackend',
  'requested',
  'requestSource',
  'tfjsVersion',
  'simd',
  'threads',
  'customKernels',
  'detail',
  'adapter',
  'candidates',
  'nodeVersion',
  'platform',
  'arch',
  'cpuCount',
  'cpuModel',
  'rssBytes',
  'heapUsedBytes',
  'totalMemoryBytes',
  'freeMemoryBytes',
];

beforeAll(() => {
  if (!existsSync(bin)) {
    throw new Error(`${bin} does not exist: build the CLI first with \`pnpm --filter @ofm/cli... build\``);
  }
});

describe('ofm info', () => {
  it('--json: the chosen backend, why the others were not used, kernels, runtime and memory', async () => {
    const { stdout, stderr, code } = await ofm(['info', '--json']);
    expect(code).toBe(0);
    expect(stderr).toBe('');
    const info = JSON.parse(stdout);
    expect(Object.keys(info)).toEqual(KEYS);
    expect(info).toMatchObject({
      backend: 'wasm',
      tfjsBackend: 'wasm',
      requested: 'auto',
      requestSource: 'default',
      tfjsVersion: '4.22.0',
      simd: true,
      threads: 1,
      customKernels: [...WASM_CUSTOM_KERNELS],
      nodeVersion: process.version,
      platform: process.platform,
    });
    expect(info.candidates.map((c: { name: string; status: string }) => [c.name, c.status])).toEqual([
      ['tensorflow-gpu', 'skipped'],
      ['webgpu', 'skipped'],
      ['tensorflow', 'skipped'],
      ['webgl', 'skipped'],
      ['wasm', 'chosen'],
      ['cpu', 'not-tried'],
    ]);
    expect(info.candidates[0].reason).toMatch(/not installed.*@tensorflow\/tfjs-node-gpu/);
    expect(info.candidates[1].reason).toMatch(/^no GPU adapter \(.+\); a software adapter is used only when asked for \(--backend webgpu\)$/);
    expect(info.candidates[2].reason).toMatch(/not installed.*@tensorflow\/tfjs-node\b/);
    expect(info).toMatchObject({ detail: 'SIMD, 1 thread', adapter: null });
    expect(info.ofmVersion).toMatch(/^\d+\.\d+\.\d+/);
    expect(info.cpuCount).toBeGreaterThan(0);
    expect(info.rssBytes).toBeGreaterThan(10 * 2 ** 20);
    expect(info.heapUsedBytes).toBeGreaterThan(0);
    expect(info.totalMemoryBytes).toBeGreaterThanOrEqual(info.freeMemoryBytes);
    expect(info.freeMemoryBytes).toBeGreaterThan(0);
  });

  it('--backend cpu and OFM_BACKEND pick the backend; the flag wins', async () => {
    const [flagRun, envRun, bothRun] = await Promise.all([
      ofm(['info', '--json', '--backend', 'cpu']),
      ofm(['info', '--json'], { OFM_BACKEND: 'cpu' }),
      ofm(['info', '--json', '--backend', 'wasm'], { OFM_BACKEND: 'cpu' }),
    ]);
    const flag = JSON.parse(flagRun.stdout);
    expect(flag).toMatchObject({ backend: 'cpu', requested: 'cpu', requestSource: 'option', threads: 1, customKernels: [] });
    expect(flag.candidates.map((c: { status: string }) => c.status)).toEqual(['not-tried', 'not-tried', 'not-tried', 'not-tried', 'not-tried', 'chosen']);

    const env = JSON.parse(envRun.stdout);
    expect(env).toMatchObject({ backend: 'cpu', requestSource: 'env' });

    const both = JSON.parse(bothRun.stdout);
    expect(both).toMatchObject({ backend: 'wasm', requestSource: 'option' });
  });

  it('prints a readable summary without --json', async () => {
    const { stdout, code } = await ofm(['info', '--backend', 'tensorflow']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^backend\s+wasm\s+\(requested tensorflow with --backend; tfjs 4\.22\.0\)$/m);
    expect(stdout).toMatch(/^\s+tensorflow\s+skipped\s+not installed/m);
    expect(stdout).toMatch(new RegExp(`^custom kernels\\s+${WASM_CUSTOM_KERNELS.join(', ')}$`, 'm'));
    expect(stdout).toMatch(/^node\s+v\d+\.\d+\.\d+/m);
    expect(stdout).toMatch(/^memory\s+process RSS [\d.]+ MiB .* total, [\d.]+ [KMGT]iB free$/m);
    // How to get a GPU backend, with the install lines.
    expect(stdout).toMatch(/^ {2}tensorflow-gpu {2}npm install @tensorflow\/tfjs-node-gpu@4\.22\.0: libtensorflow 2\.9\.1 for CUDA 11\.2/m);
    expect(stdout).toMatch(/^ {2}webgpu {10}npm install webgpu@0\.6\.2 @tensorflow\/tfjs-backend-webgpu@4\.22\.0: Dawn on Vulkan, Metal or D3D12/m);
    expect(stdout).toContain('apt-get install -y libegl1 libgles2 libgl1-mesa-dri');
  });

  it('--backend webgpu: the adapter (here Mesa llvmpipe, software) with its limits', async () => {
    const [json, text] = await Promise.all([ofm(['info', '--json', '--backend', 'webgpu']), ofm(['info', '--backend', 'webgpu'])]);
    expect(json.code, json.stderr).toBe(0);
    const info = JSON.parse(json.stdout);
    expect(info).toMatchObject({ backend: 'webgpu', tfjsBackend: 'webgpu', requested: 'webgpu' });
    expect(info.adapter).toMatchObject({ software: true, featureLevel: 'compatibility' });
    expect(`${info.adapter.device} ${info.adapter.description}`).toMatch(/llvmpipe|Mesa/);
    for (const key of ['maxBufferSize', 'maxStorageBufferBindingSize', 'maxComputeWorkgroupStorageSize']) {
      expect(info.adapter.limits[key]).toBeGreaterThan(0);
    }
    expect(text.stdout).toMatch(/^adapter\s+.+ \(software: runs on the CPU, for tests only\)$/m);
    expect(text.stdout).toMatch(/^\s+maxBufferSize [\d.]+ [KMG]iB, maxStorageBufferBindingSize [\d.]+ [KMG]iB, maxComputeWorkgroupStorageSize [\d.]+ KiB$/m);
  });

  it('rejects an unknown backend name with exit code 2 and the valid names', async () => {
    const [flag, env] = await Promise.all([ofm(['info', '--backend', 'gpu']), ofm(['info'], { OFM_BACKEND: 'metal' })]);
    expect(flag.code).toBe(2);
    expect(flag.stdout).toBe('');
    expect(flag.stderr).toMatch(/--backend 'gpu' is not a backend; use one of: auto, tensorflow-gpu, webgpu, tensorflow, webgl, wasm, cpu/);

    expect(env.code).toBe(2);
    expect(env.stderr).toMatch(/Unknown tfjs backend 'metal' \(from the OFM_BACKEND environment variable\)/);
  });
});

describe('backend names', () => {
  it('the list `ofm info --help` shows matches @ofm/tensor', async () => {
    const { BACKEND_NAMES } = await import('@ofm/tensor');
    const { BACKEND_REQUESTS } = await import('../src/commands/info');
    expect(BACKEND_REQUESTS).toEqual(['auto', ...BACKEND_NAMES]);
  });
});
