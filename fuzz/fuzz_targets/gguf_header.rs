#![no_main]
//! See `paritylab::fuzzing::gguf_header`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| paritylab::fuzzing::gguf_header(data));
