//! Quantisation from f32, for the synthetic model generator. Each follows ggml's reference
//! quantiser (`quantize_row_*_ref` in ggml-quants.c, `ggml_fp32_to_bf16`) so the bytes equal what
//! llama.cpp and gguf-py write (tested against `shared/reference/quant`).

use super::blocks::{BlockQ4_0, BlockQ8_0, QK};
use crate::ggml::GgmlType;
use crate::{Error, Result};

/// Types [`quantize_row`] can write.
pub const QUANTIZABLE: &[GgmlType] = &[GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0];

/// Encode `src` as `ty`, appending to `out`.
///
/// # Errors
/// `ty` is not in [`QUANTIZABLE`], or `src.len()` is not a whole number of blocks.
pub fn quantize_row(ty: GgmlType, src: &[f32], out: &mut Vec<u8>) -> Result<()> {
    if !(src.len() as u64).is_multiple_of(ty.block_size()) {
        return Err(Error::input(format!(
            "{} values cannot be stored as {ty}: it needs a multiple of {}",
            src.len(),
            ty.block_size()
        )));
    }
    match ty {
        GgmlType::F32 => src.iter().for_each(|x| out.extend(x.to_le_bytes())),
        GgmlType::F16 => src.iter().for_each(|&x| out.extend(half::f16::from_f32(x).to_bits().to_le_bytes())),
        GgmlType::BF16 => src.iter().for_each(|&x| out.extend(f32_to_bf16(x).to_le_bytes())),
        GgmlType::Q8_0 => {
            for x in src.chunks_exact(QK) {
                out.extend_from_slice(bytemuck::bytes_of(&q8_0_block(x)));
            }
        }
        GgmlType::Q4_0 => {
            for x in src.chunks_exact(QK) {
                out.extend_from_slice(bytemuck::bytes_of(&q4_0_block(x)));
            }
        }
        other => {
            return Err(Error::input(format!(
                "cannot write {other} weights (writable: {})",
                QUANTIZABLE.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
            )))
        }
    }
    Ok(())
}

/// ggml's `ggml_compute_fp32_to_bf16`: round to nearest even, NaN kept quiet.
pub fn f32_to_bf16(x: f32) -> u16 {
    let u = x.to_bits();
    if (u & 0x7fff_ffff) > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    ((u + (0x7fff + ((u >> 16) & 1))) >> 16) as u16
}

fn f16_bytes(x: f32) -> [u8; 2] {
    half::f16::from_f32(x).to_bits().to_le_bytes()
}

/// `quantize_row_q8_0_ref`: d = max|x| / 127, q = round(x / d).
fn q8_0_block(x: &[f32]) -> BlockQ8_0 {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0u8; QK];
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = (v * id).round() as i8 as u8;
    }
    BlockQ8_0 { d: f16_bytes(d), qs }
}

/// `quantize_row_q4_0_ref`: d = (the value of largest magnitude) / -8, q = min(15, x / d + 8.5).
fn q4_0_block(x: &[f32]) -> BlockQ4_0 {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let q = |v: f32| ((v * id + 8.5) as i8).min(15) as u8;
    let mut qs = [0u8; QK / 2];
    for j in 0..QK / 2 {
        qs[j] = q(x[j]) | (q(x[j + QK / 2]) << 4);
    }
    BlockQ4_0 { d: f16_bytes(d), qs }
}
