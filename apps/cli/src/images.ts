/**
 * The images `ofm detect` is given: files, folders searched recursively (optionally through a
 * glob), or a quoted glob; and a distinct, recognisable output name for each.
 */
import { type Dirent, existsSync, readdirSync, statSync } from 'node:fs';
import { basename, extname, join, resolve, sep } from 'node:path';
import { IMAGE_EXTENSIONS } from '@ofm/datasets';
import { CliError } from './errors';

/** One image to process: where it is, and how to show it (relative to the folder it was found in, or as given). */
export interface ImageInput {
  path: string;
  shown: string;
  /** Folders of its path kept in its output name at least (those below the folder it was found in). */
  depth: number;
}

const GLOB_CHARS = /[*?[{]/;

/**
 * A glob as a regular expression over '/'-separated relative paths: `*` and `?` within one path
 * segment, `**` across segments (`a/**\/b` matches `a/b` too), `[...]` character classes and
 * `{x,y}` alternatives.
 */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  let braces = 0;
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        const slash = glob[i + 2] === '/';
        re += slash ? '(?:.*/)?' : '.*';
        i += slash ? 2 : 1;
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        const body = glob.slice(i + 1, end).replace(/\\/g, '\\\\');
        re += `[${body.startsWith('!') ? `^${body.slice(1)}` : body}]`;
        i = end;
      }
    } else if (c === '{') {
      braces += 1;
      re += '(?:';
    } else if (c === '}' && braces > 0) {
      braces -= 1;
      re += ')';
    } else if (c === ',' && braces > 0) re += '|';
    else re += c.replace(/[.+^$()|\\]/g, '\\$&');
  }
  if (braces > 0) throw new CliError(`--glob '${glob}' has an unclosed '{'`);
  return new RegExp(`^${re}$`);
}

function isImage(name: string): boolean {
  return !name.startsWith('.') && IMAGE_EXTENSIONS.includes(extname(name).toLowerCase());
}

/** Every image file under `dir` (hidden entries skipped), as paths relative to it with '/', in natural order. */
function walk(dir: string, prefix = ''): string[] {
  const found: string[] = [];
  let entries: Dirent[];
  try {
    entries = readdirSync(join(dir, prefix), { withFileTypes: true });
  } catch (err) {
    throw new CliError(`folder '${join(dir, prefix)}' cannot be read: ${(err as Error).message}`);
  }
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    let isDir = e.isDirectory();
    let isFile = e.isFile();
    if (e.isSymbolicLink()) {
      try {
        const st = statSync(join(dir, rel));
        isDir = st.isDirectory();
        isFile = st.isFile();
      } catch {
        continue; // a dangling link
      }
    }
    if (isDir) found.push(...walk(dir, rel));
    else if (isFile && isImage(e.name)) found.push(rel);
  }
  return found.sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
}

/** The images in `dir` and its subfolders whose path relative to it matches `glob` (all images without one). */
function imagesInFolder(dir: string, glob: string | undefined, shownAs: string): ImageInput[] {
  const pattern = glob === undefined ? null : globToRegExp(glob);
  const rels = walk(dir).filter((rel) => pattern === null || pattern.test(rel));
  if (rels.length === 0) {
    throw new CliError(
      `folder '${shownAs}' holds no images${glob !== undefined ? ` matching '${glob}'` : ''} (looked for ${IMAGE_EXTENSIONS.join(', ')} files in it and its subfolders` +
        `${glob !== undefined && !glob.includes('/') ? `; the pattern matches the path below the folder: '**/${glob}' matches at any depth` : ''})`,
    );
  }
  return rels.map((rel) => ({ path: join(dir, ...rel.split('/')), shown: join(shownAs, ...rel.split('/')), depth: rel.split('/').length - 1 }));
}

/**
 * Expand the arguments of `ofm detect`: a file is taken as it is (its decoding says whether it is
 * an image), a folder is searched recursively for images (those matching `glob` when given), and a
 * quoted glob such as `'data/**\/test/*\/*.png'` is searched from its folder part.
 */
