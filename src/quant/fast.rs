//! Row decoding with eight lanes at a time ([`F32x8`]: SIMD128 on wasm32, SSE2 on x86-64): the
//! bytes of a block are unpacked to integer codes with plain integer arithmetic, then converted,
//! scaled and offset eight values at a time. Every value is computed with the scalar decoder's
//! operations in the scalar decoder's order, so [`dequantize_row_fast`] returns exactly the bits of
//! [`super::dequantize_row`], its slow twin (tested on every type). Types without a vector decoder
//! here use the scalar one.

use super::blocks::*;
use super::{dequantize_row, scale_min_k4};
use crate::ggml::GgmlType;
use crate::ops::simd::{chunk8_mut, F32x8};
use crate::Result;

/// The types decoded with vectors; the others fall back to the scalar decoder.
pub const VECTOR_TYPES: &[GgmlType] = &[
    GgmlType::F32,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q6_K,
    GgmlType::IQ4_NL,
];

/// Decode `dst.len()` values of type `ty` from `src`; the same result as [`dequantize_row`].
///
/// # Errors
/// As [`dequantize_row`]: an unsupported type or a wrong byte length.
pub fn dequantize_row_fast(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<()> {
    let whole = |per_block: usize, block_bytes: usize| {
        dst.len().is_multiple_of(per_block) && src.len() == dst.len() / per_block * block_bytes
    };
    match ty {
        GgmlType::F32 if src.len() == 4 * dst.len() => {
            for (d, s) in dst.iter_mut().zip(src.chunks_exact(4)) {
                *d = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
            }
        }
        GgmlType::Q4_0 if whole(QK, 18) => q4_0(bytemuck::cast_slice(src), dst),
        GgmlType::Q4_1 if whole(QK, 20) => q4_1(bytemuck::cast_slice(src), dst),
        GgmlType::Q5_0 if whole(QK, 22) => q5_0(bytemuck::cast_slice(src), dst),
        GgmlType::Q5_1 if whole(QK, 24) => q5_1(bytemuck::cast_slice(src), dst),
        GgmlType::Q8_0 if whole(QK, 34) => q8_0(bytemuck::cast_slice(src), dst),
        GgmlType::IQ4_NL if whole(QK, 18) => iq4_nl(bytemuck::cast_slice(src), dst),
        GgmlType::Q4_K if whole(QK_K, 144) => q4_k(bytemuck::cast_slice(src), dst),
        GgmlType::Q6_K if whole(QK_K, 210) => q6_k(bytemuck::cast_slice(src), dst),
        // Other types, and wrong lengths (whose error message the scalar decoder owns).
        _ => return dequantize_row(ty, src, dst),
    }
    Ok(())
}

const LOW_NIBBLES: u64 = 0x0F0F_0F0F_0F0F_0F0F;

/// Bytes `8c..8c + 8` of `q` as one word.
#[inline(always)]
fn word(q: &[u8], c: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&q[8 * c..8 * c + 8]);
    u64::from_le_bytes(b)
}

/// The low and high nibbles of bytes `8c..8c + 8`.
#[inline(always)]
fn nibbles(q: &[u8], c: usize) -> ([u8; 8], [u8; 8]) {
    let w = word(q, c);
    ((w & LOW_NIBBLES).to_le_bytes(), ((w >> 4) & LOW_NIBBLES).to_le_bytes())
}

/// Q4_0: `(q - 8) * d`, the integer `q - 8` exact in f32.
fn q4_0(blocks: &[BlockQ4_0], dst: &mut [f32]) {
    let eight = F32x8::splat(8.0);
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK)) {
        let d = F32x8::splat(f16_le(b.d));
        for c in 0..2 {
            let (lo, hi) = nibbles(&b.qs, c);
            ((F32x8::from_u8(lo) - eight) * d).store(chunk8_mut(y, c));
            ((F32x8::from_u8(hi) - eight) * d).store(chunk8_mut(y, c + 2));
        }
    }
}

/// Q4_1: `q * d + m`.
fn q4_1(blocks: &[BlockQ4_1], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK)) {
        let (d, m) = (F32x8::splat(f16_le(b.d)), F32x8::splat(f16_le(b.m)));
        for c in 0..2 {
            let (lo, hi) = nibbles(&b.qs, c);
            (F32x8::from_u8(lo) * d + m).store(chunk8_mut(y, c));
            (F32x8::from_u8(hi) * d + m).store(chunk8_mut(y, c + 2));
        }
    }
}

/// The 5-bit codes of a Q5 block: value `j` is nibble `j` with bit `j` of `qh` on top.
#[inline(always)]
fn q5_codes(qs: &[u8; QK / 2], qh: [u8; 4]) -> [u8; QK] {
    let qh = u32::from_le_bytes(qh);
    let mut codes = [0u8; QK];
    for j in 0..QK / 2 {
        codes[j] = (qs[j] & 0x0F) | ((((qh >> j) & 1) as u8) << 4);
        codes[j + QK / 2] = (qs[j] >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
    }
    codes
}

/// Eight codes starting at `8c`.
#[inline(always)]
fn eight(codes: &[u8], c: usize) -> [u8; 8] {
    let mut b = [0u8; 8];
    b.copy_from_slice(&codes[8 * c..8 * c + 8]);
    b
}

/// Q5_0: `(q - 16) * d`.
fn q5_0(blocks: &[BlockQ5_0], dst: &mut [f32]) {
    let sixteen = F32x8::splat(16.0);
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK)) {
        let d = F32x8::splat(f16_le(b.d));
        let codes = q5_codes(&b.qs, b.qh);
        for c in 0..4 {
            ((F32x8::from_u8(eight(&codes, c)) - sixteen) * d).store(chunk8_mut(y, c));
        }
    }
}

