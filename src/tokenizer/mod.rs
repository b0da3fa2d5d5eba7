//! Tokenizers read from GGUF metadata, dispatching on `tokenizer.ggml.model`:
//! - `gpt2`: byte-level BPE (GPT-2, Qwen, Llama 3, SmolLM): text -> special tokens split out
//!   (leftmost-longest) -> optional NFC -> pre-tokenizer regexes -> bytes mapped through GPT-2's
//!   byte <-> unicode table -> BPE merges by rank;
//! - `llama`: SentencePiece BPE (Llama 1/2, Mistral): spaces as `▁`, an optional leading space,
//!   merges by score, byte fallback to `<0xNN>` tokens.
//!
//! Special tokens are the vocabulary's CONTROL and USER_DEFINED entries
//! (`tokenizer.ggml.token_type` 3 and 4). With `parse_special` off, CONTROL tokens are read as
//! plain text while USER_DEFINED ones still split out (as HF's `split_special_tokens` and llama.cpp's
//! `parse_special=false` do).

mod bpe;
pub mod pretokenize;
mod spm;

use crate::gguf::{Gguf, Value};
use crate::{Error, Result};
use pretokenize::PreTokenizer;
use serde::Serialize;
use std::collections::HashMap;

/// `tokenizer.ggml.token_type` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenType {
    fn from_id(id: i64) -> TokenType {
        match id {
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Normal,
        }
    }
}

/// Which algorithm the vocabulary uses.
#[derive(Debug, Clone)]
enum Model {
    Bpe(bpe::Bpe),
    Spm(spm::Spm),
}

/// A tokenizer built from a GGUF file's vocabulary.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    model: Model,
    /// Token strings as stored.
    tokens: Vec<String>,
    types: Vec<TokenType>,
    /// Special tokens by their first byte, longest first: (text, id, is_control).
    specials: HashMap<u8, Vec<(String, u32, bool)>>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos: bool,
    pub add_eos: bool,
    /// `tokenizer.ggml.model` and `tokenizer.ggml.pre`.
    pub kind: String,
    pub pre: Option<String>,
}

/// How to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Read `<|...|>` control-token text as the control token (else as plain text).
    pub parse_special: bool,
    /// Add BOS/EOS as the vocabulary says (`add_bos_token`, `add_eos_token`).
    pub add_special: bool,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions { parse_special: true, add_special: true }
    }
}

/// One piece of input: plain text, or a special token found in it.
enum Fragment<'t> {
    Text(&'t str),
    Token(u32),
}

