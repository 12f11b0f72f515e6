#!/usr/bin/env node
// make-photo-set.mjs: an anomaly-detection evaluation set in the MVTec AD layout, cut from real
// photographs of surfaces that ship in Debian packages, with drawn defects (scratch, stain,
// patch, hole) and their masks. Runs after `pnpm build` (it imports the built @ofm/datasets).
//
//   node scripts/make-photo-set.mjs --out DIR [--seed 0] [--size 128] [--train 60] [--test-good 20]
//        [--test-defect 20] [--classes a,b,...] [--defects scratch,stain,...] [--sources DIR] [--cache DIR]
//
// The classes (package, file, regions, scale) are the data in scripts/photo-classes.json. The
// photographs come from the packages' .deb files, fetched with `apt-get download` and unpacked
// with `dpkg -x` into the cache (default .cache/photo-sources/<package>/, the .deb then deleted)
// when missing; or from
// --sources DIR, a folder holding the unpacked packages (DIR/<package>/usr/... or DIR/usr/...),
// for machines without apt-get. Exit codes: 0 done, 2 bad input, 1 failure.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CATALOGUE_PATH = join(ROOT, 'scripts', 'photo-classes.json');
const DATASETS = join(ROOT, 'packages', 'datasets');
const DEFAULT_CACHE = join(ROOT, '.cache', 'photo-sources');

const HELP = `Usage: node scripts/make-photo-set.mjs --out DIR [options]

Writes an anomaly-detection set in the MVTec AD layout (<class>/train/good, <class>/test/good,
<class>/test/<defect>, <class>/ground_truth/<defect>/*_mask.png, photos.json) cut from real
photographs in Debian packages (classes: scripts/photo-classes.json).

Options:
  --out DIR            target folder (must not exist or be empty)
  --seed N             seed (default 0); same seed and photographs, same bytes
  --size N             image side in pixels (default 128)
  --train N            normal training images per class (default 60)
  --test-good N        normal test images per class (default 20)
  --test-defect N      defective test images per class, spread over the defect kinds (default 20)
  --classes a,b,...    classes to write (default all: CLASSES)
  --defects a,b,...    defect kinds (default all: scratch,stain,patch,hole)
  --sources DIR        unpacked packages (DIR/<package>/usr/... or DIR/usr/...); nothing is downloaded
  --cache DIR          where packages are downloaded and unpacked (default .cache/photo-sources)
  -h, --help           this text

Exit codes: 0 done, 2 bad input, 1 failure.`;

class InputError extends Error {}
/** A missing build or a failure to fetch the photographs: reported without a stack trace (exit 1). */
class SetupError extends Error {}

function fail(message, code) {
  console.error(`make-photo-set: ${message}`);
  process.exit(code);
}

function integer(name, text, fallback, min) {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < min) throw new InputError(`--${name} must be an integer >= ${min}, got "${text}"`);
  return value;
}

function list(text) {
  return text === undefined ? undefined : text.split(',').map((s) => s.trim()).filter(Boolean);
}

function isEmptyOrMissing(path) {
  if (!existsSync(path)) return true;
  const s = statSync(path);
  return s.isDirectory() && readdirSync(path).length === 0;
}

