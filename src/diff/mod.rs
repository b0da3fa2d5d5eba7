//! Turning two traces into an answer: where the paths part, whether a gap is a bug or float noise,
//! and which convention explains it.
//!
//! # The noise floor and the classes
//! Each path's own float noise is measured, not assumed: the path is run again as its f64 twin
//! (the same conventions with `precision=f64`), and `noise(X) = max |X - X_f64|` per stage and
//! position. Two paths computing the same math can then differ by at most
//! `noise(A) + noise(B) <= 2 max(noise(A), noise(B))` (each is within its noise of the exact
//! value, which their twins compute to 1e-16). So a stage is
//! - `match`: bitwise equal, or `max |A - B| <= floor`;
//! - `noise`: `max |A - B| <= multiple * max(noise(A), noise(B)) + floor` (multiple 3 by default:
//!   the bound above with a margin), or within the user's `allclose(atol, rtol)` when given;
//! - `diverged`: otherwise, or when one side has a NaN/Inf the other has not, or the shapes differ.
//!
//! `floor = floor_rel * max |A|` (1e-12 by default) absorbs f64 rounding, so paths computed in f64
//! (whose twin is themselves, noise 0) are still compared sensibly.

pub mod explain;
pub mod logits;
pub mod metrics;
pub mod report;

use crate::forward::{forward, Injection, Isolation, Prompt};
use crate::model::Model;
use crate::path::{PathSpec, Precision};
use crate::trace::{Stage, StageId, Trace, Values};
use crate::{Error, Result};
use metrics::{AllClose, Metrics};
use serde::{Deserialize, Serialize};

pub use report::Report;

/// How strict the classification is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tolerances {
    /// A stage is noise up to this multiple of the larger measured noise floor.
    pub noise_multiple: f64,
    /// Relative floor under which differences always count as equal (x max |A|).
    pub floor_rel: f64,
    /// Optional user tolerances: a stage within `allclose(atol, rtol)` is not diverged.
    pub atol: Option<f64>,
    pub rtol: Option<f64>,
}

impl Default for Tolerances {
    fn default() -> Self {
        Tolerances { noise_multiple: 3.0, floor_rel: 1e-12, atol: None, rtol: None }
    }
}

impl Tolerances {
    fn allclose(&self) -> AllClose {
        let d = AllClose::default();
        AllClose { atol: self.atol.unwrap_or(d.atol), rtol: self.rtol.unwrap_or(d.rtol) }
    }
    fn user_set(&self) -> bool {
        self.atol.is_some() || self.rtol.is_some()
    }
}

/// What a stage's difference is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Match,
    Noise,
    Diverged,
}

impl Class {
    pub fn name(self) -> &'static str {
        match self {
            Class::Match => "match",
            Class::Noise => "noise",
            Class::Diverged => "diverged",
        }
    }
}

/// One stage at one position, compared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageDiff {
    pub position: usize,
    /// `None` outside the layers.
    pub layer: Option<usize>,
    pub stage: Stage,
    /// The dump name (`blk.0.q`).
    pub name: String,
    pub class: Class,
    #[serde(flatten)]
    pub metrics: Metrics,
    /// Each path's measured float noise here (max |X - X_f64|).
    pub noise_a: f64,
    pub noise_b: f64,
    /// The difference allowed as noise.
    pub threshold: f64,
    /// Why the stage could not be compared element-wise, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl StageDiff {
    pub fn id(&self) -> StageId {
        StageId::new(self.layer, self.stage)
    }
}

/// How the positions of two traces line up: the given tokens are the common suffix (a path that
/// prepends BOS has one more position in front).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alignment {
    pub offset_a: usize,
    pub offset_b: usize,
    /// Positions compared.
    pub len: usize,
}

impl Alignment {
    pub fn of(a: &Trace, b: &Trace) -> Alignment {
        let (ta, tb) = (&a.tokens, &b.tokens);
        let mut len = 0;
        while len < ta.len().min(tb.len()) && ta[ta.len() - 1 - len] == tb[tb.len() - 1 - len] {
            len += 1;
        }
        Alignment { offset_a: ta.len() - len, offset_b: tb.len() - len, len }
    }
}

/// `max |X - X_f64|` over finite pairs.
fn noise(x: Option<&Values>, twin: Option<&Values>) -> f64 {
    match (x, twin) {
        (Some(x), Some(t)) if x.len() == t.len() => (0..x.len()).fold(0.0, |m, i| match (x.get(i), t.get(i)) {
            (Some(p), Some(q)) if p.is_finite() && q.is_finite() => m.max((p - q).abs()),
            _ => m,
        }),
        _ => 0.0,
    }
}

/// Classify one stage given its metrics and the noise floors.
pub fn classify(m: &Metrics, noise_a: f64, noise_b: f64, tol: &Tolerances) -> (Class, f64) {
    let floor = tol.floor_rel * m.max_ref;
    let threshold = tol.noise_multiple * noise_a.max(noise_b) + floor;
    let class = if m.bitwise_equal {
        Class::Match
    } else if m.non_finite_mismatch > 0 {
        Class::Diverged
    } else if m.max_abs <= floor {
        Class::Match
    } else if m.max_abs <= threshold || (tol.user_set() && m.allclose) {
        Class::Noise
    } else {
        Class::Diverged
    };
    (class, threshold)
}

/// The traces of one path: as computed, and its f64 twin (for the noise floor).
pub struct Measured {
    pub trace: Trace,
    pub twin: Option<Trace>,
}

