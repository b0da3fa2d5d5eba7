// Bring your own path in the page: dumps dropped next to a GGUF (HF transformers' reference run,
// llama.cpp's eval-callback log, a user's own names with a mapping file), picked as path A or B,
// compared, with the dump's account and the gaps it leaves in the heatmap.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { useBrowser, openPage, waitIdle, shot, downloaded, dropFile, REFERENCE, ROOT } from './helpers.mjs';

const ctx = useBrowser(['isolated']);
const GGUF = (m) => path.join(REFERENCE, `gguf/${m}.f32.gguf`);
const FILES = path.join(ROOT, 'artifacts/e2e-dumps');
mkdirSync(FILES, { recursive: true });

async function loadModel(page, model) {
  await page.setInputFiles('#file-input', GGUF(model));
  await waitIdle(page);
}

async function addDump(page, file) {
  const before = await page.$$eval('#dump-list .dump-item', (items) => items.length);
  await page.setInputFiles('#dump-files', file);
  await page.waitForFunction((n) => document.querySelectorAll('#dump-list .dump-item').length > n, before);
}

async function useAs(page, name, side) {
  await page.click(`#dump-list .dump-item[data-name="${name}"] button:text("Use as ${side}")`);
  await page.waitForFunction((s) => document.querySelector(`#path-${s}`).value.startsWith('dump:'), side.toLowerCase());
}

async function setPath(page, side, text) {
  await page.selectOption(`#preset-${side}`, text);
  await page.waitForFunction(([s, t]) => document.querySelector(`#path-${s}`).value === t, [side, text]);
}

async function compare(page) {
  await page.click('#compare-button');
  await waitIdle(page);
}

async function report(page) {
  const { bytes } = await downloaded(page, () => page.click('#export-json'));
  return JSON.parse(bytes.toString('utf8'));
}

test("HF transformers' own run, as path B: agrees with hf, the CLI's numbers, kq shown as a gap", async () => {
  const page = await openPage(ctx.browser, ctx.isolated.url);
  await loadModel(page, 'qwen3_gqa');
  const file = path.join(REFERENCE, 'refs/qwen3_gqa/five.safetensors');
  await addDump(page, file);
  const item = await page.textContent('#dump-list .dump-item');
  assert.match(item, /five\.safetensors/);
  assert.match(item, /safetensors · hf names/);
  assert.match(item, /tokens \[1, 2, 3, 4, 5\]/);
  await page.selectOption('#dump-list .dump-prefix', 'f32.');
  await useAs(page, 'five.safetensors', 'B');
  assert.equal(await page.inputValue('#path-b'), 'dump:five.safetensors#f32.');
  // The dump's tokens become the prompt; what a dump cannot do is switched off and said.
  assert.equal(await page.inputValue('#prompt-ids'), '1,2,3,4,5');
  assert.ok(await page.isDisabled('#explain'));
  assert.ok(await page.isDisabled('#isolation'));
  assert.ok(await page.isVisible('#dump-side-note'));
  await page.waitForFunction(() => /as the dump recorded them/.test(document.querySelector('#chips-b').textContent));
  await setPath(page, 'a', 'hf');
  await compare(page);
  assert.deepEqual(page.problems, []);
  assert.equal(await page.getAttribute('#verdict', 'data-verdict'), 'agree');
  const account = await page.textContent('#dump-report');
  assert.match(account, /Dump B: five\.safetensors \[f32\]/);
  assert.match(account, /hf names: 50 tensors, 41 compared over 5 positions \(token ids from the file\)/);
  assert.match(account, /Not in the dump \(hatched in the heatmap\): blk\.0\.kq, blk\.1\.kq/);
  assert.equal(await page.getAttribute('#heatmap', 'data-gaps'), '2');
  // The link cannot carry a local dump, and the dump's own download is off.
  assert.ok(await page.isDisabled('#copy-link'));
  assert.ok(await page.isDisabled('#export-dump-b'));
  assert.ok(!(await page.isDisabled('#export-dump-a')));
  await shot(page, 'dumps-hf-reference');

  // The page's numbers are the CLI's.
  const r = await report(page);
  assert.equal(r.b.kind, 'dump');
  const out = path.join(FILES, 'cli.json');
  execFileSync(path.resolve(ROOT, 'target/release/paritylab'),
    ['compare', GGUF('qwen3_gqa'), '--a', 'hf', '--b', `dump:${file}`, '--prefix', 'f32.', '--json', out], { stdio: 'ignore' });
  const cli = JSON.parse(readFileSync(out, 'utf8'));
  for (const key of ['stages', 'logits', 'logit_summary', 'first_divergence']) assert.deepStrictEqual(r[key], cli[key], key);
  await page.close();
});

