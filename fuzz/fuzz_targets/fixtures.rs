//! What the tokenizer and dump targets run against, built once from `../shared/reference`
//! (or `PARITYLAB_REFERENCE`).

use paritylab::gguf::Gguf;
use paritylab::import::ModelShape;
use paritylab::model::Model;
use paritylab::tokenizer::Tokenizer;
use std::path::PathBuf;

fn reference(rel: &str) -> Vec<u8> {
    let dir = std::env::var_os("PARITYLAB_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference"));
    let path = dir.join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[allow(dead_code)]
pub fn tokenizers() -> Vec<Tokenizer> {
    paritylab::fuzzing::TOKENIZER_FILES
        .iter()
        .map(|f| {
            let bytes = reference(f);
            let g = Gguf::parse(&bytes).expect("a reference GGUF");
            Tokenizer::from_gguf(&g).expect("its tokenizer").expect("a vocabulary")
        })
        .collect()
}

#[allow(dead_code)]
pub fn shape() -> ModelShape {
    let bytes = reference("gguf/qwen3_tiny_tied.q8_0.gguf");
    ModelShape::of(&Model::from_bytes(&bytes).expect("the reference model"))
}
