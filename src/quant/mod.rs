//! Weight types: block layouts and dequantisation to f32.
//!
//! Each `dequant_*` reproduces ggml's `dequantize_row_*` (ggml-quants.c) operation for operation, so
//! the f32 values are bit-equal to llama.cpp's and gguf-py's (tested against the independent vectors
//! in `shared/reference/quant`). Products are written in the same order as ggml, e.g. Q6_K's
//! `d * scale * q` is `(d * scale) * q`: float multiplication is not associative.

pub mod actq;
pub mod actq_rows;
pub mod blocks;
pub mod fast;
pub mod quantize;

use crate::ggml::GgmlType;
use crate::gguf::Tensor;
use crate::{Error, Result};
use blocks::*;

/// The types paritylab can decode.
pub const SUPPORTED: &[GgmlType] = &[
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::IQ4_NL,
    GgmlType::IQ4_XS,
];

/// Whether [`dequantize_row`] handles `ty`.
pub fn is_supported(ty: GgmlType) -> bool {
    SUPPORTED.contains(&ty)
}

/// The "unsupported type" error for tensor `name`.
pub fn unsupported(name: &str, ty: GgmlType) -> Error {
    Error::UnsupportedType {
        name: name.to_string(),
        type_name: ty.name(),
        supported: SUPPORTED.iter().map(|t| t.name()).collect::<Vec<_>>().join(", "),
    }
}

/// Decode `dst.len()` values of type `ty` from `src`, which must hold exactly that many values.
///
/// # Errors
/// The type is not supported, or `src` is not `ty.row_bytes(dst.len())` bytes long.
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<()> {
    let n = dst.len() as u64;
    let expected = ty.row_bytes(n);
    if expected != Some(src.len() as u64) {
        return Err(Error::DataLength {
            what: format!("{n} values"),
            type_name: ty.name(),
            expected: expected.unwrap_or(0),
            got: src.len() as u64,
        });
    }
    match ty {
        GgmlType::F32 => dequant_f32(src, dst),
        GgmlType::F16 => dequant_f16(src, dst),
        GgmlType::BF16 => dequant_bf16(src, dst),
        GgmlType::Q4_0 => dequant_q4_0(bytemuck::cast_slice(src), dst),
        GgmlType::Q4_1 => dequant_q4_1(bytemuck::cast_slice(src), dst),
        GgmlType::Q5_0 => dequant_q5_0(bytemuck::cast_slice(src), dst),
        GgmlType::Q5_1 => dequant_q5_1(bytemuck::cast_slice(src), dst),
        GgmlType::Q8_0 => dequant_q8_0(bytemuck::cast_slice(src), dst),
        GgmlType::Q2_K => dequant_q2_k(bytemuck::cast_slice(src), dst),
        GgmlType::Q3_K => dequant_q3_k(bytemuck::cast_slice(src), dst),
        GgmlType::Q4_K => dequant_q4_k(bytemuck::cast_slice(src), dst),
        GgmlType::Q5_K => dequant_q5_k(bytemuck::cast_slice(src), dst),
        GgmlType::Q6_K => dequant_q6_k(bytemuck::cast_slice(src), dst),
        GgmlType::IQ4_NL => dequant_iq4_nl(bytemuck::cast_slice(src), dst),
        GgmlType::IQ4_XS => dequant_iq4_xs(bytemuck::cast_slice(src), dst),
        other => return Err(unsupported("(row)", other)),
    }
    Ok(())
}

/// Decode row `row` of a tensor into `dst` (length = the tensor's row length).
pub fn dequantize_tensor_row(t: &Tensor<'_>, row: u64, dst: &mut [f32]) -> Result<()> {
    if !is_supported(t.ggml_type) {
        return Err(unsupported(t.name, t.ggml_type));
    }
    let row_bytes = t.ggml_type.row_bytes(t.row_len()).unwrap_or(0);
    if row >= t.n_rows() || dst.len() as u64 != t.row_len() {
        return Err(Error::input(format!(
            "row {row} of tensor {:?} (it has {} rows of {} values)",
            t.name,
            t.n_rows(),
            t.row_len()
        )));
    }
    // row < n_rows and the tensor's bytes are n_rows * row_bytes, so the range is in bounds.
    let start = (row * row_bytes) as usize;
    dequantize_row(t.ggml_type, &t.data[start..start + row_bytes as usize], dst)
}