export function expandImageArgs(args: readonly string[], glob?: string): ImageInput[] {
  const out: ImageInput[] = [];
  for (const arg of args) {
    if (existsSync(arg)) {
      if (statSync(arg).isDirectory()) out.push(...imagesInFolder(arg, glob, arg));
      else out.push({ path: arg, shown: arg, depth: 0 });
      continue;
    }
    if (GLOB_CHARS.test(arg)) {
      const parts = arg.split(/[\\/]/);
      const first = parts.findIndex((p) => GLOB_CHARS.test(p));
      const base = parts.slice(0, first).join(sep) || (arg.startsWith('/') ? sep : '.');
      if (!existsSync(base) || !statSync(base).isDirectory()) throw new CliError(`image pattern '${arg}': folder '${base}' does not exist`);
      out.push(...imagesInFolder(base, parts.slice(first).join('/'), base === '.' ? '' : base));
      continue;
    }
    throw new CliError(`image '${arg}' does not exist`);
  }
  return out;
}

/**
 * An output file name for each image, distinct and recognisable: the image's name without its
 * extension, below the folders its `depth` keeps (an image found in a folder keeps its place in
 * it), with as many further parent folders in front as it takes to tell images apart (`good/000`
 * and `crack/000`), then the extension (`a.png` and `a.jpg`), then a number (the same file given
 * twice). Names use '/' and become subfolders of the output folder.
 */
export function outputStems(images: readonly { path: string; depth?: number }[]): string[] {
  // Distinct files first; the same file given again is numbered at the end.
  const index = new Map<string, number>();
  const distinct: { dirs: string[]; stem: string; ext: string; depth: number }[] = [];
  const of = images.map(({ path: p, depth = 0 }) => {
    const abs = resolve(p);
    let k = index.get(abs);
    if (k === undefined) {
      const segments = abs.split(sep).filter(Boolean);
      const last = segments.pop()!;
      k = distinct.push({ dirs: segments, stem: basename(last, extname(last)), ext: extname(last).slice(1).toLowerCase(), depth: Math.min(depth, segments.length) }) - 1;
      index.set(abs, k);
    }
    return k;
  });
  const name = (p: (typeof distinct)[number]) => [...p.dirs.slice(p.dirs.length - p.depth), p.stem].join('/');
  // Add parent folders to clashing names until they differ or no folder is left.
  for (let changed = true; changed; ) {
    changed = false;
    const groups = new Map<string, number[]>();
    distinct.forEach((p, i) => groups.set(name(p), [...(groups.get(name(p)) ?? []), i]));
    for (const members of groups.values()) {
      if (members.length < 2) continue;
      for (const i of members) {
        const p = distinct[i]!;
        if (p.depth < p.dirs.length) {
          p.depth += 1;
          changed = true;
        }
      }
    }
  }
  const names = distinct.map(name);
  const count = new Map<string, number>();
  names.forEach((n) => count.set(n, (count.get(n) ?? 0) + 1));
  const unique = names.map((n, i) => (count.get(n)! > 1 && distinct[i]!.ext ? `${n}_${distinct[i]!.ext}` : n));
  const seen = new Map<number, number>();
  return of.map((k) => {
    const times = (seen.get(k) ?? 0) + 1;
    seen.set(k, times);
    return times === 1 ? unique[k]! : `${unique[k]}_${times}`;
  });
}

/** The size an overlay is drawn at: the image's aspect ratio, its longer side within 256-1024 px. */
export function overlaySize(source: { width: number; height: number }): { width: number; height: number } {
  const longer = Math.max(source.width, source.height);
  const scale = Math.min(1024, Math.max(256, longer)) / longer;
  return { width: Math.max(1, Math.round(source.width * scale)), height: Math.max(1, Math.round(source.height * scale)) };
}

/**
 * The overlay PNG of one detection, drawn over the image as it was given (encoded `bytes`, at
 * {@link overlaySize}): what `ofm detect --out` writes and `ofm serve` returns, byte for byte.
 */
export async function detectionOverlay(
  bytes: Uint8Array,
  source: { width: number; height: number },
  detection: { map: Float32Array; score: number; className: string },
  mapSize: number,
  threshold: number,
): Promise<Uint8Array> {
  // Loaded here, not at the top: `ofm --help` stays fast.
  const [{ decodeImage }, { detectionOverlayPng }] = await Promise.all([import('@ofm/datasets'), import('@ofm/detector')]);
  const shown = await decodeImage(bytes, { size: overlaySize(source) });
  return detectionOverlayPng({
    image: shown,
    map: detection.map,
    mapWidth: mapSize,
    mapHeight: mapSize,
    score: detection.score,
    className: detection.className,
    threshold,
  });
}
