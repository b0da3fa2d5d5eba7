// Determinism in the page's worker: the same model, path and prompt give the same bits in every
// wasm build and at every thread count (single-threaded SIMD128 on one thread; threaded SIMD128 on
// 1, 2 and 4; threaded relaxed SIMD on 2 and 4), and the same bits as the native CLI (x86-64, SSE2
// and, at run time, AVX2 + FMA kernels). Compared: the whole trace (a prompt batch, then greedy
// decoding steps of one token) as the dump the page downloads, every stage tensor's bytes, and the
// run's summary (top tokens, decoded ids).
//
// Native and wasm agree bit for bit on every preset (hf, oracle-f64, llama.cpp, skainet-dsl,
// skainet-legacy) and every weight type tried (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
// IQ4_NL, Q2_K..Q6_K, IQ4_XS): the kernels share one summation order per output value (the
// eight-lane f32 dot product, llama.cpp's `_generic` order per row with correctly rounded fused
// multiply-adds, exact integer block sums) and transcendental functions come from the `libm` crate.
//
// Dump files are not compared byte for byte: the metadata's key order is a hash map's (it changes
// from one process to the next); the metadata is compared as an object, the tensors as bytes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { useBrowser, REFERENCE, ROOT } from './helpers.mjs';

const BIN = path.resolve(ROOT, process.env.PARITYLAB_BIN || 'target/release/paritylab');
const SMOLLM2 = path.join(ROOT, '.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf');
const W256 = path.join(REFERENCE, 'w256/gguf');
const HAVE_SMOLLM2 = existsSync(SMOLLM2);
const ctx = useBrowser(['isolated'], {
  mounts: [`w256=${W256}`, ...(HAVE_SMOLLM2 ? [`models=${path.dirname(SMOLLM2)}`] : [])],
});

// Rows that split into different tasks for each thread count, a vocabulary that is not a whole
// number of four-row tiles, GQA; llama, qwen2 (biases) and qwen3 (QK norms).
const SHAPE = 'hidden=256,heads=4,kv_heads=2,head_dim=64,ffn=384,layers=2,vocab=300,dist=normal:0.05';
const synthetic = (arch, type) => ({
  name: `synthetic ${type} (${arch})`,
  spec: `source-issue,arch=${arch},type=${type},${SHAPE}`,
  prompt: [3, 1, 4, 1, 5, 9, 2],
  decode: 3,
});
/** One of llama.cpp's quantisations of a small model (rows of 256), from the reference data. */
const w256 = (arch, type) => ({
  name: `${arch}_w256 ${type}`,
  url: `/w256/${arch}_w256.${type}.gguf`,
  file: path.join(W256, `${arch}_w256.${type}.gguf`),
  prompt: [1, 2, 3, 4, 5],
  decode: 3,
});
const smollm2 = {
  name: 'SmolLM2 q4_1',
  url: '/models/SmolLM2-135M-Instruct.Q4_1.gguf',
  file: SMOLLM2,
  prompt: [1, 504, 2365, 314, 260, 3458, 28],
  decode: 3,
};

// Every build and thread count: these models and presets.
const MODELS = [
  synthetic('llama', 'q4_0'),
  synthetic('qwen2', 'q8_0'),
  synthetic('qwen3', 'f16'),
  w256('llama', 'q4_1'),
  w256('llama', 'q4_k'),
  ...(HAVE_SMOLLM2 ? [smollm2] : []),
];
const PRESETS = ['hf', 'llama.cpp'];
const BUILDS = [
  { build: 'st', threads: 1 },
  { build: 'mt', threads: 1 },
  { build: 'mt', threads: 2 },
  { build: 'mt', threads: 4 },
  { build: 'mt-relaxed', threads: 2 },
  { build: 'mt-relaxed', threads: 4 },
];
// Native against the single-threaded build: every preset, every weight type at hand.
const NATIVE_PRESETS = ['hf', 'oracle-f64', 'llama.cpp', 'skainet-dsl', 'skainet-legacy'];
const NATIVE_MODELS = [
  ...MODELS,
  synthetic('llama', 'f32'),
  synthetic('qwen3', 'bf16'),
  ...['q4_0', 'q5_0', 'q5_1', 'q8_0', 'iq4_nl', 'q2_k', 'q3_k', 'q5_k', 'q6_k', 'iq4_xs'].map((t) => w256('llama', t)),
  w256('qwen3', 'q4_1'),
];

