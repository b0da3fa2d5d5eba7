// paritylab's own contenders in the inference benchmark (bench/infer.mjs runs them interleaved
// with the peers of bench/peers.mjs, same prompts, same rounds):
//
//   native   the release CLI, `paritylab bench infer` (one process per measurement; the model
//            load is not timed), for a path (`llama.cpp` or `hf`) and a capture level;
//   browser  the page's own worker (www/worker.js) in headless Chromium, multi-threaded build
//            (?threads=N: with relaxed SIMD where the browser has it; ?build=mt pins the plain
//            one) or single-threaded (?build=st), timed inside the worker with
//            performance.now() by `Session.bench_infer`; reports peak wasm memory too.
//
// Each round measures pp16 and pp64 (the prompt in one batch from an empty cache) and tg32 (a
// start token, then 32 greedy steps), in tokens/s.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { MODEL, PROMPTS, ROOT } from './peers.mjs';
import { launch, startServer } from '../tests/e2e/helpers.mjs';

const BIN = path.join(ROOT, 'target/release/paritylab');

/** The CLI on one prompt: { prompt tokens/s, decode tokens/s }. */
function cli(pathSpec, capture, threads, tokens, decode) {
  const out = execFileSync(BIN, [
    'bench', 'infer', MODEL, '--tokens', tokens.join(','), '--decode', String(decode),
    '--path', pathSpec, '--capture', capture, '--threads', String(threads), '--rounds', '1',
  ]);
  const r = JSON.parse(out);
  return { pp: r.pp.tokens_per_s, tg: r.tg.tokens_per_s };
}

export function native(pathSpec, capture, threads) {
  return {
    name: `paritylab ${pathSpec}, capture ${capture}`,
    where: 'native',
    threads,
    async setup() {
      cli(pathSpec, capture, threads, PROMPTS.pp16, 0); // warm the page cache
    },
    async round() {
      return {
        pp16: cli(pathSpec, capture, threads, PROMPTS.pp16, 0).pp,
        pp64: cli(pathSpec, capture, threads, PROMPTS.pp64, 0).pp,
        tg32: cli(pathSpec, capture, threads, [PROMPTS.tg_start], PROMPTS.tg).tg,
      };
    },
    async teardown() {},
    versions: () => ({ paritylab: execFileSync(BIN, ['--version']).toString().trim().replace(/^paritylab /, '') }),
  };
}

let shared = null; // one browser and one server for every browser contender
async function acquire() {
  if (!shared) {
    const server = await startServer({ mounts: [`models=${path.dirname(MODEL)}`] });
    const browser = await launch();
    shared = { server, browser, users: 0 };
  }
  shared.users += 1;
  return shared;
}
async function release() {
  if (shared && --shared.users === 0) {
    await shared.browser.close();
    await shared.server.stop();
    shared = null;
  }
}

const BUILDS = {
  mt: { name: 'multi-threaded wasm', query: (t) => `threads=${t}` }, // relaxed SIMD where the browser has it
  'mt-plain': { name: 'multi-threaded wasm without relaxed SIMD', query: (t) => `build=mt&threads=${t}` },
  st: { name: 'single-threaded wasm', query: () => 'build=st' },
};

/** `build`: 'mt' (threads as given, the worker's choice of flavour), 'mt-plain' (the threaded
 * build without relaxed SIMD) or 'st' (one thread). */
export function browser(pathSpec, capture, threads, build = 'mt') {
  let page = null;
  let peak = 0;
  let flavour = null;
  return {
    name: `paritylab ${pathSpec}, capture ${capture}, ${BUILDS[build].name}`,
    where: 'browser',
    threads,
    async setup() {
      const { server, browser } = await acquire();
      page = await browser.newPage();
      await page.goto(server.url);
      const env = await page.evaluate(async ({ query, modelUrl }) => {
        const bytes = await (await fetch(modelUrl)).arrayBuffer();
        // The page's own worker client (www/js/engine.js), on a worker pinned by the query.
        const { Engine } = await import('/js/engine.js');
        const engine = new Engine(new URL(`/worker.js?${query}`, location.href));
        window.benchCall = (...args) => engine.call(...args);
        const env = await engine.ready;
        await window.benchCall('load', { bytes }, [bytes]);
        return env;
      }, { query: BUILDS[build].query(threads), modelUrl: `/models/${path.basename(MODEL)}` });
      const threaded = build !== 'st';
      if (env.build !== (threaded ? 'mt' : 'st') || (build === 'mt-plain' && env.flavour !== 'mt') || (threaded && env.poolThreads !== threads)) {
        throw new Error(`the worker runs the ${env.flavour} build with ${env.poolThreads} threads, not ${build} with ${threads}`);
      }
      flavour = env.flavour;
      await this.round(); // warm-up, untimed
    },
    async round() {
      const r = await page.evaluate(async ({ p, path: spec, capture }) => {
        const one = (prompt, decode) => window.benchCall('bench_infer', { path: spec, prompt, decode, capture });
        return [await one(p.pp16, 0), await one(p.pp64, 0), await one([p.tg_start], p.tg)];
      }, { p: PROMPTS, path: pathSpec, capture });
      peak = Math.max(peak, ...r.map((x) => x.peak_memory_bytes));
      return {
        pp16: r[0].prompt_tokens / (r[0].prompt_ms / 1000),
        pp64: r[1].prompt_tokens / (r[1].prompt_ms / 1000),
        tg32: r[2].decode_tokens / (r[2].decode_ms / 1000),
      };
    },
    async teardown() {
      if (page) {
        await page.close();
        page = null;
        await release();
      }
    },
    versions: () => ({
      chromium: shared?.browser.version() ?? 'unknown',
      wasm_build: flavour,
      peak_wasm_memory_mib: +(peak / 2 ** 20).toFixed(1),
      gguf_mib: +(readFileSync(MODEL).length / 2 ** 20).toFixed(1),
    }),
  };
}

/** The default set: the llama.cpp preset with capture off at 1 and 2 threads in both places, the
 * single-threaded wasm build, capture stats and full, and the hf preset. */
export function contenders({ threads = [1, 2] } = {}) {
  const out = [];
  for (const t of threads) {
    out.push(native('llama.cpp', 'off', t), browser('llama.cpp', 'off', t));
  }
  const most = Math.max(...threads);
  out.push(
    browser('llama.cpp', 'off', 1, 'st'),
    native('llama.cpp', 'stats', most),
    native('llama.cpp', 'full', most),
    native('hf', 'off', most),
    browser('llama.cpp', 'off', most, 'mt-plain'),
    browser('llama.cpp', 'stats', most),
    browser('hf', 'off', most),
  );
  return out;
}
