//! The decoder's operations, one family per file, each output-first and small. Every op takes the
//! path's conventions as plain values; the forward pass decides which.

pub mod dot;
pub mod matvec;
pub mod microbench;
pub mod simd;

use crate::float::Float;
use crate::path::{EpsPlacement, Precision, RopePairing};
use rayon::prelude::*;

/// `f(i, row)` for each row `i` of `len` values of `out`, the rows split across threads when there
/// are several (a prompt's positions): a row is computed alike whichever thread runs it.
pub fn each_row<T: Send>(out: &mut [T], len: usize, f: impl Fn(usize, &mut [T]) + Sync + Send) {
    if out.len() > len {
        out.par_chunks_exact_mut(len.max(1)).enumerate().for_each(|(i, row)| f(i, row));
    } else {
        out.chunks_exact_mut(len.max(1)).enumerate().for_each(|(i, row)| f(i, row));
    }
}

/// `sum xs`, accumulated in f32 (sequentially) or f64.
pub fn sum<F: Float>(xs: &[F], accumulate: Precision) -> F {
    if F::IS_F64 || accumulate == Precision::F64 {
        F::from_f64(xs.iter().fold(0.0f64, |s, x| s + x.to_f64()))
    } else {
        xs.iter().fold(F::ZERO, |s, &x| s + x)
    }
}

/// RMSNorm: `out = w * (x * r)` with `r` from the mean square of `x` and `eps` placed as the path
/// says (HF: `r = 1 / sqrt(mean(x^2) + eps)`).
pub fn rmsnorm<F: Float>(out: &mut [F], x: &[F], w: &[f32], eps: F, placement: EpsPlacement, acc: Precision) {
    let n = F::from_f64(x.len() as f64);
    let ss = F::dot(x, x, acc);
    let r = match placement {
        EpsPlacement::InsideMean => F::ONE / (ss / n + eps).sqrt(),
        EpsPlacement::InsideSum => F::ONE / ((ss + eps) / n).sqrt(),
        EpsPlacement::OutsideSqrt => F::ONE / ((ss / n).sqrt() + eps),
    };
    for ((o, &xi), &wi) in out.iter_mut().zip(x).zip(w) {
        *o = F::from_f32(wi) * (xi * r);
    }
}

/// RoPE angles for one position: `pos * base^(-2i/d)` for `i < d/2`, as `(cos, sin)` tables
/// computed in f64 and rounded to `F` (HF's own tables are f32 and land within 1.4e-6 of these).
pub fn rope_tables<F: Float>(pos: usize, head_dim: usize, base: f64) -> (Vec<F>, Vec<F>) {
    let half = head_dim / 2;
    let mut cos = Vec::with_capacity(half);
    let mut sin = Vec::with_capacity(half);
    for i in 0..half {
        let inv_freq = 1.0 / libm::pow(base, (2 * i) as f64 / head_dim as f64);
        let angle = pos as f64 * inv_freq;
        cos.push(F::from_f64(libm::cos(angle)));
        sin.push(F::from_f64(libm::sin(angle)));
    }
    (cos, sin)
}

/// Rotate one head in place. Pair `i` (rotated by angle `i`) is `(x[i], x[i + d/2])` for split-half,
/// `(x[2i], x[2i + 1])` for interleaved: `a' = a cos - b sin`, `b' = b cos + a sin`.
pub fn rope<F: Float>(head: &mut [F], cos: &[F], sin: &[F], pairing: RopePairing) {
    let half = head.len() / 2;
    for i in 0..half {
        let (ia, ib) = match pairing {
            RopePairing::Interleaved => (2 * i, 2 * i + 1),
            RopePairing::SplitHalf | RopePairing::Auto => (i, i + half),
        };
        let (a, b) = (head[ia], head[ib]);
        head[ia] = a * cos[i] - b * sin[i];
        head[ib] = b * cos[i] + a * sin[i];
    }
}