/** A safetensors file's metadata and, per tensor (by name), its dtype, shape and data bytes. */
function parseDump(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const tensors = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    tensors[name] = { dtype: t.dtype, shape: t.shape, data: bytes.subarray(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1]) };
  }
  return { metadata: header.__metadata__, tensors };
}

/** One worker pinned to a build and thread count, running every preset of `presets` on each of
 * `models`: per run (`${model.name} ${preset}`) the summary, the dump's metadata, each dump
 * tensor's dtype, shape and SHA-256, and (with `keepDumps`) the dump itself (base64). */
async function pinnedRuns({ build, threads }, models, presets, keepDumps) {
  const page = await ctx.browser.newPage();
  await page.goto(ctx.isolated.url);
  const out = await page.evaluate(
    async ({ build, threads, models, presets, keepDumps }) => {
      const { Engine } = await import('/js/engine.js');
      const engine = new Engine(new URL(`/worker.js?build=${build}&threads=${threads}`, location.href));
      const call = (...args) => engine.call(...args);
      const env = await engine.ready;
      const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
      const base64 = (bytes) => {
        let s = '';
        for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
        return btoa(s);
      };
      const runs = {};
      for (const model of models) {
        if (model.url) {
          const bytes = await (await fetch(model.url)).arrayBuffer();
          await call('load', { bytes }, [bytes]);
        } else {
          await call('synthetic', { spec: model.spec });
        }
        for (const preset of presets) {
          const options = { capture: 'full', decode: model.decode };
          const summary = await call('run', { path: preset, prompt: model.prompt, top: 5, options });
          delete summary.timing;
          const bytes = new Uint8Array(await call('dump', {}));
          const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
          const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
          const tensors = {};
          for (const [name, t] of Object.entries(header)) {
            if (name === '__metadata__') continue;
            const data = bytes.subarray(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1]);
            tensors[name] = { dtype: t.dtype, shape: t.shape, sha256: hex(await crypto.subtle.digest('SHA-256', data)) };
          }
          runs[`${model.name} ${preset}`] = {
            summary,
            metadata: header.__metadata__,
            tensors,
            dump: keepDumps ? base64(bytes) : undefined,
          };
        }
      }
      engine.worker.terminate();
      return { env, runs };
    },
    { build, threads, models, presets, keepDumps },
  );
  await page.close();
  return out;
}

/** How far apart two tensors' values are (F32 or F64): how many differ, max |a - b|, and the
 * largest distance in units in the last place. */
function gap(dtype, a, b) {
  const copy = (x) => x.buffer.slice(x.byteOffset, x.byteOffset + x.byteLength);
  const [fa, fb] = dtype === 'F64' ? [new Float64Array(copy(a)), new Float64Array(copy(b))] : [new Float32Array(copy(a)), new Float32Array(copy(b))];
  const [ia, ib] = dtype === 'F64' ? [new BigInt64Array(fa.buffer), new BigInt64Array(fb.buffer)] : [new Int32Array(fa.buffer), new Int32Array(fb.buffer)];
  // Sign-magnitude to ordered integers: neighbouring floats are neighbouring integers, across zero.
  const ord = (i) => (i < 0 ? -BigInt(i) - (dtype === 'F64' ? 2n ** 63n : 2n ** 31n) : BigInt(i));
  let differ = 0;
  let maxAbs = 0;
  let maxUlps = 0n;
  for (let i = 0; i < fa.length; i += 1) {
    if (ia[i] === ib[i]) continue;
    differ += 1;
    maxAbs = Math.max(maxAbs, Math.abs(fa[i] - fb[i]));
    const d = ord(ia[i]) - ord(ib[i]);
    if ((d < 0n ? -d : d) > maxUlps) maxUlps = d < 0n ? -d : d;
  }
  return { differ, of: fa.length, maxAbs, maxUlps: String(maxUlps) };
}

