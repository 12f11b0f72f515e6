import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const src = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'src');

/** Every module reachable from `entry` through relative imports, with its bare imports. */
async function moduleGraph(entry: string): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  const visit = async (file: string) => {
    if (graph.has(file)) return;
    const text = await readFile(file, 'utf8');
    const specifiers = [...text.matchAll(/(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]/g)].map((m) => m[1]!);
    graph.set(file, specifiers.filter((s) => !s.startsWith('.')));
    for (const s of specifiers.filter((x) => x.startsWith('.'))) await visit(`${join(dirname(file), s)}.ts`);
  };
  await visit(entry);
  return graph;
}

describe('browser entry point', () => {
  it('reaches no Node API and no sharp (only @ofm/errors), while the Node entry does', async () => {
    const browser = await moduleGraph(join(src, 'browser.ts'));
    expect(browser.size).toBeGreaterThan(10);
    // @ofm/errors (the error classes, no dependencies, no platform API) is the one package allowed.
    for (const [file, bare] of browser) expect(bare.filter((s) => s !== '@ofm/errors'), file).toEqual([]);
    expect([...browser.values()].flat()).toContain('@ofm/errors');

    const node = await moduleGraph(join(src, 'index.ts'));
    const bare = new Set([...node.values()].flat());
    expect(bare.has('sharp')).toBe(true);
    expect([...bare].some((s) => s.startsWith('node:'))).toBe(true);
  });
});
