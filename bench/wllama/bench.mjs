// The wllama peer's page script (bench/peers.mjs drives it with Playwright). wllama's ES module and
// wasm come from node_modules/@wllama/wllama/esm, mounted at /wllama/ by bench/serve.mjs; the model
// from /models/. Nothing comes from the internet.
//
// window.bench.load({ modelUrl, threads }) loads the model on the CPU (no WebGPU) with `threads`
// threads: 1 is wllama's single-threaded mode, 2 its pthreads mode (the page is cross-origin
// isolated). window.bench.round(prompts) measures once, from llama.cpp's own timings in the
// OpenAI-style completion response (the same counters llama-server reports):
//   pp16, pp64  prompt_n / prompt_ms: the prompt in one batch, one token sampled;
//   tg32        the start token, then 33 greedy tokens with EOS ignored: 32 decodes, timed from
//               the first sampled token to the last (predicted_n - 1) / predicted_ms.
// wllama takes prompts as text only (it tokenizes them itself): the texts of bench/prompts.json
// tokenize to exactly its token ids, and the token counts llama.cpp reports are checked.

import { Wllama } from '/wllama/index.js';

const logEl = document.getElementById('log');
const say = (msg) => {
  logEl.textContent += `\n${msg}`;
};

let wllama = null;

async function load({ modelUrl, threads }) {
  const t0 = performance.now();
  const blob = await (await fetch(modelUrl)).blob();
  wllama = new Wllama(
    { default: new URL('/wllama/wasm/wllama.wasm', location.href).href },
    { suppressNativeLog: !window.VERBOSE, allowOffline: true },
  );
  await wllama.loadModel([blob], {
    n_threads: threads,
    n_gpu_layers: 0, // CPU only (wasm SIMD), like the other peers
    n_ctx: 256,
    n_batch: 256,
    n_ubatch: 256,
    n_parallel: 1,
    warmup: true,
  });
  const info = {
    crossOriginIsolated: self.crossOriginIsolated,
    multithread: wllama.isMultithread(),
    threads: wllama.getNumThreads(),
    load_s: (performance.now() - t0) / 1000,
  };
  say(`loaded: ${JSON.stringify(info)}`);
  return info;
}

/** One completion of `text`; returns llama.cpp's timings. */
async function complete(text, maxTokens) {
  const res = await wllama.createCompletion({
    prompt: text,
    max_tokens: maxTokens,
    temperature: 0, // greedy
    top_k: 1,
    ignore_eos: true,
    cache_prompt: false,
  });
  return res.timings;
}

async function round(prompts) {
  const pp = async (text, n) => {
    const t = await complete(text, 1);
    if (t.prompt_n !== n) throw new Error(`wllama processed ${t.prompt_n} prompt tokens, not ${n}`);
    return (t.prompt_n * 1000) / t.prompt_ms;
  };
  const pp16 = await pp(prompts.pp16_text, prompts.pp16.length);
  const pp64 = await pp(prompts.pp64_text, prompts.pp64.length);
  const t = await complete(prompts.tg_start_text, prompts.tg + 1);
  if (t.prompt_n !== 1) throw new Error(`wllama processed ${t.prompt_n} prompt tokens, not 1`);
  if (t.predicted_n !== prompts.tg + 1) throw new Error(`wllama generated ${t.predicted_n} tokens, not ${prompts.tg + 1}`);
  const tg = ((t.predicted_n - 1) * 1000) / t.predicted_ms;
  const result = { pp16, pp64, [`tg${prompts.tg}`]: tg };
  say(`round: ${JSON.stringify(result)}`);
  return result;
}

async function exit() {
  await wllama?.exit();
  wllama = null;
}

window.bench = { load, round, exit };
document.body.dataset.ready = 'true';
