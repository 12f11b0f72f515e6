// The publishable packages of the workspace (every non-private package under packages/) and
// `pnpm pack` for them: what the package-shape gate (check-packages.mjs) and the packaging test
// (pack-smoke.mjs) both start from. Packing uses pnpm so that `workspace:` ranges are rewritten to
// the real versions, exactly as `pnpm publish` would.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * Every publishable package: `{ name, version, dir }`, in the order of the packages/ folder.
 * @returns {{ name: string, version: string, dir: string }[]}
 */
export function publishablePackages() {
  const base = join(ROOT, 'packages');
  return readdirSync(base)
    .map((entry) => join(base, entry))
    .filter((dir) => statSync(join(dir, 'package.json'), { throwIfNoEntry: false })?.isFile())
    .map((dir) => ({ dir, pkg: JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) }))
    .filter(({ pkg }) => !pkg.private)
    .map(({ dir, pkg }) => ({ name: pkg.name, version: pkg.version, dir }));
}

/**
 * `pnpm pack` one package into `destination`. Fails loudly when the build output is missing,
 * since packing an unbuilt package would test nothing.
 * @param {{ name: string, dir: string }} pkg
 * @param {string} destination
 * @returns {{ tarball: string, bytes: number, files: number }}
 */
export function pack(pkg, destination) {
  if (!statSync(join(pkg.dir, 'dist'), { throwIfNoEntry: false })?.isDirectory()) {
    throw new Error(`${pkg.name}: ${join(pkg.dir, 'dist')} does not exist; run \`pnpm build\` first`);
  }
  const out = execFileSync('pnpm', ['pack', '--json', '--pack-destination', destination], {
    cwd: pkg.dir,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const report = JSON.parse(out.slice(out.indexOf('{')));
  return { tarball: report.filename, bytes: statSync(report.filename).size, files: report.files.length };
}

/** `12.3 kB` / `1.2 MB` (decimal units, as npm prints package sizes). */
export function formatBytes(bytes) {
  return bytes >= 1e6 ? `${(bytes / 1e6).toFixed(2)} MB` : `${(bytes / 1e3).toFixed(1)} kB`;
}
