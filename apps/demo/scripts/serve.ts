/**
 * A small static file server for the built demo: the app's folder at `/`, and other folders (the
 * exported model) mounted at URL prefixes such as `/model/`. Used by `pnpm demo` and by the
 * end-to-end test. Serves files only (no directory listings), never outside its folders.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.bin': 'application/octet-stream',
};

export interface ServeOptions {
  /** The built app (Vite's `dist`), served at `/`. */
  app: string;
  /** Folders served at URL prefixes, e.g. `{ '/model/': '/path/to/export' }`. */
  mounts?: Record<string, string>;
  /** Port (default 0: any free port). */
  port?: number;
  /** Interface to listen on (default 127.0.0.1: this machine only). */
  host?: string;
}

export interface StaticServer {
  /** Base URL, e.g. `http://127.0.0.1:41234/`. */
  url: string;
  close(): Promise<void>;
}

/** The file a URL path maps to, or null when it falls outside every served folder. */
function fileFor(pathname: string, app: string, mounts: [string, string][]): string | null {
  let root = app;
  let rest = pathname;
  for (const [prefix, dir] of mounts) {
    if (pathname.startsWith(prefix)) {
      root = dir;
      rest = pathname.slice(prefix.length);
      break;
    }
  }
  if (root === app && (rest === '/' || rest === '')) rest = 'index.html';
  const file = resolve(root, `.${sep}${rest}`);
  return file === root || file.startsWith(root + sep) ? file : null;
}

/** Start serving; resolves once the server listens. */
export function serveStatic(options: ServeOptions): Promise<StaticServer> {
  const app = resolve(options.app);
  // Longest prefix first, so that nested mounts win.
  const mounts = Object.entries(options.mounts ?? {})
    .map(([prefix, dir]) => [prefix.endsWith('/') ? prefix : `${prefix}/`, resolve(dir)] as [string, string])
    .sort((a, b) => b[0].length - a[0].length);
  const server: Server = createServer(async (req, res) => {
    const notFound = () => {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('not found\n');
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' });
      res.end();
      return;
    }
    let pathname: string;
    try {
      pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
    } catch {
      notFound();
      return;
    }
    const file = fileFor(pathname, app, mounts);
    const info = file ? await stat(file).catch(() => null) : null;
    if (!file || !info?.isFile()) {
      notFound();
      return;
    }
    res.writeHead(200, {
      'content-type': MIME[extname(file).toLowerCase()] ?? 'application/octet-stream',
      'content-length': info.size,
      'cache-control': 'no-cache',
    });
    if (req.method === 'HEAD') res.end();
    else createReadStream(file).pipe(res);
  });
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      const { address, port } = server.address() as AddressInfo;
      const host = address.includes(':') ? `[${address}]` : address;
      resolvePromise({
        url: `http://${host}:${port}/`,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}

/** The demo package's folder, and where `vite build` writes the app. */
export const DEMO_ROOT = fileURLToPath(new URL('..', import.meta.url));
export const DEMO_DIST = join(DEMO_ROOT, 'dist');
