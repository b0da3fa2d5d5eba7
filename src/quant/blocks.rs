//! ggml's quantised block layouts, byte for byte (ggml-common.h). Every field is a byte array, so
//! the structs have alignment 1 and can be viewed straight out of a GGUF file's bytes with
//! `bytemuck` (no copy, no `unsafe`). Sizes are asserted at compile time against the type table.

use crate::ggml::GgmlType;
use bytemuck::{Pod, Zeroable};
use std::mem::size_of;

/// Values per block of the "legacy" types (Q4_0 ... Q8_1, IQ4_NL).
pub const QK: usize = 32;
/// Values per super-block of the k-quants and IQ4_XS.
pub const QK_K: usize = 256;
/// Bytes of packed scales/mins in Q4_K and Q5_K (and Q3_K's scales).
pub const K_SCALE_SIZE: usize = 12;

/// 32 values: `x = d * (q - 8)`, q 4 bits.
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
#[repr(C)]
pub struct BlockQ4_0 {
    pub d: [u8; 2],
    pub qs: [u8; QK / 2],
}

/// 32 values: `x = d * q + m`, q 4 bits.
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
#[repr(C)]
pub struct BlockQ4_1 {
    pub d: [u8; 2],
    pub m: [u8; 2],
    pub qs: [u8; QK / 2],
}

/// 32 values: `x = d * (q - 16)`, q 5 bits (the fifth bits packed in `qh`).
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
#[repr(C)]
pub struct BlockQ5_0 {
    pub d: [u8; 2],
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}

/// 32 values: `x = d * q + m`, q 5 bits.
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
#[repr(C)]
pub struct BlockQ5_1 {
    pub d: [u8; 2],
    pub m: [u8; 2],
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}

/// 32 values: `x = d * q`, q a signed byte.
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
#[repr(C)]
pub struct BlockQ8_0 {
    pub d: [u8; 2],
    pub qs: [u8; QK],
}

/// 256 values in 16 groups of 16: 2-bit q, 4-bit scale and 4-bit min per group.
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
#[repr(C)]
pub struct BlockQ2K {
    pub scales: [u8; QK_K / 16],
    pub qs: [u8; QK_K / 4],
    pub d: [u8; 2],
    pub dmin: [u8; 2],
}

/// 256 values in 16 groups of 16: 3-bit q (high bit in `hmask`), 6-bit signed scales.
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
#[repr(C)]
pub struct BlockQ3K {
    pub hmask: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 4],
    pub scales: [u8; K_SCALE_SIZE],
    pub d: [u8; 2],
}

/// 256 values in 8 groups of 32: 4-bit q, 6-bit scale and min per group.
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
#[repr(C)]
pub struct BlockQ4K {
    pub d: [u8; 2],
    pub dmin: [u8; 2],
    pub scales: [u8; K_SCALE_SIZE],
    pub qs: [u8; QK_K / 2],
}

/// 256 values in 8 groups of 32: 5-bit q, 6-bit scale and min per group.
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
#[repr(C)]
pub struct BlockQ5K {
    pub d: [u8; 2],
    pub dmin: [u8; 2],
    pub scales: [u8; K_SCALE_SIZE],
    pub qh: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 2],
}

/// 256 values in 16 groups of 16: 6-bit q, 8-bit signed scale per group.
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
#[repr(C)]
pub struct BlockQ6K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [u8; QK_K / 16],
    pub d: [u8; 2],
}

/// 32 values: `x = d * KVALUES_IQ4NL[q]`, q 4 bits.
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
#[repr(C)]
pub struct BlockIq4Nl {
    pub d: [u8; 2],
    pub qs: [u8; QK / 2],
}

/// 256 values in 8 groups of 32: IQ4_NL's table with a 6-bit scale per group.
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
#[repr(C)]
pub struct BlockIq4Xs {
    pub d: [u8; 2],
    pub scales_h: [u8; 2],
    pub scales_l: [u8; QK_K / 64],
    pub qs: [u8; QK_K / 2],
}

/// The non-linear 4-bit grid of IQ4_NL and IQ4_XS (ggml's `kvalues_iq4nl`).
pub const KVALUES_IQ4NL: [i8; 16] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

// The layouts must agree with ggml's byte sizes (and hence with `GgmlType::type_size`).
const _: () = assert!(size_of::<BlockQ4_0>() == 18 && 18 == GgmlType::Q4_0.type_size() as usize);
const _: () = assert!(size_of::<BlockQ4_1>() == 20 && 20 == GgmlType::Q4_1.type_size() as usize);
const _: () = assert!(size_of::<BlockQ5_0>() == 22 && 22 == GgmlType::Q5_0.type_size() as usize);
const _: () = assert!(size_of::<BlockQ5_1>() == 24 && 24 == GgmlType::Q5_1.type_size() as usize);
const _: () = assert!(size_of::<BlockQ8_0>() == 34 && 34 == GgmlType::Q8_0.type_size() as usize);
const _: () = assert!(size_of::<BlockQ2K>() == 84 && 84 == GgmlType::Q2_K.type_size() as usize);
const _: () = assert!(size_of::<BlockQ3K>() == 110 && 110 == GgmlType::Q3_K.type_size() as usize);
const _: () = assert!(size_of::<BlockQ4K>() == 144 && 144 == GgmlType::Q4_K.type_size() as usize);
const _: () = assert!(size_of::<BlockQ5K>() == 176 && 176 == GgmlType::Q5_K.type_size() as usize);
const _: () = assert!(size_of::<BlockQ6K>() == 210 && 210 == GgmlType::Q6_K.type_size() as usize);
const _: () = assert!(size_of::<BlockIq4Nl>() == 18 && 18 == GgmlType::IQ4_NL.type_size() as usize);
const _: () = assert!(size_of::<BlockIq4Xs>() == 136 && 136 == GgmlType::IQ4_XS.type_size() as usize);

/// An IEEE half stored little-endian, as f32 (exact).
#[inline(always)]
pub fn f16_le(b: [u8; 2]) -> f32 {
    f16_to_f32(u16::from_le_bytes(b))
}

/// An IEEE half as f32, exactly, without branches on finite values (wasm32 has no conversion
/// instruction and `half`'s portable one branches on every class): the exponent and mantissa bits
/// moved into place read as an f32 2^112 times too small, subnormals included, so one exact
/// multiplication by 2^112 rebiases them. Infinities and NaNs (quietened, payload kept) give the
/// same bits as `half::f16::to_f32`; tested on all 65,536 inputs.
#[inline(always)]
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let em = u32::from(h & 0x7fff);
    if em >= 0x7c00 {
        let quiet = if em > 0x7c00 { 0x0040_0000 } else { 0 };
        return f32::from_bits(sign | 0x7f80_0000 | quiet | ((em & 0x3ff) << 13));
    }
    f32::from_bits(f32::to_bits(f32::from_bits(em << 13) * f32::from_bits(0x7780_0000)) | sign)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion_equals_half_on_every_input() {
        for h in 0..=u16::MAX {
            assert_eq!(f16_to_f32(h).to_bits(), half::f16::from_bits(h).to_f32().to_bits(), "{h:#06x}");
        }
    }
}
