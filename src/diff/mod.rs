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
//!
//! # Capture levels
//! With capture `full` every value of every stage is compared. With `stats` (for long prompts and
//! big models) the runs keep per-stage summaries and the logits: the logits are compared value by
//! value as above, and each stage by its statistics (min, max, mean, RMS, non-finite count), with
//! the same classes, each side's noise being the largest change of a statistic under its f64 twin
//! (or perturbed reruns). Statistics can agree while values differ, so this locates a divergence
//! less surely. With `off` only the logits are compared. Isolation and dumps need `full`.
//!
//! # Dumps
//! A side may be an imported dump ([`Side::Dump`]), which cannot be rerun. Its noise is assumed:
//! the larger of `dump_noise_rel` (1e-6) of the stage's largest |value| and the measured f32 noise
//! of the built-in path it is compared with (none when the dump was computed in f64), plus its
//! storage and print rounding.

pub mod explain;
pub mod logits;
pub mod metrics;
pub mod report;

use crate::forward::{forward, forward_captured, forward_perturbed, Injection, Isolation, Prompt};
use crate::import::ImportedDump;
use crate::model::Model;
use crate::path::{ActivationQuant, PathSpec, Precision};
use crate::trace::{Capture, Stage, StageId, StageStats, Trace, TraceShape, Values};
use crate::{Error, Result};
use metrics::{AllClose, Metrics};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

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
    /// The float noise a dump (which cannot be rerun) is assumed to carry at least, relative to
    /// the stage's largest |value| at that position.
    #[serde(default = "default_dump_noise_rel")]
    pub dump_noise_rel: f64,
}

fn default_dump_noise_rel() -> f64 {
    1e-6
}

impl Default for Tolerances {
    fn default() -> Self {
        Tolerances { noise_multiple: 3.0, floor_rel: 1e-12, atol: None, rtol: None, dump_noise_rel: 1e-6 }
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
    /// Why the stage could not be compared element-wise, when it could not, or what was compared
    /// when only part of it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Values in the stage at this position, when only some (`metrics.n`) were compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub of: Option<usize>,
}

impl StageDiff {
    pub fn id(&self) -> StageId {
        StageId::new(self.layer, self.stage)
    }
}

/// |B − A| / |A| of each statistic (0 when equal, inf when A's is 0 and B's is not).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StatsRel {
    #[serde(serialize_with = "crate::json::float")]
    pub min: f64,
    #[serde(serialize_with = "crate::json::float")]
    pub max: f64,
    #[serde(serialize_with = "crate::json::float")]
    pub mean: f64,
    #[serde(serialize_with = "crate::json::float")]
    pub rms: f64,
}

/// One stage at one position, compared by its summary statistics (capture `stats`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsDiff {
    pub position: usize,
    /// `None` outside the layers.
    pub layer: Option<usize>,
    pub stage: Stage,
    /// The dump name (`blk.0.q`).
    pub name: String,
    pub class: Class,
    pub a: StageStats,
    pub b: StageStats,
    pub rel: StatsRel,
    /// The largest |B − A| among min, max, mean and RMS.
    #[serde(serialize_with = "crate::json::float")]
    pub max_abs: f64,
    /// Each side's noise on the statistics: the largest change of one under its f64 twin (or its
    /// perturbed reruns).
    pub noise_a: f64,
    pub noise_b: f64,
    /// The difference allowed as noise.
    pub threshold: f64,
}

impl StatsDiff {
    pub fn id(&self) -> StageId {
        StageId::new(self.layer, self.stage)
    }

    /// max |Δ| over the noise threshold.
    pub fn times_threshold(&self) -> f64 {
        if self.threshold > 0.0 {
            self.max_abs / self.threshold
        } else if self.max_abs > 0.0 {
            f64::INFINITY
        } else {
            0.0
        }
    }
}

fn relative(a: f64, b: f64) -> f64 {
    if a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()) {
        0.0
    } else if a == 0.0 {
        f64::INFINITY
    } else {
        ((b - a) / a).abs()
    }
}

