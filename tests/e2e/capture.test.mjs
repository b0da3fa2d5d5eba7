// Capture levels in the page: a comparison at `stats` (logits compared, a table of the stages'
// statistics, views that need values saying so), at `off` (logits only), the level in the share
// link, and `stats` chosen automatically when a full capture would be large.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { useBrowser, openPage, waitIdle, shot, chooseFile, compareWith, downloaded, inkedPixels, REFERENCE } from './helpers.mjs';

const ctx = useBrowser(['isolated']);

async function report(page) {
  const { bytes } = await downloaded(page, () => page.click('#export-json'));
  return JSON.parse(bytes.toString('utf8'));
}

const verdict = (page) => page.textContent('#verdict');

test('capture stats: the logits and every stage by its statistics; the heatmap and inspector say values were not kept', async () => {
  const page = await openPage(ctx.browser, ctx.isolated.url);
  await chooseFile(page, path.join(REFERENCE, 'gguf/qwen3_gqa.q8_0.gguf'));
  await page.fill('#prompt-ids', '1,2,3,4');
  await page.selectOption('#isolation', 'stage');
  await page.selectOption('#capture', 'stats');
  assert.equal(await page.isDisabled('#isolation'), true, 'isolation needs every value');
  await compareWith(page, 'hf', 'llama.cpp');
  assert.equal(await page.isVisible('#setup-error'), false, await page.textContent('#setup-error'));
  assert.equal(await page.getAttribute('#verdict', 'data-verdict'), 'diverge');
  const v = await verdict(page);
  assert.match(v, /the statistics first part at blk\.0\.q \(layer 0, stage q\) at position 0/);
  assert.match(v, /the logits diverge first at position 0/);
  assert.match(v, /Capture stats keeps per-stage statistics/);
  assert.match(v, /Explained by positions 0-3: activation_quant/);
  // The views that need every value say so, and how to get them.
  assert.equal(await page.isVisible('#heatmap'), false);
  assert.match(await page.textContent('#heat-note'), /Values were not captured\. This comparison ran with capture stats.*set capture to full and compare again/);
  assert.match(await page.textContent('#inspect-note'), /The stage inspector needs every value/);
  assert.equal(await page.isDisabled('#export-dump-a'), true);
  // The logits are compared as ever: the per-position chart and the top tokens.
  assert.equal(JSON.parse(await page.getAttribute('#position-chart', 'data-points')).max_abs.length, 4);
  assert.equal(await page.$$eval('#topk tbody tr', (rows) => rows.length), 4);
  // The statistics table: position 0, every stage of both layers and the two outside them.
  assert.equal(await page.isVisible('#stage-stats'), true);
  assert.equal(await page.getAttribute('#stage-stats table', 'data-rows'), String(2 * 20 + 2));
  const q = await page.$$eval('#stage-stats tr[data-name="blk.0.q"] td', (tds) => tds.map((td) => td.textContent));
  assert.equal(q[1], 'diverged');
  assert.match(q[5], /%|e/, 'a relative difference of the mean');
  await page.selectOption('#stage-stats .stats-layer', 'global');
  assert.equal(await page.getAttribute('#stage-stats table', 'data-rows'), '2');
  const r = await report(page);
  assert.equal(r.capture, 'stats');
  assert.ok(r.stages.every((s) => s.stage === 'result_output'));
  assert.equal(r.stage_stats.length, 4 * (2 * 20 + 2));
  assert.equal(r.first_stats_divergence.name, 'blk.0.q');
  await shot(page, 'capture-stats');

  // The level travels in the link.
  const linked = await openPage(ctx.browser, page.url());
  assert.equal(await linked.inputValue('#capture'), 'stats');
  await linked.close();

  // One click back to every value: the heatmap and the inspector return.
  await page.click('#heat-note button');
  await waitIdle(page);
  assert.equal(await page.inputValue('#capture'), 'full');
  assert.equal(await page.isVisible('#stage-stats'), false);
  assert.ok((await inkedPixels(page, '#heatmap')) > 1000);
  assert.match(await page.textContent('#inspect-title'), /blk\.0\.q · position 0/);
  assert.equal(await page.isDisabled('#isolation'), false);
  assert.deepEqual(page.problems, []);
  await page.close();
});

