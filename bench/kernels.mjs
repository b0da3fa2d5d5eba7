// The matmul micro-benchmark (issue 8): the projection kernels alone (src/ops/microbench.rs,
// SmolLM2-135M's 1536 x 576 FFN shape, 1 and 64 positions), on one thread, natively (`paritylab
// bench matmul --threads 1`) and in headless Chromium (the single-threaded wasm build, through the
// page's own worker; and the threaded relaxed-SIMD build on a pool of one), in GFLOP/s (hf: f32
// work) and GOP/s (llama.cpp: 8-bit integer work), each against the per-core SIMD128 peak at the
// CPU's clock: 4 f32 lanes with a separate multiply and add (8 FLOP/cycle, no FMA in SIMD128) and
// `i32x4.dot_i16x8_s`, 8 multiply-adds (16 OP/cycle).
// Writes artifacts/bench/kernels.json and returns a Markdown section.

import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ROOT } from './peers.mjs';
import { launch, startServer } from '../tests/e2e/helpers.mjs';

const BIN = path.join(ROOT, 'target/release/paritylab');
const BUDGET_MS = Number(process.env.KERNEL_MS || 1500);

/** The CPU clock in GHz (Linux /proc/cpuinfo), or null. */
function ghz() {
  try {
    const m = readFileSync('/proc/cpuinfo', 'utf8').match(/cpu MHz\s*:\s*([\d.]+)/);
    return m ? Number(m[1]) / 1000 : null;
  } catch {
    return null;
  }
}

/** `query` pins the worker's build: the single-threaded one, or the relaxed-SIMD one on one thread. */
async function browserKernels(query) {
  const server = await startServer({});
  const browser = await launch();
  try {
    const page = await browser.newPage();
    await page.goto(server.url);
    return await page.evaluate(async ({ budgetMs, query }) => {
      const { Engine } = await import('/js/engine.js');
      const engine = new Engine(new URL(`/worker.js?${query}`, location.href));
      const env = await engine.ready;
      return { flavour: env.flavour, ...(await engine.call('bench_matmul', { budgetMs })) };
    }, { budgetMs: BUDGET_MS, query });
  } finally {
    await browser.close();
    await server.stop();
  }
}

export async function main() {
  const clock = ghz();
  const native = JSON.parse(execFileSync(BIN, ['bench', 'matmul', '--threads', '1', '--budget-ms', String(BUDGET_MS)]));
  const browser = await browserKernels('build=st');
  const relaxed = await browserKernels('build=mt-relaxed&threads=1');
  const results = { ghz: clock, budget_ms: BUDGET_MS, native, browser, relaxed };
  const out = path.join(ROOT, 'artifacts/bench');
  mkdirSync(out, { recursive: true });
  writeFileSync(path.join(out, 'kernels.json'), `${JSON.stringify(results, null, 2)}\n`);
  const peak = (k) => (clock ? clock * (k.unit === 'GOP/s' ? 16 : 8) : null);
  const rows = [];
  const sets = [['native', native], ['browser (wasm st)', browser]];
  if (relaxed.flavour === 'mt-relaxed') sets.push(['browser (wasm relaxed SIMD, 1 thread)', relaxed]);
  for (const [where, set] of sets) {
    for (const k of set.kernels) {
      const p = peak(k);
      const share = p ? `${((100 * k.g_per_s) / p).toFixed(0)}%` : '-';
      rows.push(`| ${where} | ${k.path} | ${k.weights} | ${k.positions} | ${k.g_per_s.toFixed(2)} ${k.unit} | ${share} |`);
    }
  }
  const md = `
## Matmul micro-benchmark (one thread)

The projection kernels alone (\`src/ops/microbench.rs\`): a ${native.kernels[0]?.rows} x ${native.kernels[0]?.cols}
matrix (SmolLM2-135M's FFN) times 1 position (decoding) and 64 (a prompt), medians over
${BUDGET_MS} ms per kernel. \`hf\`: rows decoded to f32, f32 products (GFLOP/s); \`llama.cpp\`: 8-bit
integer products per block (GOP/s, a multiply and an add per weight and position). Peak per core
at ${clock ? `${clock.toFixed(2)} GHz` : 'an unknown clock'}: SIMD128 has 4 f32 lanes and no FMA (8 FLOP/cycle:
${clock ? (clock * 8).toFixed(1) : '-'} GFLOP/s) and \`i32x4.dot_i16x8_s\` does 8 multiply-adds (16 OP/cycle:
${clock ? (clock * 16).toFixed(1) : '-'} GOP/s). Native numbers, and the relaxed-SIMD build's (whose
\`i32x4.relaxed_dot_i8x16_i7x16_add_s\` does 16 multiply-adds), use the same peak for comparison
(x86-64 with AVX2 could do more). The clock is the nominal one of /proc/cpuinfo: a core running above it (turbo)
can exceed 100%.

| where | path | weights | positions | speed | of SIMD128 peak |
|---|---|---|---:|---:|---:|
${rows.join('\n')}

Rerun alone: \`node bench/kernels.mjs\` (after \`./build.sh build\`).
`;
  console.log(md);
  return { results, md };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await main();
}
