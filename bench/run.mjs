// ./build.sh bench: measure, then write BENCHMARKS.md and artifacts/bench/results.json.
//
// Tokenizer throughput: a 100 KB mixed-script text (bench/text.mjs) tokenized by the real Qwen3
// vocabulary (qwen2 pre-tokenizer, NFC) and SmolLM2's (smollm), natively (the CLI) and in wasm in
// headless Chromium (single-threaded and multi-threaded builds, in the page's own worker), several
// rounds each, medians with min-max.
//
// Inference speed (bench/infer.mjs): appended as its own section (INFER=0 skips it).

import { execFileSync } from 'node:child_process';
import { copyFileSync, linkSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchmarkText } from './text.mjs';
import { startServer, launch } from '../tests/e2e/helpers.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const REFERENCE = process.env.PARITYLAB_REFERENCE || path.resolve(ROOT, '../shared/reference');
const BIN = path.join(ROOT, 'target/release/paritylab');
const ROUNDS = Number(process.env.ROUNDS || 7);
const OUT = path.join(ROOT, 'artifacts/bench');
mkdirSync(OUT, { recursive: true });
mkdirSync(path.join(ROOT, '.cache/bench'), { recursive: true });

// Every model file the page fetches is linked into one folder the server mounts at /models.
const MODEL_DIR = path.join(ROOT, '.cache/bench/models');
const MODELS = [
  { name: 'Qwen3 vocabulary (151,936 tokens, qwen2 pre, NFC)', file: path.join(REFERENCE, 'gguf/qwen3_realvocab.q8_0.gguf') },
  { name: 'SmolLM2 vocabulary (49,152 tokens, smollm pre)', file: path.join(ROOT, '.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf') },
];
mkdirSync(MODEL_DIR, { recursive: true });
for (const m of MODELS) {
  const link = path.join(MODEL_DIR, path.basename(m.file));
  rmSync(link, { force: true });
  try {
    linkSync(m.file, link);
  } catch {
    copyFileSync(m.file, link);
  }
}

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], min: s[0], max: s[s.length - 1] };
};

function native(model, textFile) {
  const out = execFileSync(BIN, ['bench', 'tokenize', model.file, '--text', textFile, '--rounds', String(ROUNDS)]);
  return JSON.parse(out);
}

/** Tokenize `text` ROUNDS times in the page's worker; returns per-round seconds and the count. */
async function browser(ctx, url, model, text) {
  const page = await ctx.newPage();
  await page.goto(url);
  const result = await page.evaluate(
    async ({ modelUrl, text, rounds }) => {
      const bytes = await (await fetch(modelUrl)).arrayBuffer();
      // The page's own worker client (www/js/engine.js).
      const { Engine } = await import('/js/engine.js');
      const engine = new Engine(new URL('/worker.js', location.href));
      const call = (...args) => engine.call(...args);
      const env = await engine.ready;
      await call('load', { bytes }, [bytes]);
      const t0 = performance.now();
      await call('tokenize', { text: 'warm up' }); // builds the tokenizer
      const build = (performance.now() - t0) / 1000;
      const times = [];
      let tokens = 0;
      for (let i = 0; i < rounds; i++) {
        const t = performance.now();
        const out = await call('tokenize', { text });
        times.push((performance.now() - t) / 1000);
        tokens = out.ids.length;
      }
      engine.worker.terminate();
      return { env, build, times, tokens };
    },
    { modelUrl: `/models/${path.basename(model.file)}`, text, rounds: ROUNDS },
  );
  await page.close();
  return result;
}

const text = benchmarkText();
const textFile = path.join(ROOT, '.cache/bench/mixed-100k.txt');
writeFileSync(textFile, text);
const bytes = Buffer.byteLength(text);