impl Measured {
    /// Run `path` and, unless it already computes in f64, its f64 twin.
    pub fn run(model: &Model<'_>, path: &PathSpec, prompt: &Prompt) -> Result<Measured> {
        let trace = forward(model, path, prompt, None)?;
        let twin = if path.precision == Precision::F64 {
            None
        } else {
            let twin_spec = PathSpec { precision: Precision::F64, accumulate: Precision::F64, ..path.clone() };
            Some(forward(model, &twin_spec, prompt, None)?)
        };
        Ok(Measured { trace, twin })
    }

    fn noise(&self, id: StageId, pos: usize) -> f64 {
        match &self.twin {
            Some(t) => noise(self.trace.get(id, pos), t.get(id, pos)),
            None => 0.0,
        }
    }
}

/// Compare every stage both traces recorded, position by position (aligned), in execution order.
/// `noise_a` / `noise_b` give each path's noise at (stage, position in its own trace).
pub fn compare_traces(
    a: &Trace,
    b: &Trace,
    noise_a: &dyn Fn(StageId, usize) -> f64,
    noise_b: &dyn Fn(StageId, usize) -> f64,
    tol: &Tolerances,
) -> Vec<StageDiff> {
    let al = Alignment::of(a, b);
    let mut out = Vec::new();
    for p in 0..al.len {
        let (pa, pb) = (p + al.offset_a, p + al.offset_b);
        for &id in a.ids() {
            let (Some(va), Some(vb)) = (a.get(id, pa), b.get(id, pb)) else { continue };
            let (na, nb) = (noise_a(id, pa), noise_b(id, pb));
            let (xa, xb) = (va.to_f64(), vb.to_f64());
            let metrics = metrics::compare(&xa, &xb, tol.allclose());
            let (mut class, threshold) = classify(&metrics, na, nb, tol);
            let note = (xa.len() != xb.len()).then(|| {
                class = Class::Diverged;
                format!("shapes differ: A has {} values, B {}", xa.len(), xb.len())
            });
            out.push(StageDiff {
                position: p,
                layer: id.layer,
                stage: id.stage,
                name: id.name(),
                class,
                metrics,
                noise_a: na,
                noise_b: nb,
                threshold,
                note,
            });
        }
    }
    out
}

/// The first diverged stage in execution order (position first), if any.
pub fn first_divergence(stages: &[StageDiff]) -> Option<&StageDiff> {
    stages.iter().find(|s| s.class == Class::Diverged)
}

/// What to compare and how.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    pub tolerances: Tolerances,
    pub isolation: Isolation,
    /// Search for the convention flips that explain the divergence.
    pub explain: bool,
    /// Most forward runs `explain` may spend.
    pub explain_budget: usize,
    /// Candidates per position in the report's top-k table.
    pub top_k: usize,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            tolerances: Tolerances::default(),
            isolation: Isolation::Off,
            explain: false,
            explain_budget: explain::DEFAULT_BUDGET,
            top_k: 5,
        }
    }
}

/// Everything measured for a comparison (the report is built from it).
pub struct Comparison {
    pub spec_a: PathSpec,
    pub spec_b: PathSpec,
    pub prompt: Prompt,
    pub a: Measured,
    pub b: Measured,
    pub stages: Vec<StageDiff>,
    /// B run on A's inputs, and its comparison with A, when isolation was asked for.
    pub isolated_trace: Option<Trace>,
    pub isolated: Option<Vec<StageDiff>>,
    pub explain: Option<explain::Explanation>,
}

/// Where a comparison is: `step` ("A", "B", "isolation", "explain") and forward runs done of a
/// total (for explain, its budget: an upper bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub step: &'static str,
    pub done: usize,
    pub total: usize,
}

/// Run A and B (and their f64 twins), compare them stage by stage, and optionally isolate and
/// explain.
pub fn compare(
    model: &Model<'_>,
    a: &PathSpec,
    b: &PathSpec,
    prompt: impl Into<Prompt>,
    opts: &CompareOptions,
) -> Result<Comparison> {
    compare_with_progress(model, a, b, prompt, opts, &mut |_| {})
}

/// [`compare`], reporting progress as it goes.
pub fn compare_with_progress(
    model: &Model<'_>,
    a: &PathSpec,
    b: &PathSpec,
    prompt: impl Into<Prompt>,
    opts: &CompareOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<Comparison> {
    let prompt = prompt.into();
    progress(Progress { step: "A", done: 0, total: 2 });
    let ma = Measured::run(model, a, &prompt)?;
    progress(Progress { step: "B", done: 1, total: 2 });
    let mb = Measured::run(model, b, &prompt)?;
    let tol = &opts.tolerances;
    let stages = compare_traces(&ma.trace, &mb.trace, &|id, p| ma.noise(id, p), &|id, p| mb.noise(id, p), tol);
    let (isolated_trace, isolated) = match opts.isolation {
        Isolation::Off => (None, None),
        mode => {
            progress(Progress { step: "isolation", done: 0, total: 1 });
            if ma.trace.tokens != mb.trace.tokens {
                return Err(Error::input(
                    "isolation needs both paths to run the same tokens, but their BOS handling differs \
                     (compare without isolation, or give both the same bos)",
                ));
            }
            let iso = forward(model, b, &prompt, Some(Injection { reference: &ma.trace, mode }))?;
            let diffs = compare_traces(&ma.trace, &iso, &|id, p| ma.noise(id, p), &|id, p| mb.noise(id, p), tol);
            (Some(iso), Some(diffs))
        }
    };
    let explain = if opts.explain {
        Some(explain::explain(model, &prompt, (a, &ma), (b, &mb), tol, opts.explain_budget, progress)?)
    } else {
        None
    };
    Ok(Comparison {
        spec_a: a.clone(),
        spec_b: b.clone(),
        prompt,
        a: ma,
        b: mb,
        stages,
        isolated_trace,
        isolated,
        explain,
    })
}