/// Decode a whole tensor to f32. The output size is checked (and allocated fallibly) first.
pub fn dequantize_tensor(t: &Tensor<'_>) -> Result<Vec<f32>> {
    if !is_supported(t.ggml_type) {
        return Err(unsupported(t.name, t.ggml_type));
    }
    let n = usize::try_from(t.n_elements())
        .map_err(|_| Error::input(format!("tensor {:?} is too large to decode on this machine", t.name)))?;
    let mut out = try_alloc_f32(n, t.name)?;
    let row_len = t.row_len() as usize;
    if row_len == 0 {
        return Ok(out);
    }
    let row_bytes = t.ggml_type.row_bytes(t.row_len()).unwrap_or(0) as usize;
    for (dst, src) in out.chunks_exact_mut(row_len).zip(t.data.chunks_exact(row_bytes)) {
        dequantize_row(t.ggml_type, src, dst)?;
    }
    Ok(out)
}

/// A zeroed `Vec<f32>` of length `n`, or an error (instead of an abort) when memory is short.
pub fn try_alloc_f32(n: usize, what: &str) -> Result<Vec<f32>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        Error::input(format!("not enough memory to decode {what:?}: it needs {} MiB as f32", (n as u64 * 4) >> 20))
    })?;
    v.resize(n, 0.0);
    Ok(v)
}

// ---- plain float types -----------------------------------------------------------------------

fn dequant_f32(src: &[u8], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(4)) {
        *d = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
    }
}

fn dequant_f16(src: &[u8], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *d = f16_le([s[0], s[1]]);
    }
}

fn dequant_bf16(src: &[u8], dst: &mut [f32]) {
    // bf16 is the top half of an f32.
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *d = f32::from_bits(u32::from(u16::from_le_bytes([s[0], s[1]])) << 16);
    }
}

// ---- 32-value blocks --------------------------------------------------------------------------

fn dequant_q4_0(blocks: &[BlockQ4_0], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK)) {
        let d = f16_le(b.d);
        for j in 0..QK / 2 {
            let x0 = i32::from(b.qs[j] & 0x0F) - 8;
            let x1 = i32::from(b.qs[j] >> 4) - 8;
            y[j] = x0 as f32 * d;
            y[j + QK / 2] = x1 as f32 * d;
        }
    }
}

fn dequant_q4_1(blocks: &[BlockQ4_1], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK)) {
        let (d, m) = (f16_le(b.d), f16_le(b.m));
        for j in 0..QK / 2 {
            let x0 = i32::from(b.qs[j] & 0x0F);
            let x1 = i32::from(b.qs[j] >> 4);
            y[j] = x0 as f32 * d + m;
            y[j + QK / 2] = x1 as f32 * d + m;
        }
    }
}

fn dequant_q5_0(blocks: &[BlockQ5_0], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK)) {
        let d = f16_le(b.d);
        let qh = u32::from_le_bytes(b.qh);
        for j in 0..QK / 2 {
            // Bit j of qh is the fifth bit of value j, bit j + 16 that of value j + 16.
            let xh_0 = ((qh >> j) << 4) & 0x10;
            let xh_1 = (qh >> (j + 12)) & 0x10;
            let x0 = (i32::from(b.qs[j] & 0x0F) | xh_0 as i32) - 16;
            let x1 = (i32::from(b.qs[j] >> 4) | xh_1 as i32) - 16;
            y[j] = x0 as f32 * d;
            y[j + QK / 2] = x1 as f32 * d;
        }
    }
}

