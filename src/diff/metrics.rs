//! How far two vectors are apart, computed in f64. `a` is the reference (path A), `b` the candidate.
//! NaN and Inf are counted, never folded into a metric: the metrics cover the positions where both
//! values are finite.

use serde::{Deserialize, Serialize};

/// User tolerances of `allclose` (numpy's definition: `|b - a| <= atol + rtol * |a|`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AllClose {
    pub atol: f64,
    pub rtol: f64,
}

impl Default for AllClose {
    /// numpy's defaults.
    fn default() -> Self {
        AllClose { atol: 1e-8, rtol: 1e-5 }
    }
}

/// Differences of one stage at one position.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    /// Number of elements compared.
    pub n: usize,
    /// max |a - b| over finite pairs.
    pub max_abs: f64,
    /// Index of that element (`None` when nothing finite was compared).
    pub argmax: Option<usize>,
    pub mean_abs: f64,
    pub rmse: f64,
    /// ||a - b|| / ||a|| (0 when both are 0, inf when only a is 0).
    #[serde(serialize_with = "crate::json::float")]
    pub rel_l2: f64,
    /// a.b / (||a|| ||b||); 1 when both are zero vectors, 0 when only one is.
    pub cosine: f64,
    /// mean (a - b)^2 / var(a); 0 when equal, inf when var(a) = 0 and they differ.
    #[serde(serialize_with = "crate::json::float")]
    pub nmse: f64,
    /// max |a|: the scale of the reference.
    pub max_ref: f64,
    /// allclose(b, a) under the tolerances given, and the elements outside them.
    pub allclose: bool,
    pub out_of_tolerance: usize,
    pub first_out_of_tolerance: Option<usize>,
    /// NaN / Inf counts in a and in b.
    pub nan_a: usize,
    pub nan_b: usize,
    pub inf_a: usize,
    pub inf_b: usize,
    /// Elements where the two are not the same non-finite value (a NaN or an Inf on one side only,
    /// NaN against Inf, or Infs of opposite signs).
    pub non_finite_mismatch: usize,
    /// Every element bit-identical.
    pub bitwise_equal: bool,
}

impl Metrics {
    /// Whether either side holds a NaN or an Inf.
    pub fn has_non_finite(&self) -> bool {
        self.nan_a + self.nan_b + self.inf_a + self.inf_b > 0
    }
}

