//! llama.cpp's CPU numerics for a matmul on quantised weights: the activation vector is rounded to
//! the block format ggml's CPU backend pairs with the weight type (its `vec_dot_type`), then dotted
//! with each weight row with integer products inside a block, as `ggml_vec_dot_<w>_<a>` does.
//!
//! # Activation formats ([`ActFormat`])
//! From `type_traits_cpu` in ggml-cpu.c (llama.cpp 0c1e570):
//!
//! | weights | activations |
//! |---|---|
//! | F32 | F32 (not rounded) |
//! | F16 | F16 (`_mm256_cvtps_ph`, round to nearest even) |
//! | BF16 | BF16 (`ggml_compute_fp32_to_bf16`: nearest even, NaN kept quiet) |
//! | Q4_0, Q5_0, Q8_0, IQ4_NL | Q8_0 |
//! | Q4_1, Q5_1 | Q8_1 |
//! | Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS | Q8_K |
//!
//! The quantisers are the ones the x86 build runs (bit-exact, tested against llama.cpp's bytes):
//! - Q8_0 (`quantize_row_q8_0`, AVX/AVX2): per 32 values `amax = max|x|` (the `maxps` tree of the
//!   AVX code), `d = amax / 127` stored as f16, `q = round_ties_even(x * (127 / amax))`, saturated to
//!   i8. Not the scalar reference, which multiplies by `1 / d` and rounds half away from zero.
//! - Q8_1 (`quantize_row_q8_1`, AVX2): as Q8_0, plus `s = f16(d * Σq)` with `d` the f32 scale
//!   before its f16 rounding and `Σq` the exact integer sum.
//! - Q8_K (`quantize_row_q8_K` = `quantize_row_q8_K_ref` on x86): per 256 values `max` is the
//!   first value of largest magnitude (signed), `iscale = -127 / max`,
//!   `q = min(127, nearest_int(iscale * x))` (ties to even), `d = 1 / iscale` stored as **f32** (so
//!   `d` is negative when `max` is positive), and `bsums`: the sums of each 16 `q`. An all-zero block
//!   has `d = 0`, `q = 0`; llama.cpp leaves its `bsums` unwritten, here they are 0 (they are only
//!   ever multiplied by `d = 0`).
//!
//! # Dot products ([`vec_dot_scalar`], [`vec_dot`])
//! Integer sums inside a block are exact (i32). The f32 combination follows ggml's scalar kernels
//! (`ggml_vec_dot_*_generic` in ggml-cpu/quants.c) **as the x86 build compiles them** (gcc -O3
//! -mfma, `-std=gnu11`, whose default `-ffp-contract=fast` fuses some multiply-adds; read off the
//! disassembly of libggml-cpu.so and tested bit for bit against the exported `_generic` symbols).
//! `fma(a, b, c)` below is one rounding (`f32::mul_add`, correctly rounded on every platform),
//! `dx`/`mx` the weight block's f16 scale/min, `dy`/`sy` the activation block's scale/sum, sums
//! start at +0.0 and run over blocks in order:
//! - Q4_0: `sumf = fma(sumi as f32 * dx, dy, sumf)`
//! - Q5_0, Q8_0, IQ4_NL: `sumf = fma(sumi as f32, dx * dy, sumf)`
//! - Q4_1, Q5_1: `sumf += fma(dx * dy, sumi as f32, mx * sy)`
//! - Q2_K: `sumf += fma(dy * dx, isum as f32, -((dy * dmin) * summs as f32))`, `isum` the
//!   scale-weighted integer sum, `summs = Σ bsums[j] * min[j]`
//! - Q3_K, Q6_K: eight lanes, lane `l` the exact scale-weighted integer sum of the values at
//!   positions `≡ l (mod 8)` of a super-block; `sums[l] = fma(dx * dy, aux[l] as f32, sums[l])`;
//!   at the end `sumf = ((0 + sums[0]) + sums[1]) + ... + sums[7]`
//! - Q4_K, Q5_K: as Q3_K, and per super-block `sumf = fma(-(dmin * dy), summins as f32, sumf)`,
//!   `summins = Σ bsums[j] * min[j / 2]`; at the end `sumf = (sumf + sums[0]) + ... + sums[7]`
//! - IQ4_XS: per 32 values `sumf = fma(sumi as f32, (dx * dy) * (scale - 32) as f32, sumf)`
//!
//! The float types have no scalar kernel in ggml; their order is that of the x86 AVX2 kernels in
//! ggml-cpu/vec.cpp (`ggml_vec_dot_f32/f16/bf16`), reproduced exactly: 32 running sums, sum `k`
//! taking elements `k, k + 32, ...` of the first `n - n % 32`; F32 fuses each `sum + x * y`, F16 and
//! BF16 products are exact in f32 so `sum + x * y` is the same as the fused form (except a BF16
//! product below 2^-126, which the fused form would not round); then `S[k] = (s[k] + s[16 + k]) +
//! (s[8 + k] + s[24 + k])`, `t[k] = S[k] + S[k + 4]` and `(t0 + t1) + (t2 + t3)` (F32, F16) or
//! `(t0 + t2) + (t1 + t3)` (BF16). The last `n % 32` products: F16 and BF16 add them to that sum in
//! f64 and round once; F32 adds them in f32 the way gcc vectorised the tail: groups of eight then
//! four products rounded then added one by one, the last one to three fused.
//!
//! llama.cpp's x86 AVX2 `vec_dot` kernels compute the same integers but combine them in eight
//! vector lanes with their own order; they differ from these results by float rounding only
//! (measured in the tests: a few 1e-7 relative).
//!
//! [`vec_dot`] is the fast version (integer work in SIMD128 on wasm32 with `simd128`, the scalar
//! code elsewhere) and returns exactly the bits of [`vec_dot_scalar`]: the vector code computes the
//! same exact integers (or, for F16/BF16, the same lane sums with the same operations) and hands
//! them to the same f32 combination code.

use super::blocks::{
    f16_le, BlockIq4Nl, BlockIq4Xs, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1,
    BlockQ6K, BlockQ8_0, KVALUES_IQ4NL, QK, QK_K,
};
use super::quantize::f32_to_bf16;
use super::{q3_k_scales, scale_min_k4, SUPPORTED};
use crate::ggml::GgmlType;
use crate::{Error, Result};
use bytemuck::{Pod, Zeroable};
use half::f16;
use std::mem::size_of;

/// The format llama.cpp's CPU backend rounds a matmul input to, for a weight type (its
/// `vec_dot_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum ActFormat {
    F32,
    F16,
    BF16,
    Q8_0,
    Q8_1,
    Q8_K,
}

impl ActFormat {
    /// Every format.
    pub const ALL: [ActFormat; 6] =
        [ActFormat::F32, ActFormat::F16, ActFormat::BF16, ActFormat::Q8_0, ActFormat::Q8_1, ActFormat::Q8_K];

    /// The format llama.cpp pairs with weights of type `t`.
    ///
    /// # Errors
    /// `t` is not one of the weight types paritylab decodes (the error names it).
    pub fn for_weights(t: GgmlType) -> Result<ActFormat> {
        use GgmlType as G;
        Ok(match t {
            G::F32 => ActFormat::F32,
            G::F16 => ActFormat::F16,
            G::BF16 => ActFormat::BF16,
            G::Q4_0 | G::Q5_0 | G::Q8_0 | G::IQ4_NL => ActFormat::Q8_0,
            G::Q4_1 | G::Q5_1 => ActFormat::Q8_1,
            G::Q2_K | G::Q3_K | G::Q4_K | G::Q5_K | G::Q6_K | G::IQ4_XS => ActFormat::Q8_K,
            other => return Err(unsupported_weights(other)),
        })
    }

    /// The ggml type of the format.
    pub const fn ggml_type(self) -> GgmlType {
        match self {
            ActFormat::F32 => GgmlType::F32,
            ActFormat::F16 => GgmlType::F16,
            ActFormat::BF16 => GgmlType::BF16,
            ActFormat::Q8_0 => GgmlType::Q8_0,
            ActFormat::Q8_1 => GgmlType::Q8_1,
            ActFormat::Q8_K => GgmlType::Q8_K,
        }
    }