/// Compare the summaries both traces recorded (capture `stats`), position by position (aligned),
/// in execution order. `noise_a` / `noise_b` give each side's noise on the statistics at (stage,
/// position in its own trace).
pub fn compare_stats(
    a: &Trace,
    b: &Trace,
    noise_a: &dyn Fn(StageId, usize) -> f64,
    noise_b: &dyn Fn(StageId, usize) -> f64,
    tol: &Tolerances,
) -> Vec<StatsDiff> {
    let al = Alignment::of(a, b);
    let mut out = Vec::new();
    for p in 0..al.len {
        let (pa, pb) = (p + al.offset_a, p + al.offset_b);
        for &id in a.ids() {
            let (Some(sa), Some(sb)) = (a.stats_at(id, pa), b.stats_at(id, pb)) else { continue };
            let (na, nb) = (noise_a(id, pa), noise_b(id, pb));
            let max_abs = sa.max_change(sb);
            let floor = tol.floor_rel * sa.scale();
            let threshold = tol.noise_multiple * na.max(nb) + floor;
            let allclose = tol.user_set() && {
                let t = tol.allclose();
                sa.values()
                    .iter()
                    .zip(sb.values())
                    .all(|(&x, y)| (x.is_nan() && y.is_nan()) || (y - x).abs() <= t.atol + t.rtol * x.abs())
            };
            let class = if sa.identical(sb) {
                Class::Match
            } else if sa.len != sb.len || sa.non_finite != sb.non_finite {
                Class::Diverged
            } else if max_abs <= floor {
                Class::Match
            } else if max_abs <= threshold || allclose {
                Class::Noise
            } else {
                Class::Diverged
            };
            out.push(StatsDiff {
                position: p,
                layer: id.layer,
                stage: id.stage,
                name: id.name(),
                class,
                a: *sa,
                b: *sb,
                rel: StatsRel {
                    min: relative(sa.min, sb.min),
                    max: relative(sa.max, sb.max),
                    mean: relative(sa.mean, sb.mean),
                    rms: relative(sa.rms, sb.rms),
                },
                max_abs,
                noise_a: na,
                noise_b: nb,
                threshold,
            });
        }
    }
    out
}

/// The first stage whose statistics diverge, in execution order (position first), if any.
pub fn first_stats_divergence(stats: &[StatsDiff]) -> Option<&StatsDiff> {
    stats.iter().find(|s| s.class == Class::Diverged)
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

/// How a side's noise floor was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoiseMethod {
    /// Measured: `max |X - X_f64|` against the path's f64 twin.
    F64Twin,
    /// None: the path computes in f64 (its own twin).
    OwnF64,
    /// Measured: the spread of [`PERTURBED_RUNS`] reruns with the first layer's input nudged by a
    /// relative 1e-7. For paths that round activations to 8 bits, where a 1e-7 change flips a few
    /// roundings and grows layer by layer: an f64 twin would miss that floor.
    PerturbationSpread,
    /// Assumed: a dump cannot be rerun.
    DumpAssumed,
}

impl NoiseMethod {
    pub fn describe(self) -> &'static str {
        match self {
            NoiseMethod::F64Twin => "measured against its f64 twin",
            NoiseMethod::OwnF64 => "none: it computes in f64",
            NoiseMethod::PerturbationSpread => {
                "measured as the spread of 2 reruns with the input nudged by 1e-7 (8-bit activation rounding is \
                 chaotic: a tiny change flips roundings, so an f64 twin would understate it)"
            }
            NoiseMethod::DumpAssumed => "assumed: a dump cannot be rerun",
        }
    }
}

/// Reruns of a path with activation rounding to measure its spread.
pub const PERTURBED_RUNS: u64 = 2;

/// The traces of one side: as computed, and its f64 twin (for the noise floor); a dump, which
/// cannot be rerun, or a path whose noise is a perturbation spread carries its noise instead.
pub struct Measured {
    pub trace: Trace,
    pub twin: Option<Trace>,
    /// Noise per stage and position, where it is not taken from the twin.
    pub assumed: Option<HashMap<(StageId, usize), f64>>,
    /// Noise on the statistics per stage and position (capture `stats`), where it is not taken
    /// from the twin.
    pub assumed_stats: Option<HashMap<(StageId, usize), f64>>,
    pub method: NoiseMethod,
}

