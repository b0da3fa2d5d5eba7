//! Dot products, the one reduction every projection and norm is made of.
//!
//! The f32 order is fixed and documented, because every kernel (the scalar twin and the vector
//! ones) must produce the same bits for the same inputs, on every platform and for any thread
//! count: eight running sums, lane `k` taking elements `k, k + 8, k + 16, ...`, each
//! `sum += a * b` rounded twice (no fused multiply-add), then combined as
//! `((s0 + s4) + (s1 + s5)) + ((s2 + s6) + (s3 + s7))`. Eight lanes are two wasm `f32x4` vectors or
//! two SSE registers ([`F32x8`]). With f64 accumulation the sum is sequential, in f64.

use crate::float::Float;
use crate::ops::simd::{chunk8, F32x8};

/// The number of running sums of the f32 order.
pub const LANES: usize = 8;

/// `sum_i a[i] * b[i]` in the fixed eight-lane order, f32 arithmetic (vector kernel).
#[inline]
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let blocks = n / LANES;
    let mut s = F32x8::zero();
    for i in 0..blocks {
        s = s + F32x8::load(chunk8(a, i)) * F32x8::load(chunk8(b, i));
    }
    finish(s.lanes(), &a[blocks * LANES..n], &b[blocks * LANES..n])
}

/// The same sums for four vectors `x[0..4]` against one `w` (a decoded weight row against four
/// positions): `w` is read once, and each result is the bits [`dot_f32`] gives.
#[inline]
pub fn dot4_f32(w: &[f32], x: [&[f32]; 4]) -> [f32; 4] {
    let n = x.iter().fold(w.len(), |n, xi| n.min(xi.len()));
    let blocks = n / LANES;
    let mut s = [F32x8::zero(); 4];
    for i in 0..blocks {
        let wi = F32x8::load(chunk8(w, i));
        for (sk, xk) in s.iter_mut().zip(x) {
            *sk = *sk + wi * F32x8::load(chunk8(xk, i));
        }
    }
    let tail = blocks * LANES..n;
    std::array::from_fn(|k| finish(s[k].lanes(), &w[tail.clone()], &x[k][tail.clone()]))
}

/// Adds the last `n % 8` products to lanes `0..`, then combines the lanes in the fixed order.
#[inline(always)]
fn finish(mut s: [f32; LANES], a: &[f32], b: &[f32]) -> f32 {
    for (k, (x, y)) in a.iter().zip(b).enumerate() {
        s[k] += x * y;
    }
    ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]))
}

/// The scalar twin of [`dot_f32`]: the documented order written out, one lane at a time.
pub fn dot_f32_scalar(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut s = [0f32; LANES];
    let whole = a.len() / LANES * LANES;
    for (ca, cb) in a[..whole].chunks_exact(LANES).zip(b[..whole].chunks_exact(LANES)) {
        for k in 0..LANES {
            s[k] += ca[k] * cb[k];
        }
    }
    for (k, (x, y)) in a[whole..].iter().zip(&b[whole..]).enumerate() {
        s[k] += x * y;
    }
    ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]))
}

/// `sum_i a[i] * b[i]` accumulated sequentially in f64.
#[inline]
pub fn dot_f64<F: Float>(a: &[F], b: &[F]) -> f64 {
    a.iter().zip(b).fold(0.0f64, |s, (&x, &y)| s + x.to_f64() * y.to_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_order_is_the_documented_one() {
        let a: Vec<f32> = (0..19).map(|i| 1.0 + i as f32 * 0.37).collect();
        let b: Vec<f32> = (0..19).map(|i| 0.5 - i as f32 * 0.11).collect();
        let mut s = [0f32; 8];
        for i in 0..19 {
            s[i % 8] += a[i] * b[i];
        }
        let want = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
        assert_eq!(dot_f32(&a, &b).to_bits(), want.to_bits());
        assert_eq!(dot_f32_scalar(&a, &b).to_bits(), want.to_bits());
        let exact: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
        assert!((dot_f64(&a, &b) - exact).abs() < 1e-12);
    }

    #[test]
    fn vector_kernels_give_the_scalar_twins_bits_on_odd_sizes() {
        let mut seed = 7u64;
        let mut next = move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 8.0
        };
        for n in [0usize, 1, 7, 8, 9, 31, 33, 100, 576, 1537] {
            let w: Vec<f32> = (0..n).map(|_| next()).collect();
            let xs: Vec<Vec<f32>> = (0..4).map(|_| (0..n).map(|_| next()).collect()).collect();
            let four = dot4_f32(&w, [&xs[0], &xs[1], &xs[2], &xs[3]]);
            for (k, x) in xs.iter().enumerate() {
                let slow = dot_f32_scalar(&w, x);
                assert_eq!(dot_f32(&w, x).to_bits(), slow.to_bits(), "n = {n}");
                assert_eq!(four[k].to_bits(), slow.to_bits(), "n = {n}, vector {k}");
            }
        }
    }
}
