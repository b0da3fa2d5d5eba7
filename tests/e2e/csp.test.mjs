// The page under its Content-Security-Policy: the <meta> in index.html and the header the dev
// server sends on every response (worker.js included) state one policy; the default comparison
// runs, threaded, without a single violation; and the policy is really enforced: inline script,
// inline handlers and eval do not run, in the page or in the engine worker, and plain-http
// fetches to other hosts are refused.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { useBrowser, openPage, shot, downloaded, ROOT } from './helpers.mjs';

// Probes the server also serves (at /probe, with the same header): code run by the test driver
// itself is exempt from eval checks, so eval is tried by scripts of the page's own origin.
const PROBE = path.join(ROOT, 'artifacts/e2e-csp');
mkdirSync(PROBE, { recursive: true });
const EVALS = `
  const tried = {};
  for (const [name, run] of [['eval', () => eval('6 * 7')], ['Function', () => new Function('return 6 * 7')()]]) {
    try { tried[name] = run(); } catch (err) { tried[name] = err.name; }
  }`;
writeFileSync(path.join(PROBE, 'eval-page.js'), `${EVALS}\nwindow.__evals = tried;\n`);
writeFileSync(
  path.join(PROBE, 'eval-worker.js'),
  `${EVALS}
  fetch('http://example.com/model.gguf', { mode: 'no-cors' }).then(() => 'fetched', (err) => err.name)
    .then((http) => postMessage({ ...tried, http }));\n`,
);
const ctx = useBrowser(['isolated', 'plain'], { mounts: [`probe=${PROBE}`] });

/** A browser context whose pages record CSP violations (window.__violations) from the start, and
 * whose console messages about the policy are collected in `context.cspMessages`. */
async function watchedContext() {
  const context = await ctx.browser.newContext();
  await context.addInitScript(() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__violations.push({ directive: e.effectiveDirective, blocked: e.blockedURI, sample: e.sample });
    });
  });
  context.cspMessages = [];
  context.on('console', (msg) => {
    if (/Content Security Policy/i.test(msg.text())) context.cspMessages.push(`${msg.type()}: ${msg.text()}`);
  });
  return context;
}

const violations = (page) => page.evaluate(() => window.__violations);

/** The policy of the page's <meta http-equiv="Content-Security-Policy">. */
const metaPolicy = (page) => page.$eval('meta[http-equiv="Content-Security-Policy"]', (m) => m.content);

test('one policy: the meta tag, and the header on every response of both server modes', async () => {
  const context = await watchedContext();
  const page = await context.newPage();
  await page.goto(ctx.isolated.url);
  const meta = await metaPolicy(page);
  for (const directive of [
    "default-src 'none'", "script-src 'self' 'wasm-unsafe-eval'", "worker-src 'self' blob:", "object-src 'none'",
    "base-uri 'none'", "form-action 'none'", "connect-src 'self' https: http://localhost:* http://127.0.0.1:*",
  ]) {
    assert.ok(meta.split('; ').includes(directive), `${directive} in ${meta}`);
  }
  assert.doesNotMatch(meta, /'unsafe-inline'|'unsafe-eval'|frame-ancestors/);
  const expected = `${meta}; frame-ancestors 'none'`;
  for (const server of [ctx.isolated, ctx.plain]) {
    for (const file of ['', 'index.html', 'worker.js', 'app.js', 'pkg-st/paritylab_bg.wasm', 'missing.txt']) {
      const res = await fetch(new URL(file, server.url), { method: 'HEAD' });
      assert.equal(res.headers.get('content-security-policy'), expected, `${server.url}${file}`);
    }
  }
  await page.close();
  await context.close();
});

