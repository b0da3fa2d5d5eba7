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