impl Measured {
    /// Run `path` keeping what `capture` says, and measure its noise: against its f64 twin, unless
    /// it already computes in f64, or, for paths that round activations like llama.cpp, as the
    /// spread of perturbed reruns.
    pub fn run(model: &Model<'_>, path: &PathSpec, prompt: &Prompt, capture: Capture) -> Result<Measured> {
        let trace = forward_captured(model, path, prompt, capture)?;
        if path.activation_quant != ActivationQuant::None {
            let mut spread: HashMap<(StageId, usize), f64> = HashMap::new();
            let mut stats_spread: HashMap<(StageId, usize), f64> = HashMap::new();
            for seed in 1..=PERTURBED_RUNS {
                let nudged = forward_perturbed(model, path, prompt, seed, capture)?;
                for &id in trace.ids() {
                    for pos in 0..trace.positions() {
                        if let Some(x) = trace.get(id, pos) {
                            let e = spread.entry((id, pos)).or_insert(0.0);
                            *e = e.max(noise(Some(x), nudged.get(id, pos)));
                        }
                        if let (Some(x), Some(y)) = (trace.stats_at(id, pos), nudged.stats_at(id, pos)) {
                            let e = stats_spread.entry((id, pos)).or_insert(0.0);
                            *e = e.max(x.max_change(y));
                        }
                    }
                }
            }
            return Ok(Measured {
                trace,
                twin: None,
                assumed: Some(spread),
                assumed_stats: Some(stats_spread),
                method: NoiseMethod::PerturbationSpread,
            });
        }
        if path.precision == Precision::F64 {
            return Ok(Measured { trace, twin: None, assumed: None, assumed_stats: None, method: NoiseMethod::OwnF64 });
        }
        let twin_spec = PathSpec { precision: Precision::F64, accumulate: Precision::F64, ..path.clone() };
        let twin = Some(forward_captured(model, &twin_spec, prompt, capture)?);
        Ok(Measured { trace, twin, assumed: None, assumed_stats: None, method: NoiseMethod::F64Twin })
    }

    /// Bytes the traces of measuring `path` on `positions` positions take at `capture` (its trace
    /// and its f64 twin, or the trace and one perturbed rerun at a time): an estimate.
    pub fn estimate_bytes(shape: &TraceShape, path: &PathSpec, positions: usize, capture: Capture) -> u64 {
        let own_f64 = path.precision == Precision::F64;
        let trace = shape.bytes(positions, capture, own_f64);
        if path.activation_quant != ActivationQuant::None {
            2 * trace
        } else if own_f64 {
            trace
        } else {
            trace + shape.bytes(positions, capture, true)
        }
    }

    /// A dump, with the noise it is assumed to carry: its rounding allowance plus, unless it was
    /// computed in f64, float noise: the larger of `dump_noise_rel` of the stage's scale and the
    /// measured f32 noise of a built-in path at the same stage and token (`float_noise`), since
    /// an engine we cannot rerun may round more than ours (HF transformers' own f32 runs sit up
    /// to 1.4e-6 of the scale from f64 on the reference models).
    fn dump(dump: &ImportedDump, float_noise: Option<&Measured>, tol: &Tolerances) -> Measured {
        let trace = dump.trace.clone();
        let al = float_noise.map(|m| Alignment::of(&trace, &m.trace));
        let mut assumed = HashMap::new();
        for &id in trace.ids() {
            for pos in 0..trace.positions() {
                let Some(v) = trace.get(id, pos) else { continue };
                let float = if dump.info.computed_f64 {
                    0.0
                } else {
                    let known = trace.known(id, pos);
                    let scale = (0..v.len())
                        .filter(|i| known.is_none_or(|k| k.binary_search(i).is_ok()))
                        .filter_map(|i| v.get(i))
                        .filter(|x| x.is_finite())
                        .fold(0.0, |m: f64, x| m.max(x.abs()));
                    let measured = match (float_noise, al) {
                        (Some(m), Some(al)) => match pos.checked_sub(al.offset_a).filter(|&p| p < al.len) {
                            Some(p) => m.noise(id, p + al.offset_b),
                            None => 0.0,
                        },
                        _ => 0.0,
                    };
                    measured.max(tol.dump_noise_rel * scale)
                };
                assumed.insert((id, pos), dump.allowance(id, pos) + float);
            }
        }
        Measured { trace, twin: None, assumed: Some(assumed), assumed_stats: None, method: NoiseMethod::DumpAssumed }
    }