/// Softmax in place; `max_subtracted` computes `exp(x - max)`, otherwise `exp(x)`.
pub fn softmax<F: Float>(x: &mut [F], max_subtracted: bool, acc: Precision) {
    let m = if max_subtracted { x.iter().fold(F::from_f64(f64::NEG_INFINITY), |m, &v| m.max(v)) } else { F::ZERO };
    for v in x.iter_mut() {
        *v = (*v - m).exp();
    }
    let total = sum(x, acc);
    for v in x.iter_mut() {
        *v = *v / total;
    }
}

/// SiLU: `x / (1 + exp(-x))`.
#[inline]
pub fn silu<F: Float>(x: F) -> F {
    x / (F::ONE + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rmsnorm_placements_on_hand_computed_values() {
        let x = [3.0f64, 4.0];
        let w = [1.0f32, 2.0];
        let mut out = [0.0; 2];
        // mean(x^2) = 12.5
        rmsnorm(&mut out, &x, &w, 0.5, EpsPlacement::InsideMean, Precision::F64);
        assert!((out[0] - 3.0 / 13f64.sqrt()).abs() < 1e-15 && (out[1] - 8.0 / 13f64.sqrt()).abs() < 1e-15);
        rmsnorm(&mut out, &x, &w, 0.5, EpsPlacement::InsideSum, Precision::F64);
        assert!((out[0] - 3.0 / 12.75f64.sqrt()).abs() < 1e-15);
        rmsnorm(&mut out, &x, &w, 0.5, EpsPlacement::OutsideSqrt, Precision::F64);
        assert!((out[0] - 3.0 / (12.5f64.sqrt() + 0.5)).abs() < 1e-15);
    }

    #[test]
    fn rope_pairings_rotate_the_right_pairs() {
        let (cos, sin) = rope_tables::<f64>(1, 4, 1.0); // base 1: every angle is 1 radian
        let (c, s) = (1f64.cos(), 1f64.sin());
        let mut h = [1.0, 2.0, 3.0, 4.0];
        rope(&mut h, &cos, &sin, RopePairing::SplitHalf); // pairs (0, 2), (1, 3)
        let want = [1.0 * c - 3.0 * s, 2.0 * c - 4.0 * s, 3.0 * c + 1.0 * s, 4.0 * c + 2.0 * s];
        assert!(h.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-15), "{h:?}");
        let mut h = [1.0, 2.0, 3.0, 4.0];
        rope(&mut h, &cos, &sin, RopePairing::Interleaved); // pairs (0, 1), (2, 3)
        let want = [1.0 * c - 2.0 * s, 2.0 * c + 1.0 * s, 3.0 * c - 4.0 * s, 4.0 * c + 3.0 * s];
        assert!(h.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-15), "{h:?}");
        // Position 0 is the identity.
        let (cos0, sin0) = rope_tables::<f32>(0, 4, 1e6);
        let mut h = [1.0f32, 2.0, 3.0, 4.0];
        rope(&mut h, &cos0, &sin0, RopePairing::Interleaved);
        assert_eq!(h, [1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn softmax_forms_agree_where_both_are_finite() {
        let mut a = [1.0f64, 2.0, 3.0];
        let mut b = a;
        softmax(&mut a, true, Precision::F64);
        softmax(&mut b, false, Precision::F64);
        let e: Vec<f64> = [1.0f64, 2.0, 3.0].iter().map(|x| x.exp()).collect();
        let z: f64 = e.iter().sum();
        for i in 0..3 {
            assert!((a[i] - e[i] / z).abs() < 1e-15 && (b[i] - e[i] / z).abs() < 1e-15);
        }
        let mut big = [1000.0f32, 999.0];
        softmax(&mut big, false, Precision::F32);
        assert!(big[0].is_nan(), "naive softmax overflows");
        assert!((silu(0.0f64)).abs() < 1e-300 && (silu(2.0f64) - 2.0 / (1.0 + (-2.0f64).exp())).abs() < 1e-15);
    }
}
