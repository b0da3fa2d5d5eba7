//! The two float types a path can compute in. The forward pass is generic over [`Float`] so the
//! `hf` path (f32) and the `oracle-f64` path (f64 end to end) are one piece of code.
//!
//! Transcendental functions come from the pure-Rust `libm` crate, so a result is the same bits on
//! every platform (native and wasm), not whatever the system's math library rounds to.

use crate::ops::dot::{dot4_f32, dot_f32, dot_f64};
use crate::path::Precision;
use crate::trace::Values;
use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

pub trait Float:
    Copy
    + Debug
    + Default
    + PartialOrd
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
{
    const ZERO: Self;
    const ONE: Self;
    /// `true` for f64.
    const IS_F64: bool;
    fn from_f32(x: f32) -> Self;
    /// Rounds to nearest for f32.
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn to_f32(self) -> f32;
    fn sqrt(self) -> Self;
    fn exp(self) -> Self;
    fn max(self, other: Self) -> Self;
    /// `sum a[i] * b[i]`, accumulated in f32 (the fixed lane order of [`crate::ops::dot`]) or f64.
    /// An f64 value always accumulates in f64.
    fn dot(a: &[Self], b: &[Self], accumulate: Precision) -> Self;
    /// `sum w[i] * x[i]` for a row of decoded weights `w`, accumulated like [`Float::dot`].
    fn dot_weights(w: &[f32], x: &[Self], accumulate: Precision) -> Self;
    /// `outs[t] = dot_weights(w, xs[t * n..(t + 1) * n])` for every position `t` (`n = w.len()`).
    fn dot_positions(w: &[f32], xs: &[Self], outs: &mut [Self], accumulate: Precision) {
        for (o, x) in outs.iter_mut().zip(xs.chunks_exact(w.len().max(1))) {
            *o = Self::dot_weights(w, x, accumulate);
        }
    }
    /// The values as f32, when they are f32 (kernels that exist only in f32).
    fn as_f32s(x: &[Self]) -> Option<&[f32]>;
    fn as_f32s_mut(x: &mut [Self]) -> Option<&mut [f32]>;
    /// A copy for a trace.
    fn values(x: &[Self]) -> Values;
}

impl Float for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const IS_F64: bool = false;
    #[inline]
    fn from_f32(x: f32) -> Self {
        x
    }
    #[inline]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self.into()
    }
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline]
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    #[inline]
    fn exp(self) -> Self {
        libm::expf(self)
    }
    #[inline]
    fn max(self, other: Self) -> Self {
        f32::max(self, other)
    }
    #[inline]
    fn dot(a: &[f32], b: &[f32], accumulate: Precision) -> f32 {
        match accumulate {
            Precision::F32 => dot_f32(a, b),
            Precision::F64 => dot_f64(a, b) as f32,
        }
    }
    #[inline]
    fn dot_weights(w: &[f32], x: &[f32], accumulate: Precision) -> f32 {
        Self::dot(w, x, accumulate)
    }
    fn dot_positions(w: &[f32], xs: &[f32], outs: &mut [f32], accumulate: Precision) {
        let n = w.len().max(1);
        if accumulate == Precision::F64 {
            for (o, x) in outs.iter_mut().zip(xs.chunks_exact(n)) {
                *o = dot_f64(w, x) as f32;
            }
            return;
        }
        // Four positions per pass over the row: the row is loaded once for four sums.
        let mut fours = outs.chunks_exact_mut(4).zip(xs.chunks_exact(4 * n));
        for (o, x) in &mut fours {
            let (x0, rest) = x.split_at(n);
            let (x1, rest) = rest.split_at(n);
            let (x2, x3) = rest.split_at(n);
            o.copy_from_slice(&dot4_f32(w, [x0, x1, x2, x3]));
        }
        let done = outs.len() / 4 * 4;
        for (o, x) in outs[done..].iter_mut().zip(xs[done * n..].chunks_exact(n)) {
            *o = dot_f32(w, x);
        }
    }
    fn as_f32s(x: &[f32]) -> Option<&[f32]> {
        Some(x)
    }
    fn as_f32s_mut(x: &mut [f32]) -> Option<&mut [f32]> {
        Some(x)
    }
    fn values(x: &[f32]) -> Values {
        Values::F32(x.to_vec())
    }
}

impl Float for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const IS_F64: bool = true;
    #[inline]
    fn from_f32(x: f32) -> Self {
        x.into()
    }
    #[inline]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline]
    fn to_f32(self) -> f32 {
        self as f32
    }
    #[inline]
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    #[inline]
    fn exp(self) -> Self {
        libm::exp(self)
    }
    #[inline]
    fn max(self, other: Self) -> Self {
        f64::max(self, other)
    }
    #[inline]
    fn dot(a: &[f64], b: &[f64], _accumulate: Precision) -> f64 {
        dot_f64(a, b)
    }
    #[inline]
    fn dot_weights(w: &[f32], x: &[f64], _accumulate: Precision) -> f64 {
        w.iter().zip(x).fold(0.0, |s, (&a, &b)| s + f64::from(a) * b)
    }
    fn as_f32s(_: &[f64]) -> Option<&[f32]> {
        None
    }
    fn as_f32s_mut(_: &mut [f64]) -> Option<&mut [f32]> {
        None
    }
    fn values(x: &[f64]) -> Values {
        Values::F64(x.to_vec())
    }
}
