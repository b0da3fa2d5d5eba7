//! Dot products, the one reduction every projection and norm is made of.
//!
//! The f32 order is fixed and documented, because every kernel (this scalar one, and the SIMD ones
//! that will follow it) must produce the same bits for the same inputs, on every platform and for
//! any thread count: eight running sums, lane `k` taking elements `k, k + 8, k + 16, ...`, each
//! `sum += a * b` rounded twice (no fused multiply-add), then combined as
//! `((s0 + s4) + (s1 + s5)) + ((s2 + s6) + (s3 + s7))`. Eight lanes are two wasm `f32x4` vectors or
//! one AVX register. With f64 accumulation the sum is sequential, in f64.

use crate::float::Float;

/// The number of running sums of the f32 order.
pub const LANES: usize = 8;

/// `sum_i a[i] * b[i]` in the fixed eight-lane order, f32 arithmetic.
#[inline]
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
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
        let exact: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
        assert!((dot_f64(&a, &b) - exact).abs() < 1e-12);
    }
}
