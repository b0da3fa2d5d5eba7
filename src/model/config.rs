//! The model's hyper-parameters, read once from the GGUF metadata. This is the only code that
//! names metadata keys of the architectures.

use crate::arch::Arch;
use crate::gguf::{Gguf, Value};
use crate::{Error, Result};
use serde::Serialize;

/// The blueprint of a decoder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    pub arch: Arch,
    /// `embedding_length`.
    pub hidden: usize,
    /// `block_count`.
    pub layers: usize,
    /// `feed_forward_length`.
    pub ffn: usize,
    /// `context_length`.
    pub context: usize,
    /// `attention.head_count`.
    pub heads: usize,
    /// `attention.head_count_kv` (absent: = heads, as llama.cpp).
    pub kv_heads: usize,
    /// `attention.key_length` (absent: hidden / heads, as llama.cpp).
    pub head_dim: usize,
    /// Whether `key_length` was present (for reports).
    pub head_dim_from_key: bool,
    /// `rope.dimension_count`, when present.
    pub rope_dims: Option<usize>,
    /// `attention.layer_norm_rms_epsilon`.
    pub eps: f32,
    /// `rope.freq_base` (absent: 10000, as llama.cpp).
    pub rope_base: f32,
    /// Rows of `token_embd.weight`.
    pub vocab: usize,
    /// No `output.weight`: the output projection is the embedding.
    pub tied: bool,
    /// `tokenizer.ggml.bos_token_id`, when present.
    pub bos_token: Option<u32>,
    /// `tokenizer.ggml.add_bos_token` (absent: false).
    pub add_bos: bool,
}

/// Limits on hyper-parameters, so absurd files are refused before any work is sized from them.
const MAX_DIM: usize = 1 << 20;
const MAX_LAYERS: usize = 4096;
const MAX_HEADS: usize = 4096;

