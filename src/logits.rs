//! Reading logits: probabilities and the top-k tokens of a position.

use serde::Serialize;

/// One candidate next token.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub id: u32,
    /// The f32 logit, as the exact f64 of the same value (so JSON readers get the very number).
    pub logit: f64,
    /// Softmax probability over the whole vocabulary (computed in f64).
    pub prob: f64,
}

/// Softmax of `logits` in f64 (max-subtracted; `libm`'s exp, so native and wasm agree bit for bit).
pub fn probabilities(logits: &[f32]) -> Vec<f64> {
    let m = logits.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(f64::from(x)));
    let e: Vec<f64> = logits.iter().map(|&x| libm::exp(f64::from(x) - m)).collect();
    let z: f64 = e.iter().sum();
    e.into_iter().map(|v| v / z).collect()
}

/// The `k` most likely tokens, best first (ties: lower id first).
pub fn top_k(logits: &[f32], k: usize) -> Vec<Candidate> {
    let probs = probabilities(logits);
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    idx.into_iter().take(k).map(|i| Candidate { id: i as u32, logit: f64::from(logits[i]), prob: probs[i] }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_and_normalises() {
        let top = top_k(&[0.0, 2.0, 1.0, 2.0], 3);
        assert_eq!(top.iter().map(|c| c.id).collect::<Vec<_>>(), [1, 3, 2]);
        let z = 1.0 + 2.0 * 2f64.exp() + 1f64.exp();
        assert!((top[0].prob - 2f64.exp() / z).abs() < 1e-15);
    }
}

/// What a run predicts: the top candidates after every position (what `paritylab run --json`
/// prints and the page shows).
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub path: crate::path::PathSpec,
    pub path_text: String,
    /// The tokens that ran (after BOS handling).
    pub tokens: Vec<u32>,
    pub positions: Vec<PositionSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PositionSummary {
    pub position: usize,
    pub token: u32,
    /// The token as readable text (spaces `␣`, newlines `↵`), when the model has a vocabulary.
    pub text: Option<String>,
    pub top: Vec<CandidateText>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CandidateText {
    pub id: u32,
    pub text: Option<String>,
    /// The f32 logit as the exact f64 of the same value.
    pub logit: f64,
    pub prob: f64,
}

impl RunSummary {
    /// Summarise `trace` with the `k` best candidates per position, tokens shown as text when
    /// there is a tokenizer.
    pub fn new(
        path: &crate::path::PathSpec,
        trace: &crate::trace::Trace,
        k: usize,
        tokenizer: Option<&crate::tokenizer::Tokenizer>,
    ) -> Self {
        let text = |id: u32| tokenizer.map(|t| t.display_piece(id));
        let positions = (0..trace.positions())
            .map(|pos| PositionSummary {
                position: pos,
                token: trace.tokens[pos],
                text: text(trace.tokens[pos]),
                top: top_k(&trace.logits(pos).unwrap_or_default(), k)
                    .into_iter()
                    .map(|c| CandidateText { id: c.id, text: text(c.id), logit: c.logit, prob: c.prob })
                    .collect(),
            })
            .collect();
        RunSummary { path: path.clone(), path_text: path.to_text(), tokens: trace.tokens.clone(), positions }
    }
}
