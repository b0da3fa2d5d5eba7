#![no_main]
//! See `paritylab::fuzzing::tokenizer`.
mod fixtures;

use paritylab::tokenizer::Tokenizer;
use std::sync::OnceLock;

static TOKENIZERS: OnceLock<Vec<Tokenizer>> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    paritylab::fuzzing::tokenizer(TOKENIZERS.get_or_init(fixtures::tokenizers), data)
});