impl Config {
    /// Read and check the hyper-parameters.
    ///
    /// # Errors
    /// The architecture is not supported, a required key is missing or has the wrong type, or the
    /// values contradict each other or the tensors.
    pub fn from_gguf(g: &Gguf<'_>) -> Result<Config> {
        let arch_name = g.architecture().ok_or_else(|| {
            Error::input("general.architecture is missing: this GGUF does not say what model it holds")
        })?;
        let arch = Arch::from_name(&arch_name).ok_or_else(|| {
            Error::input(format!(
                "architecture {arch_name:?} is not supported; paritylab runs {}",
                Arch::supported_list()
            ))
        })?;
        let key = |k: &str| format!("{}.{k}", arch.name());
        let int = |k: &str, max: usize| -> Result<Option<usize>> {
            let full = key(k);
            match g.get(&full) {
                None => Ok(None),
                Some(v) => match v.as_u64().and_then(|x| usize::try_from(x).ok()) {
                    Some(x) if (1..=max).contains(&x) => Ok(Some(x)),
                    _ => Err(Error::input(format!("{full} is {}, expected an integer from 1 to {max}", show(v)))),
                },
            }
        };
        let required = |k: &str, max: usize| -> Result<usize> {
            int(k, max)?.ok_or_else(|| Error::input(format!("{} is missing (an integer from 1 to {max})", key(k))))
        };
        let float = |k: &str| -> Result<Option<f32>> {
            let full = key(k);
            match g.get(&full) {
                None => Ok(None),
                Some(v) => match v.as_f64() {
                    Some(x) if x.is_finite() && x > 0.0 => Ok(Some(x as f32)),
                    _ => Err(Error::input(format!("{full} is {}, expected a positive float", show(v)))),
                },
            }
        };

        let hidden = required("embedding_length", MAX_DIM)?;
        let layers = required("block_count", MAX_LAYERS)?;
        let ffn = required("feed_forward_length", MAX_DIM)?;
        let context = int("context_length", 1 << 24)?.unwrap_or(4096);
        let heads = required("attention.head_count", MAX_HEADS)?;
        let kv_heads = int("attention.head_count_kv", MAX_HEADS)?.unwrap_or(heads);
        let key_length = int("attention.key_length", MAX_DIM)?;
        let value_length = int("attention.value_length", MAX_DIM)?;
        let rope_dims = int("rope.dimension_count", MAX_DIM)?;
        let eps = float("attention.layer_norm_rms_epsilon")?.ok_or_else(|| {
            Error::input(format!(
                "{} is missing (the RMSNorm epsilon, e.g. 1e-6)",
                key("attention.layer_norm_rms_epsilon")
            ))
        })?;
        let rope_base = float("rope.freq_base")?.unwrap_or(10_000.0);

        if heads % kv_heads != 0 {
            return Err(Error::input(format!(
                "{} is {kv_heads}, expected a divisor of the head count {heads}",
                key("attention.head_count_kv")
            )));
        }
        let head_dim = key_length.unwrap_or(hidden / heads);
        if key_length.is_none() && hidden % heads != 0 {
            return Err(Error::input(format!(
                "{} is missing and {} ({hidden}) is not a multiple of the head count {heads}",
                key("attention.key_length"),
                key("embedding_length")
            )));
        }
        if let Some(v) = value_length {
            if v != head_dim {
                return Err(Error::input(format!(
                    "{} is {v}, expected {head_dim} (the key length): different key and value sizes are not supported",
                    key("attention.value_length")
                )));
            }
        }
        if head_dim % 2 != 0 {
            return Err(Error::input(format!(
                "the head size is {head_dim}, expected an even number (RoPE rotates pairs)"
            )));
        }
        if let Some(r) = rope_dims {
            if r != head_dim {
                return Err(Error::input(format!(
                    "{} is {r}, expected {head_dim} (the head size): partial rotary embeddings are not supported",
                    key("rope.dimension_count")
                )));
            }
        }
        if let Some(Value::String(s)) = g.get(&key("rope.scaling.type")) {
            let kind = s.lossy();
            if kind != "none" {
                return Err(Error::input(format!(
                    "{} is {kind:?}: RoPE scaling is not supported",
                    key("rope.scaling.type")
                )));
            }
        }

        let embd = g.require_tensor("token_embd.weight")?;
        if embd.dims.len() != 2 || embd.dims[0] != hidden as u64 {
            return Err(Error::input(format!(
                "token_embd.weight has dims {:?}, expected [{hidden}, vocab] ({} = {hidden})",
                embd.dims,
                key("embedding_length")
            )));
        }
        let vocab = usize::try_from(embd.dims[1]).ok().filter(|v| (1..=1 << 24).contains(v)).ok_or_else(|| {
            Error::input(format!(
                "token_embd.weight has {} rows, expected a vocabulary of 1 to 2^24 tokens",
                embd.dims[1]
            ))
        })?;
        let tied = g.tensor("output.weight").is_none();
        let bos_token =
            g.get("tokenizer.ggml.bos_token_id").and_then(Value::as_u64).and_then(|v| u32::try_from(v).ok());
        let add_bos = g.get("tokenizer.ggml.add_bos_token").and_then(Value::as_bool).unwrap_or(false);

        Ok(Config {
            arch,
            hidden,
            layers,
            ffn,
            context,
            heads,
            kv_heads,
            head_dim,
            head_dim_from_key: key_length.is_some(),
            rope_dims,
            eps,
            rope_base,
            vocab,
            tied,
            bos_token,
            add_bos,
        })
    }
}

impl Config {
    /// One line for people: `qwen3 · 2 layers · hidden 64 · 4 heads / 2 KV × 16 · FFN 128 · vocab 128`.
    pub fn describe(&self) -> String {
        format!(
            "{} · {} layer{} · hidden {} · {} heads / {} KV × {} · FFN {} · vocab {}",
            self.arch,
            self.layers,
            if self.layers == 1 { "" } else { "s" },
            self.hidden,
            self.heads,
            self.kv_heads,
            self.head_dim,
            self.ffn,
            self.vocab
        )
    }
}

/// A metadata value for an error message.
fn show(v: &Value<'_>) -> String {
    match v {
        Value::String(s) => format!("the string {:?}", s.lossy()),
        Value::Array(a) => format!("an array of {} {}", a.len(), a.elem_type()),
        other => format!("{other:?}"),
    }
}
