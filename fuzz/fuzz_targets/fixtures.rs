//! What the tokenizer and dump targets run against (`paritylab::fuzzing::Fixtures`), built once
//! from `../shared/reference` (or `PARITYLAB_REFERENCE`).

use paritylab::fuzzing::Fixtures;
use std::path::PathBuf;
use std::sync::OnceLock;

fn reference(rel: &str) -> Vec<u8> {
    let dir = std::env::var_os("PARITYLAB_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference"));
    let path = dir.join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

pub fn get() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| Fixtures::build(reference).expect("the reference models"))
}
