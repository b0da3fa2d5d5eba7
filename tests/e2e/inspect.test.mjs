// The page end to end in headless Chromium: engine start (threads when isolated, one thread with a
// notice when not), the default synthetic model, dropping every reference GGUF, bad files.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { useBrowser, openPage, dropFile, waitIdle, shot, REFERENCE } from './helpers.mjs';

const ctx = useBrowser(['isolated', 'plain']);

/** The numbers the stats panel shows for a tensor. */
async function statsOf(page, name) {
  await page.fill('#tensor-filter', name);
  await page.click(`#tensor-table tbody tr[data-name="${name}"]`);
  await page.waitForSelector('#tensor-detail canvas.histogram');
  return page.textContent('#tensor-detail dl');
}

/** How many canvas pixels are not transparent. */
async function inkedPixels(page, selector) {
  return page.$eval(selector, (c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) n += 1;
    return n;
  });
}

test('isolated page runs the threaded SIMD build and opens on the source issue reproducer', async () => {
  const page = await openPage(ctx.browser, ctx.isolated.url);
  const engine = await page.$eval('#status-engine', (e) => ({ ...e.dataset, text: e.textContent }));
  assert.equal(engine.build, 'mt');
  assert.ok(Number(engine.threads) >= 2, `threads: ${engine.threads}`);
  assert.equal(await page.$eval('#status-simd', (e) => e.dataset.simd), 'true');
  assert.equal(await page.isVisible('#isolation-notice'), false);
  assert.equal(await page.evaluate(() => self.crossOriginIsolated), true);
  // The default: the source issue's shape (qwen3, dim 32, 2 heads x 16, FFN 64, one layer, vocab 64).
  assert.match(await page.textContent('#model-origin'), /source issue/);
  assert.match(await page.textContent('#model-summary'), /qwen3/);
  assert.equal(await page.locator('#tensor-table tbody tr').count(), 14);
  const q = await page.$eval('#tensor-table tbody tr[data-name="blk.0.attn_q.weight"]', (r) => r.textContent);
  assert.match(q, /\[32, 32\]/);
  const norm = await page.$eval('#tensor-table tbody tr[data-name="blk.0.attn_q_norm.weight"]', (r) => r.textContent);
  assert.match(norm, /\[16\]/);
  // Decoding a tensor draws its histogram.
  const stats = await statsOf(page, 'blk.0.attn_q.weight');
  assert.match(stats, /min \/ max-2 \/ 2/);
  assert.ok((await inkedPixels(page, '#tensor-detail canvas.histogram')) > 100);
  await shot(page, 'inspect-default-isolated');
  assert.deepEqual(page.problems, []);
  await page.close();
});

test('every reference GGUF can be dropped and inspected', async () => {
  const page = await openPage(ctx.browser, ctx.isolated.url);
  const manifest = JSON.parse(readFileSync(path.join(REFERENCE, 'manifest.json'), 'utf8'));
  const dir = path.join(REFERENCE, 'gguf');
  const files = readdirSync(dir).filter((f) => f.endsWith('.gguf')).sort();
  assert.ok(files.length >= 22);
  for (const [i, file] of files.entries()) {
    const full = path.join(dir, file);
    if (i % 2 === 0) {
      await page.setInputFiles('#file-input', full);
      await waitIdle(page);
    } else {
      await dropFile(page, file, readFileSync(full));
    }
    assert.equal(await page.isVisible('#error'), false, `${file}: ${await page.textContent('#error')}`);
    const [model, qtype] = file.replace(/\.gguf$/, '').split('.');
    const want = Object.keys(manifest.models[model].gguf_tensor_types[qtype]).length;
    assert.equal(await page.locator('#tensor-table tbody tr').count(), want, file);
    assert.match(await page.textContent('#model-summary'), new RegExp(manifest.models[model].arch));
    assert.match(await page.textContent('#model-origin'), new RegExp(file.replace(/\./g, '\\.')));
    if (file === 'qwen3_realvocab.q8_0.gguf') {
      await page.click('#tab-metadata');
      await page.fill('#meta-filter', 'tokenizer.ggml.tokens');
      assert.match(await page.textContent('#meta-table tbody'), /string\[151,936\]/);
      await shot(page, 'inspect-realvocab-metadata');
      await page.click('#tab-tensors');
    }
  }
  await shot(page, 'inspect-last-reference-file');
  assert.deepEqual(page.problems, []);
  await page.close();
});

test('garbage and truncated files show a clear error, then a good file loads', async () => {
  const page = await openPage(ctx.browser, ctx.isolated.url);
  await dropFile(page, 'notes.txt', Buffer.from('these are not the weights you are looking for'));
  assert.equal(await page.isVisible('#error'), true);
  assert.match(await page.textContent('#error'), /not a GGUF file/);
  assert.equal(await page.isVisible('#model'), false);
  await shot(page, 'inspect-garbage-error');

  const good = readFileSync(path.join(REFERENCE, 'gguf/qwen3_gqa.f16.gguf'));
  await dropFile(page, 'cut.gguf', good.subarray(0, Math.floor(good.length / 2)));
  assert.match(await page.textContent('#error'), /needs bytes .* (incomplete download|truncated)|truncated/);
  await shot(page, 'inspect-truncated-error');

  await page.setInputFiles('#file-input', path.join(REFERENCE, 'gguf/qwen3_gqa.f16.gguf'));
  await waitIdle(page);
  assert.equal(await page.isVisible('#error'), false);
  assert.equal(await page.locator('#tensor-table tbody tr').count(), 24);
  // The page is still fully working: decode a tensor of the new file.
  assert.match(await statsOf(page, 'blk.1.attn_k_norm.weight'), /NaN \/ Inf0 \/ 0/);
  assert.deepEqual(page.problems, []);
  await page.close();
});

test('without isolation the page runs single-threaded with a visible notice and the same numbers', async () => {
  const threaded = await openPage(ctx.browser, ctx.isolated.url);
  const single = await openPage(ctx.browser, ctx.plain.url);
  assert.equal(await single.$eval('#status-engine', (e) => e.dataset.build), 'st');
  assert.equal(await single.$eval('#status-engine', (e) => e.dataset.threads), '1');
  assert.equal(await single.isVisible('#isolation-notice'), true);
  assert.match(await single.textContent('#isolation-notice'), /one thread/);
  await shot(single, 'inspect-not-isolated');
  const file = path.join(REFERENCE, 'gguf/qwen3_realvocab.q8_0.gguf');
  for (const page of [threaded, single]) {
    await page.setInputFiles('#file-input', file);
    await waitIdle(page);
  }
  const a = await statsOf(threaded, 'token_embd.weight');
  const b = await statsOf(single, 'token_embd.weight');
  assert.equal(a, b);
  assert.deepEqual(single.problems, []);
  await threaded.close();
  await single.close();
});

test('keyboard: a tensor row opens with Enter, and the page reads at 800 px', async () => {
  const page = await openPage(ctx.browser, ctx.isolated.url, { width: 800, height: 900 });
  await page.focus('#tensor-table tbody tr[data-name="token_embd.weight"]');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#tensor-detail canvas.histogram');
  assert.match(await page.textContent('#tensor-detail h3'), /token_embd\.weight/);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `page scrolls sideways by ${overflow}px at 800px`);
  await shot(page, 'inspect-800px');
  await page.close();
});
