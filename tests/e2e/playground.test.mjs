// The playground end to end: the default page (the source issue, already compared), a dropped
// GGUF compared against the f64 oracle, share links (reproduced exactly, or refused clearly),
// errors and recovery, exports, text prompts, cancel, keyboard and narrow screens.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  useBrowser, openPage, waitIdle, shot, chooseFile, dropFile, compareWith, downloaded, inkedPixels, REFERENCE, ROOT,
} from './helpers.mjs';

// A folder the test server also serves (at /files) for URL fetches.
const FILES = path.join(ROOT, 'artifacts/e2e-files');
mkdirSync(FILES, { recursive: true });
writeFileSync(path.join(FILES, 'not-a-model.gguf'), '<!doctype html><title>404</title>');
const ctx = useBrowser(['isolated', 'plain'], { mounts: [`files=${FILES}`, `ref=${path.join(REFERENCE, 'gguf')}`] });

/** The report as the page exports it (its JSON download). */
async function report(page) {
  const { bytes } = await downloaded(page, () => page.click('#export-json'));
  return JSON.parse(bytes.toString('utf8'));
}

const verdict = (page) => page.textContent('#verdict');

test('the default page is the source issue, already compared and explained', async () => {
  const page = await openPage(ctx.browser, ctx.isolated.url);
  assert.match(await page.textContent('#model-line'), /Source issue's reproducer/);
  assert.equal(await page.inputValue('#path-a'), 'skainet-dsl');
  assert.equal(await page.inputValue('#path-b'), 'skainet-legacy');
  assert.equal(await page.inputValue('#prompt-ids'), '1,5,3');
  assert.equal(await page.getAttribute('#verdict', 'data-verdict'), 'diverge');
  const v = await verdict(page);
  assert.match(v, /first at blk\.0\.q \(layer 0, stage q\) at position 0/);
  assert.match(v, /Explained by position 0: projection; positions 1-2: rope_pairing \+ projection/);
  // The conventions where B differs are highlighted.
  const differs = await page.$$eval('#conventions tr.differs', (rows) => rows.map((r) => r.dataset.field));
  assert.deepEqual(differs, ['rope_pairing', 'qk_norm_eps', 'projection', 'head_dim', 'qkv_bias']);
  // The charts are drawn: heatmap pixels, and the per-position chart's data and canvas.
  assert.ok((await inkedPixels(page, '#heatmap')) > 2000);
  assert.ok(Number(await page.getAttribute('#heatmap', 'data-diverged')) > 10);
  const points = JSON.parse(await page.getAttribute('#position-chart', 'data-points'));
  assert.equal(points.max_abs.length, 3);
  assert.ok(points.max_abs.every((x) => x > 1), 'legacy is far from the DSL at every position');
  assert.ok((await inkedPixels(page, '#position-chart canvas')) > 500);
  assert.ok((await inkedPixels(page, '#overlay-chart canvas')) > 500);
  assert.match(await page.textContent('#inspect-title'), /blk\.0\.q · position 0/);
  assert.match(page.url(), /#s1\./);
  await shot(page, 'playground-default');
  assert.deepEqual(page.problems, []);
  await page.close();
});

test('a dropped q8_0 model: hf and the f64 oracle agree within noise', async () => {
  const page = await openPage(ctx.browser, ctx.isolated.url);
  await chooseFile(page, path.join(REFERENCE, 'gguf/qwen3_gqa.q8_0.gguf'));
  await page.fill('#prompt-ids', '1,2,3,4');
  await compareWith(page, 'hf', 'oracle-f64');
  assert.equal(await page.getAttribute('#verdict', 'data-verdict'), 'agree', await verdict(page));
  assert.match(await verdict(page), /agree within float noise/);
  await shot(page, 'playground-gqa-oracle');
  assert.deepEqual(page.problems, []);
  await page.close();
});

test('the llama.cpp preset: activation rounding explained, its noise measured by perturbed reruns', async () => {
  const page = await openPage(ctx.browser, ctx.isolated.url);
  await chooseFile(page, path.join(REFERENCE, 'gguf/qwen3_gqa.q8_0.gguf'));
  await page.fill('#prompt-ids', '1,2,3,4');
  await compareWith(page, 'hf', 'llama.cpp');
  const v = await verdict(page);
  // Q8_0 rounding of every matmul input is a real change of the math, which explain names.
  assert.equal(await page.getAttribute('#verdict', 'data-verdict'), 'diverge', v);
  assert.match(v, /Explained by positions 0-3: activation_quant/);
  assert.match(v, /B rounds activations to 8 bits as llama\.cpp does: its noise floor is measured as the spread of 2 reruns/);
  const differs = await page.$$eval('#conventions tr.differs', (rows) => rows.map((r) => r.dataset.field));
  assert.deepEqual(differs, ['activation_quant']);
  const r = await report(page);
  assert.deepEqual([r.a.noise, r.b.noise], ['f64_twin', 'perturbation_spread']);
  await shot(page, 'playground-llamacpp-preset');
  assert.deepEqual(page.problems, []);
  await page.close();
});

test('a shared link reproduces the same numbers; a corrupted one says so and shows the default', async () => {
  const page = await openPage(ctx.browser, ctx.isolated.url);
  await page.click('#src-tab-synth');
  await page.fill('#synth-form input[name=layers]', '2');
  await page.selectOption('#synth-form select[name=dist_kind]', 'normal');
  await page.fill('#synth-form input[name=scale]', '0.3');
  await page.selectOption('#isolation', 'stage');
  await page.click('#synth-form button[type=submit]');
  await waitIdle(page);
  await compareWith(page, 'hf', 'hf,rope_pairing=interleaved,eps_placement=outside_sqrt');
  const first = await report(page);
  assert.equal(first.verdict, 'diverge');
  const link = page.url();
  const fresh = await openPage(ctx.browser, link);
  const second = await report(fresh);
  assert.equal(await fresh.inputValue('#path-b'), 'hf,rope_pairing=interleaved,eps_placement=outside_sqrt');
  for (const key of ['stages', 'logits', 'first_divergence', 'isolation', 'explain', 'top_k', 'tokens']) {
    assert.deepStrictEqual(second[key], first[key], key);
  }
  await shot(fresh, 'playground-shared-link');
  await fresh.close();

  const broken = await openPage(ctx.browser, `${ctx.isolated.url}#s1.this-is-not-a-state`);
  assert.equal(await broken.isVisible('#link-notice'), true);
  assert.match(await broken.textContent('#link-notice'), /could not be opened: this link's state is damaged/);
  assert.match(await verdict(broken), /first at blk\.0\.q/, 'the default comparison runs');
  await shot(broken, 'playground-broken-link');
  await broken.close();
  const future = await openPage(ctx.browser, `${ctx.isolated.url}#s7.abc`);
  assert.match(await future.textContent('#link-notice'), /newer paritylab/);
  await future.close();
  await page.close();
});

test('a garbage file, an unreachable URL and a non-GGUF URL each show an error; then a URL model runs', async () => {
  const page = await openPage(ctx.browser, ctx.isolated.url);
  await dropFile(page, 'notes.gguf', Buffer.from('these are not the weights you are looking for'));
  assert.match(await page.textContent('#setup-error'), /not a GGUF file/);
  await page.click('#src-tab-url');
  await page.fill('#url-input', 'https://127.0.0.1:9/model.gguf');
  await page.click('#url-form button[type=submit]');
  await waitIdle(page);
  assert.match(await page.textContent('#setup-error'), /unreachable, or it does not allow this page to read the file \(CORS\)/);
  await page.fill('#url-input', `${ctx.isolated.url}files/not-a-model.gguf`);
  await page.click('#url-form button[type=submit]');
  await waitIdle(page);
  assert.match(await page.textContent('#setup-error'), /is not a GGUF file: it starts with "<!do"/);
  await page.fill('#url-input', 'http://example.com/model.gguf');
  await page.click('#url-form button[type=submit]');
  await waitIdle(page);
  assert.match(await page.textContent('#setup-error'), /Only https:\/\/ URLs/);
  await shot(page, 'playground-url-error');
  // A good model from a URL, with the link remembering the URL.
  await page.fill('#url-input', `${ctx.isolated.url}ref/qwen2_small.f16.gguf`);
  await page.click('#url-form button[type=submit]');
  await waitIdle(page);
  assert.equal(await page.isVisible('#setup-error'), false, await page.textContent('#setup-error'));
  assert.match(await page.textContent('#model-line'), /qwen2_small\.f16\.gguf/);
  await compareWith(page, 'hf', 'skainet-legacy');
  assert.match(await verdict(page), /diverge/);
  const reopened = await openPage(ctx.browser, page.url());
  assert.match(await reopened.textContent('#model-line'), /qwen2_small\.f16\.gguf/);
  assert.equal(await reopened.inputValue('#path-b'), 'skainet-legacy');
  await reopened.close();
  await page.close();
});

test('threaded with COOP/COEP, single-threaded with a notice without, and the same numbers', async () => {
  const mt = await openPage(ctx.browser, ctx.isolated.url);
  const st = await openPage(ctx.browser, ctx.plain.url);
  assert.equal(await mt.$eval('#status-engine', (e) => e.dataset.build), 'mt');
  assert.equal(await mt.$eval('#status-simd', (e) => e.dataset.flavour), 'mt-relaxed');
  assert.equal(await mt.textContent('#status-simd'), 'SIMD on · relaxed');
  assert.ok(Number(await mt.$eval('#status-engine', (e) => e.dataset.threads)) >= 2);
  assert.equal(await st.$eval('#status-engine', (e) => e.dataset.build), 'st');
  assert.equal(await st.isVisible('#isolation-notice'), true);
  assert.ok(Number(await st.$eval('#status-memory', (e) => e.dataset.bytes)) > 1e6, 'wasm memory shown');
  await shot(st, 'playground-single-thread');
  const [a, b] = [await report(mt), await report(st)];
  for (const key of ['stages', 'logits', 'explain', 'top_k']) assert.deepStrictEqual(a[key], b[key], key);
  await mt.close();
  await st.close();
});

test('exports: the Markdown report, the dumps, and the synthetic GGUF with its pinned SHA-256', async () => {
  const page = await openPage(ctx.browser, ctx.isolated.url);
  const md = (await downloaded(page, () => page.click('#export-md'))).bytes.toString('utf8');
  assert.match(md, /the paths diverge/);
  assert.match(md, /first at `blk\.0\.q`/);
  assert.ok(md.includes(page.url()), 'the report carries the share link');
  const gguf = await downloaded(page, () => page.click('#download-model'));
  assert.equal(createHash('sha256').update(gguf.bytes).digest('hex'), '5543e0a521a79f66a523201a5950fda00a1fbf9466b1bba8fcb6426e8359b299');
  for (const side of ['a', 'b']) {
    const dump = await downloaded(page, () => page.click(`#export-dump-${side}`));
    const header = JSON.parse(dump.bytes.subarray(8, 8 + Number(dump.bytes.readBigUInt64LE(0))).toString('utf8'));
    assert.equal(header.__metadata__.format, 'paritylab-dump');
    assert.equal(header.__metadata__.path_text, side === 'a' ? 'skainet-dsl' : 'skainet-legacy');
    assert.deepEqual(header['blk.0.kq_softmax'].shape, [2, 3, 3]);
  }
  await page.close();
});

test('text prompts: tokens as chips for each path, BOS visible, compared', async () => {
  const page = await openPage(ctx.browser, ctx.isolated.url);
  assert.equal(await page.isDisabled('#mode-text'), true, 'the synthetic model has no vocabulary');
  await chooseFile(page, path.join(REFERENCE, 'gguf/qwen3_realvocab.q8_0.gguf'));
  await page.check('#mode-text');
  await page.fill('#prompt-text', 'Hello world');
  await page.fill('#path-a', 'hf');
  await page.fill('#path-b', 'hf,bos=prepend');
  await page.waitForFunction(() => document.querySelectorAll('#chips-b .chip').length === 3);
  const chips = (side) => page.$$eval(`#chips-${side} .chip`, (cs) => cs.map((c) => ({ text: c.textContent, bos: c.classList.contains('bos') })));
  assert.deepEqual(await chips('a'), [{ text: '9707Hello', bos: false }, { text: '1879␣world', bos: false }]);
  assert.deepEqual((await chips('b'))[0], { text: '151643<|endoftext|>', bos: true });
  await page.click('#compare-button');
  await waitIdle(page);
  assert.match(await verdict(page), /diverge/, 'a prepended BOS changes what follows');
  assert.match(await page.textContent('#topk tbody'), /9707 Hello/);
  await shot(page, 'playground-text-prompt');
  assert.deepEqual(page.problems, []);
  await page.close();
});

test('a long comparison can be cancelled and the page keeps working', async () => {
  const page = await openPage(ctx.browser, ctx.plain.url);
  await page.click('#src-tab-synth');
  await page.fill('#synth-form input[name=hidden]', '256');
  await page.fill('#synth-form input[name=heads]', '4');
  await page.fill('#synth-form input[name=kv_heads]', '2');
  await page.fill('#synth-form input[name=head_dim]', '64');
  await page.fill('#synth-form input[name=ffn]', '1024');
  await page.fill('#synth-form input[name=layers]', '6');
  await page.fill('#synth-form input[name=vocab]', '2048');
  await page.fill('#prompt-ids', Array.from({ length: 24 }, (_, i) => i + 1).join(','));
  await page.click('#synth-form button[type=submit]');
  await page.waitForSelector('#progress:not([hidden])');
  await page.waitForFunction(() => /Comparing/.test(document.querySelector('#progress-label').textContent));
  await page.click('#cancel');
  await waitIdle(page);
  assert.match(await page.textContent('#setup-error'), /Cancelled/);
  // The engine was restarted and the model reloaded: a small comparison works.
  await page.fill('#prompt-ids', '1,2');
  await page.uncheck('#explain');
  await compareWith(page, 'hf', 'skainet-dsl');
  assert.match(await verdict(page), /diverge|agree/);
  await page.close();
});

test('keyboard on the heatmap, and the page at 800 px', async () => {
  const page = await openPage(ctx.browser, ctx.isolated.url, { width: 800, height: 900 });
  await page.focus('#heatmap');
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => /blk\.0\.k ·/.test(document.querySelector('#inspect-title').textContent));
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px at 800 px`);
  await shot(page, 'playground-800px');
  await page.close();
});