/// Q5_1: `q * d + m`.
fn q5_1(blocks: &[BlockQ5_1], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK)) {
        let (d, m) = (F32x8::splat(f16_le(b.d)), F32x8::splat(f16_le(b.m)));
        let codes = q5_codes(&b.qs, b.qh);
        for c in 0..4 {
            (F32x8::from_u8(eight(&codes, c)) * d + m).store(chunk8_mut(y, c));
        }
    }
}

/// Q8_0: `q * d`, q signed.
fn q8_0(blocks: &[BlockQ8_0], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK)) {
        let d = F32x8::splat(f16_le(b.d));
        for c in 0..4 {
            (F32x8::from_i8(eight(&b.qs, c)) * d).store(chunk8_mut(y, c));
        }
    }
}

/// IQ4_NL: `d * grid[q]` (a product is the same bits in either order).
fn iq4_nl(blocks: &[BlockIq4Nl], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK)) {
        let d = F32x8::splat(f16_le(b.d));
        let mut codes = [0u8; QK];
        for j in 0..QK / 2 {
            codes[j] = KVALUES_IQ4NL[usize::from(b.qs[j] & 0x0F)] as u8;
            codes[j + QK / 2] = KVALUES_IQ4NL[usize::from(b.qs[j] >> 4)] as u8;
        }
        for c in 0..4 {
            (F32x8::from_i8(eight(&codes, c)) * d).store(chunk8_mut(y, c));
        }
    }
}

/// Q4_K: `(d * scale) * q - dmin * min` per group of 32.
fn q4_k(blocks: &[BlockQ4K], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let (d, min) = (f16_le(b.d), f16_le(b.dmin));
        for (c, (q, y)) in b.qs.chunks_exact(32).zip(y.chunks_exact_mut(64)).enumerate() {
            let (sc1, m1) = scale_min_k4(2 * c, &b.scales);
            let (sc2, m2) = scale_min_k4(2 * c + 1, &b.scales);
            let (d1, m1) = (F32x8::splat(d * f32::from(sc1)), F32x8::splat(min * f32::from(m1)));
            let (d2, m2) = (F32x8::splat(d * f32::from(sc2)), F32x8::splat(min * f32::from(m2)));
            for k in 0..4 {
                let (lo, hi) = nibbles(q, k);
                (F32x8::from_u8(lo) * d1 - m1).store(chunk8_mut(y, k));
                (F32x8::from_u8(hi) * d2 - m2).store(chunk8_mut(y, k + 4));
            }
        }
    }
}

/// Q6_K: `(d * scale) * (q - 32)` per group of 16.
fn q6_k(blocks: &[BlockQ6K], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_le(b.d);
        for (h, y) in y.chunks_exact_mut(128).enumerate() {
            let ql = &b.ql[64 * h..64 * h + 64];
            let qh = &b.qh[32 * h..32 * h + 32];
            let sc = &b.scales[8 * h..8 * h + 8];
            // Four streams of 32 values (y[l], y[l + 32], y[l + 64], y[l + 96]), eight l at a time.
            for c in 0..4 {
                let is = c / 2;
                let code = |lo: u8, hi: u8| ((lo | (hi << 4)) as i8 - 32) as u8;
                let mut q = [[0u8; 8]; 4];
                for (i, l) in (8 * c..8 * c + 8).enumerate() {
                    q[0][i] = code(ql[l] & 0x0F, qh[l] & 3);
                    q[1][i] = code(ql[l + 32] & 0x0F, (qh[l] >> 2) & 3);
                    q[2][i] = code(ql[l] >> 4, (qh[l] >> 4) & 3);
                    q[3][i] = code(ql[l + 32] >> 4, (qh[l] >> 6) & 3);
                }
                for (s, codes) in q.iter().enumerate() {
                    let ds = F32x8::splat(d * f32::from(sc[is + 2 * s] as i8));
                    (F32x8::from_i8(*codes) * ds).store(chunk8_mut(y, c + 4 * s));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::SUPPORTED;

    /// Random bytes make valid blocks of every type except for NaN/Inf scales, which both decoders
    /// must treat alike anyway: compare bit patterns, so NaN == NaN.
    fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (s >> 56) as u8
            })
            .collect()
    }

    #[test]
    fn every_type_decodes_to_the_scalar_twins_bits() {
        for &ty in SUPPORTED {
            let per = ty.block_size() as usize;
            for blocks in [1usize, 3, 7] {
                let n = per * blocks;
                let bytes = random_bytes(ty.row_bytes(n as u64).unwrap_or(0) as usize, n as u64 + per as u64);
                let (mut slow, mut fast) = (vec![0f32; n], vec![0f32; n]);
                dequantize_row(ty, &bytes, &mut slow).unwrap();
                dequantize_row_fast(ty, &bytes, &mut fast).unwrap();
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&slow), bits(&fast), "{} with {blocks} blocks", ty.name());
            }
        }
    }

    #[test]
    fn wrong_lengths_get_the_scalar_decoders_error() {
        let mut dst = vec![0f32; 32];
        let fast = dequantize_row_fast(GgmlType::Q4_1, &[0u8; 19], &mut dst).unwrap_err().to_string();
        let slow = dequantize_row(GgmlType::Q4_1, &[0u8; 19], &mut dst).unwrap_err().to_string();
        assert_eq!(fast, slow);
    }
}