test('the default comparison runs threaded under the policy, without a violation', async () => {
  const context = await watchedContext();
  const page = await openPage(ctx.browser, ctx.isolated.url, { context });
  assert.equal(await page.getAttribute('#verdict', 'data-verdict'), 'diverge');
  // The threaded build: the engine worker (worker-src 'self'), its wasm (wasm-unsafe-eval) and
  // wasm-bindgen-rayon's pool threads, which start from blob: URLs (worker-src blob:).
  assert.equal(await page.$eval('#status-engine', (e) => e.dataset.build), 'mt');
  assert.ok(Number(await page.$eval('#status-engine', (e) => e.dataset.threads)) >= 2);
  assert.equal(await page.evaluate(() => document.documentElement.dataset.coi), 'headers');
  // Charts and downloads (blob: links) work too.
  const { bytes } = await downloaded(page, () => page.click('#export-json'));
  assert.ok(JSON.parse(bytes.toString('utf8')).stages, 'the JSON report has its stages');
  await shot(page, 'csp-default');
  assert.deepEqual(await violations(page), []);
  assert.deepEqual(context.cspMessages, []);
  assert.deepEqual(page.problems, []);
  await page.close();
  await context.close();
});

test('the policy is enforced: no inline script, handler or eval; no plain-http fetch elsewhere', async () => {
  const context = await watchedContext();
  const page = await openPage(ctx.browser, ctx.isolated.url, { context });
  const outcome = await page.evaluate(async () => {
    const script = document.createElement('script');
    script.textContent = 'window.__inlineRan = true;';
    document.body.append(script);
    const button = document.createElement('button');
    button.setAttribute('onclick', 'window.__handlerRan = true');
    document.body.append(button);
    button.click();
    button.remove();
    const probe = document.createElement('script');
    probe.src = '/probe/eval-page.js';
    const probed = new Promise((resolve) => probe.addEventListener('load', resolve));
    document.body.append(probe);
    await probed;
    const tryFetch = (url) => fetch(url, { mode: 'no-cors' }).then(() => 'fetched', (err) => err.name);
    await new Promise((r) => setTimeout(r, 100));
    return {
      inline: window.__inlineRan ?? false,
      handler: window.__handlerRan ?? false,
      evals: window.__evals,
      httpElsewhere: await tryFetch('http://example.com/model.gguf'),
      // Allowed by the policy (whatever the network then says): https anywhere, http to this machine.
      https: await tryFetch('https://127.0.0.1:9/model.gguf'),
      localhost: await tryFetch(`http://localhost:${location.port}/favicon.svg`),
    };
  });
  assert.equal(outcome.inline, false, 'an injected inline script must not run');
  assert.equal(outcome.handler, false, 'an inline event handler must not run');
  assert.deepEqual(outcome.evals, { eval: 'EvalError', Function: 'EvalError' });
  assert.equal(outcome.httpElsewhere, 'TypeError');
  // Each is reported twice: the page has two policies, the meta tag's and the header's (and the
  // probe tries two kinds of eval).
  await page.waitForFunction(() => window.__violations.length >= 10);
  const counts = {};
  for (const v of await violations(page)) counts[`${v.directive} ${v.blocked}`] = (counts[`${v.directive} ${v.blocked}`] || 0) + 1;
  assert.deepEqual(counts, {
    'connect-src http://example.com/model.gguf': 2,
    'script-src eval': 4,
    'script-src-attr inline': 2,
    'script-src-elem inline': 2,
  });
  // The page tells the user about refused URLs before fetching.
  await page.click('#src-tab-url');
  await page.fill('#url-input', 'http://[::1]:8080/model.gguf');
  await page.click('#url-form button[type=submit]');
  await page.waitForFunction(() => /\[::1\] cannot be fetched/.test(document.body.textContent));

  // A dedicated worker has its own policy, from its script's response header (as worker.js has).
  const inWorker = await page.evaluate(
    () =>
      new Promise((resolve, reject) => {
        const worker = new Worker('/probe/eval-worker.js');
        worker.onmessage = (e) => resolve(e.data);
        worker.onerror = (e) => reject(new Error(e.message));
      }),
  );
  assert.deepEqual(inWorker, { eval: 'EvalError', Function: 'EvalError', http: 'TypeError' });
  await page.close();
  await context.close();
});
