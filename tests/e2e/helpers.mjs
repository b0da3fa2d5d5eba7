// Shared setup for the page tests: the project's own server (with and without cross-origin
// isolation) and Debian's chromium driven by playwright-core. Screenshots go to artifacts/.

import { spawn } from 'node:child_process';
import { before, after } from 'node:test';
import { mkdirSync, readFileSync } from 'node:fs';
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

/** Open the page and wait until it has started (engine up, default or linked comparison done).
 * `context`: open it in this browser context (its own settings) instead of a new one. */
export async function openPage(browser, url, { width = 1280, height = 900, context = null } = {}) {
  const page = context ? await context.newPage() : await browser.newPage({ viewport: { width, height } });
  if (context) await page.setViewportSize({ width, height });
  const problems = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !/favicon/.test(msg.text())) problems.push(`console error: ${msg.text()}`);
  });
  page.problems = problems;
  await page.goto(url);
  await page.waitForSelector('body[data-started=true]', { timeout: 90_000 });
  await waitIdle(page);
  return page;
}

/** Wait until nothing is loading or computing. */
export async function waitIdle(page) {
  await page.waitForFunction(() => !document.body.classList.contains('busy'), null, { timeout: 90_000 });
}

/** Read a download the page starts with `trigger()`: {name, bytes}. */
export async function downloaded(page, trigger) {
  const [download] = await Promise.all([page.waitForEvent('download'), trigger()]);
  const file = await download.path();
  return { name: download.suggestedFilename(), bytes: readFileSync(file) };
}

/** Count canvas pixels that are neither transparent nor white. */
export async function inkedPixels(page, selector) {
  return page.$eval(selector, (c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i + 3] !== 0 && !(d[i] > 250 && d[i + 1] > 250 && d[i + 2] > 250)) n += 1;
    return n;
  });
}

/** Drop a file the way a user's drag and drop does (a DataTransfer with a File), on the model's
 * drop zone or on another element (`target`). */
export async function dropFile(page, name, bytes, target = '#dropzone') {
  await page.evaluate(
    ({ name, base64, target }) => {
      const data = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
      const file = new File([data], name, { type: 'application/octet-stream' });
      const dt = new DataTransfer();
      dt.items.add(file);
      const zone = document.querySelector(target);
      for (const type of ['dragenter', 'dragover', 'drop']) {
        zone.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
      }
    },
    { name, base64: Buffer.from(bytes).toString('base64'), target },
  );
  // Loading starts synchronously inside the drop handler, so the page is busy by now.
  await waitIdle(page);
}

/** Choose a file with the file input and wait for the load (and its comparison). */
export async function chooseFile(page, file) {
  await page.setInputFiles('#file-input', file);
  await waitIdle(page);
}

/** Set both paths (text form) and press Compare. */
export async function compareWith(page, a, b) {
  await page.fill('#path-a', a);
  await page.fill('#path-b', b);
  await page.click('#compare-button');
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
export function useBrowser(kinds = ['isolated'], { mounts = [] } = {}) {
  const ctx = {};
  before(async () => {
    const servers = await Promise.all(kinds.map((k) => startServer({ isolated: k === 'isolated', mounts })));
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
