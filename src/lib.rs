//! paritylab: run two forward paths of one decoder LLM on identical GGUF weights and show where
//! and why they diverge.
//!
//! This crate is the engine shared by the CLI (`src/bin/paritylab`) and the web page (`wasm`):
//! - [`gguf`]: the GGUF container (reader, writer);
//! - [`ggml`]: the tensor types and their block geometry;
//! - [`quant`]: block layouts and dequantisation to f32;
//! - [`inspect`]: a serialisable description of a GGUF file (what `paritylab inspect --json` prints
//!   and what the page shows), and per-tensor statistics;
//! - [`model`]: a decoder's [`model::Config`] and [`model::Weights`] read from a GGUF;
//! - [`path`]: [`path::PathSpec`], the conventions a forward path follows, and its presets;
//! - [`forward`]: the one forward pass, recording every stage in a [`trace::Trace`];
//! - [`ops`]: the operations (dot products, projections, RMSNorm, RoPE, softmax, SiLU);
//! - [`memory`]: what a load or a run will take, checked before it starts;
//! - [`synth`]: synthetic models from a spec and a seed (the page's default: the source issue's
//!   reproducer).

pub mod arch;
pub mod diff;
pub mod dump;
pub mod error;
pub mod float;
pub mod forward;
pub mod fuzzing;
pub mod ggml;
pub mod gguf;
pub mod import;
pub mod inspect;
pub mod json;
pub mod logits;
pub mod memory;
pub mod model;
pub mod ops;
pub mod path;
pub mod quant;
pub mod share;
pub mod synth;
pub mod tokenizer;
pub mod trace;

#[cfg(target_arch = "wasm32")]
pub mod wasm;

pub use error::{Error, Result};
