/**
 * `pnpm demo` ends with what started it (issue 19, item 14): killed pnpm (a `timeout`, a CI limit)
 * used to leave the server running. The demo script runs here as pnpm runs it, one shell below its
 * parent, with a small exported model.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContinualDetector, exportDetector, saveDetector } from '@ofm/detector';
import { initBackend } from '@ofm/tensor';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parentOf } from '../scripts/lifecycle';
import { DEMO_DIST, DEMO_ROOT } from '../scripts/serve';

const REPO = join(DEMO_ROOT, '..', '..');
const DEMO = join(DEMO_ROOT, 'scripts', 'demo.ts');
let dir: string;
let model: string;
/** Every process started here (shells and demos), killed at the end whatever happened. */
const started: number[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ofm-demo-lifecycle-'));
  if (!existsSync(join(DEMO_DIST, 'index.html'))) await build({ root: DEMO_ROOT, logLevel: 'warn' });
  await initBackend({ backend: 'wasm' });
  // An untrained model is enough to serve.
  const detector = new ContinualDetector({ imageSize: 16, unet: { model_channels: 8, channel_mult: [1, 2], attention_resolutions: [], groupnorm_groups: 4 } });
  await saveDetector(detector, join(dir, 'checkpoint'));
  detector.dispose();
  model = join(dir, 'model');
  await exportDetector(join(dir, 'checkpoint'), model);
});
afterAll(async () => {
  for (const pid of started) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // ended, as it should
    }
  }
  await rm(dir, { recursive: true, force: true });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * `sh -c "sh -c 'node --import tsx demo.ts … & echo PID; wait'"`: the outer shell stands for pnpm,
 * the inner one for the shell pnpm runs the script in. Resolves once the demo serves.
 */
async function startDemo(): Promise<{ outer: ChildProcess; pid: number; url: string; output: () => string }> {
  const inner = `node --import tsx '${DEMO}' --model '${model}' --port 0 & echo pid \\$!; wait`;
  const outer = spawn('sh', ['-c', `sh -c "${inner}"; true`], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(outer.pid!);
  let output = '';
  outer.stdout!.on('data', (d) => {
    output += String(d);
  });
  outer.stderr!.on('data', (d) => {
    output += String(d);
  });
  for (let waited = 0; !/demo: open (\S+)/.test(output); waited += 50) {
    expect(waited, output).toBeLessThan(60_000);
    await new Promise((r) => setTimeout(r, 50));
  }
  const pid = Number(/^pid (\d+)$/m.exec(output)![1]);
  started.push(pid);
  return { outer, pid, url: /demo: open (\S+)/.exec(output)![1]!, output: () => output };
}

async function ends(pid: number, withinMs: number): Promise<number> {
  const t0 = Date.now();
  while (alive(pid)) {
    if (Date.now() - t0 > withinMs) return Number.POSITIVE_INFINITY;
    await new Promise((r) => setTimeout(r, 50));
  }
  return Date.now() - t0;
}

describe('pnpm demo ends with its parent', () => {
  it('stops serving within seconds when the process that started it is killed', async () => {
    const { outer, pid, output } = await startDemo();
    // As pnpm runs it: the demo's parent is a shell, whose parent is the one we kill.
    expect(parentOf(parentOf(pid)!)).toBe(outer.pid);
    outer.kill('SIGKILL');
    expect(await ends(pid, 5000), output()).toBeLessThan(5000);
    expect(output()).toMatch(/demo: the process that started the demo \(pnpm\) has ended; stopping/);
  });

  it('stops on SIGTERM at once, even with a browser connection open', async () => {
    const { pid, url } = await startDemo();
    // A keep-alive connection that stays open, as a browser's does.
    await new Promise<void>((done, fail) => {
      const req = request(url, { agent: new Agent({ keepAlive: true }) }, (res) => {
        res.resume();
        res.on('end', () => done());
      });
      req.on('error', fail);
      req.end();
    });
    process.kill(pid, 'SIGTERM');
    expect(await ends(pid, 3000)).toBeLessThan(3000);
  });
});
