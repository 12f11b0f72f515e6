/**
 * Bad input as a new user gives it (issue 19), through the built binary: every error in one style,
 * exit code 2 with a line that says what is wrong and what to do, and nothing written.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectRefused, ofm, tinyFixture } from './helpers';

let dir: string;
let data: string;
let ckpt: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ofm-cli-usage-'));
  ({ data, ckpt } = await tinyFixture(dir));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('errors', () => {
  it('usage errors carry the same "ofm: error:" prefix as every other error (item 13)', async () => {
    expectRefused(await ofm(['nope']), /^ofm: error: unknown command 'nope'/m, 'unknown command');
    expectRefused(await ofm(['inspect', ckpt, '--bogus']), /^ofm: error: unknown option '--bogus'/m, 'unknown option');
    expectRefused(await ofm(['detect', 'x.png']), /^ofm: error: required option '--ckpt <dir>' not specified/m, 'missing option');
  });

  it('an unknown --setting is named as a setting, with the list of settings (item 4)', async () => {
    const r = await ofm(['train', '--data', data, '--setting', 'mvtec-99', '--out', join(dir, 'never')]);
    expectRefused(r, /--setting 'mvtec-99' is not a continual setting; the settings are: mvtec-14-1, mvtec-10-5, mvtec-3x5/);
    expect(r.stderr).not.toMatch(/unknown class/);
    expect(existsSync(join(dir, 'never'))).toBe(false);
  });
});
