#![no_main]
//! See `paritylab::fuzzing::gguf_header`.
mod budget;

libfuzzer_sys::fuzz_target!(|data: &[u8]| budget::within("gguf_header", data, || paritylab::fuzzing::gguf_header(data)));
