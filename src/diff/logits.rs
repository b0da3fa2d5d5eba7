//! Comparing two paths' next-token distributions, with llama.cpp's definitions
//! (`tools/perplexity`, KL-divergence mode): KLD = sum p_a (log p_a - log p_b) in nats, "same top"
//! rate, and percentiles by linear interpolation (median: mean of the middle two).

use serde::Serialize;

/// One position's logits compared (A is the reference).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogitMetrics {
    /// The compared position.
    pub position: usize,
    /// KL(p_A || p_B) in nats (NaN when either side has a NaN logit).
    #[serde(serialize_with = "crate::json::float")]
    pub kld: f64,
    pub top1_a: u32,
    pub top1_b: u32,
    pub top1_agree: bool,
    /// |top-5 of A ∩ top-5 of B| / 5, and the same for 10.
    pub top5_overlap: f64,
    pub top10_overlap: f64,
    /// p_B - p_A of A's top token.
    pub delta_p: f64,
    /// max |logit_A - logit_B|.
    pub max_abs: f64,
}

/// Across positions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogitSummary {
    pub positions: usize,
    #[serde(serialize_with = "crate::json::float")]
    pub mean_kld: f64,
    #[serde(serialize_with = "crate::json::float")]
    pub max_kld: f64,
    #[serde(serialize_with = "crate::json::float")]
    pub p99_kld: f64,
    #[serde(serialize_with = "crate::json::float")]
    pub p90_kld: f64,
    #[serde(serialize_with = "crate::json::float")]
    pub median_kld: f64,
    /// Fraction of positions where A and B have the same top token.
    #[serde(serialize_with = "crate::json::float")]
    pub same_top1: f64,
    /// Positions whose KLD is not finite (NaN/Inf logits); left out of the statistics above.
    pub non_finite: usize,
}

/// `log softmax(x)` in f64 (`libm`, so native and wasm agree bit for bit).
fn log_softmax(x: &[f32]) -> Vec<f64> {
    let m = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
    let lse = m + libm::log(x.iter().map(|&v| libm::exp(f64::from(v) - m)).sum::<f64>());
    x.iter().map(|&v| f64::from(v) - lse).collect()
}

/// Indices of the `k` largest values (ties: lower index first).
fn top(x: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&i, &j| x[j].total_cmp(&x[i]).then(i.cmp(&j)));
    idx.truncate(k);
    idx
}

/// Compare B's logits to reference A's.
pub fn compare(a: &[f32], b: &[f32]) -> LogitMetrics {
    let (la, lb) = (log_softmax(a), log_softmax(b));
    let kld = la.iter().zip(&lb).fold(0.0, |s, (&pa, &pb)| {
        let p = libm::exp(pa);
        if p == 0.0 {
            s
        } else {
            s + p * (pa - pb)
        }
    });
    let overlap = |k: usize| {
        let (ta, tb) = (top(a, k), top(b, k));
        ta.iter().filter(|i| tb.contains(i)).count() as f64 / k.min(a.len()).max(1) as f64
    };
    let (top_a, top_b) = (top(a, 1)[0], top(b, 1)[0]);
    LogitMetrics {
        position: 0,
        kld,
        top1_a: top_a as u32,
        top1_b: top_b as u32,
        top1_agree: top_a == top_b,
        top5_overlap: overlap(5),
        top10_overlap: overlap(10),
        delta_p: libm::exp(lb[top_a]) - libm::exp(la[top_a]),
        max_abs: a.iter().zip(b).fold(0.0, |m, (&x, &y)| m.max((f64::from(x) - f64::from(y)).abs())),
    }
}

/// llama.cpp's percentile: linear interpolation at `fraction * (n - 1)` of the sorted values.
pub fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if fraction <= 0.0 => sorted[0].min(sorted[n - 1]),
        n if fraction >= 1.0 => sorted[n - 1],
        n => {
            let p = fraction * (n - 1) as f64;
            let i = p as usize;
            let f = p - i as f64;
            (1.0 - f) * sorted[i] + f * sorted[(i + 1).min(n - 1)]
        }
    }
}

/// Summarise per-position metrics.
pub fn summarise(per_position: &[LogitMetrics]) -> LogitSummary {
    let mut klds: Vec<f64> = per_position.iter().map(|m| m.kld).filter(|k| k.is_finite()).collect();
    klds.sort_by(f64::total_cmp);
    let n = klds.len();
    let median = match n {
        0 => f64::NAN,
        n if n % 2 == 0 => 0.5 * (klds[n / 2] + klds[n / 2 - 1]),
        n => klds[n / 2],
    };
    LogitSummary {
        positions: per_position.len(),
        mean_kld: if n > 0 { klds.iter().sum::<f64>() / n as f64 } else { f64::NAN },
        max_kld: klds.last().copied().unwrap_or(f64::NAN),
        p99_kld: percentile(&klds, 0.99),
        p90_kld: percentile(&klds, 0.90),
        median_kld: median,
        same_top1: if per_position.is_empty() {
            f64::NAN
        } else {
            per_position.iter().filter(|m| m.top1_agree).count() as f64 / per_position.len() as f64
        },
        non_finite: per_position.len() - n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kld_and_top_k_on_hand_computed_distributions() {
        let same = compare(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]);
        assert_eq!((same.kld, same.top1_agree, same.delta_p, same.max_abs), (0.0, true, 0.0, 0.0));
        // Shifting all logits changes nothing.
        assert!(compare(&[1.0, 2.0, 3.0], &[11.0, 12.0, 13.0]).kld.abs() < 1e-15);
        // Two-token case: p_a = (0.5, 0.5), p_b = softmax(0, ln 3) = (0.25, 0.75).
        let m = compare(&[0.0, 0.0], &[0.0, 3f32.ln()]);
        let want = 0.5 * (0.5f64 / 0.25).ln() + 0.5 * (0.5f64 / 0.75).ln();
        assert!((m.kld - want).abs() < 1e-7, "{} vs {want}", m.kld);
        assert_eq!((m.top1_a, m.top1_b, m.top1_agree), (0, 1, false));
        assert!((m.delta_p - (0.25 - 0.5)).abs() < 1e-7);
        let logits_a: Vec<f32> = (0..20).map(|i| i as f32).collect();
        let mut logits_b = logits_a.clone();
        logits_b.swap(19, 0); // A's best token becomes B's worst
        let m = compare(&logits_a, &logits_b);
        assert_eq!((m.top5_overlap, m.top10_overlap), (0.8, 0.9));
    }

    #[test]
    fn percentiles_follow_llama_cpp() {
        let v: Vec<f64> = (0..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.9), 9.0);
        assert!((percentile(&v, 0.99) - 9.9).abs() < 1e-12);
        let m = |k: f64| LogitMetrics {
            position: 0,
            kld: k,
            top1_a: 0,
            top1_b: 0,
            top1_agree: k < 1.0,
            top5_overlap: 1.0,
            top10_overlap: 1.0,
            delta_p: 0.0,
            max_abs: 0.0,
        };
        let s = summarise(&[m(0.0), m(3.0), m(1.0), m(2.0), m(f64::NAN)]);
        assert_eq!((s.positions, s.non_finite, s.max_kld, s.median_kld), (5, 1, 3.0, 1.5));
        assert_eq!(s.mean_kld, 1.5);
        assert_eq!(s.same_top1, 0.2); // only the position with KLD 0 has the same top token
    }
}