/// Compare `b` against reference `a` (same length).
pub fn compare(a: &[f64], b: &[f64], tol: AllClose) -> Metrics {
    let n = a.len().min(b.len());
    let mut m = Metrics {
        n,
        max_abs: 0.0,
        argmax: None,
        mean_abs: 0.0,
        rmse: 0.0,
        rel_l2: 0.0,
        cosine: 1.0,
        nmse: 0.0,
        max_ref: 0.0,
        allclose: true,
        out_of_tolerance: 0,
        first_out_of_tolerance: None,
        nan_a: 0,
        nan_b: 0,
        inf_a: 0,
        inf_b: 0,
        non_finite_mismatch: 0,
        bitwise_equal: a.len() == b.len(),
    };
    let (mut sum_abs, mut sum_sq, mut norm_a, mut norm_b, mut dot, mut sum_a, mut finite) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0usize);
    for i in 0..n {
        let (x, y) = (a[i], b[i]);
        if x.to_bits() != y.to_bits() {
            m.bitwise_equal = false;
        }
        m.nan_a += usize::from(x.is_nan());
        m.nan_b += usize::from(y.is_nan());
        m.inf_a += usize::from(x.is_infinite());
        m.inf_b += usize::from(y.is_infinite());
        // numpy: NaN is never close; equal infinities are.
        let close =
            if x.is_finite() && y.is_finite() { (y - x).abs() <= tol.atol + tol.rtol * x.abs() } else { x == y };
        if !close {
            m.out_of_tolerance += 1;
            m.first_out_of_tolerance.get_or_insert(i);
        }
        if !(x.is_finite() && y.is_finite()) {
            if !(x.is_nan() && y.is_nan()) && x != y {
                m.non_finite_mismatch += 1;
            }
            continue;
        }
        finite += 1;
        let d = (x - y).abs();
        if d > m.max_abs || m.argmax.is_none() {
            m.max_abs = d;
            m.argmax = Some(i);
        }
        m.max_ref = m.max_ref.max(x.abs());
        sum_abs += d;
        sum_sq += d * d;
        norm_a += x * x;
        norm_b += y * y;
        dot += x * y;
        sum_a += x;
    }
    m.allclose = m.out_of_tolerance == 0;
    if finite > 0 {
        let f = finite as f64;
        m.mean_abs = sum_abs / f;
        m.rmse = (sum_sq / f).sqrt();
        m.rel_l2 = if sum_sq == 0.0 {
            0.0
        } else if norm_a == 0.0 {
            f64::INFINITY
        } else {
            (sum_sq / norm_a).sqrt()
        };
        m.cosine = match (norm_a == 0.0, norm_b == 0.0) {
            (true, true) => 1.0,
            (true, false) | (false, true) => 0.0,
            _ => (dot / (norm_a.sqrt() * norm_b.sqrt())).clamp(-1.0, 1.0),
        };
        let mean_a = sum_a / f;
        let var_a = (norm_a / f - mean_a * mean_a).max(0.0);
        m.nmse = match (sum_sq == 0.0, var_a == 0.0) {
            (true, _) => 0.0,
            (false, true) => f64::INFINITY,
            _ => (sum_sq / f) / var_a,
        };
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_vectors() {
        let m = compare(&[1.0, 2.0, 3.0], &[1.0, 2.5, 2.0], AllClose { atol: 0.1, rtol: 0.0 });
        assert_eq!((m.n, m.max_abs, m.argmax), (3, 1.0, Some(2)));
        assert!((m.mean_abs - 0.5).abs() < 1e-15);
        assert!((m.rmse - (1.25f64 / 3.0).sqrt()).abs() < 1e-15);
        assert!((m.rel_l2 - (1.25f64 / 14.0).sqrt()).abs() < 1e-15);
        let cos = (1.0 + 5.0 + 6.0) / (14f64.sqrt() * (1.0f64 + 6.25 + 4.0).sqrt());
        assert!((m.cosine - cos).abs() < 1e-15);
        // var(a) = 2/3, mse = 1.25/3
        assert!((m.nmse - 1.25 / 2.0).abs() < 1e-15);
        assert_eq!((m.allclose, m.out_of_tolerance, m.first_out_of_tolerance), (false, 2, Some(1)));
        assert!(!m.bitwise_equal);
        assert_eq!(m.max_ref, 3.0);
    }

    #[test]
    fn equal_and_zero_vectors() {
        let same = compare(&[0.5, -1.0], &[0.5, -1.0], AllClose::default());
        assert!(same.bitwise_equal && same.allclose && same.max_abs == 0.0 && same.nmse == 0.0);
        assert!((same.cosine - 1.0).abs() < 1e-15);
        let zeros = compare(&[0.0, 0.0], &[0.0, 0.0], AllClose::default());
        assert_eq!((zeros.rel_l2, zeros.cosine, zeros.nmse), (0.0, 1.0, 0.0));
        let from_zero = compare(&[0.0, 0.0], &[1.0, 0.0], AllClose::default());
        assert_eq!((from_zero.rel_l2, from_zero.cosine, from_zero.nmse), (f64::INFINITY, 0.0, f64::INFINITY));
        let to_zero = compare(&[1.0, 0.0], &[0.0, 0.0], AllClose::default());
        assert_eq!((to_zero.rel_l2, to_zero.cosine), (1.0, 0.0));
        // -0.0 and 0.0 are equal values but not bitwise equal.
        let signed = compare(&[0.0], &[-0.0], AllClose::default());
        assert!(!signed.bitwise_equal && signed.max_abs == 0.0 && signed.allclose);
    }

    #[test]
    fn nan_and_inf_are_counted_not_propagated() {
        let m = compare(
            &[1.0, f64::NAN, f64::INFINITY, 2.0],
            &[1.5, 1.0, f64::INFINITY, f64::NEG_INFINITY],
            AllClose::default(),
        );
        assert_eq!((m.nan_a, m.nan_b, m.inf_a, m.inf_b), (1, 0, 1, 2));
        // NaN vs 1 and inf vs -inf; inf vs inf is the same value.
        assert_eq!(m.non_finite_mismatch, 2);
        assert!(m.has_non_finite());
        // Only element 0 is a finite pair.
        assert_eq!((m.max_abs, m.argmax), (0.5, Some(0)));
        assert!(m.rmse.is_finite() && m.cosine.is_finite());
        // NaN is never close; inf == inf is; inf vs -inf is not.
        assert_eq!((m.out_of_tolerance, m.first_out_of_tolerance), (3, Some(0)));
        let all_nan = compare(&[f64::NAN], &[f64::NAN], AllClose::default());
        assert_eq!((all_nan.argmax, all_nan.max_abs, all_nan.allclose), (None, 0.0, false));
        assert_eq!(all_nan.non_finite_mismatch, 0, "both sides NaN at the same place");
    }
}