test('a llama.cpp eval-callback log dropped on the page: compared on what it printed, last-position gaps', async () => {
  const page = await openPage(ctx.browser, ctx.isolated.url);
  await loadModel(page, 'llama_small');
  // Dropped anywhere: not a GGUF, so it is a dump (the model stays).
  await dropFile(page, 'llama_small.eval-callback.txt', readFileSync(path.join(ROOT, 'tests/data/llamacpp/llama_small.eval-callback.txt')), '#results');
  await page.waitForSelector('#dump-list .dump-item');
  assert.match(await page.textContent('#model-line'), /llama_small\.f32\.gguf/);
  assert.match(await page.textContent('#dump-list'), /llama\.cpp eval-callback log · llamacpp names/);
  await useAs(page, 'llama_small.eval-callback.txt', 'A');
  await setPath(page, 'b', 'hf');
  assert.equal(await page.inputValue('#prompt-ids'), '30,61,52,64,14,6');
  await compare(page);
  assert.deepEqual(page.problems, []);
  assert.equal(await page.getAttribute('#verdict', 'data-verdict'), 'agree');
  const account = await page.textContent('#dump-report');
  assert.match(account, /first and last 3 values of each dimension/);
  assert.match(account, /stages only partly known/);
  // ffn_silu is fused away in llama.cpp (two layers); at position 0 the last layer's FFN, the
  // output norm and the logits are absent too (llama.cpp computes them for the last token only).
  assert.equal(await page.getAttribute('#heatmap', 'data-gaps'), '2');
  await page.selectOption('#heat-position', '0');
  const gaps = Number(await page.getAttribute('#heatmap', 'data-gaps'));
  assert.ok(gaps >= 8, `gaps at position 0: ${gaps}`);
  const r = await report(page);
  const partial = r.stages.find((s) => s.name === 'blk.0.q' && s.position === 0);
  assert.ok(partial.of > partial.n, 'only the printed values are compared');
  assert.match(r.logits_note, /every logit/);
  await shot(page, 'dumps-llamacpp-log');
  await page.close();
});

/** A safetensors file from tensors of another, renamed (`rename`: [from suffix, to name with {i}]). */
function renamed(src, prefix, rename, metadata) {
  const bytes = readFileSync(src);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
  const data = bytes.subarray(8 + n);
  const out = {};
  const chunks = [];
  let offset = 0;
  for (const [name, t] of Object.entries(header)) {
    if (!name.startsWith(prefix)) continue;
    const rest = name.slice(prefix.length);
    for (const [from, to] of rename) {
      const m = rest.match(new RegExp(`^layers\\.(\\d+)\\.${from.replace(/\./g, '\\.')}$`));
      const target = m ? to.replace('{i}', m[1]) : rest === from ? to : null;
      if (!target) continue;
      const chunk = data.subarray(t.data_offsets[0], t.data_offsets[1]);
      out[target] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + chunk.length] };
      chunks.push(chunk);
      offset += chunk.length;
    }
  }
  out.__metadata__ = metadata;
  const head = Buffer.from(JSON.stringify(out));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(head.length));
  return Buffer.concat([len, head, ...chunks]);
}

