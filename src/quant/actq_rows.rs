//! llama.cpp's CPU matmul for many positions at once, for the weight types of 32-value blocks
//! (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL): the same numbers as [`super::actq::vec_dot_scalar`] per
//! (row, position), computed faster.
//!
//! [`super::actq::vec_dot`] unpacks a weight block's quants for every position it meets and runs
//! one f32 chain at a time. Here [`LANES`] weight rows are unpacked once per matmul ([`Tile`]:
//! quants widened to i16, f16 scales and mins as f32) and dotted with every position's activations
//! ([`Inputs`]: the Q8_0 / Q8_1 quants widened to i16, their scales and sums as f32, prepared once
//! per matmul); each activation block is loaded once for the tile's rows, and the rows' f32 chains
//! run side by side. Per block the integer sum of 32 products is exact whichever way it is added
//! up (i16 x i16 products summed in i32: at most 32 * 127 * 127), and the f32 combination of those
//! sums ([`combine`]) is the code of the module documentation of `actq`, in block order, per row,
//! so every output has the bits of `vec_dot_scalar`. Vector code: the block sums and the unpacking
//! (`i32x4.dot_i16x8_s`, widening) on wasm32 with SIMD128; natively plain Rust that the compiler
//! turns into `pmaddwd` (and into the AVX2 forms in the build that [`crate::ops::matvec`] runs when
//! the CPU has AVX2 and FMA).

use super::actq::{fma, ActFormat, QuantizedActs};
use super::blocks::{f16_le, BlockIq4Nl, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, KVALUES_IQ4NL, QK};
use crate::ggml::GgmlType;
use crate::{Error, Result};
use rayon::prelude::*;

/// Whether rows of `t` go through this module.
pub fn supports(t: GgmlType) -> bool {
    use GgmlType::*;
    matches!(t, Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | IQ4_NL)
}

/// Whether this build dots Q4_0 and Q4_1 nibbles as bytes (wasm32 built with relaxed SIMD:
/// `i32x4.relaxed_dot_i8x16_i7x16_add_s`, 16 products per instruction, one operand the signed
/// activation bytes and the other the nibbles 0..16) instead of widening both sides to i16. The
/// instruction is only deterministic when its second operand is in 0..128; nibbles always are, so
/// the integer block sums are the exact ones either way (Q4_0's offset of 8 is taken off as
/// `8 * sum(activations)` per block).
pub const BYTE_NIBBLES: bool =
    cfg!(all(target_arch = "wasm32", target_feature = "simd128", target_feature = "relaxed-simd"));

/// Whether rows of `t` are unpacked as nibble bytes in this build ([`BYTE_NIBBLES`]).
#[inline(always)]
fn byte_nibbles(t: GgmlType) -> bool {
    BYTE_NIBBLES && matches!(t, GgmlType::Q4_0 | GgmlType::Q4_1)
}

/// The activations of `n` positions for one matmul, as the block sums read them.
#[derive(Debug, Default)]
pub struct Inputs {
    cols: usize,
    /// `n * cols` quants.
    q: Vec<i16>,
    /// Per position and block: the Q8 scale `d` and (Q8_1) the scaled sum `s`, as f32.
    d: Vec<f32>,
    s: Vec<f32>,
    /// With [`BYTE_NIBBLES`]: the quants as bytes, and per position and block their sum.
    q8: Vec<i8>,
    qsum: Vec<i32>,
}

impl Inputs {
    /// Widen `acts` (one [`QuantizedActs`] per position, all Q8_0 or all Q8_1 of the same length).
    ///
    /// # Errors
    /// An activation vector of another format or length.
    pub fn new(acts: &[QuantizedActs]) -> Result<Inputs> {
        let Some(first) = acts.first() else { return Ok(Inputs::default()) };
        let (cols, format) = (first.len(), first.format());
        for a in acts {
            if a.len() != cols || a.format() != format || !matches!(format, ActFormat::Q8_0 | ActFormat::Q8_1) {
                return Err(Error::input(format!(
                    "{} activations of {} values cannot be batched with {format} ones of {cols}",
                    a.format(),
                    a.len()
                )));
            }
        }
        let nb = cols / QK;
        if nb == 0 {
            return Ok(Inputs { cols, ..Inputs::default() });
        }
        let n = acts.len();
        let mut out =
            Inputs { cols, q: vec![0; n * cols], d: vec![0.0; n * nb], s: vec![0.0; n * nb], ..Inputs::default() };
        let size = format.block_bytes();
        // One position per task (each widened alike whichever thread runs it).
        let positions = out.q.par_chunks_exact_mut(cols).zip(out.d.par_chunks_exact_mut(nb));
        positions.zip(out.s.par_chunks_exact_mut(nb)).zip(acts).for_each(|(((q, d), s), a)| {
            let blocks = a.bytes().chunks_exact(size).zip(q.chunks_exact_mut(QK));
            for (b, (block, q)) in blocks.enumerate() {
                d[b] = f16_le([block[0], block[1]]);
                if format == ActFormat::Q8_1 {
                    s[b] = f16_le([block[2], block[3]]);
                }
                for (q, &v) in q.iter_mut().zip(&block[size - QK..]) {
                    *q = i16::from(v as i8);
                }
            }
        });
        if format != ActFormat::Q8_1 {
            out.s = Vec::new();
        }
        if BYTE_NIBBLES {
            out.q8 = out.q.iter().map(|&v| v as i8).collect();
            out.qsum = out.q.chunks_exact(QK).map(|b| b.iter().map(|&v| i32::from(v)).sum()).collect();
        }
        Ok(out)
    }

    /// The number of positions.
    pub fn len(&self) -> usize {
        self.q.len().checked_div(self.cols).unwrap_or(0)
    }

    /// Whether there are no positions.
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }
}

/// Rows dotted together: each activation block is read once for this many weight rows, and the
/// rows' f32 chains run side by side.
pub const LANES: usize = 4;

/// Up to [`LANES`] weight rows unpacked: quants as i16 (row `k` at `k * cols`), scales (and mins)
/// as f32 interleaved by block (`d[b * LANES + k]`), and room for the block sums.
#[derive(Debug, Default)]
pub struct Tile {
    cols: usize,
    q: Vec<i16>,
    /// With [`byte_nibbles`] types instead of `q`: the nibbles as bytes 0..16 (row `k` at `k * cols`).
    n: Vec<u8>,
    d: Vec<f32>,
    m: Vec<f32>,
    sums: Vec<i32>,
    /// A second position's block sums (two positions per pass).
    sums2: Vec<i32>,
}

