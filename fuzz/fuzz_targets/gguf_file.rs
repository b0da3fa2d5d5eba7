#![no_main]
//! See `paritylab::fuzzing::gguf_file`.
mod budget;

libfuzzer_sys::fuzz_target!(|data: &[u8]| budget::within("gguf_file", data, || paritylab::fuzzing::gguf_file(data)));
