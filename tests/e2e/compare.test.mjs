// One comparison, three ways: the CLI (native), and the page's worker (wasm, single- and
// multi-threaded builds) must produce the same report, number for number.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { useBrowser, REFERENCE, ROOT } from './helpers.mjs';

const SMOLLM2 = path.join(ROOT, '.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf');
const ctx = useBrowser(['isolated', 'plain'], { mounts: [`models=${path.dirname(SMOLLM2)}`] });

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

/** A llama.cpp-preset run (prompt, then greedy decoding, stage statistics) in a worker pinned to
 * one wasm build. */
async function pinnedRun(build, model) {
  const page = await ctx.browser.newPage();
  await page.goto(ctx.isolated.url);
  const out = await page.evaluate(async ({ build, model }) => {
    const { Engine } = await import('/js/engine.js');
    const engine = new Engine(new URL(`/worker.js?build=${build}&threads=2`, location.href));
    const call = (...args) => engine.call(...args);
    const env = await engine.ready;
    if (model.url) {
      const bytes = await (await fetch(model.url)).arrayBuffer();
      await call('load', { bytes }, [bytes]);
    } else {
      await call('synthetic', { spec: model.spec });
    }
    const value = await call('run', { path: 'llama.cpp', prompt: model.prompt, top: 8, options: { capture: 'stats', decode: 4 } });
    engine.worker.terminate();
    delete value.timing;
    return { env, value };
  }, { build, model });
  await page.close();
  return out;
}

test('the three wasm builds (single-threaded, threaded, threaded with relaxed SIMD) give the llama.cpp preset the same bits on Q4_0 and Q4_1 weights', async () => {
  const models = [
    { url: '/models/SmolLM2-135M-Instruct.Q4_1.gguf', prompt: [1, 504, 2365, 314, 260, 3458, 28] },
    { spec: 'source-issue,type=q4_0,dist=normal:0.05', prompt: [1, 5, 3, 9, 2] },
  ];
  for (const model of models) {
    const [st, mt, relaxed] = [await pinnedRun('st', model), await pinnedRun('mt', model), await pinnedRun('mt-relaxed', model)];
    assert.deepEqual([st.env.flavour, mt.env.flavour, relaxed.env.flavour], ['st', 'mt', 'mt-relaxed'], 'Chromium has relaxed SIMD');
    assert.equal(relaxed.value.generated.length, 4);
    assert.ok(relaxed.value.stage_stats.length > 10, 'stage statistics at every stage');
    assert.deepStrictEqual(mt.value, st.value, `${model.url ?? model.spec}: threaded = single-threaded`);
    assert.deepStrictEqual(relaxed.value, st.value, `${model.url ?? model.spec}: relaxed SIMD = single-threaded`);
  }
});
