#![no_main]
//! See `paritylab::fuzzing::tokenizer`.
mod budget;
mod fixtures;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // The fixtures are built once, outside the count.
    let tokenizers = &fixtures::get().tokenizers;
    budget::within("tokenizer", data, || paritylab::fuzzing::tokenizer(tokenizers, data))
});
