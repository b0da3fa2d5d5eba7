// One comparison, three ways: the CLI (native), and the page's worker (wasm, single- and
// multi-threaded builds) must produce the same report, number for number.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { useBrowser, REFERENCE, ROOT } from './helpers.mjs';

const ctx = useBrowser(['isolated', 'plain']);

const MODEL = path.join(REFERENCE, 'gguf/qwen3_gqa.f32.gguf');

function cliReport() {
  const bin = path.resolve(ROOT, process.env.PARITYLAB_BIN || 'target/release/paritylab');
  const out = path.join(ROOT, 'artifacts/compare-cli.json');
  try {
    execFileSync(bin, ['compare', MODEL, '--tokens', '1,5,3', '--a', 'hf', '--b', 'skainet-dsl', '--explain', '--isolate', 'stage', '--json', out], { stdio: 'ignore' });
  } catch (err) {
    assert.equal(err.status, 1, 'the paths diverge: exit code 1');
  }
  return JSON.parse(readFileSync(out, 'utf8'));
}

/** Run the comparison in the page's own worker. */
async function workerReport(url) {
  const page = await ctx.browser.newPage();
  await page.goto(url);
  const report = await page.evaluate(async (base64) => {
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)).buffer;
    // The page's own worker client (www/js/engine.js).
    const { Engine } = await import('/js/engine.js');
    const engine = new Engine(new URL('/worker.js', location.href));
    const call = (...args) => engine.call(...args);
    const env = await engine.ready;
    await call('load', { bytes, name: 'qwen3_gqa.f32.gguf' }, [bytes]);
    const value = await call('compare', {
      a: 'hf', b: 'skainet-dsl', prompt: [1, 5, 3], options: { isolation: 'stage', explain: true },
    });
    engine.worker.terminate();
    return { env, value };
  }, readFileSync(MODEL).toString('base64'));
  await page.close();
  return report;
}

test('CLI, single-threaded wasm and threaded wasm give the same report', async () => {
  const cli = cliReport();
  const mt = await workerReport(ctx.isolated.url);
  const st = await workerReport(ctx.plain.url);
  assert.equal(mt.env.build, 'mt');
  assert.equal(st.env.build, 'st');
  for (const { value } of [mt, st]) {
    assert.equal(value.verdict, 'diverge');
    // Everything computed (metrics, noise floors, classes, logits, explain, top-k) is identical.
    for (const key of ['first_divergence', 'first_divergence_per_position', 'stages', 'logits', 'logit_summary', 'isolation', 'explain', 'top_k']) {
      assert.deepStrictEqual(value[key], cli[key], key);
    }
  }
  assert.equal(cli.explain.summary, 'position 0: qk_norm_eps; positions 1-2: rope_pairing + qk_norm_eps');
});