    fn noise(&self, id: StageId, pos: usize) -> f64 {
        match (&self.twin, &self.assumed) {
            (Some(t), _) => noise(self.trace.get(id, pos), t.get(id, pos)),
            (None, Some(a)) => a.get(&(id, pos)).copied().unwrap_or(0.0),
            (None, None) => 0.0,
        }
    }

    /// The noise on stage `id`'s statistics at `pos`.
    fn stats_noise(&self, id: StageId, pos: usize) -> f64 {
        match (&self.twin, &self.assumed_stats) {
            (Some(t), _) => match (self.trace.stats_at(id, pos), t.stats_at(id, pos)) {
                (Some(x), Some(y)) => x.max_change(y),
                _ => 0.0,
            },
            (None, Some(a)) => a.get(&(id, pos)).copied().unwrap_or(0.0),
            (None, None) => 0.0,
        }
    }
}

/// One side of a comparison: a built-in path, or an imported dump.
#[derive(Debug, Clone)]
pub enum Side {
    Path(PathSpec),
    Dump(Arc<ImportedDump>),
}

impl Side {
    pub fn spec(&self) -> Option<&PathSpec> {
        match self {
            Side::Path(p) => Some(p),
            Side::Dump(_) => None,
        }
    }

    pub fn dump(&self) -> Option<&ImportedDump> {
        match self {
            Side::Path(_) => None,
            Side::Dump(d) => Some(d),
        }
    }

    /// The path's text form, or `dump:<file>`.
    pub fn text(&self) -> String {
        match self {
            Side::Path(p) => p.to_text(),
            Side::Dump(d) => format!("dump:{}", d.info.label),
        }
    }
}

/// The elements both sides know (`None`: all of them).
fn known_elements(a: Option<&[usize]>, b: Option<&[usize]>) -> Option<Vec<usize>> {
    match (a, b) {
        (None, None) => None,
        (Some(k), None) | (None, Some(k)) => Some(k.to_vec()),
        (Some(x), Some(y)) => Some(x.iter().copied().filter(|i| y.binary_search(i).is_ok()).collect()),
    }
}

/// Compare every stage both traces recorded, position by position (aligned), in execution order.
/// `noise_a` / `noise_b` give each path's noise at (stage, position in its own trace). Where a
/// trace knows only some elements (an imported partial dump), those are compared; a stage with no
/// known element at a position is skipped there.
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
            let (mut xa, mut xb) = (va.to_f64(), vb.to_f64());
            let full = xa.len();
            let selected = known_elements(a.known(id, pa), b.known(id, pb));
            if let Some(sel) = &selected {
                if sel.is_empty() {
                    continue;
                }
                if xa.len() == xb.len() && sel.iter().all(|&i| i < xa.len()) {
                    xa = sel.iter().map(|&i| xa[i]).collect();
                    xb = sel.iter().map(|&i| xb[i]).collect();
                }
            }
            let mut metrics = metrics::compare(&xa, &xb, tol.allclose());
            if let Some(sel) = &selected {
                let orig = |i: Option<usize>| i.and_then(|i| sel.get(i).copied());
                metrics.argmax = orig(metrics.argmax);
                metrics.first_out_of_tolerance = orig(metrics.first_out_of_tolerance);
            }
            let (mut class, threshold) = classify(&metrics, na, nb, tol);
            let note = if va.len() != vb.len() {
                class = Class::Diverged;
                Some(format!("shapes differ: A has {} values, B {}", va.len(), vb.len()))
            } else {
                selected
                    .as_ref()
                    .map(|sel| format!("{} of {full} values known to both sides: compared those", sel.len()))
            };
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
                of: selected.map(|_| full),
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
    /// What the runs keep: every value, per-stage statistics, or the logits only.
    pub capture: Capture,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            tolerances: Tolerances::default(),
            isolation: Isolation::Off,
            explain: false,
            explain_budget: explain::DEFAULT_BUDGET,
            top_k: 5,
            capture: Capture::Full,
        }
    }
}

/// Bytes the traces of comparing `a` with `b` take at `capture` (each path's trace and what
/// measures its noise, plus one more run for isolation or explain), `positions_*`: the positions
/// each path runs. An estimate, to choose a capture level before running.
pub fn estimate_bytes(
    shape: &TraceShape,
    (a, positions_a): (&PathSpec, usize),
    (b, positions_b): (&PathSpec, usize),
    capture: Capture,
) -> u64 {
    Measured::estimate_bytes(shape, a, positions_a, capture)
        + Measured::estimate_bytes(shape, b, positions_b, capture)
        + shape.bytes(positions_b, capture, b.precision == Precision::F64)
}

