#![no_main]
//! See `paritylab::fuzzing::path_spec`.
mod budget;

libfuzzer_sys::fuzz_target!(|data: &[u8]| budget::within("path_spec", data, || paritylab::fuzzing::path_spec(data)));
