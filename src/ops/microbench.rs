//! The matmul micro-benchmark (`paritylab bench matmul`, `Session.bench_matmul` in the page's
//! worker): the projection kernels alone, on SmolLM2-135M's shapes, in GFLOP/s (f32 work: the `hf`
//! path decodes weight rows to f32 and multiplies in f32) and GOP/s (integer work: the `llama.cpp`
//! path's 8-bit products, counting a multiply and an add per weight and position, as FLOP/s
//! does). Run it on one thread (`--threads 1`, or the single-threaded wasm build) to read it per
//! core against the SIMD128 peak (4 f32 lanes, separate multiply and add: 8 FLOP per cycle; an
//! `i32x4.dot_i16x8_s` does 8 multiply-adds: 16 OP per cycle).

use super::matvec::{matmul, DenseCache};
use crate::ggml::GgmlType;
use crate::model::Matrix;
use crate::path::{ActivationQuant, Precision, Projection};
use crate::quant::quantize::quantize_row;
use crate::synth::SplitMix64;
use crate::Result;

/// One measured kernel.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KernelSpeed {
    /// `hf` (f32 work) or `llama.cpp` (8-bit integer work).
    pub path: &'static str,
    pub weights: String,
    pub rows: usize,
    pub cols: usize,
    pub positions: usize,
    /// Median seconds per matmul.
    pub seconds: f64,
    /// `2 * rows * cols * positions / seconds / 1e9`: GFLOP/s for `hf`, GOP/s for `llama.cpp`.
    pub g_per_s: f64,
    pub unit: &'static str,
    pub rounds: usize,
}

/// The cases: SmolLM2-135M's FFN shape (1536 x 576) for one position (decoding) and for 64 (a
/// prompt), on the weight types of its Q4_1 file (and F32 for the f32 kernel alone).
pub fn cases() -> Vec<(&'static str, GgmlType, usize)> {
    let mut out = Vec::new();
    for positions in [1, 64] {
        out.push(("hf", GgmlType::F32, positions));
        out.push(("hf", GgmlType::Q4_1, positions));
        out.push(("llama.cpp", GgmlType::Q4_1, positions));
        out.push(("llama.cpp", GgmlType::Q8_0, positions));
    }
    out
}

/// Time every case: each is repeated until `budget_ms` has passed (at least 3 times), median
/// reported. `now` is a millisecond clock.
///
/// # Errors
/// Only if a kernel refuses its own synthetic input (a bug).
pub fn run(now: &dyn Fn() -> f64, budget_ms: f64) -> Result<Vec<KernelSpeed>> {
    let (rows, cols) = (1536, 576);
    let mut rng = SplitMix64::new(2026);
    let mut uniform = move || ((rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2;
    let values: Vec<f32> = (0..rows * cols).map(|_| uniform()).collect();
    let xs: Vec<f32> = (0..64 * cols).map(|_| uniform() * 10.0).collect();
    let mut out = Vec::new();
    for (path, ty, positions) in cases() {
        let mut bytes = Vec::new();
        if ty == GgmlType::Q4_1 {
            // No Q4_1 writer: random nibbles under a small scale and min (f16 1/64 and -1/128).
            let mut bits = SplitMix64::new(7);
            for _ in 0..rows * cols / 32 {
                bytes.extend([0x00, 0x24, 0x00, 0xa0]);
                bytes.extend((0..16).map(|_| bits.next_u64() as u8));
            }
        } else {
            for row in values.chunks_exact(cols) {
                quantize_row(ty, row, &mut bytes)?;
            }
        }
        let w = Matrix { name: "bench", ggml_type: ty, rows, cols, data: &bytes };
        let rounding = if path == "llama.cpp" { ActivationQuant::LlamaCpp } else { ActivationQuant::None };
        let x = &xs[..positions * cols];
        let mut y = vec![0f32; positions * rows];
        let mut cache = DenseCache::default();
        let mut times = Vec::new();
        let started = now();
        while times.len() < 3 || (now() - started < budget_ms && times.len() < 10_000) {
            let t = now();
            matmul(&mut y, &w, x, Projection::Transposed, Precision::F32, rounding, &mut cache)?;
            times.push((now() - t) / 1e3);
        }
        times.sort_by(f64::total_cmp);
        let seconds = times[times.len() / 2].max(1e-9);
        out.push(KernelSpeed {
            path,
            weights: ty.name().to_string(),
            rows,
            cols,
            positions,
            seconds,
            g_per_s: 2.0 * (rows * cols * positions) as f64 / seconds / 1e9,
            unit: if path == "hf" { "GFLOP/s" } else { "GOP/s" },
            rounds: times.len(),
        });
    }
    Ok(out)
}
