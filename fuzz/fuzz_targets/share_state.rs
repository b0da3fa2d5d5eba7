#![no_main]
//! See `paritylab::fuzzing::share_state`.
mod budget;

libfuzzer_sys::fuzz_target!(|data: &[u8]| budget::within("share_state", data, || paritylab::fuzzing::share_state(data)));