    /// The name ggml prints (`Q8_K`, ...).
    pub const fn name(self) -> &'static str {
        self.ggml_type().name()
    }

    /// Values per block (1 for the float formats).
    pub const fn block_len(self) -> usize {
        self.ggml_type().block_size() as usize
    }

    /// Bytes per block.
    pub const fn block_bytes(self) -> usize {
        self.ggml_type().type_size() as usize
    }
}

impl std::fmt::Display for ActFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn unsupported_weights(t: GgmlType) -> Error {
    Error::input(format!(
        "llama.cpp activation rounding: {t} weights are not supported (supported: {})",
        SUPPORTED.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
    ))
}

/// ggml's `block_q8_1`: `x = d * q`, plus `s = d * Σq` in f16.
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
#[repr(C)]
struct BlockQ8_1 {
    d: [u8; 2],
    s: [u8; 2],
    qs: [u8; QK],
}

/// ggml's `block_q8_K`: `x = d * q` with `d` an f32, and the sums of each 16 `q`.
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
#[repr(C)]
struct BlockQ8K {
    d: [u8; 4],
    qs: [u8; QK_K],
    bsums: [u8; QK_K / 8],
}

const _: () = assert!(size_of::<BlockQ8_1>() == 36 && 36 == GgmlType::Q8_1.type_size() as usize);
const _: () = assert!(size_of::<BlockQ8K>() == 292 && 292 == GgmlType::Q8_K.type_size() as usize);

impl BlockQ8K {
    fn d(&self) -> f32 {
        f32::from_le_bytes(self.d)
    }
    fn bsum(&self, j: usize) -> i32 {
        i32::from(i16::from_le_bytes([self.bsums[2 * j], self.bsums[2 * j + 1]]))
    }
}

/// An activation vector rounded to a [`ActFormat`]: the bytes llama.cpp's `from_float` writes (the
/// block layout of ggml-common.h), kept in a buffer that [`QuantizedActs::requantize`] reuses.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedActs {
    format: ActFormat,
    n: usize,
    bytes: Vec<u8>,
    /// The rounded values as f32, for the float formats only (what their dot products read).
    values: Vec<f32>,
}

impl QuantizedActs {
    /// An empty vector of `format` (fill it with [`QuantizedActs::requantize`]).
    pub fn new(format: ActFormat) -> QuantizedActs {
        QuantizedActs { format, n: 0, bytes: Vec::new(), values: Vec::new() }
    }

    /// Round `x` to `format`.
    ///
    /// # Errors
    /// `x.len()` is not a multiple of the format's block length.
    pub fn quantize(format: ActFormat, x: &[f32]) -> Result<QuantizedActs> {
        let mut q = QuantizedActs::new(format);
        q.requantize(x)?;
        Ok(q)
    }

    /// Round `x` to this vector's format, reusing its buffers (no allocation once they are large
    /// enough).
    ///
    /// # Errors
    /// `x.len()` is not a multiple of the format's block length (the vector is then left empty).
    pub fn requantize(&mut self, x: &[f32]) -> Result<()> {
        self.n = 0;
        self.bytes.clear();
        self.values.clear();
        let bl = self.format.block_len();
        if !x.len().is_multiple_of(bl) {
            return Err(Error::input(format!(
                "{} activations cannot be rounded to {}: it needs a multiple of {bl} values",
                x.len(),
                self.format
            )));
        }
        self.bytes.reserve(x.len() / bl * self.format.block_bytes());
        match self.format {
            ActFormat::F32 => {
                self.values.extend_from_slice(x);
                x.iter().for_each(|v| self.bytes.extend(v.to_le_bytes()));
            }
            ActFormat::F16 => {
                for &v in x {
                    let h = f16::from_f32(v);
                    self.bytes.extend(h.to_bits().to_le_bytes());
                    self.values.push(h.to_f32());
                }
            }
            ActFormat::BF16 => {
                for &v in x {
                    let h = f32_to_bf16(v);
                    self.bytes.extend(h.to_le_bytes());
                    self.values.push(f32::from_bits(u32::from(h) << 16));
                }
            }
            ActFormat::Q8_0 => {
                for b in x.chunks_exact(QK) {
                    let (d, qs, _) = q8_x86(b);
                    self.bytes.extend_from_slice(bytemuck::bytes_of(&BlockQ8_0 { d: f16_bytes(d), qs }));
                }
            }
            ActFormat::Q8_1 => {
                for b in x.chunks_exact(QK) {
                    let (d, qs, sum) = q8_x86(b);
                    let s = f16_bytes(d * sum as f32);
                    self.bytes.extend_from_slice(bytemuck::bytes_of(&BlockQ8_1 { d: f16_bytes(d), s, qs }));
                }
            }
            ActFormat::Q8_K => {
                for b in x.chunks_exact(QK_K) {
                    self.bytes.extend_from_slice(bytemuck::bytes_of(&q8_k_block(b)));
                }
            }
        }
        self.n = x.len();
        Ok(())
    }

    /// The format.
    pub fn format(&self) -> ActFormat {
        self.format
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The bytes, laid out as llama.cpp's blocks of the format (what its `from_float` writes).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The rounded values as f32: `d * q` (one f32 product) for the block formats, the f16/bf16
    /// value for the float ones. This is what a float simulation of llama.cpp feeds its matmuls.
    ///
    /// # Errors
    /// `out.len()` is not [`QuantizedActs::len`].
    pub fn dequantize(&self, out: &mut [f32]) -> Result<()> {
        if out.len() != self.n {
            return Err(Error::input(format!(
                "cannot write {} {} activations into {} values",
                self.n,
                self.format,
                out.len()
            )));
        }
        match self.format {
            ActFormat::F32 | ActFormat::F16 | ActFormat::BF16 => out.copy_from_slice(&self.values),
            ActFormat::Q8_0 => {
                let blocks: &[BlockQ8_0] = bytemuck::cast_slice(&self.bytes);
                for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK)) {
                    let d = f16_le(b.d);
                    y.iter_mut().zip(&b.qs).for_each(|(y, &q)| *y = d * f32::from(q as i8));
                }
            }
            ActFormat::Q8_1 => {
                let blocks: &[BlockQ8_1] = bytemuck::cast_slice(&self.bytes);
                for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK)) {
                    let d = f16_le(b.d);
                    y.iter_mut().zip(&b.qs).for_each(|(y, &q)| *y = d * f32::from(q as i8));
                }
            }
            ActFormat::Q8_K => {
                let blocks: &[BlockQ8K] = bytemuck::cast_slice(&self.bytes);
                for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
                    let d = b.d();
                    y.iter_mut().zip(&b.qs).for_each(|(y, &q)| *y = d * f32::from(q as i8));
                }
            }
        }
        Ok(())
    }

    /// Q8_1 only: each block's `s` (`d * Σq` rounded to f16), which the Q4_1/Q5_1 dot products
    /// multiply by the weight block's min instead of summing the rounded values. Empty for the
    /// other formats.
    pub fn q8_1_sums(&self) -> Vec<f32> {
        if self.format != ActFormat::Q8_1 {
            return Vec::new();
        }
        bytemuck::cast_slice::<u8, BlockQ8_1>(&self.bytes).iter().map(|b| f16_le(b.s)).collect()
    }
}

// ---- the quantisers ----------------------------------------------------------------------------

fn f16_bytes(x: f32) -> [u8; 2] {
    f16::from_f32(x).to_bits().to_le_bytes()
}

/// x86 `maxps`: the second operand unless the first is greater (so a NaN operand gives the second).
#[inline]
fn maxps(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}

/// x86 `cvtps2dq` of an already integral value: NaN and out-of-range give `i32::MIN`.
#[inline]
fn cvtps_epi32(v: f32) -> i32 {
    if v.is_nan() || !(-2_147_483_648.0..2_147_483_648.0).contains(&v) {
        i32::MIN
    } else {
        v as i32
    }
}

/// The AVX `quantize_row_q8_0`/`q8_1` block: `(d, qs, Σ of the i32 codes before saturation)`.
fn q8_x86(x: &[f32]) -> (f32, [u8; QK], i32) {
    // max|x| reduced as the AVX code does: four vectors of eight lanewise, then 8 -> 4 -> 2 -> 1.
    let mut m = [0f32; 8];
    for (k, m) in m.iter_mut().enumerate() {
        *m = x[k].abs();
        for v in 1..4 {
            *m = maxps(*m, x[8 * v + k].abs());
        }
    }
    let h: [f32; 4] = std::array::from_fn(|k| maxps(m[k + 4], m[k]));
    let amax = maxps(maxps(h[0], h[2]), maxps(h[1], h[3]));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut qs = [0u8; QK];
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(x) {
        let i = cvtps_epi32((v * id).round_ties_even());
        sum = sum.wrapping_add(i);
        *q = i.clamp(-128, 127) as i8 as u8;
    }
    (d, qs, sum)
}

