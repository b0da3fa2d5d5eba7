#![no_main]
//! See `paritylab::fuzzing::dump_files`.
mod budget;
mod fixtures;

use paritylab::import::ModelShape;
use std::sync::OnceLock;

static SHAPE: OnceLock<ModelShape> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // The fixture is built once, outside the count.
    let shape = SHAPE.get_or_init(fixtures::shape);
    budget::within("dump_files", data, || paritylab::fuzzing::dump_files(shape, data))
});
