#![no_main]
//! See `paritylab::fuzzing::share_state`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| paritylab::fuzzing::share_state(data));
