/**
 * Backend selection: the order, the recorded reasons, the option/OFM_BACKEND override, errors,
 * idempotency, and the silenced cpu banner. @tensorflow/tfjs-node(-gpu) are not installed on
 * this machine, so `auto` must end on wasm with both recorded as 'not installed'; webgpu is
 * installed but this machine has no GPU (only Mesa's software adapter, which `auto` never takes),
 * and webgl needs a browser.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BACKEND_ENV_VAR,
  BACKEND_NAMES,
  type BackendReport,
  WEBGPU_NODE_SYNC_READS,
  type BackendProvider,
  backendProviders,
  backendReport,
  initBackend,
  registerBackendProvider,
} from '../src/backend';
import { WASM_CUSTOM_KERNELS } from '../src/kernels';
import { tf } from '../src/tf';

const run = promisify(execFile);
const packageRoot = fileURLToPath(new URL('..', import.meta.url));

/** Run a scenario of test/fixtures/backend-child.ts in a fresh Node process. */
async function child(
  args: string[],
  env: Record<string, string | undefined> = {},
): Promise<{ result: Record<string, unknown>; stderr: string; code: number }> {
  const childEnv = { ...process.env, ...env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete childEnv[k];
  try {
    const { stdout, stderr } = await run(
      process.execPath,
      ['--import', 'tsx', 'test/fixtures/backend-child.ts', ...args],
      { cwd: packageRoot, env: childEnv, timeout: 60_000 },
    );
    return { result: JSON.parse(stdout.trim().split('\n').pop() ?? '{}'), stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; code?: number };
    if (!e.stdout) throw err;
    return { result: JSON.parse(e.stdout.trim().split('\n').pop() ?? '{}'), stderr: e.stderr ?? '', code: e.code ?? 1 };
  }
}

function statusOf(report: BackendReport): Record<string, string> {
  return Object.fromEntries(report.candidates.map((c) => [c.name, c.status]));
}

function reasonOf(report: BackendReport, name: string): string {
  return report.candidates.find((c) => c.name === name)?.reason ?? '';
}

const savedEnv = process.env[BACKEND_ENV_VAR];
afterEach(() => {
  if (savedEnv === undefined) delete process.env[BACKEND_ENV_VAR];
  else process.env[BACKEND_ENV_VAR] = savedEnv;
});

describe('initBackend in this process', () => {
  it('auto: skips the absent tfjs-node packages with the reason, ends on wasm with the custom kernels', async () => {
    delete process.env[BACKEND_ENV_VAR];
    const report = await initBackend();
    expect(report.candidates.map((c) => c.name)).toEqual([...BACKEND_NAMES]);
    expect(statusOf(report)).toEqual({
      'tensorflow-gpu': 'skipped',
      webgpu: 'skipped',
      tensorflow: 'skipped',
      webgl: 'skipped',
      wasm: 'chosen',
      cpu: 'not-tried',
    });
    expect(reasonOf(report, 'tensorflow-gpu')).toMatch(/^not installed.*@tensorflow\/tfjs-node-gpu/);
    expect(reasonOf(report, 'webgpu')).toBe(WEBGPU_NODE_SYNC_READS);
    expect(reasonOf(report, 'webgl')).toBe('needs a browser (WebGL 2)');
    expect(reasonOf(report, 'tensorflow')).toMatch(/^not installed.*@tensorflow\/tfjs-node\b/);
    expect(reasonOf(report, 'cpu')).toMatch(/'wasm' ranks higher/);
    expect(report).toMatchObject({ backend: 'wasm', tfjsBackend: 'wasm', requested: 'auto', requestSource: 'default' });
    expect(report.tfjsVersion).toBe(tf.version_core);
    expect(report.customKernels).toEqual([...WASM_CUSTOM_KERNELS]);
    expect(report.simd).toBeTypeOf('boolean');
    expect(report.threads).toBeGreaterThanOrEqual(1);
    expect(tf.getBackend()).toBe('wasm');
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeDefined();
  });

  it('is idempotent: the same request returns the same report, and backendReport() gives it', async () => {
    const first = await initBackend({ backend: 'wasm' });
    const engineBackend = tf.backend();
    const [second, third] = await Promise.all([initBackend({ backend: 'wasm' }), initBackend({ backend: 'wasm' })]);
    expect(second).toBe(first);
    expect(third).toBe(first);
    expect(tf.backend()).toBe(engineBackend);
    expect(backendReport()).toBe(first);
  });

  it('an explicit request starts the chain there; cpu reports one thread and no custom kernels', async () => {
    const report = await initBackend({ backend: 'cpu' });
    expect(statusOf(report)).toEqual({
      'tensorflow-gpu': 'not-tried',
      webgpu: 'not-tried',
      tensorflow: 'not-tried',
      webgl: 'not-tried',
      wasm: 'not-tried',
      cpu: 'chosen',
    });
    expect(reasonOf(report, 'wasm')).toMatch(/'cpu' was requested \(backend option\)/);
    expect(report).toMatchObject({ backend: 'cpu', tfjsBackend: 'cpu', threads: 1, customKernels: [] });
    expect(tf.getBackend()).toBe('cpu');
    expect(backendReport()).toBe(report);
  });

  it("'tensorflow' requested but not installed: falls back to wasm and says why", async () => {
    const report = await initBackend({ backend: 'tensorflow' });
    expect(statusOf(report)).toEqual({
      'tensorflow-gpu': 'not-tried',
      webgpu: 'not-tried',
      tensorflow: 'skipped',
      webgl: 'skipped',
      wasm: 'chosen',
      cpu: 'not-tried',
    });
    expect(reasonOf(report, 'tensorflow')).toMatch(/not installed/);
    expect(report.backend).toBe('wasm');
  });

  it('strict: a requested backend that cannot start is an error naming the reason', async () => {
    await expect(initBackend({ backend: 'tensorflow-gpu', strict: true })).rejects.toThrow(
      /requested tfjs backend 'tensorflow-gpu' could not start[\s\S]*tensorflow-gpu: skipped \(not installed/,
    );
  });

  it('OFM_BACKEND picks the backend; the option wins over it', async () => {
    process.env[BACKEND_ENV_VAR] = 'cpu';
    const fromEnv = await initBackend();
    expect(fromEnv).toMatchObject({ backend: 'cpu', requested: 'cpu', requestSource: 'env' });
    expect(reasonOf(fromEnv, 'wasm')).toMatch(/OFM_BACKEND/);
    const fromOption = await initBackend({ backend: 'wasm' });
    expect(fromOption).toMatchObject({ backend: 'wasm', requestSource: 'option' });
  });

  it('an unknown name is a clear error listing the valid names', async () => {
    await expect(initBackend({ backend: 'gpu' as 'auto' })).rejects.toThrow(
      "Unknown tfjs backend 'gpu' (from the backend option). Valid names: auto, tensorflow-gpu, webgpu, tensorflow, webgl, wasm, cpu.",
    );
    process.env[BACKEND_ENV_VAR] = 'metal';
    await expect(initBackend()).rejects.toThrow(/Unknown tfjs backend 'metal' \(from the OFM_BACKEND environment variable\).*unset it/);
    // A failed request leaves the previous selection in place.
    expect(tf.getBackend()).toBe('wasm');
  });
});

describe('the backend registry', () => {
  it('tries providers by priority, with their reasons; a registered provider replaces the one of its name', async () => {
    expect(backendProviders().map((p) => p.name)).toEqual([...BACKEND_NAMES]);
    const builtin = backendProviders().find((p) => p.name === 'webgl')!;
    const calls: string[] = [];
    const test: BackendProvider = {
      name: 'webgl',
      priority: 100,
      available: async (ctx) => {
        calls.push(`available (requested: ${ctx.requested})`);
        return null;
      },
      start: async () => {
        calls.push('start');
        return (await tf.setBackend('cpu')) ? null : 'the cpu backend did not start';
      },
      registerKernels: () => ['OfmTestKernel'],
      describe: async () => ({ detail: 'a test provider' }),
    };
    try {
      registerBackendProvider(test);
      expect(backendProviders()[0]!.name).toBe('webgl');
      const chosen = await initBackend({ backend: 'auto' });
      expect(chosen).toMatchObject({ backend: 'webgl', tfjsBackend: 'cpu', customKernels: ['OfmTestKernel'], detail: 'a test provider' });
      expect(chosen.candidates[0]).toEqual({ name: 'webgl', status: 'chosen' });
      expect(reasonOf(chosen, 'wasm')).toBe("'webgl' ranks higher and was chosen");
      expect(calls).toEqual(['available (requested: false)', 'start']);

      registerBackendProvider({ ...test, available: async () => 'not on this machine (a test)' });
      const skipped = await initBackend({ backend: 'auto' });
      expect(skipped.backend).toBe('wasm');
      expect(skipped.candidates[0]).toEqual({ name: 'webgl', status: 'skipped', reason: 'not on this machine (a test)' });

      registerBackendProvider({ ...test, start: async () => 'it would not start (a test)' });
      const failed = await initBackend({ backend: 'auto' });
      expect(failed.backend).toBe('wasm');
      expect(failed.candidates[0]).toEqual({ name: 'webgl', status: 'failed', reason: 'it would not start (a test)' });
    } finally {
      registerBackendProvider(builtin);
    }
    expect(backendProviders().map((p) => p.name)).toEqual([...BACKEND_NAMES]);
    expect(() => registerBackendProvider({ ...test, name: 'metal' as 'webgl' })).toThrow(/'metal' is not a backend name/);
  });
});

describe('webgpu (Dawn in Node.js; this machine has no GPU, only Mesa llvmpipe)', () => {
  it('auto with asynchronous reads never takes the software adapter, and says how to ask for it', async () => {
    const report = await initBackend({ backend: 'auto', syncReads: false });
    expect(report.backend).toBe('wasm');
    expect(reasonOf(report, 'webgpu')).toMatch(
      /^no GPU adapter \(.+\); a software adapter is used only when asked for \(--backend webgpu\)$/,
    );
  });

  it('asked for by name: the software adapter, reported as software, with the project kernels from tfjs ops', async () => {
    const report = await initBackend({ backend: 'webgpu', syncReads: false, strict: true });
    expect(report).toMatchObject({ backend: 'webgpu', tfjsBackend: 'webgpu' });
    expect(report.adapter).toMatchObject({ software: true, featureLevel: 'compatibility', via: 'dawn-opengl' });
    expect(report.adapter!.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
    expect(report.detail).toMatch(/^software adapter: /);
    expect(report.customKernels).toEqual(['OfmGroupNorm', 'OfmGroupNormGrad', 'OfmUpsampleNearest', 'OfmUpsampleNearestGrad']);
    // Synchronous reads of GPU data: one clear error, not "OffscreenCanvas is not defined".
    const y = tf.square(tf.tensor1d([1, 2, 3]));
    expect(Array.from(await y.data())).toEqual([1, 4, 9]);
    const z = tf.add(y, 1);
    expect(() => z.dataSync()).toThrow(/cannot read GPU data synchronously in Node\.js/);
    tf.dispose([y, z]);
    // The training commands read synchronously: they do not get it.
    const sync = await initBackend({ backend: 'webgpu' });
    expect(sync.backend).toBe('wasm');
    expect(reasonOf(sync, 'webgpu')).toBe(WEBGPU_NODE_SYNC_READS);
  });
});

describe('initBackend in a fresh process', () => {
  it('auto ends on wasm', async () => {
    const { result } = await child(['init'], { [BACKEND_ENV_VAR]: undefined });
    const report = result.report as BackendReport;
    expect(report.backend).toBe('wasm');
    expect(statusOf(report)).toMatchObject({ 'tensorflow-gpu': 'skipped', tensorflow: 'skipped' });
    expect(report.customKernels).toEqual([...WASM_CUSTOM_KERNELS]);
  });

  it("silences the cpu backend's Node.js banner unless quiet is false", async () => {
    const quiet = await child(['banner-quiet']);
    expect((quiet.result.report as BackendReport).backend).toBe('cpu');
    expect(quiet.stderr + JSON.stringify(quiet.result)).not.toMatch(/looks like you are running TensorFlow\.js in Node\.js/);
    const loud = await child(['banner-loud']);
    expect(loud.stderr).toMatch(/looks like you are running TensorFlow\.js in Node\.js/);
  });

  it('kernels registered before the wasm backend starts still work (built-in setup runs)', async () => {
    const { result, code } = await child(['register-before-init']);
    expect(code).toBe(0);
    expect(result.registered).toEqual([...WASM_CUSTOM_KERNELS]);
    expect(result.plain).toEqual([19, 22, 43, 50]);
    expect(result.transposed).toEqual([26, 30, 38, 44]);
    expect(result.batched).toEqual([19, 22, 43, 50, 23, 34, 31, 46]);
  });
});
