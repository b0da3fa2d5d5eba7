// The inference benchmark: SmolLM2-135M-Instruct Q4_1, prompt processing of 16 and 64 tokens
// (pp16, pp64) and 32 decoded tokens (tg32), in tokens/s, at 1 and 2 threads, for every contender
// side by side. The contenders run interleaved (each round runs every contender once, in turn), so
// that a slow spell of the shared machine hits all of them alike; medians with min-max.
//
//   node bench/infer.mjs                 all peers (bench/peers.mjs), ROUNDS rounds (default 5)
//   PEERS=llama.cpp,candle THREADS=1 ROUNDS=3 node bench/infer.mjs
//
// Writes artifacts/bench/infer.json (every sample, the statistics, versions, machine) and prints
// the table. `./build.sh bench` runs it through bench/run.mjs, which appends the table to
// BENCHMARKS.md. First run: builds llama-bench and bench/candle once (10-15 min each on 2 cores).
//
// A contender is `{ name, where, threads, setup(), round() -> { pp16, pp64, tg32 }, teardown(),
// versions() }` (see bench/peers.mjs); runInference() takes any list of them.

import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { contenders as ourContenders } from './ours.mjs';
import { contenders as peerContenders, MODEL, PROMPTS, ROOT } from './peers.mjs';

export const METRICS = ['pp16', 'pp64', 'tg32'];

const log = (msg) => process.stderr.write(`\x1b[1;34m==>\x1b[0m ${msg}\n`);

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (!n) return null;
  const median = n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  return { median, min: s[0], max: s[n - 1], n };
}

const label = (c) => `${c.name} (${c.where}, ${c.threads} thread${c.threads > 1 ? 's' : ''})`;

/**
 * Set up every contender, run `rounds` interleaved rounds, tear them down. A contender that fails
 * is reported (its `error`) and left out of the later rounds; the others go on.
 */
export async function runInference({ contenders, rounds = 5 }) {
  const rows = contenders.map((c) => ({ c, name: c.name, where: c.where, threads: c.threads, samples: Object.fromEntries(METRICS.map((m) => [m, []])) }));
  try {
    for (const r of rows) {
      log(`setup: ${label(r.c)}`);
      const t0 = Date.now();
      try {
        await r.c.setup();
        r.versions = await r.c.versions?.();
      } catch (e) {
        r.error = `setup: ${e.message}`;
        log(`failed: ${r.error}`);
      }
      r.setup_s = (Date.now() - t0) / 1000;
    }
    for (let i = 0; i < rounds; i++) {
      log(`round ${i + 1}/${rounds}`);
      for (const r of rows) {
        if (r.error) continue;
        try {
          const got = await r.c.round();
          for (const m of METRICS) {
            if (!(got[m] > 0)) throw new Error(`no ${m} in ${JSON.stringify(got)}`);
            r.samples[m].push(got[m]);
          }
          log(`  ${label(r.c)}: ${METRICS.map((m) => `${m} ${got[m].toFixed(1)}`).join(', ')}`);
        } catch (e) {
          r.error = `round ${i + 1}: ${e.message}`;
          log(`failed: ${r.error}`);
        }
      }
    }
    for (const r of rows) r.versions = { ...(await r.c.versions?.()), ...r.versions };
  } finally {
    for (const r of rows) await r.c.teardown().catch((e) => log(`teardown of ${label(r.c)}: ${e.message}`));
  }
  return {
    model: path.relative(ROOT, MODEL),
    rounds,
    prompts: { pp16: PROMPTS.pp16.length, pp64: PROMPTS.pp64.length, tg: PROMPTS.tg, file: 'bench/prompts.json' },
    contenders: rows.map(({ c, ...r }) => ({ ...r, stats: Object.fromEntries(METRICS.map((m) => [m, stats(r.samples[m])])) })),
  };
}

function version(cmd, args) {
  try {
    return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim().split('\n')[0];
  } catch {
    return 'unknown';
  }
}

export function machine() {
  return {
    cpu: os.cpus()[0]?.model || 'unknown',
    cores: os.cpus().length,
    date: new Date().toISOString().slice(0, 10),
    rustc: version('rustc', ['--version']),
    chromium: version(process.env.CHROMIUM || '/usr/bin/chromium', ['--version']),
  };
}

const fmt = (x) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));

