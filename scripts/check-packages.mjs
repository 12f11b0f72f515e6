#!/usr/bin/env node
// Package-shape gate (`pnpm check:packages`, run by .ci/run after the build): packs every
// publishable package with pnpm and checks the tarball, i.e. exactly what npm would receive, with
//   - publint (--strict: warnings fail too): exports/main/module/types point at files that are in
//     the tarball, formats match the file extensions, conditions are ordered correctly;
//   - are-the-types-wrong (attw, profile "strict"): the types TypeScript resolves for every entry
//     point under node10, node16 (CJS and ESM) and bundler resolution match the JavaScript that
//     Node or a bundler loads. No rule is ignored.
// Prints one line per package and check, the tool's report when a check fails, and exits non-zero
// if any check failed.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, formatBytes, pack, publishablePackages } from './lib/packages.mjs';

const bin = (name) => join(ROOT, 'node_modules', '.bin', name);
const CHECKS = [
  { name: 'publint', command: (tarball) => [bin('publint'), ['run', tarball, '--strict']] },
  { name: 'attw', command: (tarball) => [bin('attw'), [tarball, '--profile', 'strict', '--format', 'table-flipped', '--no-emoji', '--no-color']] },
];

const work = mkdtempSync(join(tmpdir(), 'ofm-check-packages-'));
let failures = 0;
try {
  for (const pkg of publishablePackages()) {
    const { tarball, bytes } = pack(pkg, work);
    for (const check of CHECKS) {
      const [command, args] = check.command(tarball);
      const run = spawnSync(command, args, { encoding: 'utf8' });
      const ok = run.status === 0;
      console.log(`${ok ? 'ok  ' : 'FAIL'} ${check.name.padEnd(7)} ${pkg.name} (${formatBytes(bytes)} packed)`);
      if (!ok) {
        failures += 1;
        console.log(`${run.stdout}${run.stderr}${run.error ? String(run.error) : ''}`.trim().replace(/^/gm, '     '));
      }
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
console.log(failures === 0 ? 'check:packages: every package passed publint and attw' : `check:packages: ${failures} check(s) failed`);
process.exit(failures === 0 ? 0 : 1);
