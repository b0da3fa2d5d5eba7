//! The bodies of the fuzz targets (`fuzz/fuzz_targets/*.rs`, libFuzzer through cargo-fuzz),
//! shared with `tests/fuzz_regressions.rs`, which replays every input that once failed and the seed
//! corpora, so `cargo test` runs exactly what the fuzzers ran.
//!
//! Each target takes arbitrary bytes and must return: an `Ok` or an error, never a panic, a hang
//! or an allocation far beyond what the input declares. Where a result can be checked cheaply the
//! target checks it too (a decoded share link encodes back to the same state, a parsed path spec
//! prints back to itself), so the fuzzers also look for wrong answers, not only crashes.
#![doc(hidden)]

use crate::error::Result;
use crate::forward::Runner;
use crate::gguf::Gguf;
use crate::import::{self, DumpFile, ImportOptions, ModelShape};
use crate::model::{Config, Model};
use crate::path::PathSpec;
use crate::share::State;
use crate::tokenizer::{EncodeOptions, Tokenizer};
use crate::trace::Capture;

/// The fuzz targets, by name (the names of `fuzz/fuzz_targets/*.rs` and of the folders of
/// `tests/fuzz/`).
pub const TARGETS: [&str; 6] = ["gguf_file", "gguf_header", "tokenizer", "share_state", "dump_files", "path_spec"];

/// The most a target may allocate (in total, over one input) for an input of `len` bytes: the
/// GGUF and dump targets keep what they read as views and build bookkeeping proportional to it
/// (the forward pass of a tiny model, its trace and a tokenizer built from the file's vocabulary
/// add a few MiB); the others work on text. Never in proportion to what an input claims: the
/// fuzzers and `cargo test` enforce it (with the counting allocator of `tests/common/counting_alloc.rs`).
pub fn budget(target: &str, len: usize) -> usize {
    match target {
        "gguf_file" | "dump_files" => 24 * len + (16 << 20),
        _ => 64 * len + (4 << 20),
    }
}

/// A whole GGUF file: parse it, describe it, read the model and its tokenizer, and run a tiny
/// forward pass when the model is small enough to run in a moment.
pub fn gguf_file(data: &[u8]) {
    let Ok(g) = Gguf::parse(data) else { return };
    let _ = crate::inspect::inspect(&g);
    for t in g.tensors.iter().filter(|t| t.n_elements() <= 1 << 12).take(2) {
        let _ = crate::inspect::tensor_stats(t);
    }
    let Ok(model) = Model::from_gguf(g) else { return };
    let tokenizer = model.tokenizer();
    if let Ok(Some(t)) = tokenizer {
        let _ = t.encode("Hello, world! 你好 <|im_end|>", EncodeOptions::default());
        let _ = t.decode(&[0, 1, 2, u32::MAX]);
    }
    let c = &model.config;
    // A forward pass costs about layers x (hidden x (4 hidden + 3 ffn)) + vocab x hidden per token.
    let work =
        c.layers as u64 * c.hidden as u64 * (4 * c.hidden as u64 + 3 * c.ffn as u64) + c.vocab as u64 * c.hidden as u64;
    if work > 1 << 22 {
        return;
    }
    for path in ["hf", "llama.cpp"] {
        let Some(spec) = PathSpec::preset(path) else { continue };
        let Ok(mut runner) = Runner::new(&model, &spec, Capture::Full) else { continue };
        let last = (c.vocab - 1) as u32;
        if runner.feed(&[0, last]).is_ok() {
            let _ = runner.decode_greedy(1);
            let logits = runner.logits();
            assert_eq!(logits.len(), c.vocab, "one logit per vocabulary entry");
        }
    }
}

/// The first bytes of a GGUF file and its declared size: the header alone (as the page reads a
/// large file before deciding whether it fits). Input: the declared size as a little-endian u64,
/// then the prefix.
pub fn gguf_header(data: &[u8]) {
    let Some((len, prefix)) = data.split_first_chunk::<8>() else { return };
    let file_len = u64::from_le_bytes(*len);
    let Ok(g) = Gguf::parse_header(prefix, file_len) else { return };
    assert!(!g.has_data && g.tensors.iter().all(|t| t.data.is_empty()));
    assert!(g.tensors.iter().all(|t| t.file_offset.saturating_add(t.n_bytes()) <= file_len));
    let _ = crate::inspect::inspect(&g);
    let _ = Config::from_gguf(&g);
}

/// The tokenizers `tokenizer` fuzzes: those of the reference models (Qwen's byte-level BPE with a
/// 64-token and the real 151,936-token vocabulary, and Llama's SentencePiece).
const TOKENIZER_FILES: [&str; 3] =
    ["gguf/qwen3_tiny_tied.q8_0.gguf", "gguf/llama_small.q8_0.gguf", "gguf/qwen3_realvocab.q8_0.gguf"];