/// A side as asked for: a built-in path, or a dump by name (loaded by the caller).
#[derive(Debug, Clone)]
pub enum SideRequest {
    Path(PathSpec),
    Dump(String),
}

impl SideRequest {
    /// `dump:NAME` names a dump; anything else is a path's text form.
    pub fn parse(text: &str) -> Result<SideRequest> {
        match text.strip_prefix("dump:") {
            Some(name) if !name.is_empty() => Ok(SideRequest::Dump(name.to_string())),
            Some(_) => Err(Error::input("dump: needs a file name, e.g. dump:their.safetensors")),
            None => PathSpec::parse(text).map(SideRequest::Path),
        }
    }
}

/// Loads a dump by name, given the tokens it is taken to have run.
pub type ImportFn<'a> = dyn FnMut(&str, Option<Vec<u32>>) -> Result<ImportedDump> + 'a;

/// Resolve both sides and the prompt the paths run. A dump brings its own tokens; a dump without
/// them is taken to have run the tokens a built-in side runs on the prompt given. `import` loads a
/// dump by name, given those tokens.
pub fn resolve_sides(
    model: &Model<'_>,
    a: SideRequest,
    b: SideRequest,
    given: Option<Prompt>,
    import: &mut ImportFn<'_>,
) -> Result<(Side, Side, Prompt)> {
    let path_spec = [&a, &b].into_iter().find_map(|r| match r {
        SideRequest::Path(p) => Some(p.clone()),
        SideRequest::Dump(_) => None,
    });
    let path_tokens = match (&given, &path_spec) {
        (Some(p), Some(spec)) => Some(crate::forward::input_tokens(model, spec, p)?),
        (Some(Prompt::Ids(ids)), None) => Some(ids.clone()),
        (Some(Prompt::Text(_)), None) => {
            return Err(Error::input("two dumps cannot be given a text prompt: give the token ids they ran"))
        }
        (None, _) => None,
    };
    let mut side = |r: SideRequest| -> Result<Side> {
        match r {
            SideRequest::Path(p) => Ok(Side::Path(p)),
            SideRequest::Dump(name) => Ok(Side::Dump(Arc::new(import(&name, path_tokens.clone())?))),
        }
    };
    let (sa, sb) = (side(a)?, side(b)?);
    let prompt = match (given, sa.dump().or(sb.dump())) {
        (Some(p), _) => p,
        (None, Some(d)) => Prompt::Ids(d.info.tokens.clone()),
        (None, None) => return Err(Error::input("give the tokens or a prompt to run")),
    };
    Ok((sa, sb, prompt))
}

/// Everything measured for a comparison (the report is built from it).
pub struct Comparison {
    pub side_a: Side,
    pub side_b: Side,
    pub prompt: Prompt,
    pub a: Measured,
    pub b: Measured,
    pub stages: Vec<StageDiff>,
    /// Capture `stats`: every stage compared by its statistics.
    pub stats: Vec<StatsDiff>,
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
    compare_sides(Some(model), &Side::Path(a.clone()), &Side::Path(b.clone()), &prompt.into(), opts, progress)
}

