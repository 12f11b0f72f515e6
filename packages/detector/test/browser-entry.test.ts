/**
 * The browser entry point (`@ofm/detector/browser`, src/browser.ts) reaches no Node API and not
 * sharp through its own source files, while the Node entry (src/index.ts) does. Only the sources
 * are read (no bundling); the other @ofm packages it imports have browser entries of their own,
 * checked in their packages, and the bundled page in examples/browser-detection.
 */
import { readFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const src = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'src');

/** Every module reachable from `entry` through relative imports (static and dynamic), with its bare imports. */
async function moduleGraph(entry: string): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  const visit = async (file: string) => {
    const key = relative(src, file);
    if (graph.has(key)) return;
    const text = await readFile(file, 'utf8');
    const specifiers = [
      ...text.matchAll(/(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]/g),
      ...text.matchAll(/import\(\s*['"]([^'"]+)['"]\s*\)/g),
    ].map((m) => m[1]!);
    graph.set(key, specifiers.filter((s) => !s.startsWith('.')));
    for (const s of specifiers.filter((x) => x.startsWith('.'))) await visit(`${join(dirname(file), s)}.ts`);
  };
  await visit(entry);
  return graph;
}

const nodeOnly = (s: string) => s.startsWith('node:') || builtinModules.includes(s) || s === 'sharp';

describe('browser entry point', () => {
  it('reaches no Node built-in and no sharp, while the Node entry does', async () => {
    const browser = await moduleGraph(join(src, 'browser.ts'));
    expect(browser.size).toBeGreaterThan(10);
    for (const [file, bare] of browser) expect(bare.filter(nodeOnly), file).toEqual([]);
    // The Node-only modules stay out of the browser graph.
    for (const file of ['io/export-write.ts', 'report/report.ts', 'run/continual.ts', 'model/model-extractor.ts']) {
      expect(browser.has(file), file).toBe(false);
    }

    const node = await moduleGraph(join(src, 'index.ts'));
    const bare = new Set([...node.values()].flat());
    expect(bare.has('sharp')).toBe(true);
    expect([...bare].some((s) => s.startsWith('node:'))).toBe(true);
  });
});