impl Tokenizer {
    /// Build the tokenizer described by a file's `tokenizer.ggml.*` metadata; `Ok(None)` when the
    /// file has no vocabulary.
    ///
    /// # Errors
    /// A vocabulary that is present but unusable: unknown model or pre-tokenizer, arrays of the
    /// wrong type or length.
    pub fn from_gguf(g: &Gguf<'_>) -> Result<Option<Tokenizer>> {
        let Some(model) = g.get("tokenizer.ggml.model") else { return Ok(None) };
        let kind = model
            .as_gstr()
            .map(|s| s.lossy().into_owned())
            .ok_or_else(|| Error::input("tokenizer.ggml.model is not a string"))?;
        // Counts first, before any string is copied: at most 2^24 tokens (the embedding's limit)
        // and as many merges.
        for key in ["tokenizer.ggml.tokens", "tokenizer.ggml.merges"] {
            if let Some(n) = g.get(key).and_then(Value::as_array).map(|a| a.len()).filter(|&n| n > 1 << 24) {
                return Err(Error::input(format!("{key} has {n} entries; paritylab reads at most 2^24")));
            }
        }
        let tokens: Vec<String> = string_array(g, "tokenizer.ggml.tokens")?
            .ok_or_else(|| Error::input("tokenizer.ggml.tokens is missing: the vocabulary is empty"))?;
        if tokens.is_empty() || tokens.len() > 1 << 24 {
            return Err(Error::input(format!("tokenizer.ggml.tokens has {} entries", tokens.len())));
        }
        let n = tokens.len();
        let types: Vec<TokenType> = match g.get("tokenizer.ggml.token_type").and_then(Value::as_array) {
            None => vec![TokenType::Normal; n],
            Some(a) if a.len() as usize == n => a.iter().map(|v| TokenType::from_id(v.as_i64().unwrap_or(1))).collect(),
            Some(a) => {
                return Err(Error::input(format!(
                    "tokenizer.ggml.token_type has {} entries, expected {n} (one per token)",
                    a.len()
                )))
            }
        };
        let id = |key: &str| -> Option<u32> {
            g.get(key).and_then(Value::as_u64).and_then(|v| u32::try_from(v).ok()).filter(|&v| (v as usize) < n)
        };
        let flag = |key: &str, default: bool| g.get(key).and_then(Value::as_bool).unwrap_or(default);
        let pre = g.get("tokenizer.ggml.pre").and_then(Value::as_gstr).map(|s| s.lossy().into_owned());

        let model = match kind.as_str() {
            "gpt2" => {
                let merges = string_array(g, "tokenizer.ggml.merges")?.unwrap_or_default();
                let pretok = PreTokenizer::new(pre.as_deref().unwrap_or("default"))?;
                Model::Bpe(bpe::Bpe::new(&tokens, &merges, pretok))
            }
            "llama" => {
                let scores: Vec<f32> = match g.get("tokenizer.ggml.scores").and_then(Value::as_array) {
                    Some(a) if a.len() as usize == n => a.iter().map(|v| v.as_f64().unwrap_or(0.0) as f32).collect(),
                    Some(a) => {
                        return Err(Error::input(format!(
                            "tokenizer.ggml.scores has {} entries, expected {n}",
                            a.len()
                        )))
                    }
                    None => vec![0.0; n],
                };
                let unk = id("tokenizer.ggml.unknown_token_id");
                Model::Spm(spm::Spm::new(&tokens, &scores, &types, unk, flag("tokenizer.ggml.add_space_prefix", true)))
            }
            other => {
                return Err(Error::input(format!(
                    "tokenizer.ggml.model is {other:?}; paritylab reads gpt2 (byte-level BPE) and llama (SentencePiece)"
                )))
            }
        };

        let mut specials: HashMap<u8, Vec<(String, u32, bool)>> = HashMap::new();
        for (i, (t, ty)) in tokens.iter().zip(&types).enumerate() {
            if matches!(ty, TokenType::Control | TokenType::UserDefined) && !t.is_empty() {
                specials.entry(t.as_bytes()[0]).or_default().push((t.clone(), i as u32, *ty == TokenType::Control));
            }
        }
        for list in specials.values_mut() {
            list.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        }
        Ok(Some(Tokenizer {
            model,
            bos: id("tokenizer.ggml.bos_token_id"),
            eos: id("tokenizer.ggml.eos_token_id"),
            add_bos: flag("tokenizer.ggml.add_bos_token", kind == "llama"),
            add_eos: flag("tokenizer.ggml.add_eos_token", false),
            tokens,
            types,
            specials,
            kind,
            pre,
        }))
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// Whether NFC normalisation is applied before BPE.
    pub fn normalizes(&self) -> bool {
        matches!(&self.model, Model::Bpe(b) if b.pre.nfc)
    }

    /// Text to token ids.
    ///
    /// # Errors
    /// Only when the pre-tokenizer's regex engine gives up (pathological input).
    pub fn encode(&self, text: &str, opts: EncodeOptions) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        if opts.add_special && self.add_bos {
            if let Some(b) = self.bos {
                out.push(b);
            }
        }
        let mut cache: HashMap<String, Vec<u32>> = HashMap::new();
        let mut after_special = true;
        for fragment in self.split_specials(text, opts.parse_special) {
            match fragment {
                Fragment::Token(id) => {
                    out.push(id);
                    after_special = true;
                }
                Fragment::Text(t) => {
                    match &self.model {
                        Model::Bpe(b) => b.encode(t, &mut cache, &mut out)?,
                        Model::Spm(s) => s.encode(t, after_special, &mut out),
                    }
                    after_special = false;
                }
            }
        }
        if opts.add_special && self.add_eos {
            if let Some(e) = self.eos {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Cut the text at special tokens (leftmost-longest match).
    fn split_specials<'t>(&self, text: &'t str, parse_special: bool) -> Vec<Fragment<'t>> {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let (mut start, mut i) = (0, 0);
        while i < bytes.len() {
            let found = self.specials.get(&bytes[i]).and_then(|list| {
                list.iter().find(|(t, _, control)| (parse_special || !control) && bytes[i..].starts_with(t.as_bytes()))
            });
            match found {
                Some((t, id, _)) => {
                    if i > start {
                        out.push(Fragment::Text(&text[start..i]));
                    }
                    out.push(Fragment::Token(*id));
                    i += t.len();
                    start = i;
                }
                None => i += 1,
            }
        }
        if start < bytes.len() {
            out.push(Fragment::Text(&text[start..]));
        }
        out
    }

    /// The bytes a token stands for (its text for special tokens).
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        let Some(text) = self.tokens.get(id as usize) else { return Vec::new() };
        match self.types[id as usize] {
            TokenType::Control | TokenType::UserDefined | TokenType::Unknown | TokenType::Unused => {
                text.as_bytes().to_vec()
            }
            _ => match &self.model {
                Model::Bpe(_) => bpe::unicode_to_bytes(text),
                Model::Spm(_) => spm::piece_bytes(text),
            },
        }
    }