test('capture off: the logits only', async () => {
  const page = await openPage(ctx.browser, ctx.isolated.url);
  await chooseFile(page, path.join(REFERENCE, 'gguf/qwen3_gqa.f32.gguf'));
  await page.fill('#prompt-ids', '1,2,3');
  await page.uncheck('#explain');
  await page.selectOption('#capture', 'off');
  await compareWith(page, 'hf', 'hf,norm_eps=1e-5');
  assert.equal(await page.getAttribute('#verdict', 'data-verdict'), 'diverge');
  assert.match(await verdict(page), /the logits diverge first at position 0 .*Capture off keeps only the logits/);
  assert.equal(await page.isVisible('#stage-stats'), false);
  assert.match(await page.textContent('#heat-note'), /capture off, which keeps only the logits/);
  const r = await report(page);
  assert.equal(r.capture, 'off');
  assert.equal(r.stages.length, 3);
  assert.equal(r.stage_stats, undefined);
  await page.selectOption('#capture', 'full');
  await compareWith(page, 'hf', 'oracle-f64');
  assert.match(await verdict(page), /agree within float noise/);
  assert.deepEqual(page.problems, []);
  await page.close();
});

test('stats is chosen automatically when a full capture would be large, and can be overridden', async () => {
  const page = await openPage(ctx.browser, ctx.isolated.url);
  await page.click('#src-tab-synth');
  for (const [name, value] of Object.entries({ vocab: 32000, hidden: 64, heads: 2, kv_heads: 2, head_dim: 32, ffn: 128, layers: 2 })) {
    await page.fill(`#synth-form input[name=${name}]`, String(value));
  }
  await page.uncheck('#explain');
  await page.fill('#path-a', 'hf');
  await page.fill('#path-b', 'hf,norm_eps=1e-5');
  // 400 positions of 32,000 logits, for both paths and their f64 twins: well over 256 MiB.
  await page.fill('#prompt-ids', Array.from({ length: 400 }, (_, i) => (i * 7919) % 32000).join(','));
  await page.click('#synth-form button[type=submit]');
  await waitIdle(page);
  assert.equal(await page.isVisible('#setup-error'), false, await page.textContent('#setup-error'));
  assert.equal(await page.inputValue('#capture'), 'stats');
  const note = await page.textContent('#capture-note');
  assert.match(note, /Capture is set to stats automatically: a full capture of this comparison .* would keep about [\d.]+ MiB of values \(over 256\.0 MiB\)/);
  assert.ok(Number(await page.getAttribute('#capture-note', 'data-estimate')) > 256 * 2 ** 20);
  assert.equal((await report(page)).capture, 'stats');
  assert.match(await verdict(page), /diverge/);
  await shot(page, 'capture-auto-stats');
  // The user's choice wins from then on.
  await page.click('#capture-note button');
  assert.equal(await page.inputValue('#capture'), 'full');
  assert.equal(await page.isVisible('#capture-note'), false);
  assert.deepEqual(page.problems, []);
  await page.close();
});

test('Run A: timed, with statistics per stage and position at capture stats, and a dump at full', async () => {
  const page = await openPage(ctx.browser, ctx.isolated.url);
  await chooseFile(page, path.join(REFERENCE, 'gguf/qwen3_realvocab.q8_0.gguf'));
  await page.check('#mode-text');
  await page.fill('#prompt-text', 'Hello world');
  await page.fill('#path-a', 'hf');
  await page.selectOption('#capture', 'stats');
  await page.fill('#decode', '3');
  await page.click('#run-button');
  await waitIdle(page);
  assert.equal(await page.isVisible('#setup-error'), false, await page.textContent('#setup-error'));
  assert.equal(await page.getAttribute('#run-results', 'data-capture'), 'stats');
  const perToken = async (key) => Number(await page.getAttribute(`#run-timing dd[data-key=${key}]`, 'data-per-token'));
  assert.ok((await perToken('prompt')) > 0);
  assert.ok((await perToken('decode')) > 0);
  assert.match(await page.textContent('#run-timing dd[data-key=decode]'), /^3 tokens in .* ms per token/);
  assert.ok(Number(await page.getAttribute('#run-timing dd[data-key=memory]', 'data-bytes')) > 1e6);
  assert.ok((await page.textContent('#run-generated')).length > 0, 'the decoded text');
  // Two prompt tokens and three decoded: statistics at each of the five positions.
  assert.equal(await page.$$eval('#run-stats .stats-position option', (o) => o.length), 5);
  assert.ok(Number(await page.getAttribute('#run-stats table', 'data-rows')) > 20);
  assert.match(await page.textContent('#run-capture-note'), /Values were not captured: set capture to full and run again/);
  // At full the values are kept and can be downloaded.
  await page.selectOption('#capture', 'full');
  await page.click('#run-button');
  await waitIdle(page);
  const dump = await downloaded(page, () => page.click('#run-dump'));
  const header = JSON.parse(dump.bytes.subarray(8, 8 + Number(dump.bytes.readBigUInt64LE(0))).toString('utf8'));
  assert.deepEqual(header['blk.0.attn_norm'].shape.slice(0, 1), [5]);
  assert.deepEqual(page.problems, []);
  await page.close();
});
