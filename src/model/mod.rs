//! A decoder model read from a GGUF file: its hyper-parameters ([`Config`]) and its tensors
//! ([`Weights`]).

mod config;
mod weights;

pub use config::Config;
pub use weights::{Layer, Matrix, Weights};

use crate::gguf::{Gguf, Value};
use crate::Result;

/// A parsed file with its config and weights (all borrowing the file's bytes).
pub struct Model<'a> {
    pub gguf: Gguf<'a>,
    pub config: Config,
    pub weights: Weights<'a>,
}

impl<'a> Model<'a> {
    /// Parse `bytes` and read the model in them.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Model<'a>> {
        Model::from_gguf(Gguf::parse(bytes)?).map_err(|failed| failed.1)
    }

    /// Read the model in a parsed file; on failure the file is handed back with the reason (it can
    /// still be inspected).
    pub fn from_gguf(gguf: Gguf<'a>) -> std::result::Result<Model<'a>, Box<(Gguf<'a>, crate::Error)>> {
        let config = match Config::from_gguf(&gguf) {
            Ok(c) => c,
            Err(e) => return Err(Box::new((gguf, e))),
        };
        match Weights::from_gguf(&gguf, &config) {
            Ok(weights) => Ok(Model { gguf, config, weights }),
            Err(e) => Err(Box::new((gguf, e))),
        }
    }
}

impl Model<'_> {
    /// The vocabulary's token strings as stored (`tokenizer.ggml.tokens`), for display; `None` when
    /// the file has no vocabulary of the model's size.
    pub fn token_texts(&self) -> Option<Vec<String>> {
        let tokens = self.gguf.get("tokenizer.ggml.tokens").and_then(Value::as_array)?;
        let texts: Vec<String> = tokens.strings()?.map(|s| s.lossy().into_owned()).collect();
        (texts.len() == self.config.vocab).then_some(texts)
    }
}
