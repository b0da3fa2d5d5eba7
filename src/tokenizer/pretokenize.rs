//! Pre-tokenizers of byte-level BPE vocabularies: the regexes that cut text into words before BPE,
//! chosen by `tokenizer.ggml.pre` as llama.cpp does (`llama-vocab.cpp`), and whether the text is
//! NFC-normalised first (HF's Qwen2/Qwen3 tokenizers are; llama.cpp is not).
//!
//! Several regexes apply in sequence, each splitting the pieces the previous one produced; a piece
//! is cut into its matches and the text between them (HF's `Split` with behaviour `Isolated`).

use crate::{Error, Result};
use fancy_regex::Regex;

/// GPT-2's pattern (also SmolLM's second stage).
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
/// Llama 3's pattern, with the case-insensitive contractions spelled out as llama.cpp does (so
/// Unicode case folding cannot make `ſ` match `s`).
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's: Llama 3's with single digits.
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The `tokenizer.ggml.pre` values understood, with what they mean.
pub const SUPPORTED: &[&str] =
    &["default", "gpt2", "llama-bpe", "llama3", "qwen2", "smollm", "starcoder", "refact", "command-r", "codeshell"];

/// A compiled pre-tokenizer.
#[derive(Debug, Clone)]
pub struct PreTokenizer {
    pub name: String,
    /// NFC-normalise the text first.
    pub nfc: bool,
    regexes: Vec<Regex>,
}

impl PreTokenizer {
    /// The pre-tokenizer for a `tokenizer.ggml.pre` value.
    ///
    /// # Errors
    /// An unknown value, named in the message with the supported ones.
    pub fn new(pre: &str) -> Result<PreTokenizer> {
        let (patterns, nfc): (&[&str], bool) = match pre {
            "qwen2" => (&[QWEN2], true),
            "llama-bpe" | "llama3" => (&[LLAMA3], false),
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" => (&[r"\p{N}", GPT2], false),
            "gpt2" => (&[GPT2], false),
            // llama.cpp's fallback for vocabularies it does not recognise.
            "default" => (&[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"], false),
            other => {
                return Err(Error::input(format!(
                    "tokenizer.ggml.pre is {other:?}, a pre-tokenizer paritylab does not know; supported: {}",
                    SUPPORTED.join(", ")
                )))
            }
        };
        let regexes = patterns
            .iter()
            .map(|p| Regex::new(p).map_err(|e| Error::input(format!("internal error: bad pre-tokenizer regex: {e}"))))
            .collect::<Result<_>>()?;
        Ok(PreTokenizer { name: pre.to_string(), nfc, regexes })
    }

    /// Cut `text` into words (byte ranges of `text`).
    pub fn split<'t>(&self, text: &'t str) -> Result<Vec<&'t str>> {
        let mut pieces = vec![text];
        for re in &self.regexes {
            let mut next = Vec::with_capacity(pieces.len());
            for piece in pieces {
                let mut last = 0;
                for m in re.find_iter(piece) {
                    let m = m.map_err(|e| Error::input(format!("the pre-tokenizer gave up on this text: {e}")))?;
                    if m.start() > last {
                        next.push(&piece[last..m.start()]);
                    }
                    if m.end() > m.start() {
                        next.push(m.as_str());
                    }
                    last = m.end();
                }
                if last < piece.len() {
                    next.push(&piece[last..]);
                }
            }
            pieces = next;
        }
        Ok(pieces)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_the_reference_patterns() {
        let qwen = PreTokenizer::new("qwen2").unwrap();
        assert_eq!(qwen.split("Hello  world   ").unwrap(), ["Hello", " ", " world", "   "]);
        assert_eq!(qwen.split("I'm 1,000").unwrap(), ["I", "'m", " ", "1", ",", "0", "0", "0"]);
        let llama = PreTokenizer::new("llama3").unwrap();
        assert_eq!(llama.split("12345 ab").unwrap(), ["123", "45", " ab"]);
        let smol = PreTokenizer::new("smollm").unwrap();
        assert_eq!(smol.split("x12 y").unwrap(), ["x", "1", "2", " y"]);
        assert!(qwen.nfc && !smol.nfc);
        let e = PreTokenizer::new("bloom").unwrap_err().to_string();
        assert!(e.contains("\"bloom\"") && e.contains("qwen2"), "{e}");
    }
}
