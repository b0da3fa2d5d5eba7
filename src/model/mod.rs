//! A decoder model read from a GGUF file: its hyper-parameters ([`Config`]) and its tensors
//! ([`Weights`]).

mod config;
mod weights;

pub use config::Config;
pub use weights::{Layer, Matrix, Weights};

use crate::gguf::Gguf;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};
use std::sync::OnceLock;

/// A parsed file with its config and weights (all borrowing the file's bytes), and its tokenizer
/// (built on first use: a large vocabulary takes a moment).
pub struct Model<'a> {
    pub gguf: Gguf<'a>,
    pub config: Config,
    pub weights: Weights<'a>,
    tokenizer: OnceLock<std::result::Result<Option<Tokenizer>, Error>>,
}

impl<'a> Model<'a> {
    /// Parse `bytes` and read the model in them.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Model<'a>> {
        Model::from_gguf(Gguf::parse(bytes)?).map_err(|failed| failed.1)
    }

    /// Read the model in a parsed file; on failure the file is handed back with the reason (it can
    /// still be inspected).
    pub fn from_gguf(gguf: Gguf<'a>) -> std::result::Result<Model<'a>, Box<(Gguf<'a>, crate::Error)>> {
        if !gguf.has_data {
            return Err(Box::new((gguf, Error::HeaderOnly { what: "reading the model".into() })));
        }
        let config = match Config::from_gguf(&gguf) {
            Ok(c) => c,
            Err(e) => return Err(Box::new((gguf, e))),
        };
        match Weights::from_gguf(&gguf, &config) {
            Ok(weights) => Ok(Model { gguf, config, weights, tokenizer: OnceLock::new() }),
            Err(e) => Err(Box::new((gguf, e))),
        }
    }
}

impl Model<'_> {
    /// The model's tokenizer; `Ok(None)` when the file has no vocabulary.
    ///
    /// # Errors
    /// The vocabulary is present but unusable (unknown model or pre-tokenizer, malformed arrays).
    pub fn tokenizer(&self) -> Result<Option<&Tokenizer>> {
        match self.tokenizer.get_or_init(|| Tokenizer::from_gguf(&self.gguf)) {
            Ok(t) => Ok(t.as_ref()),
            Err(e) => Err(e.clone()),
        }
    }

    /// The tokenizer, or an error saying the model has none.
    pub fn require_tokenizer(&self) -> Result<&Tokenizer> {
        self.tokenizer()?.ok_or_else(|| {
            Error::input(
                "this model has no vocabulary (tokenizer.ggml.model is missing): give token ids instead of text",
            )
        })
    }

    /// The tokenizer when there is a usable one (for showing tokens as text).
    pub fn display_tokenizer(&self) -> Option<&Tokenizer> {
        self.tokenizer().ok().flatten()
    }
}