function run(command, args, options = {}) {
  const r = spawnSync(command, args, { encoding: 'utf8', ...options });
  return { ok: r.status === 0 && !r.error, missing: r.error?.code === 'ENOENT', out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

function sha256(path) {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** The photograph of a package file: DIR/<package>/<file> or DIR/<file>. */
function findPhoto(dir, pkg, file) {
  for (const candidate of [join(dir, pkg, file), join(dir, file)]) if (existsSync(candidate)) return candidate;
  return undefined;
}

/** Fetch and unpack `pkg` into `<cache>/<pkg>` with apt-get download and dpkg -x. */
function fetchPackage(pkg, cache, state) {
  const debs = join(cache, 'debs');
  mkdirSync(debs, { recursive: true });
  const findDeb = () => readdirSync(debs).find((n) => n.startsWith(`${pkg}_`) && n.endsWith('.deb'));
  if (!findDeb()) {
    console.log(`fetching ${pkg} (apt-get download) ...`);
    let r = run('apt-get', ['download', pkg], { cwd: debs });
    if (!r.ok && !state.updated && process.getuid?.() === 0) {
      // A fresh machine has no package lists yet.
      console.log('apt-get download failed; running apt-get update once and retrying ...');
      state.updated = true;
      run('apt-get', ['update']);
      r = run('apt-get', ['download', pkg], { cwd: debs });
    }
    if (!r.ok || !findDeb()) {
      throw new SetupError(
        `apt-get download ${pkg} failed:\n${r.out.split('\n').slice(-6).join('\n')}\n` +
          'Run `apt-get update` (as root) and retry, or unpack the package yourself and pass --sources DIR.',
      );
    }
  }
  const deb = join(debs, findDeb());
  const target = join(cache, pkg);
  const partial = `${target}.partial-${process.pid}`;
  rmSync(partial, { recursive: true, force: true });
  const x = run('dpkg', ['-x', deb, partial]);
  if (!x.ok) throw new SetupError(`dpkg -x ${deb} failed:\n${x.out}`);
  rmSync(target, { recursive: true, force: true });
  renameSync(partial, target);
  // Keep the version, not the .deb (the unpacked tree is all that is read).
  const version = run('dpkg-deb', ['-f', deb, 'Version']);
  if (version.ok) writeFileSync(versionFile(cache, pkg), `${version.out}\n`);
  rmSync(deb, { force: true });
}

function versionFile(dir, pkg) {
  return join(dir, `${pkg}.version`);
}

function packageVersion(dir, pkg) {
  const file = versionFile(dir, pkg);
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
}

/** Load the bounding box of a class's regions, downscaled so that one pixel is about one output pixel. */
async function loadClass(sharp, rgbFromBytes, spec, path, size) {
  const f = (spec.scale * 128) / size; // photograph pixels per output pixel
  const x0 = Math.min(...spec.regions.map((r) => r[0]));
  const y0 = Math.min(...spec.regions.map((r) => r[1]));
  const x1 = Math.max(...spec.regions.map((r) => r[0] + r[2]));
  const y1 = Math.max(...spec.regions.map((r) => r[1] + r[3]));
  const meta = await sharp(path).metadata();
  if (x1 > meta.width || y1 > meta.height) {
    throw new InputError(`class ${spec.name}: its regions reach ${x1} x ${y1}, but ${path} is ${meta.width} x ${meta.height}`);
  }
  const bw = x1 - x0;
  const bh = y1 - y0;
  let pipeline = sharp(path).extract({ left: x0, top: y0, width: bw, height: bh });
  let w = bw;
  let h = bh;
  if (f > 1) {
    w = Math.round(bw / f);
    h = Math.round(bh / f);
    pipeline = pipeline.resize(w, h, { fit: 'fill', kernel: 'lanczos3' });
  }
  const { data, info } = await pipeline.removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  const rx = bw / info.width;
  const ry = bh / info.height;
  const regions = spec.regions.map(([x, y, rw, rh]) => {
    const left = Math.ceil((x - x0) / rx - 1e-9);
    const top = Math.ceil((y - y0) / ry - 1e-9);
    const right = Math.min(info.width, Math.floor((x + rw - x0) / rx + 1e-9));
    const bottom = Math.min(info.height, Math.floor((y + rh - y0) / ry + 1e-9));
    return { x: left, y: top, width: right - left, height: bottom - top };
  });
  const source = {
    name: spec.name,
    image: rgbFromBytes(data, info.width, info.height, info.channels),
    regions,
    scale: f / ((rx + ry) / 2),
    orientations: spec.orientations ?? 'any',
  };
  // Back to the photograph's pixels: [x, y, width, height] (for photos.json).
  const toPhoto = (r) => [
    Math.round(x0 + r.x * rx),
    Math.round(y0 + r.y * ry),
    Math.round(r.width * rx),
    Math.round(r.height * ry),
  ];
  return { source, toPhoto };
}

async function main() {
  const started = performance.now();
  let args;
  try {
    args = parseArgs({
      options: {
        out: { type: 'string' },
        seed: { type: 'string' },
        size: { type: 'string' },
        train: { type: 'string' },
        'test-good': { type: 'string' },
        'test-defect': { type: 'string' },
        classes: { type: 'string' },
        defects: { type: 'string' },
        sources: { type: 'string' },
        cache: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: false,
    }).values;
  } catch (err) {
    throw new InputError(`${err.message}\n\n${HELP}`);
  }
  const catalogue = JSON.parse(readFileSync(CATALOGUE_PATH, 'utf8'));
  const allNames = catalogue.classes.map((c) => c.name);
  if (args.help) {
    console.log(HELP.replace('CLASSES', allNames.join(',')));
    return;
  }
  if (!args.out) throw new InputError(`--out DIR is required\n\n${HELP.replace('CLASSES', allNames.join(','))}`);
  const out = resolve(args.out);
  const seed = integer('seed', args.seed, 0, 0);
  if (seed > 0xffffffff) throw new InputError(`--seed must be below 2^32, got ${seed}`);
  const size = integer('size', args.size, 128, 16);
  const trainCount = integer('train', args.train, 60, 1);
  const testGood = integer('test-good', args['test-good'], 20, 0);
  const testDefect = integer('test-defect', args['test-defect'], 20, 0);
  const names = list(args.classes) ?? allNames;
  const unknown = names.filter((n) => !allNames.includes(n));
  if (unknown.length > 0) throw new InputError(`unknown class ${unknown.join(', ')}; the classes are: ${allNames.join(', ')}`);
  if (names.length === 0) throw new InputError('--classes names no class');
  const defects = list(args.defects);
  if (!isEmptyOrMissing(out)) throw new InputError(`${out} already exists and is not empty; choose another folder (nothing was written)`);

  const built = join(DATASETS, 'dist', 'index.js');
  if (!existsSync(built)) throw new SetupError(`${built} is missing: run \`pnpm build\` (or \`pnpm --filter @ofm/datasets build\`) first`);
  const { writePhotoDataset, photoSplit, rgbFromBytes, PHOTO_DEFECT_KINDS } = await import(pathToFileURL(built).href);
  const sharp = createRequire(join(DATASETS, 'package.json'))('sharp');
  if (defects) {
    const bad = defects.filter((d) => !PHOTO_DEFECT_KINDS.includes(d));
    if (bad.length > 0 || defects.length === 0) throw new InputError(`unknown defect kind ${bad.join(', ')}; the kinds are: ${PHOTO_DEFECT_KINDS.join(', ')}`);
  }

  const specs = names.map((n) => catalogue.classes.find((c) => c.name === n));
  const packages = [...new Set(specs.map((s) => s.package))];
  const sourceDir = args.sources ? resolve(args.sources) : resolve(args.cache ?? DEFAULT_CACHE);
  const missingPackages = () => packages.filter((p) => specs.some((s) => s.package === p && !findPhoto(sourceDir, p, s.file)));
  if (args.sources) {
    const missing = specs.filter((s) => !findPhoto(sourceDir, s.package, s.file));
    if (missing.length > 0) {
      throw new InputError(
        `--sources ${sourceDir} lacks ${[...new Set(missing.map((s) => `${s.package}/${s.file}`))].join(', ')}; ` +
          `unpack the packages there (apt-get download PKG && dpkg -x PKG_*.deb ${sourceDir}/PKG)`,
      );
    }
  } else if (missingPackages().length > 0) {
    const need = missingPackages();
    for (const tool of ['apt-get', 'dpkg']) {
      if (run(tool, ['--version']).missing) {
        throw new SetupError(
          `${tool} is not available to fetch the photographs, which come from the Debian packages ${need.join(', ')}. ` +
            `On another machine: apt-get download ${need.join(' ')}; then dpkg -x each .deb into DIR/<package> ` +
            '(or ar x PKG.deb && tar xf data.tar.xz -C DIR/<package>) and run this script with --sources DIR.',
        );
      }
    }
    const state = { updated: false };
    for (const pkg of need) fetchPackage(pkg, sourceDir, state);
  }

  const sources = [];
  const provenance = { packages: {}, classes: {} };
  for (const pkg of packages) {
    // The version fetched (the cache records it), else the one the classes were chosen on.
    provenance.packages[pkg] = { version: packageVersion(sourceDir, pkg) ?? catalogue.packages[pkg]?.version, licence: catalogue.packages[pkg]?.licence };
  }
  for (const spec of specs) {
    const path = findPhoto(sourceDir, spec.package, spec.file);
    const digest = sha256(path);
    if (spec.sha256 && digest !== spec.sha256) {
      console.warn(`warning: ${path} differs from the photograph the classes were chosen on (sha256 ${digest}); the set will differ too`);
    }
    const { source, toPhoto } = await loadClass(sharp, rgbFromBytes, spec, path, size);
    const split = photoSplit(source, { imageSize: size });
    sources.push(source);
    provenance.classes[spec.name] = {
      package: spec.package,
      file: spec.file,
      sha256: digest,
      licence: spec.licence,
      regions: spec.regions,
      photoPixelsPerOutputPixel: (spec.scale * 128) / size,
      trainBandsInPhoto: split.train.map(toPhoto),
      testBandsInPhoto: split.test.map(toPhoto),
    };
  }

  const loaded = performance.now();
  let lastClass = '';
  const summary = await writePhotoDataset(sources, {
    out,
    seed,
    imageSize: size,
    trainCount,
    testGood,
    testDefect,
    ...(defects ? { defects } : {}),
    provenance,
    onProgress: ({ className }) => {
      if (className !== lastClass) {
        lastClass = className;
        process.stdout.write(`writing ${className} ...\n`);
      }
    },
  });
  const finished = performance.now();

  console.log(`\n${summary.out}: ${summary.images} images of ${size} x ${size}, seed ${seed}`);
  const width = Math.max(...summary.classes.map((c) => c.name.length), 5);
  console.log(`${'class'.padEnd(width)}  train  test good  test defect (${summary.defects.join(', ')})  source`);
  for (const c of summary.classes) {
    const spec = specs.find((s) => s.name === c.name);
    const perKind = summary.defects.map((d) => c.testDefect[d] ?? 0).join('/');
    const defectTotal = Object.values(c.testDefect).reduce((a, b) => a + b, 0);
    console.log(
      `${c.name.padEnd(width)}  ${String(c.train).padStart(5)}  ${String(c.testGood).padStart(9)}  ${`${defectTotal} (${perKind})`.padEnd(13 + summary.defects.join(', ').length)}  ${spec.package}: ${spec.file.split('/').pop()}`,
    );
  }
  const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;
  console.log(`time: ${seconds(finished - started)} (sources ${seconds(loaded - started)}, images ${seconds(finished - loaded)})`);
}

main().catch((err) => {
  if (err instanceof InputError || err?.name === 'DatasetError' || err instanceof RangeError) fail(err.message, 2);
  if (err instanceof SetupError) fail(err.message, 1);
  fail(err?.stack ?? String(err), 1);
});
