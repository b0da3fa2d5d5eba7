//! Trace dumps: every recorded stage as one tensor of a safetensors file, the format other projects
//! can write too (see the README's "Dump format").
//!
//! - Tensor names: `tok_embd`, `blk.{i}.{stage}` (stages as in [`crate::trace::Stage`]),
//!   `result_norm`, `result_output`.
//! - Shapes: `[T, n]` (first dimension = positions); the attention matrices `blk.{i}.kq` (scaled
//!   scores) and `blk.{i}.kq_softmax` (probabilities) are `[n_head, T, T]`, row = query position,
//!   masked (future) entries 0.
//! - dtype F32, or F64 for a path computed in f64.
//! - `__metadata__`: `format` = `paritylab-dump`, `format_version` = `1`, `token_ids` (JSON array),
//!   `path` (the PathSpec as JSON), `path_text` (its text form), `model_sha256` (hex of the GGUF
//!   file), `architecture`.

use crate::path::PathSpec;
use crate::trace::Trace;
use crate::{Error, Result};
use safetensors::tensor::{Dtype, TensorView};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

pub const FORMAT: &str = "paritylab-dump";
pub const FORMAT_VERSION: &str = "1";

/// Hex SHA-256 of some bytes (a model file's fingerprint).
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// What identifies the run in a dump's metadata.
pub struct DumpInfo<'a> {
    pub path: &'a PathSpec,
    pub model_sha256: &'a str,
    pub architecture: &'a str,
}

/// The trace as a safetensors file.
pub fn write(trace: &Trace, info: &DumpInfo<'_>) -> Result<Vec<u8>> {
    let f64_values = trace.is_f64();
    let mut buffers: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(trace.ids().len());
    for &id in trace.ids() {
        let Some((shape, values)) = trace.dense(id) else { continue };
        let bytes: Vec<u8> = if f64_values {
            values.iter().flat_map(|v| v.to_le_bytes()).collect()
        } else {
            values.iter().flat_map(|&v| (v as f32).to_le_bytes()).collect()
        };
        buffers.push((id.name(), shape, bytes));
    }
    let dtype = if f64_values { Dtype::F64 } else { Dtype::F32 };
    let views = buffers
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(dtype, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::input(format!("cannot write {name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let token_ids = serde_json::to_string(&trace.tokens).map_err(Error::input)?;
    let path_json = serde_json::to_string(info.path).map_err(Error::input)?;
    let metadata: HashMap<String, String> = [
        ("format", FORMAT.to_string()),
        ("format_version", FORMAT_VERSION.to_string()),
        ("token_ids", token_ids),
        ("path", path_json),
        ("path_text", info.path.to_text()),
        ("model_sha256", info.model_sha256.to_string()),
        ("architecture", info.architecture.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let file = safetensors::serialize(views, Some(metadata))
        .map_err(|e| Error::input(format!("cannot write the dump: {e}")))?;
    Ok(sorted_metadata(file))
}

/// The same file with its `__metadata__` keys in sorted order (the safetensors writer takes them
/// from a HashMap, whose order changes from run to run): one trace, one dump, byte for byte. The
/// header keeps its length (same keys and values, another order).
fn sorted_metadata(mut file: Vec<u8>) -> Vec<u8> {
    let Some(n) = file.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_le_bytes) else {
        return file;
    };
    let Some(end) = usize::try_from(n).ok().and_then(|n| n.checked_add(8)).filter(|&e| e <= file.len()) else {
        return file;
    };
    let Ok(mut header) = serde_json::from_slice::<serde_json::Value>(&file[8..end]) else { return file };
    if let Some(serde_json::Value::Object(meta)) = header.get_mut("__metadata__") {
        let sorted: std::collections::BTreeMap<String, serde_json::Value> = std::mem::take(meta).into_iter().collect();
        meta.extend(sorted);
    }
    match serde_json::to_vec(&header) {
        Ok(text) if 8 + text.len() <= end => {
            file[8..8 + text.len()].copy_from_slice(&text);
            file[8 + text.len()..end].fill(b' ');
            file
        }
        _ => file,
    }
}
