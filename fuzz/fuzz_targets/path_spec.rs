#![no_main]
//! See `paritylab::fuzzing::path_spec`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| paritylab::fuzzing::path_spec(data));
