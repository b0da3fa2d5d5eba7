//! safetensors files as raw tensors: F16, BF16, F32 and F64, with the `__metadata__` strings.

use super::raw::{check_budget, RawDtype, RawTensor};
use crate::{Error, Result};
use safetensors::tensor::Dtype;
use std::collections::BTreeMap;

/// Whether the bytes start like a safetensors file (a plausible header length, then `{`).
pub fn looks_like(bytes: &[u8]) -> bool {
    match bytes.get(..9) {
        Some(h) => {
            let n = u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
            h[8] == b'{' && n >= 2 && n <= bytes.len() as u64 - 8
        }
        None => false,
    }
}

/// Every tensor of a safetensors file (in file order) and its metadata.
pub fn read(file: &str, bytes: &[u8]) -> Result<(Vec<RawTensor>, BTreeMap<String, String>)> {
    if bytes.len() < 8 {
        return Err(Error::input(format!(
            "{file}: a safetensors file starts with an 8-byte header length, but the file has only {} bytes",
            bytes.len()
        )));
    }
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| bad_header(file, bytes, e))?;
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| bad_header(file, bytes, e))?;
    let metadata: BTreeMap<String, String> =
        meta.metadata().as_ref().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
    // File order (by data offset), so repeated stages resolve the same way every time.
    let mut names: Vec<(usize, String)> =
        meta.tensors().iter().map(|(name, info)| (info.data_offsets.0, name.clone())).collect();
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    let mut total = 0usize;
    for (_, name) in names {
        let view = st.tensor(&name).map_err(|e| Error::input(format!("{file}: tensor {name:?}: {e}")))?;
        let (dtype, width) = match view.dtype() {
            Dtype::F16 => (RawDtype::F16, 2),
            Dtype::BF16 => (RawDtype::BF16, 2),
            Dtype::F32 => (RawDtype::F32, 4),
            Dtype::F64 => (RawDtype::F64, 8),
            other => {
                return Err(Error::input(format!(
                    "{file}: tensor {name:?} has dtype {other:?}; activation dumps hold F32, F16, BF16 or F64"
                )))
            }
        };
        let data = view.data();
        if data.len() % width != 0 {
            return Err(Error::input(format!(
                "{file}: tensor {name:?}: {} bytes is not a whole number of values",
                data.len()
            )));
        }
        check_budget(file, total, data.len() / width)?;
        total += data.len() / width;
        let values: Vec<f64> = match dtype {
            RawDtype::F16 => data.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f64()).collect(),
            RawDtype::BF16 => data.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f64()).collect(),
            RawDtype::F32 => {
                data.chunks_exact(4).map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect()
            }
            RawDtype::F64 => data
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        };
        out.push(RawTensor::dense(name, view.shape().to_vec(), dtype, values)?);
    }
    Ok((out, metadata))
}

fn bad_header(file: &str, bytes: &[u8], e: safetensors::SafeTensorError) -> Error {
    let declared = bytes.get(..8).map(|h| u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]));
    let detail = match declared {
        Some(n) if n > bytes.len() as u64 - 8 => format!(
            "its header length field says {n} bytes, but only {} bytes follow (a truncated file, or not safetensors)",
            bytes.len() - 8
        ),
        Some(n) => diagnose(bytes, n as usize).unwrap_or_else(|| e.to_string()),
        None => e.to_string(),
    };
    Error::input(format!("{file}: not a readable safetensors file: {detail}"))
}

/// Name the tensor whose entry does not fit: its dtype and shape against its byte range, or a
/// range past the end of the data.
fn diagnose(bytes: &[u8], header_len: usize) -> Option<String> {
    let header: serde_json::Value = serde_json::from_slice(bytes.get(8..8usize.checked_add(header_len)?)?).ok()?;
    let data_len = bytes.len() - 8 - header_len;
    for (name, t) in header.as_object()? {
        if name == "__metadata__" {
            continue;
        }
        let dtype = t.get("dtype")?.as_str()?;
        let width: u64 = match dtype {
            "F64" | "I64" | "U64" => 8,
            "F32" | "I32" | "U32" => 4,
            "F16" | "BF16" | "I16" | "U16" => 2,
            "I8" | "U8" | "BOOL" | "F8_E4M3" | "F8_E5M2" => 1,
            _ => return Some(format!("tensor {name:?} has unknown dtype {dtype}")),
        };
        let shape: Vec<u64> = t.get("shape")?.as_array()?.iter().map(|d| d.as_u64()).collect::<Option<_>>()?;
        let offsets: Vec<u64> = t.get("data_offsets")?.as_array()?.iter().map(|d| d.as_u64()).collect::<Option<_>>()?;
        let [begin, end] = offsets[..] else { continue };
        let need = shape.iter().try_fold(width, |acc, &d| acc.checked_mul(d));
        if end < begin || end > data_len as u64 {
            return Some(format!(
                "tensor {name:?} claims bytes {begin}..{end} of a {data_len}-byte data section (a truncated file?)"
            ));
        }
        if need != Some(end - begin) {
            return Some(format!(
                "tensor {name:?}: dtype {dtype} with shape {shape:?} needs {} bytes, but it holds {} (the dtype does \
                 not match the data?)",
                need.map_or("too many".to_string(), |n| n.to_string()),
                end - begin
            ));
        }
    }
    None
}