test("a user's own names: a mapping file names them; undeclared Llama Q/K rows are flagged at q", async () => {
  const file = path.join(FILES, 'theirs.safetensors');
  writeFileSync(file, renamed(path.join(REFERENCE, 'refs/llama_small/five.safetensors'), 'f64.', [
    ['embed', 'emb'], ['input_layernorm', 'L{i}.norm1'], ['attn.q_proj', 'L{i}.wq'], ['attn.k_proj', 'L{i}.wk'],
    ['attn.v_proj', 'L{i}.wv'], ['attn.o_proj', 'L{i}.wo'], ['output', 'L{i}.out'], ['logits', 'logits_all'],
  ], { token_ids: '[1, 2, 3, 4, 5]', producer: 'their-engine 0.1' }));
  const map = (rows) => ({
    format: 'paritylab-map/1',
    tensors: {
      emb: 'tok_embd', 'L{i}.norm1': 'blk.{i}.attn_norm', 'L{i}.wv': 'blk.{i}.v', 'L{i}.wo': 'blk.{i}.attn_out',
      'L{i}.out': 'blk.{i}.l_out', logits_all: 'result_output',
      'L{i}.wq': { stage: 'blk.{i}.q', ...rows }, 'L{i}.wk': { stage: 'blk.{i}.k', ...rows },
    },
  });
  writeFileSync(path.join(FILES, 'map-plain.json'), JSON.stringify(map({})));
  writeFileSync(path.join(FILES, 'map-hf-rows.json'), JSON.stringify(map({ qk_row_order: 'hf' })));

  const page = await openPage(ctx.browser, ctx.isolated.url);
  await loadModel(page, 'llama_small');
  await addDump(page, file);
  assert.match(await page.textContent('#dump-list'), /names not recognised · 14 tensors .* by their-engine 0\.1/);
  await useAs(page, 'theirs.safetensors', 'B');
  await setPath(page, 'a', 'hf');
  // Without a map nothing lines up: said, not crashed.
  await compare(page);
  assert.match(await page.textContent('#setup-error'), /nothing in the dump lines up with the model/);
  await page.click('.dump-options summary');
  await page.setInputFiles('#dump-map', path.join(FILES, 'map-plain.json'));
  await page.waitForFunction(() => /map-plain\.json/.test(document.querySelector('#dump-map-name').textContent));
  await compare(page);
  assert.equal(await page.getAttribute('#verdict', 'data-verdict'), 'diverge');
  assert.match(await page.textContent('#verdict'), /first at blk\.0\.q \(layer 0, stage q\) at position 0/);
  await shot(page, 'dumps-mapped-permuted');
  await page.setInputFiles('#dump-map', path.join(FILES, 'map-hf-rows.json'));
  await page.waitForFunction(() => /map-hf-rows\.json/.test(document.querySelector('#dump-map-name').textContent));
  await compare(page);
  assert.equal(await page.getAttribute('#verdict', 'data-verdict'), 'agree');
  assert.match(await page.textContent('#dump-report'), /Made by their-engine 0\.1/);
  assert.deepEqual(page.problems, []);
  await page.close();
});

test('bad dumps get clear errors; removing a dump in use puts the hf path back', async () => {
  const page = await openPage(ctx.browser, ctx.isolated.url);
  const garbage = path.join(FILES, 'broken.safetensors');
  const good = readFileSync(path.join(REFERENCE, 'refs/qwen3_tiny_untied/one.safetensors'));
  writeFileSync(garbage, good.subarray(0, good.length - 100));
  await page.setInputFiles('#dump-files', garbage);
  await page.waitForFunction(() => !document.querySelector('#dump-error').hidden);
  assert.match(await page.textContent('#dump-error'), /broken\.safetensors: not a readable safetensors file/);
  // A dump of another model (qwen3_gqa on qwen3_tiny_untied): the stages whose shapes do not fit
  // are listed as not compared, with the reason; the few that happen to fit (the keys and values
  // are 2 x 16 wide in both) are compared, and differ.
  // A GGUF dropped anywhere on the page (not on the model's drop zone) is still the model.
  await dropFile(page, 'qwen3_tiny_untied.f32.gguf', readFileSync(GGUF('qwen3_tiny_untied')), 'main');
  await page.waitForFunction(() => /qwen3_tiny_untied\.f32\.gguf/.test(document.querySelector('#model-line').textContent));
  await waitIdle(page);
  await addDump(page, path.join(REFERENCE, 'refs/qwen3_gqa/one.safetensors'));
  await page.selectOption('#dump-list .dump-prefix', 'f32.');
  await useAs(page, 'one.safetensors', 'B');
  await compare(page);
  assert.equal(await page.getAttribute('#verdict', 'data-verdict'), 'diverge');
  const problems = await page.textContent('#dump-report .dump-problems');
  assert.match(problems, /f32\.embed.*meant for tok_embd: shape \[1, 64\] does not hold 32 values per position/);
  assert.match(problems, /f32\.layers\.1\.input_layernorm.*meant for blk\.1\.attn_norm: the model has 1 layers/);
  await page.click('#dump-list .dump-item button:text("Remove")');
  await page.waitForFunction(() => document.querySelector('#path-b').value === 'hf');
  assert.ok(!(await page.isDisabled('#explain')));
  assert.deepEqual(page.problems, []);
  await page.close();
});