/** The results as a Markdown section (a table, then the versions of every engine). */
export function inferenceMarkdown(results) {
  let md = `## Inference speed

SmolLM2-135M-Instruct Q4_1 (\`${results.model}\`). pp16 and pp64: a prompt of 16 or 64 tokens
processed in one batch from an empty cache; tg32: 32 tokens decoded one at a time (greedy).
Tokens per second, median of ${results.rounds} interleaved rounds (every contender once per
round, in turn) with min-max. The same token ids for every engine (\`${results.prompts.file}\`),
except llama-bench, which draws its own. Each round of a native engine is a fresh process that
loads the model and warms up, untimed; the browser engines stay loaded across rounds.

| engine | where | threads | pp16 tok/s | pp64 tok/s | tg32 tok/s |
|---|---|---:|---:|---:|---:|
`;
  for (const r of results.contenders) {
    const cells = METRICS.map((m) => {
      const s = r.stats[m];
      return s ? `**${fmt(s.median)}** (${fmt(s.min)}-${fmt(s.max)})` : '-';
    });
    md += `| ${r.name} | ${r.where} | ${r.threads} | ${cells.join(' | ')} |${r.error ? ` failed: ${r.error.split('\n')[0]}` : ''}\n`;
  }
  md += targetsMarkdown(results);
  const seen = new Set();
  md += '\nVersions:\n';
  for (const r of results.contenders) {
    if (seen.has(r.name) || !r.versions) continue;
    seen.add(r.name);
    const v = Object.entries(r.versions)
      .filter(([, x]) => typeof x === 'string' || typeof x === 'number')
      .map(([k, x]) => `${k} ${x}`)
      .join(' · ');
    md += `- ${r.name}: ${v}\n`;
  }
  return md;
}

/** The issue's targets, as measured in this run: each a ratio of medians, with its bar. */
export function targetsMarkdown(results) {
  const find = (name, where, threads) =>
    results.contenders.find((r) => r.name === name && r.where === where && r.threads === threads && !r.error);
  const med = (r, m) => r?.stats?.[m]?.median;
  const ours = (capture, where, threads) =>
    find(`paritylab llama.cpp, capture ${capture}${where === 'browser' ? ', multi-threaded wasm' : ''}`, where, threads);
  const rows = [];
  const ratio = (what, a, b, m, bar, cmp = '>=') => {
    const x = med(a, m) / med(b, m);
    if (!Number.isFinite(x)) return rows.push(`| ${what} | - | ${cmp} ${bar} | not measured |`);
    const ok = cmp === '>=' ? x >= bar : x <= bar;
    rows.push(`| ${what} | ${x.toFixed(2)}x | ${cmp} ${bar}x | ${ok ? 'met' : '**not met**'} |`);
  };
  const [bOff, bStats] = [ours('off', 'browser', 2), ours('stats', 'browser', 2)];
  const [nOff, wl, cd, lc] = [ours('off', 'native', 2), find('wllama', 'browser', 2), find('candle', 'native', 2), find('llama.cpp', 'native', 2)];
  ratio('browser, 2 threads, pp64: paritylab llama.cpp preset / wllama', bOff, wl, 'pp64', 3);
  ratio('browser, 2 threads, tg32: paritylab llama.cpp preset / wllama', bOff, wl, 'tg32', 2);
  ratio('browser, 2 threads, pp64 time: capture stats / off', bOff, bStats, 'pp64', 1.2, '<=');
  ratio('browser, 2 threads, tg32 time: capture stats / off', bOff, bStats, 'tg32', 1.2, '<=');
  ratio('native, 2 threads, pp64: paritylab / candle', nOff, cd, 'pp64', 1);
  ratio('native, 2 threads, tg32: paritylab / candle', nOff, cd, 'tg32', 1);
  ratio('native, 2 threads, pp64: paritylab / llama.cpp', nOff, lc, 'pp64', 0.5);
  ratio('native, 2 threads, tg32: paritylab / llama.cpp', nOff, lc, 'tg32', 0.5);
  const mem = bOff?.versions;
  if (mem?.peak_wasm_memory_mib) {
    const x = mem.peak_wasm_memory_mib / mem.gguf_mib;
    rows.push(`| peak wasm memory, capture off / GGUF size (${mem.peak_wasm_memory_mib} / ${mem.gguf_mib} MiB) | ${x.toFixed(2)}x | <= 1.25x | ${x <= 1.25 ? 'met' : '**not met**'} |`);
  }
  return `\nTargets (issue 8), from the medians above:\n\n| target | measured | bar | |\n|---|---:|---:|---|\n${rows.join('\n')}\n`;
}

/** Run the peers (PEERS, THREADS, ROUNDS from the environment) and write artifacts/bench/infer.json. */
export async function main() {
  const rounds = Number(process.env.ROUNDS || 5);
  const peers = process.env.PEERS ? process.env.PEERS.split(',') : undefined;
  const threads = process.env.THREADS ? process.env.THREADS.split(',').map(Number) : undefined;
  // paritylab's own contenders first (OURS=0 leaves them out), then the peers, all interleaved.
  const ours = process.env.OURS === '0' ? [] : ourContenders({ threads });
  const contenders = [...ours, ...peerContenders({ peers, threads })];
  const results = { machine: machine(), ...(await runInference({ contenders, rounds })) };
  const out = path.join(ROOT, 'artifacts/bench');
  mkdirSync(out, { recursive: true });
  writeFileSync(path.join(out, 'infer.json'), `${JSON.stringify(results, null, 2)}\n`);
  const md = inferenceMarkdown(results);
  console.log(md);
  log(`wrote ${path.relative(ROOT, path.join(out, 'infer.json'))}`);
  return { results, md };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { results } = await main();
  process.exitCode = results.contenders.some((r) => r.error) ? 1 : 0;
}
