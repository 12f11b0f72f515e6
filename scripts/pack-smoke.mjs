#!/usr/bin/env node
// Packaging test (`pnpm test:pack`, run by .ci/run after the build): do the packages work when a
// user installs them from npm, outside this workspace?
//
// 1. `pnpm pack` every publishable package (workspace: ranges become real versions).
// 2. In fresh temporary projects under the OS temp folder (no workspace node_modules above them),
//    `npm install` the tarballs; third-party dependencies come from the npm registry, and npm's
//    default peer installation supplies @tensorflow/tfjs-core:
//      - metrics-alone:  @ofm/metrics only, which must pull in no tfjs and no sharp;
//      - datasets-alone: @ofm/datasets (with its one workspace dependency, @ofm/errors), which must
//                        pull in no tfjs;
//      - all:            every tarball together (they depend on each other's exact versions, which
//                        are not on the registry), with one copy of tfjs-core, @ofm/tensor and
//                        @ofm/errors.
// 3. Run each package's smoke check (pack-smoke/checks.cjs) in plain Node, once through the ESM
//    entry point (`import`) and once through the CJS one (`require`), each in its own process.
// 4. Run each package's README example (the first ```js block under "## Example" of the README in
//    the tarball, i.e. the one npm shows) as an ES module: the documented example must run.
//
// Prints one line per step and check, the packed size of each package, and the total time; exits
// non-zero when anything failed. Temporary folders are removed in every case.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatBytes, pack, publishablePackages } from './lib/packages.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const SMOKE_FILES = ['checks.cjs', 'run.mjs', 'run.cjs'];
/** Per check and format: the detector's check trains a tiny model (about 20 s here). */
const CHECK_TIMEOUT_MS = 180_000;
const INSTALL_TIMEOUT_MS = 300_000;

const TENSOR_PACKAGES = ['@ofm/tensor', '@ofm/isvd', '@ofm/continual', '@ofm/diffusion', '@ofm/amn', '@ofm/detector'];
const PROJECTS = [
  { name: 'metrics-alone', install: ['@ofm/metrics'], checks: ['@ofm/metrics'], absent: ['@tensorflow/tfjs-core', 'sharp'] },
  // @ofm/errors is not on the registry: its tarball goes with the one of @ofm/datasets.
  { name: 'datasets-alone', install: ['@ofm/datasets', '@ofm/errors'], checks: ['@ofm/datasets', '@ofm/errors'], absent: ['@tensorflow/tfjs-core'] },
  { name: 'all', install: 'every package', checks: TENSOR_PACKAGES, single: ['@tensorflow/tfjs-core', '@ofm/tensor', '@ofm/errors'] },
];

/** The runnable example of a package README: the first ```js block under its "## Example" heading. */
function readmeExample(readme) {
  return /^## Example[ \t]*\n(?:(?!^## )[\s\S])*?^```js\n([\s\S]*?)^```/m.exec(readme)?.[1];
}

/** The environment of a user's shell: no settings inherited from the pnpm script that runs us. */
function cleanEnv() {
  const env = { ...process.env };
  for (const key of Object.keys(env)) {
    if (/^(npm|pnpm)_/i.test(key) || key === 'OFM_BACKEND' || key === 'NODE_OPTIONS') delete env[key];
  }
  return env;
}

/** Every installed copy of `name` below `dir` (nested node_modules included). */
function installedCopies(dir, name, found = []) {
  const modules = join(dir, 'node_modules');
  if (!existsSync(modules)) return found;
  if (existsSync(join(modules, name, 'package.json'))) found.push(join(modules, name));
  for (const entry of readdirSync(modules)) {
    if (entry.startsWith('.')) continue;
    const scoped = entry.startsWith('@') ? readdirSync(join(modules, entry)).map((e) => join(modules, entry, e)) : [join(modules, entry)];
    for (const pkgDir of scoped) installedCopies(pkgDir, name, found);
  }
  return found;
}

const started = Date.now();
const seconds = (since) => `${((Date.now() - since) / 1000).toFixed(1)} s`;
const work = mkdtempSync(join(tmpdir(), 'ofm-pack-smoke-'));
let failures = 0;
const fail = (line, detail = '') => {
  failures += 1;
  console.log(`FAIL ${line}`);
  if (detail.trim()) console.log(detail.trim().replace(/^/gm, '     '));
};

