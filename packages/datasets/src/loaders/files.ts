/** File-system helpers for the loaders (Node-only). */
import { readdir, stat } from 'node:fs/promises';
import { extname } from 'node:path';
import { DatasetError } from '../errors';

/** File extensions the loaders treat as images. */
export const IMAGE_EXTENSIONS: readonly string[] = ['.png', '.jpg', '.jpeg', '.webp', '.tif', '.tiff'];

export function isImageFile(name: string): boolean {
  return IMAGE_EXTENSIONS.includes(extname(name).toLowerCase()) && !name.startsWith('.');
}

/** Natural order: "2.png" before "10.png". */
export function compareNames(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

/** Throw a {@link DatasetError} unless `path` is a folder. */
export async function requireDir(path: string, expected: string): Promise<void> {
  let isDir = false;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch {
    throw new DatasetError(`folder not found; expected ${expected}`, path);
  }
  if (!isDir) throw new DatasetError(`is a file, not a folder; expected ${expected}`, path);
}

/** Sub-folder names of `path`, sorted. */
export async function listDirs(path: string): Promise<string[]> {
  const entries = await readdir(path, { withFileTypes: true });
  return entries
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort(compareNames);
}

/** Image file names in `path`, in natural order. */
export async function listImages(path: string): Promise<string[]> {
  const entries = await readdir(path, { withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && isImageFile(e.name))
    .map((e) => e.name)
    .sort(compareNames);
}

/** True when `path` exists. */
export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
