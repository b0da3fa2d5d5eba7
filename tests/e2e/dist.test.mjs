// The published site (dist/, from `./build.sh dist`; `./build.sh test` assembles it before these
// tests) on a plain static host that sends no COOP/COEP/CSP headers, like GitHub Pages: the
// service worker fallback makes the page cross-origin isolated (one reload) and the engine runs
// threaded; where service workers are blocked, or do not isolate the page, it stays on one thread
// with its notice, without reloading more than once, and still compares.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { launch, openPage, shot, ROOT } from './helpers.mjs';

const DIST = path.join(ROOT, 'dist');

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.json': 'application/json',
};

/** Serve `dir` on 127.0.0.1 with content types only (no other headers); `replace` maps URL paths to
 * bodies served instead of the files. Resolves to {url, stop()}. */
function staticServer(dir, { replace = {} } = {}) {
  const server = http.createServer((req, res) => {
    const url = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const type = (file) => TYPES[path.extname(file)] || 'application/octet-stream';
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405);
      return res.end();
    }
    if (url in replace) {
      res.writeHead(200, { 'Content-Type': type(url) });
      return res.end(req.method === 'HEAD' ? undefined : replace[url]);
    }
    let file = path.resolve(dir, `.${url}`);
    if (file !== dir && !file.startsWith(dir + path.sep)) {
      res.writeHead(403);
      return res.end();
    }
    if (existsSync(file) && statSync(file).isDirectory()) file = path.join(file, 'index.html');
    if (!existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      return res.end('not found\n');
    }
    res.writeHead(200, { 'Content-Type': type(file), 'Content-Length': statSync(file).size });
    if (req.method === 'HEAD') return res.end();
    createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({ url: `http://127.0.0.1:${server.address().port}/`, stop: () => server.close() });
    });
  });
}

const ctx = {};
before(async () => {
  assert.ok(existsSync(path.join(DIST, 'index.html')), 'dist/ is built (./build.sh dist)');
  ctx.plain = await staticServer(DIST);
  // A service worker that installs but adds no header: the page can never become isolated.
  ctx.useless = await staticServer(DIST, {
    replace: {
      '/coi-sw.js':
        "self.addEventListener('install', () => self.skipWaiting());\n" +
        "self.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()));\n",
    },
  });
  ctx.browser = await launch();
});
after(async () => {
  await ctx.browser?.close();
  ctx.plain?.stop();
  ctx.useless?.stop();
});

/** A fresh browser context (its own service workers) counting the page's top-level loads. */
async function freshContext(options = {}) {
  const context = await ctx.browser.newContext(options);
  context.loads = 0;
  context.on('page', (page) => page.on('load', () => (context.loads += 1)));
  return context;
}

const state = (page) =>
  page.evaluate(() => ({
    isolated: self.crossOriginIsolated,
    coi: document.documentElement.dataset.coi,
    controlled: Boolean(navigator.serviceWorker?.controller),
    reloadFlag: sessionStorage.getItem('paritylab-coi-reloaded'),
    build: document.querySelector('#status-engine').dataset.build,
    threads: Number(document.querySelector('#status-engine').dataset.threads),
    badge: document.querySelector('#status-isolation').dataset.isolated,
    notice: !document.querySelector('#isolation-notice').hidden,
    verdict: document.querySelector('#verdict').dataset.verdict,
  }));