/// ggml's `nearest_int`: round to nearest, ties to even, through the bits of `f + 1.5 * 2^23`.
#[inline]
fn nearest_int(f: f32) -> i32 {
    ((f + 12_582_912.0).to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// `quantize_row_q8_K_ref`, one block.
fn q8_k_block(x: &[f32]) -> BlockQ8K {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    let mut b = BlockQ8K::zeroed();
    if amax == 0.0 {
        return b;
    }
    let iscale = -127.0 / max;
    for (q, &v) in b.qs.iter_mut().zip(x) {
        *q = nearest_int(iscale * v).min(127) as i8 as u8;
    }
    for (j, q) in b.qs.chunks_exact(16).enumerate() {
        let s: i16 = q.iter().map(|&q| i16::from(q as i8)).sum();
        b.bsums[2 * j..2 * j + 2].copy_from_slice(&s.to_le_bytes());
    }
    b.d = (1.0 / iscale).to_le_bytes();
    b
}

// ---- dot products ------------------------------------------------------------------------------

/// Dot product of one weight row (`row`: the raw GGUF bytes of one row of type `t`, as many values
/// as `acts` holds) with the rounded activations, as llama.cpp's CPU backend computes it: exact
/// integer sums per block, combined in f32 in the order of the module documentation. The scalar
/// reference.
///
/// # Errors
/// `t` is not supported, `acts` is not the format llama.cpp pairs with `t`, or `row` is not one
/// row of `acts.len()` values of `t`.
pub fn vec_dot_scalar(t: GgmlType, row: &[u8], acts: &QuantizedActs) -> Result<f32> {
    check(t, row, acts)?;
    Ok(dot::<Scalar>(t, row, acts))
}

/// [`vec_dot_scalar`], fast: the integer (and F16/BF16 lane) work in SIMD128 on wasm32 built with
/// `simd128`, the scalar code elsewhere. Returns exactly the bits of [`vec_dot_scalar`].
///
/// # Errors
/// As [`vec_dot_scalar`].
pub fn vec_dot(t: GgmlType, row: &[u8], acts: &QuantizedActs) -> Result<f32> {
    check(t, row, acts)?;
    #[cfg(target_arch = "x86_64")]
    if fma::available() {
        // SAFETY: the CPU has FMA and F16C (checked just above).
        return Ok(unsafe { fma::dot(t, row, acts) });
    }
    Ok(dot::<Fast>(t, row, acts))
}

/// The same code compiled with FMA and F16C enabled, for x86-64 CPUs that have them (nearly all
/// since 2013): `mul_add` becomes one instruction instead of a library call and f16 scales convert
/// inline. A fused multiply-add is correctly rounded by definition, so the bits do not change.
#[cfg(target_arch = "x86_64")]
mod fma {
    use super::*;

    pub fn available() -> bool {
        std::is_x86_feature_detected!("fma") && std::is_x86_feature_detected!("f16c")
    }

    /// # Safety
    /// The CPU must support FMA and F16C ([`available`]).
    #[target_feature(enable = "fma,f16c")]
    pub unsafe fn dot(t: GgmlType, row: &[u8], acts: &QuantizedActs) -> f32 {
        super::dot::<Fast>(t, row, acts)
    }
}

/// Whether [`vec_dot`] uses vector code for weights of type `t` in this build.
pub fn has_simd(t: GgmlType) -> bool {
    cfg!(all(target_arch = "wasm32", target_feature = "simd128")) && is_supported_weights(t) && t != GgmlType::F32
}

fn is_supported_weights(t: GgmlType) -> bool {
    ActFormat::for_weights(t).is_ok()
}

pub(crate) fn check(t: GgmlType, row: &[u8], acts: &QuantizedActs) -> Result<()> {
    let want = ActFormat::for_weights(t)?;
    if want != acts.format {
        return Err(Error::input(format!(
            "{t} weights are dotted with {want} activations in llama.cpp, not {}",
            acts.format
        )));
    }
    let n = acts.n as u64;
    let expected = t.row_bytes(n);
    if expected != Some(row.len() as u64) {
        return Err(Error::DataLength {
            what: format!("a weight row of {n} values"),
            type_name: t.name(),
            expected: expected.unwrap_or(0),
            got: row.len() as u64,
        });
    }
    Ok(())
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
type Fast = simd::Simd128;
#[cfg(all(target_arch = "x86_64", not(all(target_arch = "wasm32", target_feature = "simd128"))))]
type Fast = sse2::Sse2;
#[cfg(not(any(target_arch = "x86_64", all(target_arch = "wasm32", target_feature = "simd128"))))]
type Fast = Scalar;

/// One rounding of `a * b + c`. IEEE 754 specifies fused multiply-add exactly, so every
/// implementation gives the same bits: the FMA instruction where the build has it (natively with
/// `-C target-feature=+fma`, or glibc's `fmaf`, which uses it when the CPU has it), [`fma_f64`]
/// inline on wasm32 (which has no FMA instruction; `mul_add` is a library call there, once per
/// block). `libm::fmaf` (pure software) is the reference the tests check against.
#[inline(always)]
pub(crate) fn fma(a: f32, b: f32, c: f32) -> f32 {
    #[cfg(target_arch = "wasm32")]
    if let Some(r) = fma_f64(a, b, c) {
        return r;
    }
    a.mul_add(b, c)
}

/// `fma(a, b, c)` through f64, or `None` in the rare cases where that could round differently.
/// `a * b` is exact in f64 (24 + 24 significant bits), so `r = a * b + c` in f64 is the exact
/// result rounded once to 53 bits. Rounding `r` to f32 again gives the exact result's f32 rounding
/// unless `r` sits exactly halfway between two f32 (the double-rounding case: its low 29 mantissa
/// bits are `1000...0`) and is not the exact result itself (`r - ab == c && r - c == ab`): any
/// other f32 midpoint strictly between `r` and the exact value would be an f64 closer to the exact
/// value than `r`. The f32 subnormal range (other midpoints) and NaN are left to the caller; zeros
/// keep the IEEE sign rules, which f64 addition shares.
#[inline(always)]
pub fn fma_f64(a: f32, b: f32, c: f32) -> Option<f32> {
    let (ab, c) = (f64::from(a) * f64::from(b), f64::from(c));
    let r = ab + c;
    let halfway = r.to_bits() & 0x1fff_ffff == 0x1000_0000 && !(r - ab == c && r - c == ab);
    (!halfway && (r.abs() >= f64::from(f32::MIN_POSITIVE) || r == 0.0)).then_some(r as f32)
}

/// The integer (and float-lane) work of one block, scalar or vector. Every method returns exact
/// integers (or lane sums made with the same f32 operations), so the f32 combination that follows
/// gives the same bits whichever implementation ran.
trait Kernels {
    fn q4_0(x: &BlockQ4_0, y: &[u8; QK]) -> i32;
    fn q4_1(x: &BlockQ4_1, y: &[u8; QK]) -> i32;
    fn q5_0(x: &BlockQ5_0, y: &[u8; QK]) -> i32;
    fn q5_1(x: &BlockQ5_1, y: &[u8; QK]) -> i32;
    fn q8_0(x: &[u8; QK], y: &[u8; QK]) -> i32;
    fn iq4_nl(x: &BlockIq4Nl, y: &[u8; QK]) -> i32;
    /// `Σ scale[j] * Σ_{16 values of group j} q2 * q8`.
    fn q2_k(x: &BlockQ2K, y: &[u8; QK_K]) -> i32;
    /// Eight lanes: lane `l` sums `(scale - 32) * q3 * q8` over positions `≡ l (mod 8)`.
    fn q3_k(x: &BlockQ3K, y: &[u8; QK_K]) -> [i32; 8];
    fn q4_k(x: &BlockQ4K, y: &[u8; QK_K], scales: &[u8; 8]) -> [i32; 8];
    fn q5_k(x: &BlockQ5K, y: &[u8; QK_K], scales: &[u8; 8]) -> [i32; 8];
    fn q6_k(x: &BlockQ6K, y: &[u8; QK_K]) -> [i32; 8];
    /// One integer sum per 32 values.
    fn iq4_xs(x: &BlockIq4Xs, y: &[u8; QK_K]) -> [i32; 8];
    /// 32 running sums `s[i % 32] += w[i] * y[i]` (separate multiply and add) over f16 weights;
    /// `y.len()` is a multiple of 32 and `w` holds as many f16.
    fn f16_lanes(w: &[u8], y: &[f32]) -> [f32; 32];
    /// As `f16_lanes`, bf16 weights.
    fn bf16_lanes(w: &[u8], y: &[f32]) -> [f32; 32];
}

#[inline(always)]
fn dot<K: Kernels>(t: GgmlType, row: &[u8], acts: &QuantizedActs) -> f32 {
    use bytemuck::cast_slice as cast;
    let y = &acts.bytes;
    match t {
        GgmlType::F32 => dot_f32(row, &acts.values),
        GgmlType::F16 => dot_f16::<K>(row, &acts.values),
        GgmlType::BF16 => dot_bf16::<K>(row, &acts.values),
        GgmlType::Q4_0 => {
            legacy(cast::<_, BlockQ4_0>(row), cast(y), |x, y| (K::q4_0(x, &y.qs) as f32 * f16_le(x.d), f16_le(y.d)))
        }
        GgmlType::Q5_0 => {
            legacy(cast::<_, BlockQ5_0>(row), cast(y), |x, y| (K::q5_0(x, &y.qs) as f32, f16_le(x.d) * f16_le(y.d)))
        }
        GgmlType::Q8_0 => {
            legacy(cast::<_, BlockQ8_0>(row), cast(y), |x, y| (K::q8_0(&x.qs, &y.qs) as f32, f16_le(x.d) * f16_le(y.d)))
        }
        GgmlType::IQ4_NL => {
            legacy(cast::<_, BlockIq4Nl>(row), cast(y), |x, y| (K::iq4_nl(x, &y.qs) as f32, f16_le(y.d) * f16_le(x.d)))
        }
        GgmlType::Q4_1 => with_min(cast::<_, BlockQ4_1>(row), cast(y), |x, y| (K::q4_1(x, &y.qs), x.d, x.m)),
        GgmlType::Q5_1 => with_min(cast::<_, BlockQ5_1>(row), cast(y), |x, y| (K::q5_1(x, &y.qs), x.d, x.m)),
        GgmlType::Q2_K => dot_q2_k::<K>(cast(row), cast(y)),
        GgmlType::Q3_K => lanes8(cast::<_, BlockQ3K>(row), cast(y), |x, y| (K::q3_k(x, &y.qs), f16_le(x.d), None)),
        GgmlType::Q6_K => lanes8(cast::<_, BlockQ6K>(row), cast(y), |x, y| (K::q6_k(x, &y.qs), f16_le(x.d), None)),
        GgmlType::Q4_K => lanes8(cast::<_, BlockQ4K>(row), cast(y), |x, y| {
            let (scales, mins) = unpack_k4(&x.scales);
            (K::q4_k(x, &y.qs, &scales), f16_le(x.d), Some((f16_le(x.dmin), sum_mins(y, &mins))))
        }),
        GgmlType::Q5_K => lanes8(cast::<_, BlockQ5K>(row), cast(y), |x, y| {
            let (scales, mins) = unpack_k4(&x.scales);
            (K::q5_k(x, &y.qs, &scales), f16_le(x.d), Some((f16_le(x.dmin), sum_mins(y, &mins))))
        }),
        GgmlType::IQ4_XS => dot_iq4_xs::<K>(cast(row), cast(y)),
        // `check` has refused every other type.
        _ => f32::NAN,
    }
}

/// Q4_0, Q5_0, Q8_0, IQ4_NL: `sumf = fma(a, b, sumf)` with `(a, b)` from `ab` per block.
#[inline(always)]
fn legacy<W>(xs: &[W], ys: &[BlockQ8_0], ab: impl Fn(&W, &BlockQ8_0) -> (f32, f32)) -> f32 {
    let mut sumf = 0f32;
    for (x, y) in xs.iter().zip(ys) {
        let (a, b) = ab(x, y);
        sumf = fma(a, b, sumf);
    }
    sumf
}

/// Q4_1, Q5_1: `sumf += fma(dx * dy, sumi, mx * sy)`, `f` giving `(sumi, dx, mx)` per block.
#[inline(always)]
fn with_min<W>(xs: &[W], ys: &[BlockQ8_1], f: impl Fn(&W, &BlockQ8_1) -> (i32, [u8; 2], [u8; 2])) -> f32 {
    let mut sumf = 0f32;
    for (x, y) in xs.iter().zip(ys) {
        let (sumi, d, m) = f(x, y);
        sumf += fma(f16_le(d) * f16_le(y.d), sumi as f32, f16_le(m) * f16_le(y.s));
    }
    sumf
}

/// Q3_K, Q4_K, Q5_K, Q6_K: eight f32 lanes per super-block, plus (Q4_K/Q5_K) the mins term. `f`
/// gives `(integer lanes, f16 d of the weights, Some((dmin, Σ bsums * mins)))`.
#[inline(always)]
fn lanes8<W>(xs: &[W], ys: &[BlockQ8K], f: impl Fn(&W, &BlockQ8K) -> ([i32; 8], f32, Option<(f32, i32)>)) -> f32 {
    let mut sums = [0f32; 8];
    let mut sumf = 0f32;
    for (x, y) in xs.iter().zip(ys) {
        let (aux, dx, mins) = f(x, y);
        let d = dx * y.d();
        for (s, &a) in sums.iter_mut().zip(&aux) {
            *s = fma(d, a as f32, *s);
        }
        if let Some((dmin, summins)) = mins {
            sumf = fma(-(dmin * y.d()), summins as f32, sumf);
        }
    }
    for s in sums {
        sumf += s;
    }
    sumf
}

/// The eight 6-bit scales and mins of Q4_K/Q5_K.
fn unpack_k4(packed: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let mut scales = [0u8; 8];
    let mut mins = [0u8; 8];
    for j in 0..8 {
        (scales[j], mins[j]) = scale_min_k4(j, packed);
    }
    (scales, mins)
}

/// `Σ_j bsums[j] * mins[j / 2]` (Q4_K/Q5_K).
fn sum_mins(y: &BlockQ8K, mins: &[u8; 8]) -> i32 {
    (0..16).map(|j| y.bsum(j) * i32::from(mins[j / 2])).sum()
}

fn dot_q2_k<K: Kernels>(xs: &[BlockQ2K], ys: &[BlockQ8K]) -> f32 {
    let mut sumf = 0f32;
    for (x, y) in xs.iter().zip(ys) {
        let summs: i32 = (0..16).map(|j| y.bsum(j) * i32::from(x.scales[j] >> 4)).sum();
        let dall = y.d() * f16_le(x.d);
        let dmin = y.d() * f16_le(x.dmin);
        let isum = K::q2_k(x, &y.qs);
        sumf += fma(dall, isum as f32, -(dmin * summs as f32));
    }
    sumf
}

fn dot_iq4_xs<K: Kernels>(xs: &[BlockIq4Xs], ys: &[BlockQ8K]) -> f32 {
    let mut sumf = 0f32;
    for (x, y) in xs.iter().zip(ys) {
        let d4d8 = f16_le(x.d) * y.d();
        let sums = K::iq4_xs(x, &y.qs);
        let h = u16::from_le_bytes(x.scales_h);
        for (ib, &sumi) in sums.iter().enumerate() {
            let ls = i32::from((x.scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0F) | (i32::from((h >> (2 * ib)) & 3) << 4);
            sumf = fma(sumi as f32, d4d8 * (ls - 32) as f32, sumf);
        }
    }
    sumf
}

/// ggml's AVX reduction of 32 lanes (`GGML_F32x8_REDUCE`, F32 and F16):
/// `S[k] = (s[k] + s[16+k]) + (s[8+k] + s[24+k])`, `t[k] = S[k] + S[k+4]`, `(t0 + t1) + (t2 + t3)`.
fn reduce_hadd(s: &[f32; 32]) -> f32 {
    let big: [f32; 8] = std::array::from_fn(|k| (s[k] + s[16 + k]) + (s[8 + k] + s[24 + k]));
    let t: [f32; 4] = std::array::from_fn(|k| big[k] + big[k + 4]);
    (t[0] + t[1]) + (t[2] + t[3])
}

/// `ggml_vec_dot_bf16`'s AVX2 reduction: as [`reduce_hadd`], then `(t0 + t2) + (t1 + t3)`.
fn reduce_bf16(s: &[f32; 32]) -> f32 {
    let big: [f32; 8] = std::array::from_fn(|k| (s[k] + s[16 + k]) + (s[8 + k] + s[24 + k]));
    let t: [f32; 4] = std::array::from_fn(|k| big[k] + big[k + 4]);
    (t[0] + t[2]) + (t[1] + t[3])
}

fn f32_at(b: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16_le([b[2 * i], b[2 * i + 1]])
}

fn bf16_at(b: &[u8], i: usize) -> f32 {
    f32::from_bits(u32::from(u16::from_le_bytes([b[2 * i], b[2 * i + 1]])) << 16)
}

/// `ggml_vec_dot_f32` (AVX2 + FMA build).
fn dot_f32(w: &[u8], y: &[f32]) -> f32 {
    let n = y.len();
    let np = n & !31;
    let x = |i: usize| f32_at(w, i);
    let mut s = [0f32; 32];
    for (i, &v) in y[..np].iter().enumerate() {
        s[i % 32] = fma(x(i), v, s[i % 32]);
    }
    let mut sumf = reduce_hadd(&s);
    // The tail as gcc vectorised `sumf += x[i]*y[i]`: products of whole groups of 8, then of 4,
    // rounded and added in order; the last 1 to 3 fused.
    let fused_from = np + (n - np) / 4 * 4;
    for (i, &v) in y.iter().enumerate().skip(np) {
        if i < fused_from {
            sumf += x(i) * v;
        } else {
            sumf = fma(x(i), v, sumf);
        }
    }
    sumf
}

/// `ggml_vec_dot_f16` (AVX2 + F16C build).
fn dot_f16<K: Kernels>(w: &[u8], y: &[f32]) -> f32 {
    let np = y.len() & !31;
    let lanes = K::f16_lanes(&w[..2 * np], &y[..np]);
    let mut sumf = f64::from(reduce_hadd(&lanes));
    for (i, &v) in y.iter().enumerate().skip(np) {
        sumf += f64::from(f16_at(w, i) * v);
    }
    sumf as f32
}

/// `ggml_vec_dot_bf16` (AVX2 build).
fn dot_bf16<K: Kernels>(w: &[u8], y: &[f32]) -> f32 {
    let np = y.len() & !31;
    let lanes = K::bf16_lanes(&w[..2 * np], &y[..np]);
    let mut sumf = f64::from(reduce_bf16(&lanes));
    for (i, &v) in y.iter().enumerate().skip(np) {
        sumf += f64::from(bf16_at(w, i) * v);
    }
    sumf as f32
}

// ---- scalar kernels ----------------------------------------------------------------------------

struct Scalar;

#[inline(always)]
fn i8s(y: &[u8]) -> impl Iterator<Item = i32> + '_ {
    y.iter().map(|&q| i32::from(q as i8))
}

/// Σ a[i] * y[i] over 16 weights and 16 activation bytes.
#[inline(always)]
fn dot16(a: impl Iterator<Item = i32>, y: &[u8]) -> i32 {
    a.zip(i8s(y)).map(|(a, b)| a * b).sum()
}

/// Eight lanes: lane `l` gets `scale * a[i] * y[i]` for every `i ≡ l (mod 8)` of a group.
#[inline(always)]
fn lanes_add(aux: &mut [i32; 8], a: &[i8], y: &[u8], scale: i32) {
    for (i, (&a, &q)) in a.iter().zip(y).enumerate() {
        aux[i % 8] += scale * (i32::from(a) * i32::from(q as i8));
    }
}

impl Kernels for Scalar {
    fn q4_0(x: &BlockQ4_0, y: &[u8; QK]) -> i32 {
        dot16(x.qs.iter().map(|&q| i32::from(q & 0x0F) - 8), &y[..16])
            + dot16(x.qs.iter().map(|&q| i32::from(q >> 4) - 8), &y[16..])
    }

    fn q4_1(x: &BlockQ4_1, y: &[u8; QK]) -> i32 {
        dot16(x.qs.iter().map(|&q| i32::from(q & 0x0F)), &y[..16])
            + dot16(x.qs.iter().map(|&q| i32::from(q >> 4)), &y[16..])
    }

    fn q5_0(x: &BlockQ5_0, y: &[u8; QK]) -> i32 {
        let qh = u32::from_le_bytes(x.qh);
        let lo = x.qs.iter().enumerate().map(|(j, &q)| (i32::from(q & 0x0F) | (((qh >> j) << 4) & 0x10) as i32) - 16);
        let hi = x.qs.iter().enumerate().map(|(j, &q)| (i32::from(q >> 4) | ((qh >> (j + 12)) & 0x10) as i32) - 16);
        dot16(lo, &y[..16]) + dot16(hi, &y[16..])
    }

    fn q5_1(x: &BlockQ5_1, y: &[u8; QK]) -> i32 {
        let qh = u32::from_le_bytes(x.qh);
        let lo = x.qs.iter().enumerate().map(|(j, &q)| i32::from(q & 0x0F) | (((qh >> j) << 4) & 0x10) as i32);
        let hi = x.qs.iter().enumerate().map(|(j, &q)| i32::from(q >> 4) | ((qh >> (j + 12)) & 0x10) as i32);
        dot16(lo, &y[..16]) + dot16(hi, &y[16..])
    }

    fn q8_0(x: &[u8; QK], y: &[u8; QK]) -> i32 {
        dot16(i8s(x), y)
    }

    fn iq4_nl(x: &BlockIq4Nl, y: &[u8; QK]) -> i32 {
        let k = |i: u8| i32::from(KVALUES_IQ4NL[usize::from(i)]);
        dot16(x.qs.iter().map(|&q| k(q & 0x0F)), &y[..16]) + dot16(x.qs.iter().map(|&q| k(q >> 4)), &y[16..])
    }

    fn q2_k(x: &BlockQ2K, y: &[u8; QK_K]) -> i32 {
        let mut isum = 0;
        for (k, q2) in x.qs.chunks_exact(32).enumerate() {
            for j in 0..4 {
                let shift = 2 * j;
                let e = 128 * k + 32 * j;
                let is = 8 * k + 2 * j;
                let a = dot16(q2[..16].iter().map(|&q| i32::from((q >> shift) & 3)), &y[e..e + 16]);
                let b = dot16(q2[16..].iter().map(|&q| i32::from((q >> shift) & 3)), &y[e + 16..e + 32]);
                isum += i32::from(x.scales[is] & 0x0F) * a + i32::from(x.scales[is + 1] & 0x0F) * b;
            }
        }
        isum
    }

    fn q3_k(x: &BlockQ3K, y: &[u8; QK_K]) -> [i32; 8] {
        let mut a = [0i8; QK_K];
        for (k, q3) in x.qs.chunks_exact(32).enumerate() {
            for j in 0..4 {
                let m = 1u8 << (4 * k + j);
                let e = 128 * k + 32 * j;
                for l in 0..32 {
                    a[e + l] = ((q3[l] >> (2 * j)) & 3) as i8 - if x.hmask[l] & m != 0 { 0 } else { 4 };
                }
            }
        }
        let scales = q3_k_scales(&x.scales);
        let mut aux = [0i32; 8];
        for (g, (a, y)) in a.chunks_exact(16).zip(y.chunks_exact(16)).enumerate() {
            lanes_add(&mut aux, a, y, i32::from(scales[g]) - 32);
        }
        aux
    }

    fn q4_k(x: &BlockQ4K, y: &[u8; QK_K], scales: &[u8; 8]) -> [i32; 8] {
        let mut a = [0i8; QK_K];
        for (c, q) in x.qs.chunks_exact(32).enumerate() {
            for l in 0..32 {
                a[64 * c + l] = (q[l] & 0x0F) as i8;
                a[64 * c + 32 + l] = (q[l] >> 4) as i8;
            }
        }
        let mut aux = [0i32; 8];
        for (g, (a, y)) in a.chunks_exact(32).zip(y.chunks_exact(32)).enumerate() {
            lanes_add(&mut aux, a, y, i32::from(scales[g]));
        }
        aux
    }

    fn q5_k(x: &BlockQ5K, y: &[u8; QK_K], scales: &[u8; 8]) -> [i32; 8] {
        let mut a = [0i8; QK_K];
        for (c, q) in x.qs.chunks_exact(32).enumerate() {
            let (u1, u2) = (1u8 << (2 * c), 2u8 << (2 * c));
            for l in 0..32 {
                a[64 * c + l] = ((q[l] & 0x0F) + if x.qh[l] & u1 != 0 { 16 } else { 0 }) as i8;
                a[64 * c + 32 + l] = ((q[l] >> 4) + if x.qh[l] & u2 != 0 { 16 } else { 0 }) as i8;
            }
        }
        let mut aux = [0i32; 8];
        for (g, (a, y)) in a.chunks_exact(32).zip(y.chunks_exact(32)).enumerate() {
            lanes_add(&mut aux, a, y, i32::from(scales[g]));
        }
        aux
    }

    fn q6_k(x: &BlockQ6K, y: &[u8; QK_K]) -> [i32; 8] {
        let mut a = [0i8; QK_K];
        for h in 0..2 {
            let ql = &x.ql[64 * h..64 * h + 64];
            let qh = &x.qh[32 * h..32 * h + 32];
            let a = &mut a[128 * h..128 * h + 128];
            for l in 0..32 {
                a[l] = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i8 - 32;
                a[l + 32] = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                a[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                a[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
            }
        }
        let mut aux = [0i32; 8];
        for (g, (a, y)) in a.chunks_exact(16).zip(y.chunks_exact(16)).enumerate() {
            lanes_add(&mut aux, a, y, i32::from(x.scales[g] as i8));
        }
        aux
    }

    fn iq4_xs(x: &BlockIq4Xs, y: &[u8; QK_K]) -> [i32; 8] {
        let k = |i: u8| i32::from(KVALUES_IQ4NL[usize::from(i)]);
        std::array::from_fn(|ib| {
            let qs = &x.qs[16 * ib..16 * ib + 16];
            let y = &y[32 * ib..32 * ib + 32];
            dot16(qs.iter().map(|&q| k(q & 0x0F)), &y[..16]) + dot16(qs.iter().map(|&q| k(q >> 4)), &y[16..])
        })
    }

    fn f16_lanes(w: &[u8], y: &[f32]) -> [f32; 32] {
        let mut s = [0f32; 32];
        for (i, &v) in y.iter().enumerate() {
            s[i % 32] += f16_at(w, i) * v;
        }
        s
    }

    fn bf16_lanes(w: &[u8], y: &[f32]) -> [f32; 32] {
        let mut s = [0f32; 32];
        for (i, &v) in y.iter().enumerate() {
            s[i % 32] += bf16_at(w, i) * v;
        }
        s
    }
}

// ---- SSE2 kernels (x86-64 baseline) -------------------------------------------------------------

/// The 32-value blocks with SSE2 (always present on x86-64): bytes widened to i16 and multiplied
/// pairwise into i32 (`pmaddwd`), exact. The k-quants and float lanes use the scalar code.
#[cfg(target_arch = "x86_64")]
mod sse2 {
    use super::*;
    use core::arch::x86_64::*;

    pub struct Sse2;

    // SAFETY (every block below): SSE2 is part of the x86-64 baseline, so the intrinsics are always
    // available; loads are the unaligned forms of 16 bytes inside arrays of at least that size.

    /// 16 bytes of `b` from `at`.
    #[inline(always)]
    fn ld(b: &[u8], at: usize) -> __m128i {
        let s = &b[at..at + 16];
        unsafe { _mm_loadu_si128(s.as_ptr().cast()) }
    }

    /// Σ a[i] * y[i] over 16 weights given as unsigned bytes (0..=255) and 16 signed activations,
    /// as four i32 partial sums.
    #[inline(always)]
    fn madd_u8_i8(a: __m128i, y: __m128i) -> __m128i {
        unsafe {
            let z = _mm_setzero_si128();
            let (alo, ahi) = (_mm_unpacklo_epi8(a, z), _mm_unpackhi_epi8(a, z));
            let ylo = _mm_srai_epi16(_mm_unpacklo_epi8(y, y), 8);
            let yhi = _mm_srai_epi16(_mm_unpackhi_epi8(y, y), 8);
            _mm_add_epi32(_mm_madd_epi16(alo, ylo), _mm_madd_epi16(ahi, yhi))
        }
    }

    /// As [`madd_u8_i8`] with signed weights.
    #[inline(always)]
    fn madd_i8_i8(a: __m128i, y: __m128i) -> __m128i {
        unsafe {
            let alo = _mm_srai_epi16(_mm_unpacklo_epi8(a, a), 8);
            let ahi = _mm_srai_epi16(_mm_unpackhi_epi8(a, a), 8);
            let ylo = _mm_srai_epi16(_mm_unpacklo_epi8(y, y), 8);
            let yhi = _mm_srai_epi16(_mm_unpackhi_epi8(y, y), 8);
            _mm_add_epi32(_mm_madd_epi16(alo, ylo), _mm_madd_epi16(ahi, yhi))
        }
    }

    #[inline(always)]
    fn hsum(v: __m128i) -> i32 {
        let mut l = [0i32; 4];
        unsafe { _mm_storeu_si128(l.as_mut_ptr().cast(), v) };
        l[0].wrapping_add(l[1]).wrapping_add(l[2]).wrapping_add(l[3])
    }

    /// The low and high nibbles of 16 bytes.
    #[inline(always)]
    fn nibbles(v: __m128i) -> (__m128i, __m128i) {
        unsafe {
            let m = _mm_set1_epi8(0x0F);
            (_mm_and_si128(v, m), _mm_and_si128(_mm_srli_epi16(v, 4), m))
        }
    }

    /// Σ y over 32 signed activation bytes (to fold in a constant weight offset exactly).
    #[inline(always)]
    fn sum_y(y: &[u8; QK]) -> i32 {
        unsafe {
            let ones = _mm_set1_epi8(1);
            hsum(_mm_add_epi32(madd_u8_i8(ones, ld(y, 0)), madd_u8_i8(ones, ld(y, 16))))
        }
    }

    impl Kernels for Sse2 {
        fn q4_0(x: &BlockQ4_0, y: &[u8; QK]) -> i32 {
            // Σ (q - 8) y = Σ q y - 8 Σ y, exact in i32.
            let (lo, hi) = nibbles(ld(&x.qs, 0));
            let s = unsafe { _mm_add_epi32(madd_u8_i8(lo, ld(y, 0)), madd_u8_i8(hi, ld(y, 16))) };
            hsum(s) - 8 * sum_y(y)
        }
        fn q4_1(x: &BlockQ4_1, y: &[u8; QK]) -> i32 {
            let (lo, hi) = nibbles(ld(&x.qs, 0));
            hsum(unsafe { _mm_add_epi32(madd_u8_i8(lo, ld(y, 0)), madd_u8_i8(hi, ld(y, 16))) })
        }
        fn q5_0(x: &BlockQ5_0, y: &[u8; QK]) -> i32 {
            Scalar::q5_0(x, y)
        }
        fn q5_1(x: &BlockQ5_1, y: &[u8; QK]) -> i32 {
            Scalar::q5_1(x, y)
        }
        fn q8_0(x: &[u8; QK], y: &[u8; QK]) -> i32 {
            hsum(unsafe { _mm_add_epi32(madd_i8_i8(ld(x, 0), ld(y, 0)), madd_i8_i8(ld(x, 16), ld(y, 16))) })
        }
        fn iq4_nl(x: &BlockIq4Nl, y: &[u8; QK]) -> i32 {
            Scalar::iq4_nl(x, y)
        }
        fn q2_k(x: &BlockQ2K, y: &[u8; QK_K]) -> i32 {
            Scalar::q2_k(x, y)
        }
        fn q3_k(x: &BlockQ3K, y: &[u8; QK_K]) -> [i32; 8] {
            Scalar::q3_k(x, y)
        }
        fn q4_k(x: &BlockQ4K, y: &[u8; QK_K], scales: &[u8; 8]) -> [i32; 8] {
            Scalar::q4_k(x, y, scales)
        }
        fn q5_k(x: &BlockQ5K, y: &[u8; QK_K], scales: &[u8; 8]) -> [i32; 8] {
            Scalar::q5_k(x, y, scales)
        }
        fn q6_k(x: &BlockQ6K, y: &[u8; QK_K]) -> [i32; 8] {
            Scalar::q6_k(x, y)
        }
        fn iq4_xs(x: &BlockIq4Xs, y: &[u8; QK_K]) -> [i32; 8] {
            Scalar::iq4_xs(x, y)
        }
        fn f16_lanes(w: &[u8], y: &[f32]) -> [f32; 32] {
            Scalar::f16_lanes(w, y)
        }
        fn bf16_lanes(w: &[u8], y: &[f32]) -> [f32; 32] {
            Scalar::bf16_lanes(w, y)
        }
    }
}

// ---- SIMD128 kernels ---------------------------------------------------------------------------

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod simd {
    use super::*;
    use core::arch::wasm32::*;

    pub struct Simd128;

    /// 16 bytes of `b` from `at`.
    #[inline(always)]
    pub(crate) fn ld(b: &[u8], at: usize) -> v128 {
        let s = &b[at..at + 16];
        // SAFETY: `s` is 16 readable bytes; v128_load has no alignment requirement.
        unsafe { v128_load(s.as_ptr().cast()) }
    }

    /// 4 f32 of `y` from `at`.
    #[inline(always)]
    pub(crate) fn ldf(y: &[f32], at: usize) -> v128 {
        let s = &y[at..at + 4];
        // SAFETY: `s` is 4 readable f32 (16 bytes); v128_load has no alignment requirement.
        unsafe { v128_load(s.as_ptr().cast()) }
    }

    /// The sum of the four i32 lanes.
    #[inline(always)]
    fn hsum(v: v128) -> i32 {
        i32x4_extract_lane::<0>(v)
            .wrapping_add(i32x4_extract_lane::<1>(v))
            .wrapping_add(i32x4_extract_lane::<2>(v))
            .wrapping_add(i32x4_extract_lane::<3>(v))
    }

    /// Pairwise i32 sums of the 16 products of two i8x16 (exact).
    #[inline(always)]
    fn dot_i8(a: v128, b: v128) -> v128 {
        i32x4_add(
            i32x4_dot_i16x8(i16x8_extend_low_i8x16(a), i16x8_extend_low_i8x16(b)),
            i32x4_dot_i16x8(i16x8_extend_high_i8x16(a), i16x8_extend_high_i8x16(b)),
        )
    }

    /// i16x8: lane `l` = `a[l] * q[l] + a[8 + l] * q[8 + l]` (exact for the weights' ranges).
    #[inline(always)]
    fn lanes16(a: v128, q: v128) -> v128 {
        i16x8_add(
            i16x8_mul(i16x8_extend_low_i8x16(a), i16x8_extend_low_i8x16(q)),
            i16x8_mul(i16x8_extend_high_i8x16(a), i16x8_extend_high_i8x16(q)),
        )
    }

    /// Eight i32 lanes in two vectors.
    #[derive(Clone, Copy)]
    struct Acc(v128, v128);

    impl Acc {
        fn zero() -> Acc {
            Acc(i32x4_splat(0), i32x4_splat(0))
        }
        /// `self[l] += scale * p[l]`, `p` an i16x8.
        #[inline(always)]
        fn add_scaled(&mut self, p: v128, scale: i16) {
            let s = i16x8_splat(scale);
            self.0 = i32x4_add(self.0, i32x4_extmul_low_i16x8(p, s));
            self.1 = i32x4_add(self.1, i32x4_extmul_high_i16x8(p, s));
        }
        fn lanes(self) -> [i32; 8] {
            [
                i32x4_extract_lane::<0>(self.0),
                i32x4_extract_lane::<1>(self.0),
                i32x4_extract_lane::<2>(self.0),
                i32x4_extract_lane::<3>(self.0),
                i32x4_extract_lane::<0>(self.1),
                i32x4_extract_lane::<1>(self.1),
                i32x4_extract_lane::<2>(self.1),
                i32x4_extract_lane::<3>(self.1),
            ]
        }
    }

    /// Byte `k` is `val` where bit `k` of `bits` is set, else 0.
    #[inline(always)]
    fn bits_to_bytes(bits: u16, val: u8) -> v128 {
        let spread = u8x16_swizzle(u16x8_splat(bits), u8x16(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1));
        let sel = u8x16(1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128);
        v128_and(i8x16_ne(v128_and(spread, sel), i8x16_splat(0)), u8x16_splat(val))
    }

    /// Byte `k` is `val` where `b[k] & m` is set (`set`) or clear (`!set`), else 0.
    #[inline(always)]
    fn mask_bytes(b: v128, m: u8, set: bool, val: u8) -> v128 {
        let hit = v128_and(b, u8x16_splat(m));
        let mask = if set { i8x16_ne(hit, i8x16_splat(0)) } else { i8x16_eq(hit, i8x16_splat(0)) };
        v128_and(mask, u8x16_splat(val))
    }

    fn table() -> v128 {
        let k = KVALUES_IQ4NL;
        i8x16(k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8], k[9], k[10], k[11], k[12], k[13], k[14], k[15])
    }

    #[inline(always)]
    fn lo4(q: v128) -> v128 {
        v128_and(q, u8x16_splat(0x0F))
    }

    #[inline(always)]
    fn hi4(q: v128) -> v128 {
        u8x16_shr(q, 4)
    }

    /// Eight f16 (as the low halves of u32 lanes, four at a time) to f32, exactly.
    #[inline(always)]
    pub(crate) fn f16x4_to_f32(h: v128) -> v128 {
        let sign = i32x4_shl(v128_and(h, u32x4_splat(0x8000)), 16);
        let em = v128_and(h, u32x4_splat(0x7fff));
        let shifted = i32x4_shl(em, 13);
        // Exponent bias 15 -> 127 (and subnormals to normals) by one exact multiplication.
        let finite = f32x4_mul(shifted, f32x4_splat(f32::from_bits(0x7780_0000))); // 2^112
        let special = v128_or(
            v128_or(shifted, u32x4_splat(0x7f80_0000)),
            v128_and(u32x4_gt(em, u32x4_splat(0x7c00)), u32x4_splat(0x0040_0000)), // NaN: quiet
        );
        v128_or(v128_bitselect(special, finite, u32x4_ge(em, u32x4_splat(0x7c00))), sign)
    }

    impl Kernels for Simd128 {
        fn q4_0(x: &BlockQ4_0, y: &[u8; QK]) -> i32 {
            let q = ld(&x.qs, 0);
            let off = i8x16_splat(8);
            hsum(i32x4_add(dot_i8(i8x16_sub(lo4(q), off), ld(y, 0)), dot_i8(i8x16_sub(hi4(q), off), ld(y, 16))))
        }

        fn q4_1(x: &BlockQ4_1, y: &[u8; QK]) -> i32 {
            let q = ld(&x.qs, 0);
            hsum(i32x4_add(dot_i8(lo4(q), ld(y, 0)), dot_i8(hi4(q), ld(y, 16))))
        }

        fn q5_0(x: &BlockQ5_0, y: &[u8; QK]) -> i32 {
            let q = ld(&x.qs, 0);
            let qh = u32::from_le_bytes(x.qh);
            let off = i8x16_splat(16);
            let lo = i8x16_sub(v128_or(lo4(q), bits_to_bytes(qh as u16, 0x10)), off);
            let hi = i8x16_sub(v128_or(hi4(q), bits_to_bytes((qh >> 16) as u16, 0x10)), off);
            hsum(i32x4_add(dot_i8(lo, ld(y, 0)), dot_i8(hi, ld(y, 16))))
        }

        fn q5_1(x: &BlockQ5_1, y: &[u8; QK]) -> i32 {
            let q = ld(&x.qs, 0);
            let qh = u32::from_le_bytes(x.qh);
            let lo = v128_or(lo4(q), bits_to_bytes(qh as u16, 0x10));
            let hi = v128_or(hi4(q), bits_to_bytes((qh >> 16) as u16, 0x10));
            hsum(i32x4_add(dot_i8(lo, ld(y, 0)), dot_i8(hi, ld(y, 16))))
        }

        fn q8_0(x: &[u8; QK], y: &[u8; QK]) -> i32 {
            hsum(i32x4_add(dot_i8(ld(x, 0), ld(y, 0)), dot_i8(ld(x, 16), ld(y, 16))))
        }

        fn iq4_nl(x: &BlockIq4Nl, y: &[u8; QK]) -> i32 {
            let q = ld(&x.qs, 0);
            let t = table();
            hsum(i32x4_add(dot_i8(i8x16_swizzle(t, lo4(q)), ld(y, 0)), dot_i8(i8x16_swizzle(t, hi4(q)), ld(y, 16))))
        }

        fn q2_k(x: &BlockQ2K, y: &[u8; QK_K]) -> i32 {
            let mut acc = Acc::zero();
            let three = u8x16_splat(3);
            for k in 0..2 {
                let qa = ld(&x.qs, 32 * k);
                let qb = ld(&x.qs, 32 * k + 16);
                for j in 0..4 {
                    let shift = 2 * j as u32;
                    let e = 128 * k + 32 * j;
                    let is = 8 * k + 2 * j;
                    let wa = v128_and(u8x16_shr(qa, shift), three);
                    let wb = v128_and(u8x16_shr(qb, shift), three);
                    acc.add_scaled(lanes16(wa, ld(y, e)), i16::from(x.scales[is] & 0x0F));
                    acc.add_scaled(lanes16(wb, ld(y, e + 16)), i16::from(x.scales[is + 1] & 0x0F));
                }
            }
            hsum(i32x4_add(acc.0, acc.1))
        }

        fn q3_k(x: &BlockQ3K, y: &[u8; QK_K]) -> [i32; 8] {
            let scales = q3_k_scales(&x.scales);
            let (hma, hmb) = (ld(&x.hmask, 0), ld(&x.hmask, 16));
            let three = u8x16_splat(3);
            let mut acc = Acc::zero();
            for k in 0..2 {
                let qa = ld(&x.qs, 32 * k);
                let qb = ld(&x.qs, 32 * k + 16);
                for j in 0..4 {
                    let shift = 2 * j as u32;
                    let m = 1u8 << (4 * k + j);
                    let e = 128 * k + 32 * j;
                    let is = 8 * k + 2 * j;
                    let wa = i8x16_sub(v128_and(u8x16_shr(qa, shift), three), mask_bytes(hma, m, false, 4));
                    let wb = i8x16_sub(v128_and(u8x16_shr(qb, shift), three), mask_bytes(hmb, m, false, 4));
                    acc.add_scaled(lanes16(wa, ld(y, e)), i16::from(scales[is]) - 32);
                    acc.add_scaled(lanes16(wb, ld(y, e + 16)), i16::from(scales[is + 1]) - 32);
                }
            }
            acc.lanes()
        }

        fn q4_k(x: &BlockQ4K, y: &[u8; QK_K], scales: &[u8; 8]) -> [i32; 8] {
            let mut acc = Acc::zero();
            for c in 0..4 {
                let qa = ld(&x.qs, 32 * c);
                let qb = ld(&x.qs, 32 * c + 16);
                let e = 64 * c;
                let lo = i16x8_add(lanes16(lo4(qa), ld(y, e)), lanes16(lo4(qb), ld(y, e + 16)));
                let hi = i16x8_add(lanes16(hi4(qa), ld(y, e + 32)), lanes16(hi4(qb), ld(y, e + 48)));
                acc.add_scaled(lo, i16::from(scales[2 * c]));
                acc.add_scaled(hi, i16::from(scales[2 * c + 1]));
            }
            acc.lanes()
        }

        fn q5_k(x: &BlockQ5K, y: &[u8; QK_K], scales: &[u8; 8]) -> [i32; 8] {
            let (qha, qhb) = (ld(&x.qh, 0), ld(&x.qh, 16));
            let mut acc = Acc::zero();
            for c in 0..4 {
                let qa = ld(&x.qs, 32 * c);
                let qb = ld(&x.qs, 32 * c + 16);
                let (u1, u2) = (1u8 << (2 * c), 2u8 << (2 * c));
                let e = 64 * c;
                let la = v128_or(lo4(qa), mask_bytes(qha, u1, true, 16));
                let lb = v128_or(lo4(qb), mask_bytes(qhb, u1, true, 16));
                let ha = v128_or(hi4(qa), mask_bytes(qha, u2, true, 16));
                let hb = v128_or(hi4(qb), mask_bytes(qhb, u2, true, 16));
                let lo = i16x8_add(lanes16(la, ld(y, e)), lanes16(lb, ld(y, e + 16)));
                let hi = i16x8_add(lanes16(ha, ld(y, e + 32)), lanes16(hb, ld(y, e + 48)));
                acc.add_scaled(lo, i16::from(scales[2 * c]));
                acc.add_scaled(hi, i16::from(scales[2 * c + 1]));
            }
            acc.lanes()
        }

        fn q6_k(x: &BlockQ6K, y: &[u8; QK_K]) -> [i32; 8] {
            let three = u8x16_splat(3);
            let off = i8x16_splat(32);
            let mut acc = Acc::zero();
            for h in 0..2 {
                for l in [0, 16] {
                    let a = ld(&x.ql, 64 * h + l);
                    let b = ld(&x.ql, 64 * h + 32 + l);
                    let qh = ld(&x.qh, 32 * h + l);
                    let high = |s: u32| i8x16_shl(v128_and(u8x16_shr(qh, s), three), 4);
                    let w = [
                        v128_or(lo4(a), high(0)),
                        v128_or(lo4(b), high(2)),
                        v128_or(hi4(a), high(4)),
                        v128_or(hi4(b), high(6)),
                    ];
                    for (s, w) in w.into_iter().enumerate() {
                        let e = 128 * h + 32 * s + l;
                        acc.add_scaled(lanes16(i8x16_sub(w, off), ld(y, e)), i16::from(x.scales[e / 16] as i8));
                    }
                }
            }
            acc.lanes()
        }

        fn iq4_xs(x: &BlockIq4Xs, y: &[u8; QK_K]) -> [i32; 8] {
            let t = table();
            std::array::from_fn(|ib| {
                let q = ld(&x.qs, 16 * ib);
                let lo = dot_i8(i8x16_swizzle(t, lo4(q)), ld(y, 32 * ib));
                let hi = dot_i8(i8x16_swizzle(t, hi4(q)), ld(y, 32 * ib + 16));
                hsum(i32x4_add(lo, hi))
            })
        }

        fn f16_lanes(w: &[u8], y: &[f32]) -> [f32; 32] {
            let mut acc = [f32x4_splat(0.0); 8];
            for (wc, yc) in w.chunks_exact(64).zip(y.chunks_exact(32)) {
                for v in 0..4 {
                    let h = ld(wc, 16 * v);
                    let lo = f16x4_to_f32(u32x4_extend_low_u16x8(h));
                    let hi = f16x4_to_f32(u32x4_extend_high_u16x8(h));
                    acc[2 * v] = f32x4_add(acc[2 * v], f32x4_mul(lo, ldf(yc, 8 * v)));
                    acc[2 * v + 1] = f32x4_add(acc[2 * v + 1], f32x4_mul(hi, ldf(yc, 8 * v + 4)));
                }
            }
            lanes32(&acc)
        }

        fn bf16_lanes(w: &[u8], y: &[f32]) -> [f32; 32] {
            let mut acc = [f32x4_splat(0.0); 8];
            for (wc, yc) in w.chunks_exact(64).zip(y.chunks_exact(32)) {
                for v in 0..4 {
                    let h = ld(wc, 16 * v);
                    let lo = i32x4_shl(u32x4_extend_low_u16x8(h), 16);
                    let hi = i32x4_shl(u32x4_extend_high_u16x8(h), 16);
                    acc[2 * v] = f32x4_add(acc[2 * v], f32x4_mul(lo, ldf(yc, 8 * v)));
                    acc[2 * v + 1] = f32x4_add(acc[2 * v + 1], f32x4_mul(hi, ldf(yc, 8 * v + 4)));
                }
            }
            lanes32(&acc)
        }
    }

    fn lanes32(acc: &[v128; 8]) -> [f32; 32] {
        let mut out = [0f32; 32];
        for (o, &v) in out.chunks_exact_mut(4).zip(acc) {
            o[0] = f32x4_extract_lane::<0>(v);
            o[1] = f32x4_extract_lane::<1>(v);
            o[2] = f32x4_extract_lane::<2>(v);
            o[3] = f32x4_extract_lane::<3>(v);
        }
        out
    }
}

#[cfg(test)]
#[path = "actq_tests.rs"]
mod tests;
