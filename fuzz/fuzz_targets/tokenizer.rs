#![no_main]
//! See `paritylab::fuzzing::tokenizer`.
mod budget;
mod fixtures;

use paritylab::tokenizer::Tokenizer;
use std::sync::OnceLock;

static TOKENIZERS: OnceLock<Vec<Tokenizer>> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // The fixtures are built once, outside the count.
    let tokenizers = TOKENIZERS.get_or_init(fixtures::tokenizers);
    budget::within("tokenizer", data, || paritylab::fuzzing::tokenizer(tokenizers, data))
});