fn dequant_q5_1(blocks: &[BlockQ5_1], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK)) {
        let (d, m) = (f16_le(b.d), f16_le(b.m));
        let qh = u32::from_le_bytes(b.qh);
        for j in 0..QK / 2 {
            let xh_0 = ((qh >> j) << 4) & 0x10;
            let xh_1 = (qh >> (j + 12)) & 0x10;
            let x0 = i32::from(b.qs[j] & 0x0F) | xh_0 as i32;
            let x1 = i32::from(b.qs[j] >> 4) | xh_1 as i32;
            y[j] = x0 as f32 * d + m;
            y[j + QK / 2] = x1 as f32 * d + m;
        }
    }
}

fn dequant_q8_0(blocks: &[BlockQ8_0], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK)) {
        let d = f16_le(b.d);
        for (yj, &q) in y.iter_mut().zip(&b.qs) {
            *yj = f32::from(q as i8) * d;
        }
    }
}

fn dequant_iq4_nl(blocks: &[BlockIq4Nl], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK)) {
        let d = f16_le(b.d);
        for j in 0..QK / 2 {
            y[j] = d * f32::from(KVALUES_IQ4NL[usize::from(b.qs[j] & 0x0F)]);
            y[j + QK / 2] = d * f32::from(KVALUES_IQ4NL[usize::from(b.qs[j] >> 4)]);
        }
    }
}

// ---- 256-value super-blocks -------------------------------------------------------------------

fn dequant_q2_k(blocks: &[BlockQ2K], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let (d, min) = (f16_le(b.d), f16_le(b.dmin));
        let mut out = 0;
        let mut is = 0;
        // Two halves of 128 values; each byte of a 32-byte slice of qs holds 4 values (2 bits each).
        for q in b.qs.chunks_exact(32) {
            for shift in [0, 2, 4, 6] {
                for half in [&q[..16], &q[16..]] {
                    let sc = b.scales[is];
                    is += 1;
                    let dl = d * f32::from(sc & 0x0F);
                    let ml = min * f32::from(sc >> 4);
                    for &ql in half {
                        y[out] = dl * f32::from((ql >> shift) & 3) - ml;
                        out += 1;
                    }
                }
            }
        }
    }
}

/// Unpack Q3_K's twelve bytes of 6-bit scales into 16 signed scales (still offset by 32).
fn q3_k_scales(packed: &[u8; K_SCALE_SIZE]) -> [i8; 16] {
    const KMASK1: u32 = 0x0303_0303;
    const KMASK2: u32 = 0x0f0f_0f0f;
    let a0 = u32::from_le_bytes([packed[0], packed[1], packed[2], packed[3]]);
    let a1 = u32::from_le_bytes([packed[4], packed[5], packed[6], packed[7]]);
    let tmp = u32::from_le_bytes([packed[8], packed[9], packed[10], packed[11]]);
    let aux = [
        (a0 & KMASK2) | ((tmp & KMASK1) << 4),
        (a1 & KMASK2) | (((tmp >> 2) & KMASK1) << 4),
        ((a0 >> 4) & KMASK2) | (((tmp >> 4) & KMASK1) << 4),
        ((a1 >> 4) & KMASK2) | (((tmp >> 6) & KMASK1) << 4),
    ];
    let mut out = [0i8; 16];
    for (i, a) in aux.iter().enumerate() {
        for (k, byte) in a.to_le_bytes().iter().enumerate() {
            out[i * 4 + k] = *byte as i8;
        }
    }
    out
}

fn dequant_q3_k(blocks: &[BlockQ3K], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d_all = f16_le(b.d);
        let scales = q3_k_scales(&b.scales);
        let mut out = 0;
        let mut is = 0;
        let mut m: u8 = 1; // the hmask bit of the current group of 32
        for q in b.qs.chunks_exact(32) {
            for shift in [0, 2, 4, 6] {
                for (lo, hm) in [(&q[..16], &b.hmask[..16]), (&q[16..], &b.hmask[16..])] {
                    let dl = d_all * f32::from(i16::from(scales[is]) - 32);
                    is += 1;
                    for (&ql, &h) in lo.iter().zip(hm) {
                        let v = i32::from((ql >> shift) & 3) - if h & m != 0 { 0 } else { 4 };
                        y[out] = dl * v as f32;
                        out += 1;
                    }
                }
                m = m.wrapping_shl(1);
            }
        }
    }
}

