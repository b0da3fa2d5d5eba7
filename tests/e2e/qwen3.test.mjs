// A model of Qwen3-0.6B's shape (hidden 1024, 28 layers, 16 heads / 8 KV of 128, FFN 3072, vocab
// 151,936, Q8_0, 634 MB) generated in the tab and run there with capture stats: the page reports
// the load time, ms per token (prompt and decode) and the peak wasm memory. Slow by nature (the
// generator draws 596 million weights): a short prompt and a few decoded tokens.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { useBrowser, openPage, shot, ROOT } from './helpers.mjs';

const ctx = useBrowser(['isolated']);

const FILE_BYTES = 633_514_656; // the generated GGUF (pinned by the generator's version)

test('the Qwen3-0.6B-shaped model is generated, run with capture stats, and its speed and memory shown', async () => {
  const page = await openPage(ctx.browser, ctx.isolated.url);
  await page.fill('#path-a', 'hf');
  await page.fill('#prompt-ids', '9707,1879,11,358');
  await page.fill('#decode', '4');
  await page.click('#synth-qwen3');
  // Generation and the run take a while on two cores: wait for the run's results.
  await page.waitForFunction(() => !document.body.classList.contains('busy') && !document.querySelector('#run-results').hidden
    || !document.querySelector('#setup-error').hidden, null, { timeout: 600_000 });
  assert.equal(await page.isVisible('#setup-error'), false, await page.textContent('#setup-error'));
  assert.match(await page.textContent('#model-line'), /Qwen3-0\.6B shape \(synthetic\) · qwen3 · qwen3, dim 1024, 16 heads \/ 8 KV × 128, FFN 3072, 28 layers, vocab 151936, q8_0/);
  assert.equal(await page.inputValue('#capture'), 'stats');
  assert.match(await page.textContent('#capture-note'), /Capture is set to stats for the Qwen3-0\.6B-shaped model/);
  assert.equal(await page.getAttribute('#run-results', 'data-capture'), 'stats');

  const data = (key, attr) => page.getAttribute(`#run-timing dd[data-key=${key}]`, `data-${attr}`);
  const load = Number(await data('load', 'value'));
  const promptMs = Number(await data('prompt', 'per-token'));
  const decodeMs = Number(await data('decode', 'per-token'));
  const memory = Number(await data('memory', 'bytes'));
  // Sane, not timed: positive and finite; the peak memory holds the 634 MB file and stays far
  // from wasm32's 4 GiB (the generator writes straight into one buffer of the file's size).
  for (const [name, x] of Object.entries({ load, promptMs, decodeMs })) assert.ok(Number.isFinite(x) && x > 0, `${name} ${x}`);
  assert.ok(memory >= FILE_BYTES && memory < 1.5 * FILE_BYTES, `peak wasm memory ${memory}`);
  assert.ok(Number(await page.$eval('#status-memory', (e) => e.dataset.bytes)) >= FILE_BYTES, 'the memory badge follows');
  assert.match(await page.textContent('#run-timing dd[data-key=load]'), /^\d+\.\d\d s$/);
  assert.match(await page.textContent('#run-timing dd[data-key=prompt]'), /^4 tokens in .* ms per token$/);
  assert.match(await page.textContent('#run-timing dd[data-key=decode]'), /^4 tokens in .* ms per token \([\d.]+ tokens\/s\)$/);
  assert.match(await page.textContent('#run-timing dt:nth-of-type(3)'), /model load \(generation \+ parse\)/);
  // Statistics of every stage: 28 layers of 20 stages and 2 outside them, at 8 positions.
  assert.equal(await page.$$eval('#run-stats .stats-position option', (o) => o.length), 8);
  assert.equal(await page.getAttribute('#run-stats table', 'data-rows'), String(28 * 20 + 2));
  const rms = await page.$$eval('#run-stats tr[data-name="blk.27.l_out"] td', (tds) => Number(tds[5].textContent));
  assert.ok(Number.isFinite(rms) && rms > 0, `blk.27.l_out RMS ${rms}`);
  await shot(page, 'qwen3-0.6b-stats-run');

  const numbers = { load_s: load, prompt_ms_per_token: promptMs, decode_ms_per_token: decodeMs, peak_wasm_memory_bytes: memory,
    engine: await page.textContent('#status-engine') };
  writeFileSync(path.join(ROOT, 'artifacts/qwen3-0.6b-run.json'), `${JSON.stringify(numbers, null, 2)}\n`);
  console.log(`qwen3-0.6b shape: ${JSON.stringify(numbers)}`);
  assert.deepEqual(page.problems, []);
  await page.close();
});