/// Unpack `rows` (1 to [`LANES`] rows of `t`, whole blocks of `cols` values: the caller checked
/// their lengths) into `tile`; lanes past `rows.len()` repeat the last row.
#[inline(always)]
pub fn unpack_rows(t: GgmlType, rows: &[&[u8]], cols: usize, tile: &mut Tile) {
    let nb = cols / QK;
    tile.cols = cols;
    tile.d.resize(LANES * nb, 0.0);
    tile.m.resize(LANES * nb, 0.0);
    tile.sums.resize(LANES * nb, 0);
    let Some(&last) = rows.last() else { return };
    if byte_nibbles(t) {
        tile.n.resize(LANES * cols, 0);
        for k in 0..LANES {
            let row = rows.get(k).copied().unwrap_or(last);
            unpack_nibble_bytes(t, row, &mut tile.n[k * cols..(k + 1) * cols], k, &mut tile.d, &mut tile.m);
        }
        return;
    }
    tile.q.resize(LANES * cols, 0);
    for k in 0..LANES {
        let row = rows.get(k).copied().unwrap_or(last);
        unpack_row(t, row, &mut tile.q[k * cols..(k + 1) * cols], k, &mut tile.d, &mut tile.m);
    }
}

/// One Q4_0 or Q4_1 row into lane `k` as nibble bytes (no offset: Q4_0's is applied to the sums).
#[inline(always)]
fn unpack_nibble_bytes(t: GgmlType, row: &[u8], n: &mut [u8], k: usize, d: &mut [f32], m: &mut [f32]) {
    let (bs, with_min) = if t == GgmlType::Q4_1 { (20, true) } else { (18, false) };
    for (b, (x, n)) in row.chunks_exact(bs).zip(n.chunks_exact_mut(QK)).enumerate() {
        d[b * LANES + k] = f16_le([x[0], x[1]]);
        if with_min {
            m[b * LANES + k] = f16_le([x[2], x[3]]);
        }
        for (j, &v) in x[bs - 16..].iter().enumerate() {
            n[j] = v & 0x0f;
            n[j + 16] = v >> 4;
        }
    }
}

/// One row into lane `k`.
#[inline(always)]
fn unpack_row(t: GgmlType, row: &[u8], q: &mut [i16], k: usize, d: &mut [f32], m: &mut [f32]) {
    use bytemuck::cast_slice as cast;
    let q = q.chunks_exact_mut(QK);
    match t {
        GgmlType::Q4_0 => {
            for (b, (x, q)) in cast::<_, BlockQ4_0>(row).iter().zip(q).enumerate() {
                d[b * LANES + k] = f16_le(x.d);
                nibbles(q, &x.qs, -8);
            }
        }
        GgmlType::Q4_1 => {
            for (b, (x, q)) in cast::<_, BlockQ4_1>(row).iter().zip(q).enumerate() {
                d[b * LANES + k] = f16_le(x.d);
                m[b * LANES + k] = f16_le(x.m);
                nibbles(q, &x.qs, 0);
            }
        }
        GgmlType::Q5_0 => {
            for (b, (x, q)) in cast::<_, BlockQ5_0>(row).iter().zip(q).enumerate() {
                d[b * LANES + k] = f16_le(x.d);
                fifth_bits(q, &x.qs, u32::from_le_bytes(x.qh), -16);
            }
        }
        GgmlType::Q5_1 => {
            for (b, (x, q)) in cast::<_, BlockQ5_1>(row).iter().zip(q).enumerate() {
                d[b * LANES + k] = f16_le(x.d);
                m[b * LANES + k] = f16_le(x.m);
                fifth_bits(q, &x.qs, u32::from_le_bytes(x.qh), 0);
            }
        }
        GgmlType::Q8_0 => {
            for (b, (x, q)) in cast::<_, BlockQ8_0>(row).iter().zip(q).enumerate() {
                d[b * LANES + k] = f16_le(x.d);
                widen_i8(q, &x.qs);
            }
        }
        GgmlType::IQ4_NL => {
            for (b, (x, q)) in cast::<_, BlockIq4Nl>(row).iter().zip(q).enumerate() {
                d[b * LANES + k] = f16_le(x.d);
                for (j, &v) in x.qs.iter().enumerate() {
                    q[j] = i16::from(KVALUES_IQ4NL[usize::from(v & 0x0f)]);
                    q[j + 16] = i16::from(KVALUES_IQ4NL[usize::from(v >> 4)]);
                }
            }
        }
        _ => {}
    }
}

/// 16 bytes of nibbles plus `offset`: the low nibbles are values 0..16, the high ones 16..32.
#[inline(always)]
fn nibbles(q: &mut [i16], qs: &[u8; 16], offset: i16) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    simd::nibbles(q, qs, offset);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    for (j, &v) in qs.iter().enumerate() {
        q[j] = i16::from(v & 0x0f) + offset;
        q[j + 16] = i16::from(v >> 4) + offset;
    }
}

/// 32 quants as i8 bytes, widened.
#[inline(always)]
fn widen_i8(q: &mut [i16], qs: &[u8; QK]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    simd::widen_i8(q, qs);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    for (q, &v) in q.iter_mut().zip(qs) {
        *q = i16::from(v as i8);
    }
}

/// Q5: nibbles plus a fifth bit from `qh` (bit `j` for value `j`), plus `offset`.
#[inline(always)]
fn fifth_bits(q: &mut [i16], qs: &[u8; 16], qh: u32, offset: i16) {
    for (j, &v) in qs.iter().enumerate() {
        q[j] = (i16::from(v & 0x0f) | (((qh >> j) & 1) << 4) as i16) + offset;
        q[j + 16] = (i16::from(v >> 4) | (((qh >> (j + 16)) & 1) << 4) as i16) + offset;
    }
}

/// `outs[k * n + p]` = the llama.cpp dot product of the tile's row `k` with position `p` of
/// `inputs`, for the first `outs.len() / n` rows (`n = inputs.len()`).
#[inline(always)]
pub fn dot_tile(t: GgmlType, tile: &mut Tile, inputs: &Inputs, outs: &mut [f32]) {
    let (cols, n) = (inputs.cols, inputs.len());
    let nb = cols / QK;
    if n == 0 || tile.cols != cols {
        return;
    }
    if byte_nibbles(t) {
        return nibble_tile(t, tile, inputs, outs);
    }
    // Two positions per pass where the build has a kernel for it; the rest one at a time.
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    let p = pairs(t, tile, inputs, outs);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    let p = 0;
    for p in p..n {
        let a = &inputs.q[p * cols..(p + 1) * cols];
        let dy = &inputs.d[p * nb..(p + 1) * nb];
        let sy = inputs.s.get(p * nb..(p + 1) * nb).unwrap_or(&[]);
        block_sums(&tile.q, cols, a, &mut tile.sums);
        let sumf = combine(t, &tile.sums, &tile.d, &tile.m, dy, sy);
        for (k, &v) in sumf.iter().enumerate().take(outs.len() / n) {
            outs[k * n + p] = v;
        }
    }
}