    /// Token ids to text; invalid UTF-8 shows as U+FFFD; ids outside the vocabulary are skipped.
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().flat_map(|&id| self.token_bytes(id)).collect();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        match &self.model {
            // SentencePiece's decoder drops the space it added in front.
            Model::Spm(s) if s.add_space_prefix && !matches!(ids.first(), Some(&id) if self.is_special(id)) => {
                text.strip_prefix(' ').map(str::to_string).unwrap_or(text)
            }
            _ => text,
        }
    }

    fn is_special(&self, id: u32) -> bool {
        matches!(self.types.get(id as usize), Some(TokenType::Control | TokenType::UserDefined))
    }

    /// A token as one readable line: spaces as `␣`, newlines `↵`, tabs `⇥`, other control
    /// characters and bytes that are not whole UTF-8 characters as `\xNN`.
    pub fn display_piece(&self, id: u32) -> String {
        if self.is_special(id) {
            return self.tokens[id as usize].clone();
        }
        visible(&self.token_bytes(id))
    }

    /// The stored string of a token (e.g. `Ġworld`), if the id exists.
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.types.get(id as usize).copied()
    }
}

/// Bytes made readable (see [`Tokenizer::display_piece`]).
pub fn visible(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                push_visible(&mut out, s);
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                push_visible(&mut out, std::str::from_utf8(good).unwrap_or_default());
                let n = e.error_len().unwrap_or(bad.len()).max(1);
                for b in &bad[..n] {
                    out.push_str(&format!("\\x{b:02x}"));
                }
                rest = &bad[n..];
            }
        }
    }
    out
}

fn push_visible(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            ' ' => out.push('␣'),
            '\n' => out.push('↵'),
            '\t' => out.push('⇥'),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
}

/// A string array of the metadata, `None` when absent.
fn string_array(g: &Gguf<'_>, key: &str) -> Result<Option<Vec<String>>> {
    match g.get(key) {
        None => Ok(None),
        Some(v) => {
            let strings = v
                .as_array()
                .and_then(|a| a.strings())
                .ok_or_else(|| Error::input(format!("{key} is not an array of strings")))?;
            Ok(Some(strings.map(|s| s.lossy().into_owned()).collect()))
        }
    }
}

#[cfg(test)]
mod tests;
