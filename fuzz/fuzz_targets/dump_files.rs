#![no_main]
//! See `paritylab::fuzzing::dump_files`.
mod budget;
mod fixtures;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // The fixture is built once, outside the count.
    let shape = &fixtures::get().shape;
    budget::within("dump_files", data, || paritylab::fuzzing::dump_files(shape, data))
});