/// [`dot_tile`] for [`byte_nibbles`] types: the positions two by two (each weight block loaded
/// once for both), then the last one alone.
fn nibble_tile(t: GgmlType, tile: &mut Tile, inputs: &Inputs, outs: &mut [f32]) {
    let (cols, n) = (inputs.cols, inputs.len());
    let nb = cols / QK;
    let offset = if t == GgmlType::Q4_0 { 8 } else { 0 };
    tile.sums2.resize(tile.sums.len(), 0);
    let mut p = 0;
    while p < n {
        let two = p + 1 < n;
        let a = &inputs.q8[p * cols..(p + 1 + usize::from(two)) * cols];
        let qsum = &inputs.qsum[p * nb..(p + 1 + usize::from(two)) * nb];
        if two {
            nibble_sums2(&tile.n, cols, a, qsum, offset, &mut tile.sums, &mut tile.sums2);
        } else {
            nibble_sums(&tile.n, cols, a, qsum, offset, &mut tile.sums);
        }
        for (j, sums) in [&tile.sums, &tile.sums2].into_iter().enumerate().take(1 + usize::from(two)) {
            let q = p + j;
            let dy = &inputs.d[q * nb..(q + 1) * nb];
            let sy = inputs.s.get(q * nb..(q + 1) * nb).unwrap_or(&[]);
            let sumf = combine(t, sums, &tile.d, &tile.m, dy, sy);
            for (k, &v) in sumf.iter().enumerate().take(outs.len() / n) {
                outs[k * n + q] = v;
            }
        }
        p += 1 + usize::from(two);
    }
}