test('every wasm build and thread count gives the same bits, and the native CLI gives them too', async () => {
  const started = Date.now();
  const results = [];
  for (const b of BUILDS) {
    const st = b.build === 'st';
    results.push({ ...b, ...(await pinnedRuns(b, st ? NATIVE_MODELS : MODELS, st ? NATIVE_PRESETS : PRESETS, st)) });
  }
  for (const r of results) {
    assert.equal(r.env.flavour, r.build, `pinned build ${r.build} (Chromium has threads and relaxed SIMD)`);
    assert.equal(r.env.threads, r.threads, `${r.build}: a pool of ${r.threads}`);
  }
  const [st, ...others] = results;

  // Every wasm build and thread count: the single-threaded build's bits.
  const keys = MODELS.flatMap((m) => PRESETS.map((p) => `${m.name} ${p}`));
  for (const key of keys) {
    const want = st.runs[key];
    assert.equal(want.summary.generated.length, 3, key);
    assert.ok(Object.keys(want.tensors).length > 20, `${key}: every stage dumped`);
    for (const r of others) {
      const got = r.runs[key];
      const what = `${key}: ${r.build} on ${r.threads} threads vs st`;
      assert.deepStrictEqual(got.summary, want.summary, `${what}: summary`);
      assert.deepStrictEqual(got.metadata, want.metadata, `${what}: dump metadata`);
      assert.deepStrictEqual(Object.keys(got.tensors).sort(), Object.keys(want.tensors).sort(), `${what}: stages`);
      const differ = Object.keys(want.tensors).filter((n) => got.tensors[n].sha256 !== want.tensors[n].sha256);
      assert.deepStrictEqual(differ, [], `${what}: stages whose bits differ`);
    }
  }
  // The comparison sees differences: llama.cpp's rounding changes the logits of every model.
  for (const m of NATIVE_MODELS) {
    const [hf, lcpp] = [st.runs[`${m.name} hf`], st.runs[`${m.name} llama.cpp`]];
    assert.notEqual(hf.tensors.result_output.sha256, lcpp.tensors.result_output.sha256, `${m.name}: hf vs llama.cpp`);
  }

  // Native: the CLI on the same tokens (the prompt and the decoded ids as one batch: the native
  // tests pin that a batch gives the bits of a prompt and single steps), its dump against wasm's.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'paritylab-determinism-'));
  try {
    for (const model of NATIVE_MODELS) {
      let file = model.file;
      if (!file) {
        file = path.join(dir, 'synthetic.gguf');
        execFileSync(BIN, ['synth', model.spec, '-o', file], { stdio: 'ignore' });
      }
      for (const preset of NATIVE_PRESETS) {
        const key = `${model.name} ${preset}`;
        const wasm = parseDump(Buffer.from(st.runs[key].dump, 'base64'));
        const tokens = JSON.parse(wasm.metadata.token_ids);
        assert.equal(tokens.length, model.prompt.length + model.decode, key);
        const out = path.join(dir, 'native.safetensors');
        execFileSync(BIN, ['run', file, '--tokens', tokens.join(','), '--path', preset, '--dump', out], { stdio: 'ignore' });
        const native = parseDump(readFileSync(out));
        // The same model bytes (model_sha256: the synthetic generator too), tokens and path.
        assert.deepStrictEqual(native.metadata, wasm.metadata, `${key}: native dump metadata`);
        assert.deepStrictEqual(Object.keys(native.tensors).sort(), Object.keys(wasm.tensors).sort(), `${key}: stages`);
        const gaps = [];
        for (const [name, t] of Object.entries(wasm.tensors)) {
          const n = native.tensors[name];
          assert.deepStrictEqual([n.dtype, n.shape], [t.dtype, t.shape], `${key} ${name}`);
          if (!Buffer.from(n.data).equals(Buffer.from(t.data))) gaps.push({ name, ...gap(t.dtype, n.data, t.data) });
        }
        assert.deepStrictEqual(gaps, [], `${key}: stages whose native bits differ from wasm's`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const runs = Object.keys(st.runs).length + others.length * keys.length;
  console.log(`determinism: ${runs} wasm runs (${results.length} builds and thread counts), ${Object.keys(st.runs).length} native, ${((Date.now() - started) / 1000).toFixed(1)} s`);
});