try {
  const tarballs = new Map();
  mkdirSync(join(work, 'tarballs'));
  for (const pkg of publishablePackages()) {
    const packed = pack(pkg, join(work, 'tarballs'));
    tarballs.set(pkg.name, packed.tarball);
    console.log(`ok   pack    ${pkg.name}@${pkg.version}: ${formatBytes(packed.bytes)} packed, ${packed.files} files`);
  }

  for (const project of PROJECTS) {
    const dir = join(work, project.name);
    mkdirSync(dir);
    writeFileSync(join(dir, 'package.json'), `${JSON.stringify({ name: `ofm-smoke-${project.name}`, version: '0.0.0', private: true }, null, 2)}\n`);
    for (const file of SMOKE_FILES) copyFileSync(join(HERE, 'pack-smoke', file), join(dir, file));
    const names = project.install === 'every package' ? [...tarballs.keys()] : project.install;
    const t0 = Date.now();
    const install = spawnSync(
      'npm',
      ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', ...names.map((n) => tarballs.get(n))],
      { cwd: dir, env: cleanEnv(), encoding: 'utf8', timeout: INSTALL_TIMEOUT_MS },
    );
    if (install.status !== 0) {
      fail(`install ${project.name}: npm install ${names.join(' ')}`, `${install.stdout}${install.stderr}${install.error ?? ''}`);
      continue;
    }
    const count = spawnSync('npm', ['ls', '--all', '--parseable'], { cwd: dir, env: cleanEnv(), encoding: 'utf8' }).stdout.trim().split('\n').length - 1;
    console.log(`ok   install ${project.name}: ${names.join(', ')} (${count} packages in all, ${seconds(t0)})`);
    for (const name of project.absent ?? []) {
      const copies = installedCopies(dir, name);
      if (copies.length > 0) fail(`deps    ${project.name}: ${name} was installed but must not be`, copies.map((c) => relative(dir, c)).join('\n'));
      else console.log(`ok   deps    ${project.name}: no ${name}`);
    }
    for (const name of project.single ?? []) {
      const copies = installedCopies(dir, name);
      if (copies.length !== 1) fail(`deps    ${project.name}: ${copies.length} copies of ${name} (want exactly 1)`, copies.map((c) => relative(dir, c)).join('\n'));
      else console.log(`ok   deps    ${project.name}: one copy of ${name}`);
    }

    for (const name of project.checks) {
      for (const [format, runner] of [
        ['esm', 'run.mjs'],
        ['cjs', 'run.cjs'],
      ]) {
        const t1 = Date.now();
        const run = spawnSync(process.execPath, [runner, name], { cwd: dir, env: cleanEnv(), encoding: 'utf8', timeout: CHECK_TIMEOUT_MS });
        const line = `${format}     ${name}`;
        if (run.status !== 0) fail(`${line} (${seconds(t1)})`, `${run.stdout}${run.stderr}${run.error ?? ''}`);
        else console.log(`ok   ${line}: ${run.stdout.trim().split('\n').at(-1)} (${seconds(t1)})`);
      }
      const readme = join(dir, 'node_modules', name, 'README.md');
      const example = existsSync(readme) ? readmeExample(readFileSync(readme, 'utf8')) : undefined;
      if (example === undefined) {
        fail(`readme  ${name}: its README has no runnable \`\`\`js block under "## Example"`);
        continue;
      }
      const file = join(dir, `readme-${name.replace(/\W/g, '_')}.mjs`);
      writeFileSync(file, example);
      const t2 = Date.now();
      const run = spawnSync(process.execPath, [file], { cwd: dir, env: cleanEnv(), encoding: 'utf8', timeout: CHECK_TIMEOUT_MS });
      if (run.status !== 0) fail(`readme  ${name} (${seconds(t2)})`, `${run.stdout}${run.stderr}${run.error ?? ''}`);
      else console.log(`ok   readme  ${name}: the README example ran (${seconds(t2)})`);
    }
  }
} catch (err) {
  fail('pack-smoke', err instanceof Error ? (err.stack ?? err.message) : String(err));
} finally {
  rmSync(work, { recursive: true, force: true });
}
console.log(`pack-smoke: ${failures === 0 ? 'every check passed' : `${failures} check(s) failed`} in ${seconds(started)}`);
process.exit(failures === 0 ? 0 : 1);