test('dist/ holds the page, its three wasm builds, _headers and the fallback', () => {
  for (const f of [
    'index.html', 'app.js', 'worker.js', 'style.css', 'favicon.svg', 'coi-sw.js', 'js/boot.js', 'js/engine.js',
    'vendor/uplot/uPlot.esm.js', 'vendor/uplot/uPlot.min.css', '_headers', '.nojekyll',
    'pkg-st/paritylab.js', 'pkg-st/paritylab_bg.wasm', 'pkg-mt/paritylab_bg.wasm', 'pkg-mt-relaxed/paritylab_bg.wasm',
  ]) {
    assert.ok(existsSync(path.join(DIST, f)), f);
  }
  // The rayon worker helpers the threaded builds import, and nothing the page does not load.
  for (const flavour of ['mt', 'mt-relaxed']) {
    const glue = readFileSync(path.join(DIST, `pkg-${flavour}/paritylab.js`), 'utf8');
    for (const [, snippet] of glue.matchAll(/from '\.\/(snippets\/[^']+)'/g)) {
      assert.ok(existsSync(path.join(DIST, `pkg-${flavour}`, snippet)), snippet);
    }
  }
  assert.ok(!existsSync(path.join(DIST, 'pkg-st/paritylab.d.ts')));
  // One policy: _headers states the page's meta policy, plus what only a header can say.
  const html = readFileSync(path.join(DIST, 'index.html'), 'utf8');
  const meta = html.match(/<meta http-equiv="Content-Security-Policy" content="([^"]+)">/)[1];
  const headers = readFileSync(path.join(DIST, '_headers'), 'utf8');
  assert.match(headers, /^\/\*\n/);
  for (const line of [
    'Cross-Origin-Opener-Policy: same-origin', 'Cross-Origin-Embedder-Policy: require-corp',
    'Cross-Origin-Resource-Policy: same-origin', `Content-Security-Policy: ${meta}; frame-ancestors 'none'`,
    'X-Content-Type-Options: nosniff',
  ]) {
    assert.ok(headers.split('\n').includes(`  ${line}`), line);
  }
  // Only the published page asks for the service worker.
  assert.match(html, /<meta name="paritylab-coi-fallback" content="coi-sw.js">/);
  assert.doesNotMatch(readFileSync(path.join(ROOT, 'www/index.html'), 'utf8'), /paritylab-coi-fallback/);
});

test('on a host without headers the service worker isolates the page: threaded, one reload', async () => {
  const context = await freshContext();
  const page = await openPage(ctx.browser, ctx.plain.url, { context });
  const s = await state(page);
  assert.deepEqual(
    { ...s, threads: s.threads >= 2 },
    {
      isolated: true, coi: 'service-worker', controlled: true, reloadFlag: null, build: 'mt', threads: true,
      badge: 'true', notice: false, verdict: 'diverge',
    },
  );
  assert.equal(context.loads, 2, 'the first visit reloads once');
  await shot(page, 'dist-service-worker');
  // Later visits are isolated from the start.
  await page.reload();
  await page.waitForSelector('body[data-started=true]', { timeout: 90_000 });
  assert.equal(context.loads, 3);
  assert.equal((await state(page)).coi, 'service-worker');
  assert.deepEqual(page.problems, []);
  await context.close();
});

test('service workers blocked: one thread, the notice, the comparison, no reload', async () => {
  const context = await freshContext({ serviceWorkers: 'block' });
  const page = await openPage(ctx.browser, ctx.plain.url, { context });
  const s = await state(page);
  assert.deepEqual(
    { ...s, controlled: false },
    {
      isolated: false, coi: 'unavailable', controlled: false, reloadFlag: null, build: 'st', threads: 1,
      badge: 'false', notice: true, verdict: 'diverge',
    },
  );
  assert.equal(context.loads, 1);
  assert.equal(await page.isVisible('#isolation-notice'), true);
  assert.match(await page.textContent('#isolation-notice'), /one thread/);
  await shot(page, 'dist-single-thread');
  assert.deepEqual(page.problems, []);
  await context.close();
});

test('a service worker that does not isolate: one reload, then one thread (no loop)', async () => {
  const context = await freshContext();
  const page = await openPage(ctx.browser, ctx.useless.url, { context });
  const s = await state(page);
  assert.deepEqual(
    s,
    {
      isolated: false, coi: 'gave-up', controlled: true, reloadFlag: '1', build: 'st', threads: 1, badge: 'false',
      notice: true, verdict: 'diverge',
    },
  );
  assert.equal(context.loads, 2);
  assert.deepEqual(page.problems, []);
  await context.close();
});
