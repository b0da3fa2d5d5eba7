// Shared setup for the page tests: the project's own server (with and without cross-origin
// isolation) and Debian's chromium driven by playwright-core. Screenshots go to artifacts/.

import { spawn } from 'node:child_process';
import { before, after } from 'node:test';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const REFERENCE = process.env.PARITYLAB_REFERENCE || path.resolve(ROOT, '../shared/reference');
export const SHOTS = path.join(ROOT, 'artifacts/screenshots');
mkdirSync(SHOTS, { recursive: true });

const BIN = path.resolve(ROOT, process.env.PARITYLAB_BIN || 'target/release/paritylab');
const CHROME_ARGS = (process.env.CHROME_ARGS ||
  '--no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking --disable-component-update --disable-sync').split(/\s+/);

/** Start `paritylab serve` on a free port (`mounts`: PREFIX=DIR folders); resolves to {url, stop()}. */
export function startServer({ isolated = true, mounts = [] } = {}) {
  const args = ['serve', '--dir', path.join(ROOT, 'www'), '--port', '0'];
  if (!isolated) args.push('--no-isolation');
  for (const m of mounts) args.push('--mount', m);
  const child = spawn(BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  return new Promise((resolve, reject) => {
    let log = '';
    const timer = setTimeout(() => reject(new Error(`server did not start: ${log}`)), 10_000);
    child.stderr.on('data', (chunk) => {
      log += chunk;
      const m = log.match(/at (http:\/\/127\.0\.0\.1:\d+\/)/);
      if (m) {
        clearTimeout(timer);
        resolve({ url: m[1], stop: () => child.kill() });
      }
    });
    child.on('exit', (code) => reject(new Error(`server exited with ${code}: ${log}`)));
  });
}

export async function launch() {
  return chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: CHROME_ARGS });
}

/** Open the page and wait until the engine is up and the default model is shown. */
export async function openPage(browser, url, { width = 1280, height = 900 } = {}) {
  const page = await browser.newPage({ viewport: { width, height } });
  const problems = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !/favicon/.test(msg.text())) problems.push(`console error: ${msg.text()}`);
  });
  page.problems = problems;
  await page.goto(url);
  await page.waitForSelector('body[data-engine=ready]', { timeout: 60_000 });
  await waitIdle(page);
  return page;
}

/** Wait until no model is being loaded. */
export async function waitIdle(page) {
  await page.waitForFunction(() => !document.body.classList.contains('busy') && document.querySelector('#busy').hidden, null, { timeout: 60_000 });
}

/** Drop a file on the page the way a user's drag and drop does (a DataTransfer with a File). */
export async function dropFile(page, name, bytes) {
  await page.evaluate(
    ({ name, base64 }) => {
      const data = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
      const file = new File([data], name, { type: 'application/octet-stream' });
      const dt = new DataTransfer();
      dt.items.add(file);
      const zone = document.querySelector('#dropzone');
      for (const type of ['dragenter', 'dragover', 'drop']) {
        zone.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
      }
    },
    { name, base64: Buffer.from(bytes).toString('base64') },
  );
  // Loading starts synchronously inside the drop handler, so the page is busy by now.
  await waitIdle(page);
}

export async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/**
 * Register before/after hooks that start the servers named in `kinds` ('isolated': with COOP/COEP,
 * 'plain': without) and one browser. Returns an object filled in before the tests run:
 * `{ browser, isolated, plain }`.
 */
export function useBrowser(kinds = ['isolated']) {
  const ctx = {};
  before(async () => {
    const servers = await Promise.all(kinds.map((k) => startServer({ isolated: k === 'isolated' })));
    kinds.forEach((k, i) => {
      ctx[k] = servers[i];
    });
    ctx.browser = await launch();
  });
  after(async () => {
    await ctx.browser?.close();
    for (const k of kinds) ctx[k]?.stop();
  });
  return ctx;
}
