// Hostile and oversized inputs in the page: a model that cannot fit is refused from its header
// before a byte of its data is read (the tab and its current model stay), a damaged header gets
// the reader's message, and a crashed engine is noticed, restarted and given its model back.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, REFERENCE, useBrowser, openPage, waitIdle, shot } from './helpers.mjs';

const ctx = useBrowser(['isolated']);
const BIN = path.resolve(ROOT, process.env.PARITYLAB_BIN || 'target/release/paritylab');

/** A sparse GGUF of a model's declared size (header only; the data is a hole that reads as zeros). */
function sparseModel(dir, name, spec) {
  const file = path.join(dir, name);
  execFileSync(BIN, ['synth', '--sparse', '-o', file, spec], { stdio: ['ignore', 'pipe', 'pipe'] });
  return file;
}

async function memoryBytes(page) {
  return Number(await page.$eval('#status-memory', (b) => b.dataset.bytes));
}

test('a 3 GiB model is refused from its header with the memory message; the tab and its model stay', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'paritylab-limits-'));
  try {
    // Llama-7B-shaped layers in Q4_0, 27 of them: 3.0 GiB declared.
    const big = sparseModel(dir, 'llama-3gib.q4_0.gguf',
      'source-issue,arch=llama,vocab=32000,hidden=4096,heads=32,kv_heads=32,head_dim=128,ffn=11008,layers=27,type=q4_0');
    const page = await openPage(ctx.browser, ctx.isolated.url);
    const before = await page.textContent('#model-line');
    const memoryBefore = await memoryBytes(page);
    const started = Date.now();
    await page.setInputFiles('#file-input', big);
    await waitIdle(page);
    const error = await page.textContent('#setup-error');
    assert.match(error, /not enough memory for loading this model and comparing its two paths/);
    assert.match(error, /the file 3\.0 GiB/);
    assert.match(error, /f32 copies of the weights the skainet-(dsl|legacy) path reads as stored 6\.8 GiB/);
    assert.match(error, /To make it fit, pick paths that do not read the weights as stored/);
    assert.match(error, /wasm32 memory is at most 4 GiB/);
    // Refused from the header: no 3 GiB read (seconds), no memory growth, the old model kept.
    assert.ok(Date.now() - started < 20_000, `took ${Date.now() - started} ms`);
    assert.equal(await page.textContent('#model-line'), before);
    assert.ok(await memoryBytes(page) < memoryBefore + 64 * 2 ** 20, `memory grew to ${await memoryBytes(page)}`);
    assert.equal(await page.isEnabled('#compare-button'), true);
    await shot(page, 'limits-3gib-refused');

    // Larger than wasm32 memory can ever be: refused whatever the paths.
    const huge = sparseModel(dir, 'llama-5gib.q4_0.gguf',
      'source-issue,arch=llama,vocab=32000,hidden=4096,heads=32,kv_heads=32,head_dim=128,ffn=11008,layers=45,type=q4_0');
    await page.fill('#path-a', 'hf');
    await page.fill('#path-b', 'llama.cpp');
    await page.setInputFiles('#file-input', huge);
    await waitIdle(page);
    assert.match(await page.textContent('#setup-error'), /the model alone is larger than the browser engine can hold: run it with the paritylab CLI/);
    assert.deepEqual(page.problems, []);
    await page.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a damaged header is refused with the reader message, and the model stays', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'paritylab-limits-'));
  try {
    const real = readFileSync(path.join(REFERENCE, 'gguf/qwen3_tiny_tied.q8_0.gguf'));
    const page = await openPage(ctx.browser, ctx.isolated.url);
    const before = await page.textContent('#model-line');
    // Cut inside the metadata, and a tensor count that cannot be true.
    const cut = path.join(dir, 'cut.gguf');
    writeFileSync(cut, real.subarray(0, 200));
    await page.setInputFiles('#file-input', cut);
    await waitIdle(page);
    assert.match(await page.textContent("#setup-error"), /the metadata count at byte offset 16 is 25, which cannot fit in the 176 bytes that remain/);
    const lying = Buffer.from(real);
    lying.writeBigUInt64LE(1n << 40n, 8);
    const liar = path.join(dir, 'liar.gguf');
    writeFileSync(liar, lying);
    await page.setInputFiles('#file-input', liar);
    await waitIdle(page);
    assert.match(await page.textContent('#setup-error'), /declares 1099511627776 tensors .* at most 65536/);
    assert.equal(await page.textContent('#model-line'), before);
    assert.deepEqual(page.problems, []);
    await page.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a crashed engine is noticed and restarted with the model and the settings kept', async () => {
  const page = await openPage(ctx.browser, ctx.isolated.url);
  const hash = await page.evaluate(() => location.hash);
  const logits = await page.textContent('#verdict');
  // Make the engine trap inside wasm, as an allocation failure does (worker-side test hook).
  const [worker] = page.workers();
  await worker.evaluate(() => self.onmessage({ data: { id: 0, type: 'abort_for_test' } }));
  await page.waitForSelector('#crash-notice:not([hidden])');
  assert.match(await page.textContent('#crash-notice'), /The engine crashed \(.*\) and was restarted, with your settings kept/);
  await page.waitForFunction(() => document.body.dataset.crashes === '1');
  await waitIdle(page);
  assert.equal(await page.evaluate(() => location.hash), hash);
  // The restarted engine has the model back: comparing again gives the same verdict.
  await page.click('#compare-button');
  await waitIdle(page);
  assert.equal(await page.textContent('#verdict'), logits);
  assert.equal(await page.textContent('#setup-error'), '');
  await shot(page, 'limits-crash-restarted');
  // The crash itself is reported by the page; nothing else went wrong.
  assert.deepEqual(page.problems.filter((p) => !/unreachable|abort|RuntimeError/i.test(p)), []);
  await page.close();
});

test('a NaN is reported where it first appears, and the comparison goes on', async () => {
  const page = await openPage(ctx.browser, ctx.isolated.url);
  // Weights from -100 to 100 push layer 0's attention scores past exp()'s range: the naive softmax
  // (B) divides inf by inf, the max-subtracted one (A) stays finite.
  await page.selectOption('#synth-form select[name=arch]', 'llama');
  await page.fill('#synth-form input[name=lo]', '-100');
  await page.fill('#synth-form input[name=hi]', '100');
  await page.click('#synth-form button[type=submit]');
  await waitIdle(page);
  await page.fill('#path-a', 'hf');
  await page.fill('#path-b', 'hf,softmax=naive');
  await page.click('#compare-button');
  await waitIdle(page);
  assert.equal(await page.isVisible('#non-finite'), true);
  assert.equal(await page.getAttribute('#non-finite', 'data-sides'), 'b');
  const text = await page.textContent('#non-finite');
  assert.match(text, /B produces NaN \(hf,softmax=naive\) first at blk\.0\.kq_softmax \(layer 0, stage kq_softmax\) of position 0/);
  assert.match(text, /The comparison goes on over the finite values/);
  // The comparison itself went on: a verdict, the per-position chart, the top tokens.
  assert.equal(await page.getAttribute('#verdict', 'data-verdict'), 'diverge');
  assert.ok((await page.locator('#topk tbody tr').count()) > 0);
  await shot(page, 'limits-nan-reported');
  assert.deepEqual(page.problems, []);
  await page.close();
});
