// The model browser end to end: every reference GGUF dropped and inspected, bad files, the tensor
// value statistics, the single-threaded fallback giving the same numbers, keyboard use.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { useBrowser, openPage, dropFile, chooseFile, shot, inkedPixels, REFERENCE } from './helpers.mjs';

const ctx = useBrowser(['isolated', 'plain']);

async function openDetails(page) {
  if ((await page.getAttribute('#show-details', 'aria-expanded')) !== 'true') await page.click('#show-details');
  await page.waitForSelector('#model:not([hidden])');
}

/** The numbers the stats panel shows for a tensor. */
async function statsOf(page, name) {
  await openDetails(page);
  await page.fill('#tensor-filter', name);
  await page.click(`#tensor-table tbody tr[data-name="${name}"]`);
  await page.waitForSelector('#tensor-detail canvas.histogram');
  return page.textContent('#tensor-detail dl');
}

test('the default model can be browsed: tensors, shapes, decoded values', async () => {
  const page = await openPage(ctx.browser, ctx.isolated.url);
  await openDetails(page);
  assert.equal(await page.locator('#tensor-table tbody tr').count(), 14);
  assert.match(await page.textContent('#tensor-table tbody tr[data-name="blk.0.attn_q.weight"]'), /\[32, 32\]/);
  assert.match(await page.textContent('#tensor-table tbody tr[data-name="blk.0.attn_q_norm.weight"]'), /\[16\]/);
  assert.match(await statsOf(page, 'blk.0.attn_q.weight'), /min \/ max-2 \/ 2/);
  assert.ok((await inkedPixels(page, '#tensor-detail canvas.histogram')) > 100);
  await shot(page, 'inspect-default');
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
    if (i % 2 === 0) await chooseFile(page, full);
    else await dropFile(page, file, readFileSync(full));
    assert.equal(await page.isVisible('#setup-error'), false, `${file}: ${await page.textContent('#setup-error')}`);
    const [model, qtype] = file.replace(/\.gguf$/, '').split('.');
    const want = Object.keys(manifest.models[model].gguf_tensor_types[qtype]).length;
    assert.equal(await page.locator('#tensor-table tbody tr').count(), want, file);
    assert.match(await page.textContent('#model-summary'), new RegExp(manifest.models[model].arch));
    assert.match(await page.textContent('#model-line'), new RegExp(file.replace(/\./g, '\\.')));
    assert.equal(await page.isVisible('#results'), true, `${file} was compared`);
  }
  await openDetails(page);
  await page.click('#tab-metadata');
  await page.fill('#meta-filter', 'tokenizer.ggml.tokens');
  assert.match(await page.textContent('#meta-table tbody'), /string\[/);
  await shot(page, 'inspect-last-reference-file');
  assert.deepEqual(page.problems, []);
  await page.close();
});

test('garbage and truncated files show a clear error, then a good file loads', async () => {
  const page = await openPage(ctx.browser, ctx.isolated.url);
  const before = await page.textContent('#model-line');
  await dropFile(page, 'notes.txt', Buffer.from('these are not the weights you are looking for'));
  assert.match(await page.textContent('#setup-error'), /not a GGUF file/);
  // Refused from its first bytes, before the engine let go of its model: the page keeps it.
  assert.equal(await page.textContent('#model-line'), before);
  assert.equal(await page.isEnabled('#compare-button'), true);
  await shot(page, 'inspect-garbage-error');
  const good = readFileSync(path.join(REFERENCE, 'gguf/qwen3_gqa.f16.gguf'));
  await dropFile(page, 'cut.gguf', good.subarray(0, Math.floor(good.length / 2)));
  assert.match(await page.textContent('#setup-error'), /incomplete download|truncated/);
  await chooseFile(page, path.join(REFERENCE, 'gguf/qwen3_gqa.f16.gguf'));
  assert.equal(await page.isVisible('#setup-error'), false);
  assert.equal(await page.locator('#tensor-table tbody tr').count(), 24);
  assert.match(await statsOf(page, 'blk.1.attn_k_norm.weight'), /NaN \/ Inf0 \/ 0/);
  // A file that parses but is not a model: inspectable, not runnable.
  await chooseFile(page, path.join(REFERENCE, 'quant/quant_vectors.gguf'));
  assert.match(await page.textContent('#setup-error'), /inspected but not run: architecture "quantzoo" is not supported/);
  assert.equal(await page.isDisabled('#compare-button'), true);
  assert.deepEqual(page.problems, []);
  await page.close();
});

test('without isolation: single-threaded, a visible notice, the same tensor statistics', async () => {
  const threaded = await openPage(ctx.browser, ctx.isolated.url);
  const single = await openPage(ctx.browser, ctx.plain.url);
  assert.equal(await single.$eval('#status-engine', (e) => e.dataset.build), 'st');
  assert.equal(await single.$eval('#status-engine', (e) => e.dataset.threads), '1');
  assert.equal(await single.isVisible('#isolation-notice'), true);
  assert.match(await single.textContent('#isolation-notice'), /one thread/);
  const file = path.join(REFERENCE, 'gguf/qwen3_realvocab.q8_0.gguf');
  for (const page of [threaded, single]) await chooseFile(page, file);
  assert.equal(await statsOf(threaded, 'token_embd.weight'), await statsOf(single, 'token_embd.weight'));
  assert.deepEqual(single.problems, []);
  await threaded.close();
  await single.close();
});

test('keyboard: a tensor row opens with Enter', async () => {
  const page = await openPage(ctx.browser, ctx.isolated.url);
  await openDetails(page);
  await page.focus('#tensor-table tbody tr[data-name="token_embd.weight"]');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#tensor-detail canvas.histogram');
  assert.match(await page.textContent('#tensor-detail h3'), /token_embd\.weight/);
  await page.close();
});