/// Compare any two sides: built-in paths (run on `prompt`; they need the model) and imported
/// dumps (lined up by their tokens). Isolation and explain re-run both sides, so they need two
/// paths.
pub fn compare_sides(
    model: Option<&Model<'_>>,
    a: &Side,
    b: &Side,
    prompt: &Prompt,
    opts: &CompareOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<Comparison> {
    let tol = &opts.tolerances;
    let capture = opts.capture;
    if capture != Capture::Full {
        if a.dump().is_some() || b.dump().is_some() {
            return Err(Error::input(format!(
                "a dump is compared value by value, so it needs capture full (not {})",
                capture.name()
            )));
        }
        if opts.isolation != Isolation::Off {
            return Err(Error::input(format!(
                "isolation feeds B with A's values, which capture {} does not keep: use capture full, or turn \
                 isolation off",
                capture.name()
            )));
        }
    }
    let run = |side: &Side| -> Result<Option<Measured>> {
        match side {
            Side::Path(spec) => {
                let model = model.ok_or_else(|| Error::input("a built-in path needs the model (the GGUF)"))?;
                Measured::run(model, spec, prompt, capture).map(Some)
            }
            Side::Dump(_) => Ok(None),
        }
    };
    progress(Progress { step: "A", done: 0, total: 2 });
    let ra = run(a)?;
    progress(Progress { step: "B", done: 1, total: 2 });
    let rb = run(b)?;
    // A dump's float noise is taken from a built-in path run in f32: the other side when it is one
    // (an f32 variant of it when it computes in f64), else none.
    let f32_variant = |other: &Side, measured: Option<&Measured>| -> Result<Option<Measured>> {
        match (other, measured, model) {
            (Side::Path(spec), Some(m), Some(model)) if spec.precision == Precision::F64 => {
                let f32_spec = PathSpec { precision: Precision::F32, accumulate: Precision::F32, ..spec.clone() };
                let t = forward(model, &f32_spec, prompt, None)?;
                Ok(Some(Measured {
                    trace: t,
                    twin: Some(m.trace.clone()),
                    assumed: None,
                    assumed_stats: None,
                    method: NoiseMethod::F64Twin,
                }))
            }
            _ => Ok(None),
        }
    };
    let dump_side = |d: &ImportedDump, other: &Side, measured: Option<&Measured>| -> Result<Measured> {
        let variant = f32_variant(other, measured)?;
        Ok(Measured::dump(d, variant.as_ref().or(measured), tol))
    };
    let missing_run = || Error::input("a built-in path did not run");
    let ma = match a {
        Side::Path(_) => ra.ok_or_else(missing_run)?,
        Side::Dump(d) => dump_side(d, b, rb.as_ref())?,
    };
    let mb = match b {
        Side::Path(_) => rb.ok_or_else(missing_run)?,
        Side::Dump(d) => dump_side(d, a, a.spec().map(|_| &ma))?,
    };
    let al = Alignment::of(&ma.trace, &mb.trace);
    if al.len == 0 {
        return Err(Error::input(format!(
            "nothing to compare: A ran tokens {:?} and B {:?}, which share no final tokens",
            ma.trace.tokens, mb.trace.tokens
        )));
    }
    let stages = compare_traces(&ma.trace, &mb.trace, &|id, p| ma.noise(id, p), &|id, p| mb.noise(id, p), tol);
    let stats =
        compare_stats(&ma.trace, &mb.trace, &|id, p| ma.stats_noise(id, p), &|id, p| mb.stats_noise(id, p), tol);
    let both_paths = a.spec().zip(b.spec());
    let (isolated_trace, isolated) = match (opts.isolation, both_paths, model) {
        (Isolation::Off, _, _) => (None, None),
        (mode, Some((_, spec_b)), Some(model)) => {
            progress(Progress { step: "isolation", done: 0, total: 1 });
            if ma.trace.tokens != mb.trace.tokens {
                return Err(Error::input(
                    "isolation needs both paths to run the same tokens, but their BOS handling differs \
                     (compare without isolation, or give both the same bos)",
                ));
            }
            let iso = forward(model, spec_b, prompt, Some(Injection { reference: &ma.trace, mode }))?;
            let diffs = compare_traces(&ma.trace, &iso, &|id, p| ma.noise(id, p), &|id, p| mb.noise(id, p), tol);
            (Some(iso), Some(diffs))
        }
        _ => {
            return Err(Error::input(
                "isolation re-runs B on A's inputs, so it needs two built-in paths (a dump cannot be re-run)",
            ))
        }
    };
    let explain = match (opts.explain, both_paths, model) {
        (false, _, _) => None,
        (true, Some((spec_a, spec_b)), Some(model)) => {
            Some(explain::explain(model, prompt, (spec_a, &ma), (spec_b, &mb), tol, opts.explain_budget, progress)?)
        }
        (true, _, _) => {
            return Err(Error::input(
                "explain re-runs B with A's conventions, so it needs two built-in paths (a dump cannot be re-run)",
            ))
        }
    };
    Ok(Comparison {
        side_a: a.clone(),
        side_b: b.clone(),
        prompt: prompt.clone(),
        a: ma,
        b: mb,
        stages,
        stats,
        isolated_trace,
        isolated,
        explain,
    })
}
