// Running a path in the page: the default reproducer runs on open; a dropped GGUF runs `hf` and
// shows the top-5 next tokens per position; bad input to the run form gives a clear error.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { useBrowser, openPage, waitIdle, shot, REFERENCE, ROOT } from './helpers.mjs';

const ctx = useBrowser(['isolated']);

async function runAndWait(page) {
  await page.click('#run-button');
  await page.waitForFunction(() => !document.querySelector('#runner').classList.contains('running'));
}

/** The CLI's answer for the same run, to check the page shows the engine's numbers. */
function cli(model, tokens, pathText) {
  const bin = path.resolve(ROOT, process.env.PARITYLAB_BIN || 'target/release/paritylab');
  const out = execFileSync(bin, ['run', model, '--tokens', tokens, '--path', pathText, '--json', '--top', '5']);
  return JSON.parse(out);
}

test('the default reproducer is already run with hf on the issue tokens', async () => {
  const page = await openPage(ctx.browser, ctx.isolated.url);
  await page.waitForSelector('#run-table tbody tr');
  assert.equal(await page.locator('#run-table tbody tr').count(), 3);
  assert.match(await page.textContent('#run-meta'), /Path hf · 3 positions/);
  assert.equal(await page.locator('#run-table tbody tr:first-child .cand').count(), 5);
  await shot(page, 'run-default');
  assert.deepEqual(page.problems, []);
  await page.close();
});

test('a dropped GGUF runs hf and shows the same top-5 as the CLI', async () => {
  const page = await openPage(ctx.browser, ctx.isolated.url);
  const model = path.join(REFERENCE, 'gguf/qwen2_small.q8_0.gguf');
  await page.setInputFiles('#file-input', model);
  await waitIdle(page);
  await page.fill('#run-tokens', '1, 2,3,4');
  await page.fill('#run-path', 'hf');
  await runAndWait(page);
  assert.equal(await page.isVisible('#run-error'), false, await page.textContent('#run-error'));
  const shown = await page.$$eval('#run-table tbody tr', (rows) =>
    rows.map((r) => Array.from(r.querySelectorAll('.cand')).map((c) => ({ ...c.dataset }))),
  );
  const want = cli(model, '1,2,3,4', 'hf');
  assert.equal(shown.length, 4);
  shown.forEach((cands, pos) => {
    assert.equal(cands.length, 5);
    cands.forEach((c, i) => {
      const w = want.positions[pos].top[i];
      const what = `position ${pos} candidate ${i}`;
      assert.equal(Number(c.id), w.id, what);
      assert.equal(Number(c.logit), w.logit, what);
      assert.equal(Number(c.prob), w.prob, what);
    });
  });
  await shot(page, 'run-qwen2-small');

  // Another preset on the same model, then bad input.
  await page.fill('#run-path', 'skainet-legacy');
  await runAndWait(page);
  assert.match(await page.textContent('#run-meta'), /Path skainet-legacy/);
  await page.fill('#run-path', 'hf,rope_pairing=sideways');
  await runAndWait(page);
  assert.match(await page.textContent('#run-error'), /rope_pairing="sideways" is not a valid value; valid: auto, split_half, interleaved/);
  await page.fill('#run-path', 'hf');
  await page.fill('#run-tokens', '1, x');
  await runAndWait(page);
  assert.match(await page.textContent('#run-error'), /"x" is not a token id/);
  await page.fill('#run-tokens', '1,128');
  await runAndWait(page);
  assert.match(await page.textContent('#run-error'), /token id 128 is out of range/);
  assert.deepEqual(page.problems, []);
  await page.close();
});

test('a file that is not a model can be inspected but says why it cannot run', async () => {
  const page = await openPage(ctx.browser, ctx.isolated.url);
  await page.setInputFiles('#file-input', path.join(REFERENCE, 'quant/quant_vectors.gguf'));
  await waitIdle(page);
  assert.equal(await page.isVisible('#model'), true);
  assert.match(await page.textContent('#run-unavailable'), /inspected but not run: architecture "quantzoo" is not supported/);
  assert.equal(await page.isDisabled('#run-button'), true);
  await page.close();
});

test('text prompts are tokenized live as chips, BOS shown, and run', async () => {
  const page = await openPage(ctx.browser, ctx.isolated.url);
  // The synthetic default has no vocabulary: text is not offered.
  assert.equal(await page.isDisabled('#mode-text'), true);
  await page.setInputFiles('#file-input', path.join(REFERENCE, 'gguf/qwen3_realvocab.q8_0.gguf'));
  await waitIdle(page);
  await page.check('#mode-text');
  await page.fill('#run-text', 'Hello world');
  const chips = async () =>
    page.$$eval('#run-chips .chip', (cs) => cs.map((c) => ({ text: c.textContent, bos: c.classList.contains('bos') })));
  await page.waitForFunction(() => document.querySelectorAll('#run-chips .chip').length === 2);
  assert.deepEqual(await chips(), [{ text: '9707Hello', bos: false }, { text: '1879␣world', bos: false }]);
  assert.match(await page.textContent('#run-chips'), /2 tokens · no BOS added/);
  await page.fill('#run-path', 'hf,bos=prepend');
  await page.waitForFunction(() => document.querySelectorAll('#run-chips .chip').length === 3);
  assert.deepEqual((await chips())[0], { text: '151643<|endoftext|>', bos: true });
  await page.fill('#run-path', 'hf');
  await page.fill('#run-text', '你好，世界 <|im_end|>');
  await page.waitForFunction(() => document.querySelector('#run-chips').textContent.includes('151645'));
  await shot(page, 'run-text-chips');
  await runAndWait(page);
  assert.equal(await page.isVisible('#run-error'), false, await page.textContent('#run-error'));
  assert.equal(await page.locator('#run-table tbody tr').count(), 5);
  assert.match(await page.textContent('#run-table tbody tr:last-child'), /151645 <\|im_end\|>/);
  assert.deepEqual(page.problems, []);
  await page.close();
});
