// A minimal static server for the benchmark's browser pages, on 127.0.0.1 and a free port, with
// the same cross-origin isolation headers as `paritylab serve` (so SharedArrayBuffer, wasm
// threads, work). Independent of the Rust build: it serves files under `mounts` only, e.g.
//   startStatic({ '/bench/': 'bench/wllama', '/wllama/': 'node_modules/@wllama/wllama/esm' })
// GET and HEAD, with single byte ranges (`Range: bytes=A-B`), nothing else.

import { createReadStream, statSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.css': 'text/css; charset=utf-8',
};

/** Start serving `mounts` ({ '/prefix/': dir }); resolves to { url, stop() }. */
export function startStatic(mounts) {
  const table = Object.entries(mounts).map(([prefix, dir]) => [prefix, path.resolve(dir)]);
  const server = http.createServer((req, res) => {
    const headers = {
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
      'Cross-Origin-Resource-Policy': 'same-origin',
      'Cache-Control': 'no-store',
    };
    const fail = (code) => {
      res.writeHead(code, headers);
      res.end();
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return fail(405);
    const url = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const hit = table.find(([prefix]) => url.startsWith(prefix));
    if (!hit) return fail(404);
    const file = path.resolve(hit[1], `.${url.slice(hit[0].length - 1)}`);
    if (!file.startsWith(hit[1] + path.sep)) return fail(403);
    let size;
    try {
      const st = statSync(file);
      if (!st.isFile()) return fail(404);
      size = st.size;
    } catch {
      return fail(404);
    }
    headers['Content-Type'] = TYPES[path.extname(file)] || 'application/octet-stream';
    headers['Accept-Ranges'] = 'bytes';
    let [start, end, code] = [0, size - 1, 200];
    const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range || '');
    if (range && (range[1] || range[2])) {
      start = range[1] ? Number(range[1]) : Math.max(0, size - Number(range[2]));
      end = range[1] && range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
      if (start > end) {
        res.writeHead(416, { ...headers, 'Content-Range': `bytes */${size}` });
        return res.end();
      }
      code = 206;
      headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
    }
    headers['Content-Length'] = end - start + 1;
    res.writeHead(code, headers);
    if (req.method === 'HEAD' || size === 0) return res.end();
    createReadStream(file, { start, end }).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      resolve({ url: `http://127.0.0.1:${server.address().port}/`, stop: () => server.close() });
    });
  });
}
