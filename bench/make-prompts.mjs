// Writes bench/prompts.json, the fixed prompts of the inference benchmark (bench/peers.mjs): the
// same token ids for every contender. Run once; the output is committed.
//
//   node bench/make-prompts.mjs [MODEL.gguf]     (default: SmolLM2-135M-Instruct Q4_1 in .cache)
//
// wllama can only be given text (its completion API tokenizes the prompt itself), so the ids are
// chosen to round-trip through text: whole lowercase words with a leading space (`Ġword`, 3-10
// letters), drawn with SplitMix64 from a fixed seed. Their text, " word word ...", tokenizes back to
// exactly those ids (the byte-level BPE splits it at the spaces, and each chunk is one token). This
// is checked with `paritylab tokenize` when target/release/paritylab exists, and again at run time
// by the wllama page (llama.cpp's prompt token count must be 16 / 64).

import { execFileSync } from 'node:child_process';
import { existsSync, openSync, readSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MODEL = process.argv[2] || path.join(ROOT, '.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf');
const SEED = 20260101n;

/** The string-array metadata value `key` of a GGUF file (reads only the header). */
function ggufStrings(file, key) {
  const fd = openSync(file, 'r');
  let pos = 0;
  const read = (n) => {
    const b = Buffer.alloc(n);
    readSync(fd, b, 0, n, pos);
    pos += n;
    return b;
  };
  const u32 = () => read(4).readUInt32LE();
  const u64 = () => Number(read(8).readBigUInt64LE());
  const str = () => read(u64()).toString('utf8');
  const SIZES = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
  const skip = (type) => {
    if (type === 8) return void str();
    if (type === 9) {
      const [t, n] = [u32(), u64()];
      if (t in SIZES) pos += SIZES[t] * n;
      else for (let i = 0; i < n; i++) skip(t);
      return;
    }
    pos += SIZES[type];
  };
  if (read(4).toString('latin1') !== 'GGUF') throw new Error(`${file} is not a GGUF file`);
  u32(); // version
  u64(); // tensor count
  const kvs = u64();
  for (let i = 0; i < kvs; i++) {
    const k = str();
    const type = u32();
    if (k === key && type === 9) {
      const [t, n] = [u32(), u64()];
      if (t !== 8) throw new Error(`${key} is not an array of strings`);
      return Array.from({ length: n }, str);
    }
    skip(type);
  }
  throw new Error(`${file} has no ${key}`);
}

const tokens = ggufStrings(MODEL, 'tokenizer.ggml.tokens');
const words = [];
tokens.forEach((t, id) => {
  if (/^Ġ[a-z]{3,10}$/.test(t)) words.push(id);
});

// SplitMix64.
let state = SEED;
const M = (1n << 64n) - 1n;
const next = () => {
  state = (state + 0x9e3779b97f4a7c15n) & M;
  let z = state;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M;
  return z ^ (z >> 31n);
};
const draw = (n) => Array.from({ length: n }, () => words[Number(next() % BigInt(words.length))]);
const text = (ids) => ids.map((id) => tokens[id].replace(/^Ġ/, ' ')).join('');

const pp64 = draw(64);
const pp16 = draw(16);
const [tgStart] = draw(1);

const bin = path.join(ROOT, 'target/release/paritylab');
if (existsSync(bin)) {
  for (const ids of [pp16, pp64, [tgStart]]) {
    const out = JSON.parse(execFileSync(bin, ['tokenize', MODEL, text(ids), '--json', '--no-bos']));
    const got = (out.ids ?? out.tokens ?? out).map((x) => (typeof x === 'object' ? x.id : x));
    if (JSON.stringify(got) !== JSON.stringify(ids)) throw new Error(`"${text(ids)}" does not tokenize back to its ids: ${got}`);
  }
  console.error('checked: every prompt tokenizes back to its ids (paritylab tokenize)');
} else {
  console.error(`not checked: ${bin} is missing (the wllama page still checks the token counts)`);
}

const out = {
  about:
    'Fixed prompts of the inference benchmark (bench/peers.mjs), the same token ids for every contender, written by ' +
    'bench/make-prompts.mjs: whole lowercase words with a leading space drawn with SplitMix64 from `seed` (pp64 first, ' +
    'then pp16, then tg_start), so that each text tokenizes back to exactly its ids (wllama is given the text). pp16 ' +
    'and pp64 are processed in one batch from an empty cache; tg32 feeds tg_start at position 0, then decodes `tg` ' +
    'tokens greedily (positions 1 to tg).',
  model: 'SmolLM2-135M-Instruct Q4_1 (vocabulary of 49,152 tokens)',
  seed: Number(SEED),
  tg: 32,
  tg_start: tgStart,
  tg_start_text: text([tgStart]),
  pp16,
  pp16_text: text(pp16),
  pp64,
  pp64_text: text(pp64),
};
const json = JSON.stringify(out, null, 2).replace(/\[\n\s+([\d,\s]+?)\n\s+\]/g, (_, body) => `[${body.split(/,\s*/).join(', ')}]`);
writeFileSync(path.join(ROOT, 'bench/prompts.json'), `${json}\n`);
console.log(json);