const mounts = [`models=${MODEL_DIR}`];
const [isolated, plain] = await Promise.all([startServer({ isolated: true, mounts }), startServer({ isolated: false, mounts })]);
const chromium = await launch();
const rows = [];
try {
  for (const model of MODELS) {
    const n = native(model, textFile);
    rows.push({ model: model.name, where: 'native (CLI, 1 thread)', tokens: n.tokens, build_s: n.build_s, ...stats([n.min_s, n.median_s, n.max_s]), median: n.median_s, min: n.min_s, max: n.max_s });
    for (const [label, server] of [['wasm, multi-threaded build', isolated], ['wasm, single-threaded build', plain]]) {
      const b = await browser(chromium, server.url, model, text);
      rows.push({ model: model.name, where: `${label} (Chromium)`, tokens: b.tokens, build_s: b.build, ...stats(b.times) });
    }
  }
} finally {
  await chromium.close();
  isolated.stop();
  plain.stop();
}

const version = (cmd, args) => {
  try {
    return execFileSync(cmd, args).toString().trim().split('\n')[0];
  } catch {
    return 'unknown';
  }
};
const machine = {
  cpu: os.cpus()[0]?.model || 'unknown',
  cores: os.cpus().length,
  date: new Date().toISOString().slice(0, 10),
  rustc: version('rustc', ['--version']),
  chromium: version('/usr/bin/chromium', ['--version']),
};
writeFileSync(path.join(OUT, 'results.json'), JSON.stringify({ machine, bytes, rounds: ROUNDS, tokenizer: rows }, null, 2));

const fmt = (x, d = 1) => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
let md = `# Benchmarks

Measured by \`./build.sh bench\` (it rebuilds, runs everything in one go, and rewrites this file;
raw numbers in \`artifacts/bench/results.json\`). Medians of ${ROUNDS} rounds, with min-max. Never
asserted by tests: speed on shared machines varies.

Machine: ${machine.cpu}, ${machine.cores} cores · ${machine.rustc} · ${machine.chromium} · ${machine.date}.

## Tokenizer throughput

A ${fmt(bytes / 1000, 0)} KB mixed-script text (Latin, Cyrillic, CJK, kana, Arabic, Greek, Hangul,
digits, punctuation, emoji; random words from a fixed seed, \`bench/text.mjs\`), tokenized with
special tokens parsed. "Build" is the one-time construction of the tokenizer from the GGUF vocabulary.

| vocabulary | where | tokens | tokens/s (median) | min-max tokens/s | MB/s | build |
|---|---|---:|---:|---:|---:|---:|
`;
for (const r of rows) {
  md += `| ${r.model} | ${r.where} | ${r.tokens.toLocaleString('en-US')} | ${fmt(r.tokens / r.median / 1000)} k | ${fmt(r.tokens / r.max / 1000)}-${fmt(r.tokens / r.min / 1000)} k | ${fmt(bytes / r.median / 1e6, 2)} | ${fmt(r.build_s * 1000, 0)} ms |\n`;
}
md += `
Rerun: \`./build.sh bench\` (\`ROUNDS=15 ./build.sh bench\` for more rounds).
`;
writeFileSync(path.join(ROOT, 'BENCHMARKS.md'), md);
console.log(md);

// Inference speed: its own interleaved rounds (ROUNDS, default 5) and artifacts/bench/infer.json.
let all = md;
if (process.env.INFER !== '0') {
  const { main: inference } = await import('./infer.mjs');
  const { results, md: section } = await inference();
  all += `\n${section}`;
  writeFileSync(path.join(ROOT, 'BENCHMARKS.md'), all);
  if (results.contenders.some((r) => r.error)) process.exitCode = 1;
}
// The matmul micro-benchmark, one thread, native and wasm (artifacts/bench/kernels.json).
if (process.env.KERNELS !== '0') {
  const { main: kernels } = await import('./kernels.mjs');
  const { md: section } = await kernels();
  all += section;
  writeFileSync(path.join(ROOT, 'BENCHMARKS.md'), all);
}
