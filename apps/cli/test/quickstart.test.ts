/**
 * `ofm quickstart --image-size` (issue 19, item 17): the size reaches the model, a size the model
 * cannot take is refused before anything is written, and an interrupted quick start says how to
 * continue it. The run is stopped once learning starts: a full quick start takes minutes.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shellQuote } from '../src/invocation';
import { bin, expectRefused, ofm } from './helpers';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ofm-cli-quickstart-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('ofm quickstart --image-size', () => {
  it('refuses a size the model cannot take, or no number, before anything is written', async () => {
    const out = join(dir, 'bad');
    expectRefused(await ofm(['quickstart', '--image-size', '30', '--out', out]), /imageSize: must be divisible by \d+ .*got 30/);
    expectRefused(await ofm(['quickstart', '--image-size', 'big', '--out', out]), /--image-size must be an integer in \[8, 1024\], got "big"/);
    expect(existsSync(out)).toBe(false);
  });

  it('learns at the size asked for; interrupted, it prints the command that continues it', async () => {
    const out = join(dir, 'qs');
    const proc = spawn(process.execPath, [bin, 'quickstart', '--image-size', '16', '--out', out, '--backend', 'wasm'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr!.on('data', (d) => {
      stderr += String(d);
    });
    const exited = new Promise<number | null>((done) => proc.on('exit', (code) => done(code)));
    for (let waited = 0; !/quickstart: learning tiles → washer → chip on wasm \([\d.]+ M parameters, 16 px, \d+ steps per task\)/.test(stderr); waited += 20) {
      expect(waited, stderr).toBeLessThan(90_000);
      await new Promise((r) => setTimeout(r, 20));
    }
    proc.kill('SIGINT');
    expect(await exited, stderr).toBe(130);
    const lines = stderr.split('\n');
    const at = lines.findIndex((l) => l.startsWith('ofm: error: interrupted; ') && l.endsWith('continue with:'));
    expect(at, stderr).toBeGreaterThanOrEqual(0);
    expect(lines[at + 1]!.trim()).toBe(
      `ofm train --resume ${shellQuote(join(out, 'model'))} --data ${shellQuote(join(out, 'data'))} --tasks 'tiles|washer|chip' --backend wasm`,
    );
    // The synthetic images are drawn at 64 px (the loader resizes them to the model's 16).
    expect(JSON.parse(readFileSync(join(out, 'data', 'synth.json'), 'utf8')).size).toBe(64);
  });
});
