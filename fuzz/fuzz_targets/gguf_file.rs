#![no_main]
//! See `paritylab::fuzzing::gguf_file`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| paritylab::fuzzing::gguf_file(data));