/// The exact block sums of [`LANES`] rows of nibble bytes `n` (row `k` at `k * cols`, values
/// 0..16) minus `offset`, with one position's activation bytes `a` (`qsum`: their sum per block):
/// `sums[b * LANES + k]` = sum over the block of `(n - offset) * a`, computed as
/// `sum(n * a) - offset * qsum[b]`.
#[inline(always)]
pub fn nibble_sums(n: &[u8], cols: usize, a: &[i8], qsum: &[i32], offset: i32, sums: &mut [i32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128", target_feature = "relaxed-simd"))]
    simd::relaxed::nibble_sums(n, cols, a, qsum, offset, sums);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128", target_feature = "relaxed-simd")))]
    nibble_sums_scalar(n, cols, a, qsum, offset, sums);
}

/// [`nibble_sums`] of two consecutive positions (`a`: `2 * cols` bytes, `qsum`: `2 * cols / 32`).
#[inline(always)]
pub fn nibble_sums2(n: &[u8], cols: usize, a: &[i8], qsum: &[i32], offset: i32, sums0: &mut [i32], sums1: &mut [i32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128", target_feature = "relaxed-simd"))]
    simd::relaxed::nibble_sums2(n, cols, a, qsum, offset, sums0, sums1);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128", target_feature = "relaxed-simd")))]
    {
        let nb = cols / QK;
        nibble_sums_scalar(n, cols, &a[..cols], &qsum[..nb], offset, sums0);
        nibble_sums_scalar(n, cols, &a[cols..], &qsum[nb..], offset, sums1);
    }
}

/// [`nibble_sums`], one product at a time: the reference.
pub fn nibble_sums_scalar(n: &[u8], cols: usize, a: &[i8], qsum: &[i32], offset: i32, sums: &mut [i32]) {
    for (b, a) in a.chunks_exact(QK).enumerate() {
        for k in 0..LANES {
            let n = &n[k * cols + b * QK..k * cols + (b + 1) * QK];
            let dot: i32 = n.iter().zip(a).map(|(&n, &a)| i32::from(n) * i32::from(a)).sum();
            sums[b * LANES + k] = dot - offset * qsum[b];
        }
    }
}

/// [`dot_tile`] for the positions two by two, each weight block loaded once for both; returns
/// how many positions it did.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn pairs(t: GgmlType, tile: &mut Tile, inputs: &Inputs, outs: &mut [f32]) -> usize {
    let (cols, n) = (inputs.cols, inputs.len());
    let nb = cols / QK;
    tile.sums2.resize(tile.sums.len(), 0);
    let mut p = 0;
    while p + 2 <= n {
        simd::block_sums2(&tile.q, cols, &inputs.q[p * cols..(p + 2) * cols], &mut tile.sums, &mut tile.sums2);
        for (j, sums) in [&tile.sums, &tile.sums2].into_iter().enumerate() {
            let q = p + j;
            let dy = &inputs.d[q * nb..(q + 1) * nb];
            let sy = inputs.s.get(q * nb..(q + 1) * nb).unwrap_or(&[]);
            let sumf = combine(t, sums, &tile.d, &tile.m, dy, sy);
            for (k, &v) in sumf.iter().enumerate().take(outs.len() / n) {
                outs[k * n + q] = v;
            }
        }
        p += 2;
    }
    p
}

/// Decoding (one position): up to [`LANES`] rows of `t` dotted with `inputs` straight from their
/// bytes, without unpacking them first (for the types with a direct kernel: Q4_0, Q4_1 and Q8_0 on
/// wasm32 with SIMD128). `outs[k]` gets row `k`'s result, the bits of [`dot_tile`]'s (the same
/// exact block sums, the same f32 chains). Returns whether it did; otherwise the caller unpacks.
#[inline(always)]
pub fn dot_one(t: GgmlType, rows: &[&[u8]], inputs: &Inputs, outs: &mut [f32]) -> bool {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if inputs.len() == 1 {
        let nb = inputs.cols / QK;
        let (dy, sy) = (&inputs.d[..nb], inputs.s.get(..nb).unwrap_or(&[]));
        #[cfg(target_feature = "relaxed-simd")]
        if byte_nibbles(t) {
            if let Some(sumf) = simd::relaxed::dot_one(t, rows, &inputs.q8, &inputs.qsum, dy, sy) {
                for (o, v) in outs.iter_mut().zip(sumf) {
                    *o = v;
                }
                return true;
            }
        }
        if let Some(sumf) = simd::dot_one(t, rows, &inputs.q, dy, sy) {
            for (o, v) in outs.iter_mut().zip(sumf) {
                *o = v;
            }
            return true;
        }
    }
    let _ = (t, rows, inputs, outs);
    false
}

/// Up to [`LANES`] rows of `t` against every position of `inputs` (`outs` as [`dot_tile`]'s):
/// straight from the bytes when decoding has a direct kernel ([`dot_one`]), otherwise unpacked
/// into `tile` and dotted.
#[inline(always)]
pub fn dot_rows(t: GgmlType, rows: &[&[u8]], cols: usize, tile: &mut Tile, inputs: &Inputs, outs: &mut [f32]) {
    if !dot_one(t, rows, inputs, outs) {
        unpack_rows(t, rows, cols, tile);
        dot_tile(t, tile, inputs, outs);
    }
}

/// The four-lane fused multiply-add of the SIMD128 chains (through f64, the scalar `fma` where
/// that could round differently), for tests.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[doc(hidden)]
pub fn fma_lanes(a: [f32; LANES], b: [f32; LANES], c: [f32; LANES]) -> [f32; LANES] {
    simd::fma_lanes(a, b, c)
}

/// The f32 combination of the exact block sums of [`LANES`] rows (`sums[b * LANES + k]`), as
/// `actq::dot` does it per type (module documentation of `actq`), blocks in order, each lane its
/// own chain.
#[inline(always)]
pub fn combine(t: GgmlType, sums: &[i32], dx: &[f32], mx: &[f32], dy: &[f32], sy: &[f32]) -> [f32; LANES] {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd::combine(t, sums, dx, mx, dy, sy);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    combine_scalar(t, sums, dx, mx, dy, sy)
}

/// [`combine`], one lane at a time: the reference.
#[inline(always)]
pub fn combine_scalar(t: GgmlType, sums: &[i32], dx: &[f32], mx: &[f32], dy: &[f32], sy: &[f32]) -> [f32; LANES] {
    let mut sumf = [0f32; LANES];
    let lanes =
        |v: &[f32], b: usize| -> [f32; LANES] { [v[b * LANES], v[b * LANES + 1], v[b * LANES + 2], v[b * LANES + 3]] };
    let ints = |b: usize| -> [f32; LANES] { core::array::from_fn(|k| sums[b * LANES + k] as f32) };
    match t {
        GgmlType::Q4_0 => {
            for (b, &dy) in dy.iter().enumerate() {
                let (s, dx) = (ints(b), lanes(dx, b));
                for k in 0..LANES {
                    sumf[k] = fma(s[k] * dx[k], dy, sumf[k]);
                }
            }
        }
        GgmlType::Q5_0 | GgmlType::Q8_0 => {
            for (b, &dy) in dy.iter().enumerate() {
                let (s, dx) = (ints(b), lanes(dx, b));
                for k in 0..LANES {
                    sumf[k] = fma(s[k], dx[k] * dy, sumf[k]);
                }
            }
        }
        GgmlType::IQ4_NL => {
            for (b, &dy) in dy.iter().enumerate() {
                let (s, dx) = (ints(b), lanes(dx, b));
                for k in 0..LANES {
                    sumf[k] = fma(s[k], dy * dx[k], sumf[k]);
                }
            }
        }
        GgmlType::Q4_1 | GgmlType::Q5_1 => {
            for (b, (&dy, &sy)) in dy.iter().zip(sy).enumerate() {
                let (s, dx, mx) = (ints(b), lanes(dx, b), lanes(mx, b));
                for k in 0..LANES {
                    sumf[k] += fma(dx[k] * dy, s[k], mx[k] * sy);
                }
            }
        }
        _ => sumf = [f32::NAN; LANES],
    }
    sumf
}

/// `sums[b * LANES + k]` = Σ w[k * cols + 32 b + i] a[32 b + i] (block `b` of row `k`), exact.
#[inline(always)]
pub fn block_sums(w: &[i16], cols: usize, a: &[i16], sums: &mut [i32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    simd::block_sums(w, cols, a, sums);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    block_sums_scalar(w, cols, a, sums);
}

/// [`block_sums`], one product at a time: the reference.
#[inline(always)]
pub fn block_sums_scalar(w: &[i16], cols: usize, a: &[i16], sums: &mut [i32]) {
    for (b, a) in a.chunks_exact(QK).enumerate() {
        for k in 0..LANES {
            let w = &w[k * cols + b * QK..k * cols + (b + 1) * QK];
            sums[b * LANES + k] = w.iter().zip(a).map(|(&w, &a)| i32::from(w) * i32::from(a)).sum();
        }
    }
}

/// The decoding kernel of [`dot_one`] for x86-64 with AVX2, FMA and F16C (chosen at run time by
/// [`crate::ops::matvec`]): per block each row's 32 quants widened to i16 in one register pair,
/// `vpmaddwd` with the activations, the four rows' sums transposed into lanes, then the f32 chains
/// of [`combine`] with one-instruction fused multiply-adds (correctly rounded, so the same bits).
#[cfg(target_arch = "x86_64")]
pub mod avx2 {
    use super::{GgmlType, Inputs, LANES, QK};
    use core::arch::x86_64::*;

    /// [`super::dot_one`] on x86-64: `false` when the shapes or the type have no direct kernel
    /// here (the caller then unpacks).
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_one(t: GgmlType, rows: &[&[u8]], inputs: &Inputs, outs: &mut [f32]) -> bool {
        let (bs, qs) = match t {
            GgmlType::Q4_0 => (18, 2),
            GgmlType::Q4_1 => (20, 4),
            GgmlType::Q8_0 => (34, 2),
            _ => return false,
        };
        if inputs.len() != 1 {
            return false;
        }
        let nb = inputs.cols / QK;
        let (a, dy, sy) = (&inputs.q, &inputs.d, &inputs.s);
        let Some(&last) = rows.last() else { return false };
        let r: [&[u8]; LANES] = core::array::from_fn(|k| rows.get(k).copied().unwrap_or(last));
        if r.iter().any(|x| x.len() < nb * bs)
            || a.len() < nb * QK
            || dy.len() < nb
            || (t == GgmlType::Q4_1 && sy.len() < nb)
            || outs.len() < rows.len()
        {
            return false;
        }
        let f16 = |x: &[u8], at: usize| u16::from_le_bytes([x[at], x[at + 1]]) as i16;
        let mut sumf = _mm_setzero_ps();
        for b in 0..nb {
            let at = b * QK;
            // SAFETY: `a` holds at least `nb * QK` i16 (checked above): 32 readable from `at`.
            let (a0, a1) = unsafe {
                (_mm256_loadu_si256(a.as_ptr().add(at).cast()), _mm256_loadu_si256(a.as_ptr().add(at + 16).cast()))
            };
            let dot = |x: &[u8]| {
                let q = b * bs + qs;
                let (w0, w1) = if t == GgmlType::Q8_0 {
                    // SAFETY: the row holds `nb` blocks of `bs` bytes (checked above): the 32
                    // quants from `q` are readable.
                    let (lo, hi) = unsafe {
                        (_mm_loadu_si128(x.as_ptr().add(q).cast()), _mm_loadu_si128(x.as_ptr().add(q + 16).cast()))
                    };
                    (_mm256_cvtepi8_epi16(lo), _mm256_cvtepi8_epi16(hi))
                } else {
                    // SAFETY: as above, the 16 bytes of nibbles from `q` are readable.
                    let v = unsafe { _mm_loadu_si128(x.as_ptr().add(q).cast()) };
                    let mask = _mm_set1_epi8(0x0f);
                    let (lo, hi) = (_mm_and_si128(v, mask), _mm_and_si128(_mm_srli_epi16(v, 4), mask));
                    let off = _mm256_set1_epi16(if t == GgmlType::Q4_0 { 8 } else { 0 });
                    (_mm256_sub_epi16(_mm256_cvtepu8_epi16(lo), off), _mm256_sub_epi16(_mm256_cvtepu8_epi16(hi), off))
                };
                _mm256_add_epi32(_mm256_madd_epi16(w0, a0), _mm256_madd_epi16(w1, a1))
            };
            // Transpose-add: lane k of `s` is the sum of row k's eight partial sums.
            let h01 = _mm256_hadd_epi32(dot(r[0]), dot(r[1]));
            let h23 = _mm256_hadd_epi32(dot(r[2]), dot(r[3]));
            let h = _mm256_hadd_epi32(h01, h23);
            let s = _mm_cvtepi32_ps(_mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1)));
            // Each block starts with its f16 scale (then, for Q4_1, its f16 min).
            let o = b * bs;
            let dx = _mm_cvtph_ps(_mm_setr_epi16(f16(r[0], o), f16(r[1], o), f16(r[2], o), f16(r[3], o), 0, 0, 0, 0));
            let dyb = _mm_set1_ps(dy[b]);
            sumf = match t {
                GgmlType::Q4_0 => _mm_fmadd_ps(_mm_mul_ps(s, dx), dyb, sumf),
                GgmlType::Q8_0 => _mm_fmadd_ps(s, _mm_mul_ps(dx, dyb), sumf),
                _ => {
                    let mx = _mm_cvtph_ps(_mm_setr_epi16(
                        f16(r[0], o + 2),
                        f16(r[1], o + 2),
                        f16(r[2], o + 2),
                        f16(r[3], o + 2),
                        0,
                        0,
                        0,
                        0,
                    ));
                    let m = _mm_mul_ps(mx, _mm_set1_ps(sy[b]));
                    _mm_add_ps(sumf, _mm_fmadd_ps(_mm_mul_ps(dx, dyb), s, m))
                }
            };
        }
        let mut lanes = [0f32; LANES];
        // SAFETY: `lanes` is 4 writable f32; _mm_storeu_ps has no alignment requirement.
        unsafe { _mm_storeu_ps(lanes.as_mut_ptr(), sumf) };
        for (o, v) in outs.iter_mut().zip(lanes).take(rows.len()) {
            *o = v;
        }
        true
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use super::{GgmlType, LANES, QK};
    use crate::quant::actq::simd::{f16x4_to_f32, ld as ld_bytes, ldf};
    use core::arch::wasm32::*;

    /// Eight i16 of `v` from `at`.
    #[inline(always)]
    fn ld(v: &[i16], at: usize) -> v128 {
        let s = &v[at..at + 8];
        // SAFETY: `s` is 8 readable i16 (16 bytes); v128_load has no alignment requirement.
        unsafe { v128_load(s.as_ptr().cast()) }
    }

    /// Four i32 partial sums of one block: 32 widened weights (`w`) times 32 activations (`a`).
    #[inline(always)]
    fn block_dot(w: [v128; 4], a: &[v128; 4]) -> v128 {
        let p0 = i32x4_dot_i16x8(w[0], a[0]);
        let p1 = i32x4_dot_i16x8(w[1], a[1]);
        let p2 = i32x4_dot_i16x8(w[2], a[2]);
        let p3 = i32x4_dot_i16x8(w[3], a[3]);
        i32x4_add(i32x4_add(p0, p1), i32x4_add(p2, p3))
    }

    /// Transpose-add: lane `k` of the result is the sum of `v[k]`'s four lanes.
    #[inline(always)]
    fn lane_sums(v: [v128; LANES]) -> v128 {
        let t01 = i32x4_add(i32x4_shuffle::<0, 4, 1, 5>(v[0], v[1]), i32x4_shuffle::<2, 6, 3, 7>(v[0], v[1]));
        let t23 = i32x4_add(i32x4_shuffle::<0, 4, 1, 5>(v[2], v[3]), i32x4_shuffle::<2, 6, 3, 7>(v[2], v[3]));
        i32x4_add(i32x4_shuffle::<0, 1, 4, 5>(t01, t23), i32x4_shuffle::<2, 3, 6, 7>(t01, t23))
    }

    /// The four i16x8 of a block's 32 values from `at`.
    #[inline(always)]
    fn block_i16(v: &[i16], at: usize) -> [v128; 4] {
        [ld(v, at), ld(v, at + 8), ld(v, at + 16), ld(v, at + 24)]
    }

    /// [`block_sums`] of two consecutive positions (`a`: `2 * cols` values), each weight block
    /// loaded once for both.
    pub fn block_sums2(w: &[i16], cols: usize, a: &[i16], sums0: &mut [i32], sums1: &mut [i32]) {
        for b in 0..cols / QK {
            let at = b * QK;
            let (a0, a1) = (block_i16(a, at), block_i16(a, cols + at));
            let mut s0 = [i32x4_splat(0); LANES];
            let mut s1 = [i32x4_splat(0); LANES];
            for k in 0..LANES {
                let wk = block_i16(&w[k * cols + at..k * cols + at + QK], 0);
                s0[k] = block_dot(wk, &a0);
                s1[k] = block_dot(wk, &a1);
            }
            for (s, out) in [(s0, &mut *sums0), (s1, &mut *sums1)] {
                let out = &mut out[b * LANES..(b + 1) * LANES];
                // SAFETY: `out` is 4 writable i32 (16 bytes); v128_store has no alignment requirement.
                unsafe { v128_store(out.as_mut_ptr().cast(), lane_sums(s)) };
            }
        }
    }

    pub fn block_sums(w: &[i16], cols: usize, a: &[i16], sums: &mut [i32]) {
        for b in 0..a.len() / QK {
            let at = b * QK;
            let aq = block_i16(a, at);
            let s = lane_sums(core::array::from_fn(|k| {
                block_dot(block_i16(&w[k * cols + at..k * cols + at + QK], 0), &aq)
            }));
            let out = &mut sums[b * LANES..(b + 1) * LANES];
            // SAFETY: `out` is 4 writable i32 (16 bytes); v128_store has no alignment requirement.
            unsafe { v128_store(out.as_mut_ptr().cast(), s) };
        }
    }

    /// Lane-wise `fma(a, b, c)` (one rounding), through f64 as `actq::fma_f64` does, two lanes at
    /// a time; when any lane could round differently that way (its f64 sum inexact and on an f32
    /// midpoint: the 29 low bits of its mantissa `1 << 28`; or a result at most the smallest
    /// normal f32, zero included), all four go through the scalar `fma`.
    #[inline(always)]
    fn fma4(a: v128, b: v128, c: v128) -> v128 {
        let high = |v: v128| f64x2_promote_low_f32x4(i32x4_shuffle::<2, 3, 2, 3>(v, v));
        let low = f64x2_promote_low_f32x4;
        let (ab_lo, c_lo) = (f64x2_mul(low(a), low(b)), low(c));
        let (ab_hi, c_hi) = (f64x2_mul(high(a), high(b)), high(c));
        let (r_lo, r_hi) = (f64x2_add(ab_lo, c_lo), f64x2_add(ab_hi, c_hi));
        let r = i32x4_shuffle::<0, 1, 4, 5>(f32x4_demote_f64x2_zero(r_lo), f32x4_demote_f64x2_zero(r_hi));
        let low_words = i32x4_shuffle::<0, 2, 4, 6>(r_lo, r_hi);
        let halfway = i32x4_eq(v128_and(low_words, i32x4_splat(0x1fff_ffff)), i32x4_splat(0x1000_0000));
        let tiny = f32x4_le(f32x4_abs(r), f32x4_splat(f32::MIN_POSITIVE));
        if v128_any_true(v128_or(v128_andnot(halfway, exact(ab_lo, c_lo, r_lo, ab_hi, c_hi, r_hi)), tiny)) {
            let lane = |v: v128, k: usize| match k {
                0 => f32x4_extract_lane::<0>(v),
                1 => f32x4_extract_lane::<1>(v),
                2 => f32x4_extract_lane::<2>(v),
                _ => f32x4_extract_lane::<3>(v),
            };
            let r: [f32; 4] = core::array::from_fn(|k| super::fma(lane(a, k), lane(b, k), lane(c, k)));
            return f32x4(r[0], r[1], r[2], r[3]);
        }
        r
    }

    pub fn fma_lanes(a: [f32; LANES], b: [f32; LANES], c: [f32; LANES]) -> [f32; LANES] {
        let v = |x: [f32; LANES]| f32x4(x[0], x[1], x[2], x[3]);
        lanes(fma4(v(a), v(b), v(c)))
    }

    /// Per lane (as an i32x4 mask), whether the f64 sum `r = ab + c` is exact (`r - ab == c` and
    /// `r - c == ab`, as `actq::fma_f64` tests it): an exact sum on an f32 midpoint rounds once
    /// only. Exact midpoints are common (a quarter of SmolLM2's Q4_1 steps: the f16 scales and
    /// mins make short products); inexact ones are rare.
    #[inline(always)]
    fn exact(ab_lo: v128, c_lo: v128, r_lo: v128, ab_hi: v128, c_hi: v128, r_hi: v128) -> v128 {
        let half = |ab: v128, c: v128, r: v128| v128_and(f64x2_eq(f64x2_sub(r, ab), c), f64x2_eq(f64x2_sub(r, c), ab));
        i32x4_shuffle::<0, 2, 4, 6>(half(ab_lo, c_lo, r_lo), half(ab_hi, c_hi, r_hi))
    }

    /// One block's step of the f32 chains of [`super::combine`] (the module documentation of
    /// `actq`): `s` the four rows' exact block sums as f32, `dx` / `mx` their scales and mins,
    /// `dy` / `sy` the activation block's scale and scaled sum.
    #[inline(always)]
    fn step(t: GgmlType, sumf: v128, s: v128, dx: v128, mx: v128, dy: f32, sy: f32) -> v128 {
        match t {
            GgmlType::Q4_0 => fma4(f32x4_mul(s, dx), f32x4_splat(dy), sumf),
            GgmlType::Q5_0 | GgmlType::Q8_0 => fma4(s, f32x4_mul(dx, f32x4_splat(dy)), sumf),
            GgmlType::IQ4_NL => fma4(s, f32x4_mul(f32x4_splat(dy), dx), sumf),
            GgmlType::Q4_1 | GgmlType::Q5_1 => {
                let d = f32x4_mul(dx, f32x4_splat(dy));
                let m = f32x4_mul(mx, f32x4_splat(sy));
                f32x4_add(sumf, fma4(d, s, m))
            }
            _ => f32x4_splat(f32::NAN),
        }
    }

    fn lanes(v: v128) -> [f32; LANES] {
        [f32x4_extract_lane::<0>(v), f32x4_extract_lane::<1>(v), f32x4_extract_lane::<2>(v), f32x4_extract_lane::<3>(v)]
    }

    pub fn combine(t: GgmlType, sums: &[i32], dx: &[f32], mx: &[f32], dy: &[f32], sy: &[f32]) -> [f32; LANES] {
        if !super::supports(t) {
            return [f32::NAN; LANES];
        }
        let mut sumf = f32x4_splat(0.0);
        let ints = |b: usize| {
            let s = &sums[b * LANES..(b + 1) * LANES];
            // SAFETY: `s` is 4 readable i32 (16 bytes); v128_load has no alignment requirement.
            f32x4_convert_i32x4(unsafe { v128_load(s.as_ptr().cast()) })
        };
        let with_min = matches!(t, GgmlType::Q4_1 | GgmlType::Q5_1);
        for (b, &dyb) in dy.iter().enumerate() {
            let mx = if with_min { ldf(mx, b * LANES) } else { f32x4_splat(0.0) };
            let syb = if with_min { sy[b] } else { 0.0 };
            sumf = step(t, sumf, ints(b), ldf(dx, b * LANES), mx, dyb, syb);
        }
        lanes(sumf)
    }

    /// The four bytes at `at` of each row, as u32 lanes (little-endian).
    #[inline(always)]
    fn words(r: &[&[u8]; LANES], at: usize) -> v128 {
        let (p0, p1, p2, p3) = (&r[0][at..at + 4], &r[1][at..at + 4], &r[2][at..at + 4], &r[3][at..at + 4]);
        // SAFETY: each slice is 4 readable bytes; v128_load32_lane has no alignment requirement.
        unsafe {
            let v = v128_load32_lane::<0>(u32x4_splat(0), p0.as_ptr().cast());
            let v = v128_load32_lane::<1>(v, p1.as_ptr().cast());
            let v = v128_load32_lane::<2>(v, p2.as_ptr().cast());
            v128_load32_lane::<3>(v, p3.as_ptr().cast())
        }
    }

    /// [`super::dot_one`]: per block, each row's quants widened in registers and dotted with the
    /// activations, the four sums transposed into lanes, then the f32 chains of `combine`.
    pub fn dot_one(t: GgmlType, rows: &[&[u8]], a: &[i16], dy: &[f32], sy: &[f32]) -> Option<[f32; LANES]> {
        let (bs, qs) = match t {
            GgmlType::Q4_0 => (18, 2),
            GgmlType::Q4_1 => (20, 4),
            GgmlType::Q8_0 => (34, 2),
            _ => return None,
        };
        let nb = dy.len();
        let last = *rows.last()?;
        let r: [&[u8]; LANES] = core::array::from_fn(|k| rows.get(k).copied().unwrap_or(last));
        if r.iter().any(|x| x.len() < nb * bs) || a.len() < nb * QK || (t == GgmlType::Q4_1 && sy.len() < nb) {
            return None;
        }
        let mut sumf = f32x4_splat(0.0);
        for (b, &dy) in dy.iter().enumerate() {
            let at = b * QK;
            let aq = block_i16(a, at);
            let widened = |x: &[u8]| match t {
                GgmlType::Q8_0 => {
                    let (lo, hi) = (ld_bytes(x, b * bs + 2), ld_bytes(x, b * bs + 18));
                    [
                        i16x8_extend_low_i8x16(lo),
                        i16x8_extend_high_i8x16(lo),
                        i16x8_extend_low_i8x16(hi),
                        i16x8_extend_high_i8x16(hi),
                    ]
                }
                _ => {
                    let v = ld_bytes(x, b * bs + qs);
                    let (lo, hi) = (v128_and(v, u8x16_splat(0x0f)), u8x16_shr(v, 4));
                    let off = i16x8_splat(if t == GgmlType::Q4_0 { -8 } else { 0 });
                    [
                        i16x8_add(u16x8_extend_low_u8x16(lo), off),
                        i16x8_add(u16x8_extend_high_u8x16(lo), off),
                        i16x8_add(u16x8_extend_low_u8x16(hi), off),
                        i16x8_add(u16x8_extend_high_u8x16(hi), off),
                    ]
                }
            };
            let s = lane_sums(core::array::from_fn(|k| block_dot(widened(r[k]), &aq)));
            let s = f32x4_convert_i32x4(s);
            // Each block starts with its f16 scale (then, for Q4_1, its f16 min).
            let head = words(&r, b * bs);
            let (dx, mx) = if t == GgmlType::Q4_1 { f16_pairs(head) } else { (f16_pairs(head).0, f32x4_splat(0.0)) };
            sumf = step(t, sumf, s, dx, mx, dy, sy.get(b).copied().unwrap_or(0.0));
        }
        Some(lanes(sumf))
    }

    /// The f16 in the low and in the high half of each u32 lane, as f32: the half placed at the
    /// top of the lane, shifted arithmetically so its exponent and mantissa land where an f32's
    /// are (the sign stays on top), then scaled by 2^112 (exact: bias 15 -> 127, subnormals
    /// become normals). Infinities and NaNs go through `f16x4_to_f32`.
    #[inline(always)]
    fn f16_pairs(head: v128) -> (v128, v128) {
        let convert = |top: v128| {
            let bits = v128_and(i32x4_shr(top, 3), u32x4_splat(0x8fff_e000));
            f32x4_mul(bits, f32x4_splat(f32::from_bits(0x7780_0000))) // 2^112
        };
        let exponents = v128_and(head, u32x4_splat(0x7c00_7c00));
        let special = v128_or(
            i32x4_eq(v128_and(exponents, u32x4_splat(0x7c00)), u32x4_splat(0x7c00)),
            i32x4_eq(v128_and(exponents, u32x4_splat(0x7c00_0000)), u32x4_splat(0x7c00_0000)),
        );
        if v128_any_true(special) {
            return (f16x4_to_f32(v128_and(head, u32x4_splat(0xffff))), f16x4_to_f32(u32x4_shr(head, 16)));
        }
        (convert(i32x4_shl(head, 16)), convert(head))
    }

    /// The kernels of [`super::BYTE_NIBBLES`] builds: Q4_0 / Q4_1 nibbles as bytes, dotted with
    /// the activation bytes by `i32x4.relaxed_dot_i8x16_i7x16_add_s` (the nibbles, 0..16, are its
    /// 7-bit operand, where every engine gives the exact sums).
    #[cfg(target_feature = "relaxed-simd")]
    pub mod relaxed {
        use super::super::{GgmlType, LANES, QK};
        use super::{f16_pairs, lane_sums, lanes, ld_bytes, step, words};
        use core::arch::wasm32::*;

        /// The two i8x16 of a block's 32 bytes from `at`.
        #[inline(always)]
        fn block_bytes<T: bytemuck::Pod>(v: &[T], at: usize) -> [v128; 2] {
            let v: &[u8] = bytemuck::cast_slice(&v[at..at + QK]);
            [ld_bytes(v, 0), ld_bytes(v, 16)]
        }

        /// Four i32 partial sums of one block's `sum(n * a)`: `n` nibble bytes, `a` signed bytes.
        #[inline(always)]
        fn block_dot(n: [v128; 2], a: &[v128; 2]) -> v128 {
            let low = i32x4_relaxed_dot_i8x16_i7x16_add(a[0], n[0], i32x4_splat(0));
            i32x4_relaxed_dot_i8x16_i7x16_add(a[1], n[1], low)
        }

        /// Store the four rows' sums of block `b`, less `offset * qsum`.
        #[inline(always)]
        fn store(sums: &mut [i32], b: usize, s: v128, offset: i32, qsum: i32) {
            let out = &mut sums[b * LANES..(b + 1) * LANES];
            let s = i32x4_sub(s, i32x4_splat(offset * qsum));
            // SAFETY: `out` is 4 writable i32 (16 bytes); v128_store has no alignment requirement.
            unsafe { v128_store(out.as_mut_ptr().cast(), s) };
        }

        pub fn nibble_sums(n: &[u8], cols: usize, a: &[i8], qsum: &[i32], offset: i32, sums: &mut [i32]) {
            for (b, &qsum) in qsum.iter().enumerate().take(a.len() / QK) {
                let at = b * QK;
                let aq = block_bytes(a, at);
                let s = lane_sums(core::array::from_fn(|k| block_dot(block_bytes(n, k * cols + at), &aq)));
                store(sums, b, s, offset, qsum);
            }
        }

        #[allow(clippy::too_many_arguments)]
        pub fn nibble_sums2(
            n: &[u8],
            cols: usize,
            a: &[i8],
            qsum: &[i32],
            offset: i32,
            sums0: &mut [i32],
            sums1: &mut [i32],
        ) {
            let nb = cols / QK;
            for b in 0..nb {
                let at = b * QK;
                let (a0, a1) = (block_bytes(a, at), block_bytes(a, cols + at));
                let mut s0 = [i32x4_splat(0); LANES];
                let mut s1 = [i32x4_splat(0); LANES];
                for k in 0..LANES {
                    let nk = block_bytes(n, k * cols + at);
                    s0[k] = block_dot(nk, &a0);
                    s1[k] = block_dot(nk, &a1);
                }
                store(sums0, b, lane_sums(s0), offset, qsum[b]);
                store(sums1, b, lane_sums(s1), offset, qsum[nb + b]);
            }
        }

        /// [`super::dot_one`] for Q4_0 and Q4_1: each row's 16 bytes of nibbles split in
        /// registers and dotted as bytes.
        pub fn dot_one(
            t: GgmlType,
            rows: &[&[u8]],
            a: &[i8],
            qsum: &[i32],
            dy: &[f32],
            sy: &[f32],
        ) -> Option<[f32; LANES]> {
            let (bs, qs, offset) = match t {
                GgmlType::Q4_0 => (18, 2, 8),
                GgmlType::Q4_1 => (20, 4, 0),
                _ => return None,
            };
            let nb = dy.len();
            let last = *rows.last()?;
            let r: [&[u8]; LANES] = core::array::from_fn(|k| rows.get(k).copied().unwrap_or(last));
            if r.iter().any(|x| x.len() < nb * bs)
                || a.len() < nb * QK
                || qsum.len() < nb
                || (t == GgmlType::Q4_1 && sy.len() < nb)
            {
                return None;
            }
            let mut sumf = f32x4_splat(0.0);
            for (b, &dy) in dy.iter().enumerate() {
                let aq = block_bytes(a, b * QK);
                let split = |x: &[u8]| {
                    let v = ld_bytes(x, b * bs + qs);
                    [v128_and(v, u8x16_splat(0x0f)), u8x16_shr(v, 4)]
                };
                let s = lane_sums(core::array::from_fn(|k| block_dot(split(r[k]), &aq)));
                let s = f32x4_convert_i32x4(i32x4_sub(s, i32x4_splat(offset * qsum[b])));
                // Each block starts with its f16 scale (then, for Q4_1, its f16 min).
                let head = words(&r, b * bs);
                let (dx, mx) =
                    if t == GgmlType::Q4_1 { f16_pairs(head) } else { (f16_pairs(head).0, f32x4_splat(0.0)) };
                sumf = step(t, sumf, s, dx, mx, dy, sy.get(b).copied().unwrap_or(0.0));
            }
            Some(lanes(sumf))
        }
    }

    /// Store 8 i16 at `q[at..at + 8]`.
    #[inline(always)]
    fn st(q: &mut [i16], at: usize, v: v128) {
        let s = &mut q[at..at + 8];
        // SAFETY: `s` is 8 writable i16 (16 bytes); v128_store has no alignment requirement.
        unsafe { v128_store(s.as_mut_ptr().cast(), v) }
    }

    pub fn nibbles(q: &mut [i16], qs: &[u8; 16], offset: i16) {
        // SAFETY: `qs` is 16 readable bytes; v128_load has no alignment requirement.
        let v = unsafe { v128_load(qs.as_ptr().cast()) };
        let (lo, hi) = (v128_and(v, u8x16_splat(0x0f)), u8x16_shr(v, 4));
        let off = i16x8_splat(offset);
        st(q, 0, i16x8_add(u16x8_extend_low_u8x16(lo), off));
        st(q, 8, i16x8_add(u16x8_extend_high_u8x16(lo), off));
        st(q, 16, i16x8_add(u16x8_extend_low_u8x16(hi), off));
        st(q, 24, i16x8_add(u16x8_extend_high_u8x16(hi), off));
    }

    pub fn widen_i8(q: &mut [i16], qs: &[u8; QK]) {
        // SAFETY: `qs` is 32 readable bytes; v128_load has no alignment requirement.
        let (a, b) = unsafe { (v128_load(qs.as_ptr().cast()), v128_load(qs[16..].as_ptr().cast())) };
        st(q, 0, i16x8_extend_low_i8x16(a));
        st(q, 8, i16x8_extend_high_i8x16(a));
        st(q, 16, i16x8_extend_low_i8x16(b));
        st(q, 24, i16x8_extend_high_i8x16(b));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::actq::vec_dot_scalar;

    fn rng(state: &mut u64) -> u64 {
        *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        *state >> 33
    }

    /// The byte-nibble block sums (relaxed-SIMD builds) are the widened ones: `sum(n * a) - offset
    /// * sum(a)` equals `sum((n - offset) * a)` for every nibble and every byte, -128 included.
    #[test]
    fn nibble_sums_equal_widened_block_sums() {
        let mut state = 11u64;
        for blocks in [1usize, 2, 7] {
            let cols = blocks * QK;
            let n: Vec<u8> = (0..LANES * cols).map(|_| (rng(&mut state) % 16) as u8).collect();
            let a: Vec<i8> = (0..2 * cols).map(|_| rng(&mut state) as u8 as i8).collect();
            let qsum: Vec<i32> = a.chunks_exact(QK).map(|b| b.iter().map(|&v| i32::from(v)).sum()).collect();
            for offset in [0i32, 8] {
                let w: Vec<i16> = n.iter().map(|&v| i16::from(v) - offset as i16).collect();
                let (mut want, mut got) = (vec![0i32; LANES * blocks], vec![0i32; LANES * blocks]);
                let mut got1 = vec![0i32; LANES * blocks];
                for p in 0..2 {
                    let a16: Vec<i16> = a[p * cols..(p + 1) * cols].iter().map(|&v| i16::from(v)).collect();
                    block_sums_scalar(&w, cols, &a16, &mut want);
                    nibble_sums(&n, cols, &a[p * cols..(p + 1) * cols], &qsum[p * blocks..], offset, &mut got);
                    assert_eq!(got, want, "{blocks} blocks, offset {offset}, position {p}");
                }
                nibble_sums2(&n, cols, &a, &qsum, offset, &mut got, &mut got1);
                let a16: Vec<i16> = a[cols..].iter().map(|&v| i16::from(v)).collect();
                block_sums_scalar(&w, cols, &a16, &mut want);
                assert_eq!(got1, want, "{blocks} blocks, offset {offset}, pair");
            }
        }
    }

    /// Every supported type, odd block counts, tiles of 1 to 4 rows, several positions: the bits
    /// of `vec_dot_scalar` for every (row, position).
    #[test]
    fn tiles_equal_vec_dot_scalar() {
        let mut state = 5u64;
        for t in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::IQ4_NL] {
            for (blocks, used) in [(1usize, 4usize), (3, 1), (4, 2), (5, 3), (9, 4)] {
                let cols = blocks * QK;
                let format = ActFormat::for_weights(t).unwrap();
                let acts: Vec<QuantizedActs> = (0..3)
                    .map(|_| {
                        let x: Vec<f32> = (0..cols).map(|_| (rng(&mut state) % 2001) as f32 / 1000.0 - 1.0).collect();
                        QuantizedActs::quantize(format, &x).unwrap()
                    })
                    .collect();
                let inputs = Inputs::new(&acts).unwrap();
                assert_eq!(inputs.len(), 3);
                let rows: Vec<Vec<u8>> = (0..used)
                    .map(|_| {
                        let mut bytes: Vec<u8> =
                            (0..t.row_bytes(cols as u64).unwrap()).map(|_| rng(&mut state) as u8).collect();
                        // Finite, modest f16 scales (and mins) so that the sums are ordinary numbers.
                        let bs = t.type_size() as usize;
                        for b in 0..blocks {
                            bytes[b * bs + 1] &= 0x3b;
                            if matches!(t, GgmlType::Q4_1 | GgmlType::Q5_1) {
                                bytes[b * bs + 3] &= 0xbb;
                            }
                        }
                        bytes
                    })
                    .collect();
                let refs: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
                let mut tile = Tile::default();
                unpack_rows(t, &refs, cols, &mut tile);
                let mut outs = vec![0f32; used * 3];
                dot_tile(t, &mut tile, &inputs, &mut outs);
                for (k, row) in rows.iter().enumerate() {
                    for (p, a) in acts.iter().enumerate() {
                        let want = vec_dot_scalar(t, row, a).unwrap();
                        assert_eq!(
                            outs[k * 3 + p].to_bits(),
                            want.to_bits(),
                            "{t} {blocks} blocks, row {k}, position {p}"
                        );
                    }
                }
                #[cfg(target_arch = "x86_64")]
                if crate::ops::matvec::avx2_available() {
                    let one = Inputs::new(&acts[..1]).unwrap();
                    let mut direct = vec![f32::NAN; used];
                    // SAFETY: the CPU has AVX2, FMA and F16C (checked just above).
                    if unsafe { avx2::dot_one(t, &refs, &one, &mut direct) } {
                        for (k, row) in rows.iter().enumerate() {
                            let want = vec_dot_scalar(t, row, &acts[0]).unwrap();
                            assert_eq!(direct[k].to_bits(), want.to_bits(), "avx2 {t} {blocks} blocks, row {k}");
                        }
                    } else {
                        assert!(!matches!(t, GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q8_0), "{t}");
                    }
                }
                let mut scalar = vec![0i32; LANES * blocks];
                block_sums_scalar(&tile.q, cols, &inputs.q[..cols], &mut scalar);
                block_sums(&tile.q, cols, &inputs.q[..cols], &mut tile.sums);
                assert_eq!(tile.sums, scalar);
                let (dy, sy) = (&inputs.d[..blocks], inputs.s.get(..blocks).unwrap_or(&[]));
                let fast = combine(t, &tile.sums, &tile.d, &tile.m, dy, sy).map(f32::to_bits);
                assert_eq!(fast, combine_scalar(t, &tile.sums, &tile.d, &tile.m, dy, sy).map(f32::to_bits));
            }
        }
    }
}