/// The model whose shape `dump_files` imports against.
const SHAPE_FILE: &str = "gguf/qwen3_tiny_tied.q8_0.gguf";

/// What the `tokenizer` and `dump_files` targets run against, built once (outside any allocation
/// count) by the fuzzers and by `cargo test` alike.
pub struct Fixtures {
    pub tokenizers: Vec<Tokenizer>,
    pub shape: ModelShape,
}

impl Fixtures {
    /// Build them from the reference files, `read(path)` giving the bytes of
    /// `../shared/reference/<path>`.
    ///
    /// # Errors
    /// A reference file that does not parse or has no vocabulary.
    pub fn build(read: impl Fn(&str) -> Vec<u8>) -> Result<Fixtures> {
        let tokenizers = TOKENIZER_FILES
            .iter()
            .map(|f| Model::from_bytes(&read(f))?.require_tokenizer().cloned())
            .collect::<Result<_>>()?;
        let shape = ModelShape::of(&Model::from_bytes(&read(SHAPE_FILE))?);
        Ok(Fixtures { tokenizers, shape })
    }
}

/// Encode and decode with one of `tokenizers`. Input: a byte choosing the tokenizer and the options,
/// then text (as UTF-8, lossily) or, for decoding, token ids (little-endian u32s).
pub fn tokenizer(tokenizers: &[Tokenizer], data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else { return };
    let Some(t) = tokenizers.get(usize::from(pick & 3) % tokenizers.len().max(1)) else { return };
    if pick & 4 != 0 {
        let ids: Vec<u32> = rest.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let _ = t.decode(&ids);
        for &id in ids.iter().take(64) {
            let _ = t.display_piece(id);
            let _ = t.token_bytes(id);
        }
        return;
    }
    let text = String::from_utf8_lossy(rest);
    let opts = EncodeOptions { parse_special: pick & 8 != 0, add_special: pick & 16 != 0 };
    if let Ok(ids) = t.encode(&text, opts) {
        assert!(ids.iter().all(|&id| (id as usize) < t.vocab_size()), "an id outside the vocabulary");
        // A real byte-level vocabulary holds every byte: without special tokens, decoding gives
        // the text back, after the normalization (NFC) the tokenizer applies. (The toy
        // vocabularies of the reference models lack most bytes, and drop them.)
        if !opts.parse_special && !opts.add_special && t.vocab_size() > 1000 {
            let plain = t.decode(&ids);
            let want: String = if t.normalizes() {
                unicode_normalization::UnicodeNormalization::nfc(&*text).collect()
            } else {
                text.into()
            };
            assert_eq!(plain, want, "decode(encode(text)) differs from the text");
        }
    }
}

/// A share link's state: decoded, it must encode to a link that decodes to the same state.
pub fn share_state(data: &[u8]) {
    let hash = String::from_utf8_lossy(data);
    if let Ok(state) = State::decode(&hash) {
        let again = state.encode().expect("a decoded state encodes");
        assert_eq!(State::decode(&again).expect("an encoded state decodes"), state);
    }
}

/// Dump files: up to three files split at `\0\0|\0\0`, each named by its first byte's choice of
/// extension. Read, then lined up with a tiny model's stages.
pub fn dump_files(shape: &ModelShape, data: &[u8]) {
    const SEP: &[u8] = b"\0\0|\0\0";
    let mut parts = Vec::new();
    let mut rest = data;
    while parts.len() < 3 {
        match rest.windows(SEP.len()).position(|w| w == SEP) {
            Some(i) => {
                parts.push(&rest[..i]);
                rest = &rest[i + SEP.len()..];
            }
            None => {
                parts.push(rest);
                break;
            }
        }
    }
    let names = ["dump.safetensors", "a.npy", "b.npy", "metadata.json", "dump.npz", "eval.log"];
    let files: Vec<DumpFile<'_>> = parts
        .iter()
        .filter_map(|p| p.split_first())
        .map(|(&n, bytes)| DumpFile { name: names[usize::from(n) % names.len()], bytes })
        .collect();
    let Ok(raw) = import::read(&files) else { return };
    for naming in [None, Some(import::naming::Naming::Hf)] {
        let opts = ImportOptions { naming, tokens: Some(vec![1, 2]), ..ImportOptions::default() };
        let _ = import::import("fuzz", &raw, Some(shape), None, &opts);
        let _ = import::import("fuzz", &raw, None, None, &opts);
    }
}

/// A path spec (preset with overrides, or JSON): parsed, it prints back to the same spec.
pub fn path_spec(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(spec) = PathSpec::parse(text) {
        let json = serde_json::to_string(&spec).expect("a spec serializes");
        assert_eq!(PathSpec::parse(&json).expect("its JSON parses"), spec);
        let again = PathSpec::parse(&spec.to_text()).expect("its text form parses");
        assert_eq!(again, spec, "{}", spec.to_text());
    }
}