/// Scale and min number `j` (0..8) of Q4_K/Q5_K's 12 packed bytes (ggml's `get_scale_min_k4`).
#[inline]
pub(crate) fn scale_min_k4(j: usize, q: &[u8; K_SCALE_SIZE]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

fn dequant_q4_k(blocks: &[BlockQ4K], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let (d, min) = (f16_le(b.d), f16_le(b.dmin));
        // Four chunks of 64 values: 32 low nibbles then 32 high nibbles of 32 bytes.
        for (c, (q, y)) in b.qs.chunks_exact(32).zip(y.chunks_exact_mut(64)).enumerate() {
            let (sc1, m1) = scale_min_k4(2 * c, &b.scales);
            let (sc2, m2) = scale_min_k4(2 * c + 1, &b.scales);
            let (d1, m1) = (d * f32::from(sc1), min * f32::from(m1));
            let (d2, m2) = (d * f32::from(sc2), min * f32::from(m2));
            for l in 0..32 {
                y[l] = d1 * f32::from(q[l] & 0x0F) - m1;
                y[l + 32] = d2 * f32::from(q[l] >> 4) - m2;
            }
        }
    }
}

fn dequant_q5_k(blocks: &[BlockQ5K], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let (d, min) = (f16_le(b.d), f16_le(b.dmin));
        for (c, (ql, y)) in b.qs.chunks_exact(32).zip(y.chunks_exact_mut(64)).enumerate() {
            let (sc1, m1) = scale_min_k4(2 * c, &b.scales);
            let (sc2, m2) = scale_min_k4(2 * c + 1, &b.scales);
            let (d1, m1) = (d * f32::from(sc1), min * f32::from(m1));
            let (d2, m2) = (d * f32::from(sc2), min * f32::from(m2));
            // The fifth bits of chunk c live in bits 2c and 2c+1 of qh.
            let (u1, u2) = (1u8 << (2 * c), 2u8 << (2 * c));
            for l in 0..32 {
                let h1 = if b.qh[l] & u1 != 0 { 16 } else { 0 };
                let h2 = if b.qh[l] & u2 != 0 { 16 } else { 0 };
                y[l] = d1 * f32::from((ql[l] & 0x0F) + h1) - m1;
                y[l + 32] = d2 * f32::from((ql[l] >> 4) + h2) - m2;
            }
        }
    }
}

fn dequant_q6_k(blocks: &[BlockQ6K], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_le(b.d);
        // Two halves of 128 values, each from 64 bytes of ql, 32 of qh and 8 scales.
        for (h, y) in y.chunks_exact_mut(128).enumerate() {
            let ql = &b.ql[64 * h..64 * h + 64];
            let qh = &b.qh[32 * h..32 * h + 32];
            let sc = &b.scales[8 * h..8 * h + 8];
            for l in 0..32 {
                let is = l / 16;
                let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i32 - 32;
                let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                let s = |k: usize| f32::from(sc[is + k] as i8);
                y[l] = d * s(0) * q1 as f32;
                y[l + 32] = d * s(2) * q2 as f32;
                y[l + 64] = d * s(4) * q3 as f32;
                y[l + 96] = d * s(6) * q4 as f32;
            }
        }
    }
}

fn dequant_iq4_xs(blocks: &[BlockIq4Xs], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_le(b.d);
        let scales_h = u16::from_le_bytes(b.scales_h);
        for (ib, (qs, y)) in b.qs.chunks_exact(16).zip(y.chunks_exact_mut(32)).enumerate() {
            let ls =
                ((b.scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0F) as i32 | ((((scales_h >> (2 * ib)) & 3) as i32) << 4);
            let dl = d * (ls - 32) as f32;
            for j in 0..16 {
                y[j] = dl * f32::from(KVALUES_IQ4NL[usize::from(qs[j] & 0x0F)]);
                y[j + 16] = dl * f32::from(KVALUES_IQ4NL[usize::from(qs[j] >> 4)]);
            }
        }
    }
}

#[cfg(test)]
mod tests;
