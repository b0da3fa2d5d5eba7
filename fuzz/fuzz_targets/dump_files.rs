#![no_main]
//! See `paritylab::fuzzing::dump_files`.
mod fixtures;

use paritylab::import::ModelShape;
use std::sync::OnceLock;

static SHAPE: OnceLock<ModelShape> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| paritylab::fuzzing::dump_files(SHAPE.get_or_init(fixtures::shape), data));
