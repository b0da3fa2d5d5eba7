//! The comparison as a report: JSON (versioned, everything) and Markdown (fit to paste into a
//! GitHub issue).

use super::explain::{positions_text, Explanation};
use super::logits::{self as logit_diff, LogitMetrics, LogitSummary};
use super::{
    first_divergence, first_stats_divergence, Alignment, Class, CompareOptions, Comparison, Measured, NoiseMethod,
    Side, StageDiff, StatsDiff, Tolerances,
};
use crate::forward::{Isolation, Prompt};
use crate::import::{DumpInfo, Outcome};
use crate::logits::{top_k, Candidate};
use crate::model::{Config, Model};
use crate::path::PathSpec;
use crate::trace::{Capture, NonFinite, Stage, StageId};
use serde::Serialize;
use std::fmt::Write;

/// The JSON schema's name and version.
pub const SCHEMA: &str = "paritylab-report/1";

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Agree,
    Diverge,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// The file's name as the user gave it, when known.
    pub file: Option<String>,
    pub sha256: String,
    pub config: Config,
}

#[derive(Debug, Clone, Serialize)]
pub struct PathInfo {
    /// `path` (a built-in path) or `dump` (an imported dump).
    pub kind: &'static str,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<PathSpec>,
    /// What the dump held and what became of each tensor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dump: Option<DumpInfo>,
    /// The tokens this side ran (after its BOS handling).
    pub tokens: Vec<u32>,
    /// How its noise floor was obtained, and that in words.
    pub noise: NoiseMethod,
    pub noise_text: &'static str,
}

impl PathInfo {
    fn of(side: &Side, measured: &Measured) -> PathInfo {
        PathInfo {
            kind: if side.spec().is_some() { "path" } else { "dump" },
            text: side.text(),
            spec: side.spec().cloned(),
            dump: side.dump().map(|d| d.info.clone()),
            tokens: measured.trace.tokens.clone(),
            noise: measured.method,
            noise_text: measured.method.describe(),
        }
    }
}

/// Where the paths first part.
#[derive(Debug, Clone, Serialize)]
pub struct Divergence {
    /// Position among the compared (aligned) tokens.
    pub position: usize,
    /// `None` outside the layers.
    pub layer: Option<usize>,
    pub stage: Stage,
    /// The dump name (`blk.0.q`).
    pub name: String,
    /// The element where |A - B| is largest, and the two values there.
    pub worst_index: Option<usize>,
    pub value_a: Option<f64>,
    pub value_b: Option<f64>,
    pub max_abs: f64,
    pub rel_l2: f64,
    /// max |A - B| over the noise threshold.
    #[serde(serialize_with = "crate::json::float")]
    pub times_threshold: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct IsolationReport {
    pub mode: Isolation,
    /// Every stage of B run on A's inputs, compared with A.
    pub stages: Vec<StageDiff>,
    /// The stages that stay diverged in isolation (their own math differs), once each.
    pub diverged: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TopK {
    pub position: usize,
    pub token: u32,
    pub a: Vec<Candidate>,
    pub b: Vec<Candidate>,
}

/// Everything about a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    /// The GGUF, when one was used (`compare-dumps` may run without).
    pub model: Option<ModelInfo>,
    /// The token ids as given, or the text's token ids (before any BOS).
    pub tokens: Vec<u32>,
    /// The text, when the prompt was text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    pub a: PathInfo,
    pub b: PathInfo,
    /// The PathSpec fields where A and B differ.
    pub differing_fields: Vec<&'static str>,
    pub tolerances: Tolerances,
    /// What the runs kept: `full` (every value), `stats` (per-stage statistics and the logits) or
    /// `off` (the logits).
    pub capture: Capture,
    pub verdict: Verdict,
    /// The first diverged stage in execution order (position first), if any. At capture `stats`
    /// or `off` only the logits (`result_output`) are compared value by value.
    pub first_divergence: Option<Divergence>,
    /// Capture `stats`: the first stage whose statistics diverge (position first), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_stats_divergence: Option<StatsDiff>,
    /// Per compared position, its first diverged stage.
    pub first_divergence_per_position: Vec<Option<Divergence>>,
    /// The positions compared, as tokens (A's tokens from its first compared position).
    pub compared_tokens: Vec<u32>,
    pub stages: Vec<StageDiff>,
    /// Capture `stats`: every stage at every position compared by its statistics.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stage_stats: Vec<StatsDiff>,
    pub logits: Vec<LogitMetrics>,
    pub logit_summary: LogitSummary,
    /// Why some positions have no distribution comparison, when some have none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logits_note: Option<String>,
    pub isolation: Option<IsolationReport>,
    pub explain: Option<Explanation>,
    pub top_k: Vec<TopK>,
    /// Where each side first produced a NaN or an infinity, if it did (positions are the side's own
    /// run, BOS included). The comparison goes on: metrics cover the finite values and count the rest.
    pub non_finite: NonFiniteSides,
}

/// The first NaN or infinity of each side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NonFiniteSides {
    pub a: Option<NonFinite>,
    pub b: Option<NonFinite>,
}

fn divergence(d: &StageDiff, c: &Comparison, al: &Alignment) -> Divergence {
    let id = d.id();
    let value =
        |t: &crate::trace::Trace, pos: usize| d.metrics.argmax.and_then(|i| t.get(id, pos).and_then(|v| v.get(i)));
    Divergence {
        position: d.position,
        layer: d.layer,
        stage: d.stage,
        name: d.name.clone(),
        worst_index: d.metrics.argmax,
        value_a: value(&c.a.trace, d.position + al.offset_a),
        value_b: value(&c.b.trace, d.position + al.offset_b),
        max_abs: d.metrics.max_abs,
        rel_l2: d.metrics.rel_l2,
        times_threshold: if d.threshold > 0.0 { d.metrics.max_abs / d.threshold } else { f64::INFINITY },
    }
}

impl Report {
    /// Build the report of a comparison of `model` (`file`: its name, when known).
    pub fn new(
        model: &Model<'_>,
        file: Option<String>,
        sha256: String,
        c: &Comparison,
        opts: &CompareOptions,
    ) -> Report {
        Report::build(Some(ModelInfo { file, sha256, config: model.config.clone() }), c, opts)
    }

    /// Build the report (`model`: the GGUF's description, when there is one).
    pub fn build(model: Option<ModelInfo>, c: &Comparison, opts: &CompareOptions) -> Report {
        let (tokens, prompt) = match &c.prompt {
            Prompt::Ids(ids) => (ids.clone(), None),
            Prompt::Text(t) => {
                // The text's own tokens: what both paths share before their BOS handling.
                let al = Alignment::of(&c.a.trace, &c.b.trace);
                (c.a.trace.tokens[al.offset_a..].to_vec(), Some(t.clone()))
            }
        };
        let al = Alignment::of(&c.a.trace, &c.b.trace);
        let positions = al.len;
        let first_divergence_per_position = (0..positions)
            .map(|p| {
                c.stages.iter().find(|s| s.position == p && s.class == Class::Diverged).map(|d| divergence(d, c, &al))
            })
            .collect();
        // Distributions are compared where both sides have every logit (a dump may hold only the
        // last position's, or only some values).
        let out = StageId::global(Stage::ResultOutput);
        let full = |t: &crate::trace::Trace, p: usize| t.logits(p).filter(|_| t.known(out, p).is_none());
        let logit_positions: Vec<usize> = (0..positions)
            .filter(|&p| full(&c.a.trace, p + al.offset_a).is_some() && full(&c.b.trace, p + al.offset_b).is_some())
            .collect();
        let logits: Vec<LogitMetrics> = logit_positions
            .iter()
            .filter_map(|&p| {
                let la = full(&c.a.trace, p + al.offset_a)?;
                let lb = full(&c.b.trace, p + al.offset_b)?;
                Some(LogitMetrics { position: p, ..logit_diff::compare(&la, &lb) })
            })
            .collect();
        let logits_note = (logit_positions.len() < positions).then(|| {
            if logit_positions.is_empty() {
                "no position has every logit on both sides: the logits are compared stage-wise only (result_output above)"
                    .to_string()
            } else {
                format!(
                    "distributions compared at {} of {positions} positions, where both sides have every logit",
                    logit_positions.len()
                )
            }
        });
        let top_k = logit_positions
            .iter()
            .map(|&p| TopK {
                position: p,
                token: c.a.trace.tokens[p + al.offset_a],
                a: top_k(&c.a.trace.logits(p + al.offset_a).unwrap_or_default(), opts.top_k),
                b: top_k(&c.b.trace.logits(p + al.offset_b).unwrap_or_default(), opts.top_k),
            })
            .collect();
        let isolation = c.isolated.as_ref().map(|stages| {
            let mut diverged: Vec<String> = Vec::new();
            for s in stages.iter().filter(|s| s.class == Class::Diverged) {
                if !diverged.contains(&s.name) {
                    diverged.push(s.name.clone());
                }
            }
            IsolationReport { mode: opts.isolation, stages: stages.clone(), diverged }
        });
        let first = first_divergence(&c.stages).map(|d| divergence(d, c, &al));
        let first_stats = first_stats_divergence(&c.stats).cloned();
        Report {
            schema: SCHEMA,
            model,
            tokens,
            prompt,
            a: PathInfo::of(&c.side_a, &c.a),
            b: PathInfo::of(&c.side_b, &c.b),
            differing_fields: match (c.side_a.spec(), c.side_b.spec()) {
                (Some(a), Some(b)) => a.differences(b),
                _ => Vec::new(),
            },
            tolerances: opts.tolerances,
            capture: c.a.trace.capture,
            verdict: if first.is_some() || first_stats.is_some() { Verdict::Diverge } else { Verdict::Agree },
            first_divergence: first,
            first_stats_divergence: first_stats,
            first_divergence_per_position,
            compared_tokens: c.a.trace.tokens[al.offset_a..al.offset_a + positions].to_vec(),
            logit_summary: logit_diff::summarise(&logits),
            logits_note,
            logits,
            stages: c.stages.clone(),
            stage_stats: c.stats.clone(),
            isolation,
            explain: c.explain.clone(),
            top_k,
            non_finite: NonFiniteSides { a: c.a.trace.first_non_finite(), b: c.b.trace.first_non_finite() },
        }
    }

    /// One sentence per side that produced a NaN or an infinity: where it first appeared.
    pub fn non_finite_lines(&self) -> Vec<String> {
        [("A", &self.a.text, &self.non_finite.a), ("B", &self.b.text, &self.non_finite.b)]
            .into_iter()
            .filter_map(|(side, text, f)| {
                let f = f.as_ref()?;
                Some(format!(
                    "{side} (`{text}`) produces {} first at `{}` ({}) of position {} (token {}), element {}; \
                     {} stage value{} at {} position{} hold NaN or Inf. The comparison goes on over the finite values.",
                    f.value.unwrap_or("a NaN or an Inf"),
                    f.name,
                    stage_place(f.layer, f.stage),
                    f.position,
                    f.token,
                    f.index,
                    f.stages,
                    if f.stages == 1 { "" } else { "s" },
                    f.positions,
                    if f.positions == 1 { "" } else { "s" },
                ))
            })
            .collect()
    }

    pub fn agrees(&self) -> bool {
        matches!(self.verdict, Verdict::Agree)
    }

    /// The one-line verdict.
    pub fn verdict_line(&self) -> String {
        let mut line = match (self.capture, &self.first_divergence, &self.first_stats_divergence) {
            (Capture::Full, None, _) => format!(
                "`{}` and `{}` agree: every stage at every position is within float noise.",
                self.b.text, self.a.text
            ),
            (Capture::Full, Some(d), _) => format!(
                "`{}` diverges from `{}`: first at `{}` ({}) of position {} (token {}), max |Δ| {} = {}× the noise threshold.",
                self.b.text,
                self.a.text,
                d.name,
                stage_place(d.layer, d.stage),
                d.position,
                self.token_at(d.position),
                sci(d.max_abs),
                sci(d.times_threshold)
            ),
            (Capture::Stats, None, None) => format!(
                "`{}` and `{}` agree within float noise on the logits and on every stage's statistics at every \
                 position (capture stats: values were not compared; capture full compares them).",
                self.b.text, self.a.text
            ),
            (Capture::Off, None, _) => format!(
                "`{}` and `{}` agree: the logits at every position are within float noise (capture off: the stages \
                 were not recorded; capture full compares them).",
                self.b.text, self.a.text
            ),
            (Capture::Stats, logits, stats) => {
                let mut line = format!("`{}` diverges from `{}`", self.b.text, self.a.text);
                if let Some(s) = stats {
                    let _ = write!(
                        line,
                        ": the statistics first part at `{}` ({}) of position {} (token {}), max |Δ| {} = {}× the noise threshold",
                        s.name,
                        stage_place(s.layer, s.stage),
                        s.position,
                        self.token_at(s.position),
                        sci(s.max_abs),
                        sci(s.times_threshold())
                    );
                }
                match logits {
                    Some(d) => {
                        let _ = write!(
                            line,
                            "{} the logits diverge from position {} (token {}), max |Δ| {} = {}× the noise threshold",
                            if stats.is_some() { ";" } else { ":" },
                            d.position,
                            self.token_at(d.position),
                            sci(d.max_abs),
                            sci(d.times_threshold)
                        );
                    }
                    None => line.push_str("; the logits agree within float noise"),
                }
                line.push_str(
                    ". Capture stats compares summaries: capture full finds the first divergent value and op.",
                );
                line
            }
            (Capture::Off, Some(d), _) => format!(
                "`{}` diverges from `{}`: the logits first part at position {} (token {}), max |Δ| {} = {}× the noise \
                 threshold. Capture off keeps only the logits: capture stats or full locates the stage.",
                self.b.text,
                self.a.text,
                d.position,
                self.token_at(d.position),
                sci(d.max_abs),
                sci(d.times_threshold)
            ),
        };
        if let Some(e) = &self.explain {
            if !self.agrees() {
                let _ = write!(line, " Explained by {}.", e.summary);
            }
        }
        line
    }

    fn token_at(&self, position: usize) -> u32 {
        self.compared_tokens.get(position).copied().unwrap_or_default()
    }

    /// The report as Markdown for a GitHub issue. `share_url` is included when given.
    pub fn markdown(&self, share_url: Option<&str>) -> String {
        let mut o = String::new();
        let verdict = if self.agrees() { "agree" } else { "diverge" };
        let _ = writeln!(o, "## paritylab: `{}` vs `{}`: the paths {verdict}\n", self.b.text, self.a.text);
        let _ = writeln!(o, "**{}**\n", self.verdict_line());
        for line in self.non_finite_lines() {
            let _ = writeln!(o, "**NaN/Inf:** {line}\n");
        }
        if let Some(e) = &self.explain {
            let _ = writeln!(
                o,
                "**Explain** ({} runs{}): {}.",
                e.runs,
                if e.capped { ", search capped" } else { "" },
                e.summary
            );
            for r in &e.ranges {
                let flips: Vec<String> = r
                    .flips
                    .iter()
                    .map(|f| {
                        format!(
                            "`{f}`: `{}` → `{}`",
                            field_value(self.b.spec.as_ref(), f),
                            field_value(self.a.spec.as_ref(), f)
                        )
                    })
                    .collect();
                let _ = writeln!(o, "- {}: {}", positions_text(r.positions), flips.join(", "));
            }
            if !e.no_effect.is_empty() {
                let _ = writeln!(o, "- differing but without effect on this model: {}", code_list(&e.no_effect));
            }
            o.push('\n');
        }
        let _ = writeln!(o, "| | |\n|---|---|");
        match &self.model {
            Some(m) => {
                let file = m.file.as_deref().map(|f| format!("`{f}` · ")).unwrap_or_default();
                let sha = &m.sha256[..m.sha256.len().min(16)];
                let _ = writeln!(o, "| model | {file}{} · sha256 `{sha}` |", m.config.describe());
            }
            None => {
                let _ = writeln!(o, "| model | none (two dumps compared as they are) |");
            }
        }
        if let Some(text) = &self.prompt {
            let _ = writeln!(o, "| prompt | `{}` |", text.replace('`', "'").replace('\n', "\\n"));
        }
        let _ = writeln!(o, "| tokens | `{:?}` |", self.tokens);
        let _ = writeln!(o, "| A (reference) | `{}` |", self.a.text);
        let _ = writeln!(o, "| B | `{}` |", self.b.text);
        if self.a.spec.is_some() && self.b.spec.is_some() {
            let _ = writeln!(o, "| conventions that differ | {} |", code_list(&self.differing_fields));
        }
        let t = &self.tolerances;
        let noise_source = if self.a.noise == self.b.noise {
            format!("each side {}", self.a.noise_text)
        } else {
            format!("A {}; B {}", self.a.noise_text, self.b.noise_text)
        };
        let noise_source = if self.a.dump.is_some() || self.b.dump.is_some() {
            format!(
                "{noise_source}. A dump's noise is the larger of the other path's noise and {:e}·max\\|value\\|, \
                 plus its storage and print rounding",
                t.dump_noise_rel
            )
        } else {
            noise_source
        };
        let mut tol = format!(
            "a stage diverges when max\\|A−B\\| > {} × max(noise A, noise B) + {:e}·max\\|A\\| (noise: {noise_source})",
            t.noise_multiple, t.floor_rel
        );
        if let (Some(a), Some(r)) = (t.atol, t.rtol) {
            let _ = write!(tol, "; allclose(atol {a}, rtol {r}) also passes");
        }
        let _ = writeln!(o, "| tolerances | {tol} |");
        if self.capture != Capture::Full {
            let kept = match self.capture {
                Capture::Stats => "per-stage statistics and the logits",
                _ => "the logits only",
            };
            let _ = writeln!(o, "| capture | `{}`: {kept} |", self.capture.name());
        }
        if let Some(url) = share_url {
            let _ = writeln!(o, "| reproduce | {url} |");
        }
        o.push('\n');

        for (side, info) in [("A", &self.a), ("B", &self.b)] {
            if let Some(d) = &info.dump {
                dump_section(&mut o, side, d);
            }
        }

        // Stage x layer table: the worst class over positions, with max |Δ| / threshold.
        let layers = match &self.model {
            Some(m) => m.config.layers,
            None => self.stages.iter().filter_map(|s| s.layer).max().map_or(0, |l| l + 1),
        };
        match self.capture {
            Capture::Full => {
                let _ = writeln!(
                    o,
                    "### Stages (worst over positions; ✓ match, ≈ noise, ✗ diverged: max|Δ| and × threshold)\n"
                );
                let cells: Vec<Cell> =
                    self.stages.iter().map(|s| (s.id(), s.class, s.metrics.max_abs, s.threshold)).collect();
                stage_table(&mut o, layers, &cells);
            }
            Capture::Stats => {
                let _ = writeln!(
                    o,
                    "### Stage statistics (capture stats: min, max, mean and RMS compared; worst over positions; \
                     ✓ match, ≈ noise, ✗ diverged: the largest |Δ| of a statistic and × threshold)\n"
                );
                let cells: Vec<Cell> =
                    self.stage_stats.iter().map(|s| (s.id(), s.class, s.max_abs, s.threshold)).collect();
                stage_table(&mut o, layers, &cells);
                let out = StageId::global(Stage::ResultOutput);
                let logits: Vec<Cell> = self
                    .stages
                    .iter()
                    .filter(|s| s.id() == out)
                    .map(|s| (s.id(), s.class, s.metrics.max_abs, s.threshold))
                    .collect();
                let _ = writeln!(o, "`result_output` (values): {}\n", worst_cell(&logits, out));
            }
            Capture::Off => {
                let _ = writeln!(
                    o,
                    "_Capture off: only the logits were kept, so the stages are not compared (capture stats or full \
                     compares them)._\n"
                );
            }
        }

        if let Some(iso) = &self.isolation {
            let mode = match iso.mode {
                Isolation::Layer => "layer",
                Isolation::Stage => "stage",
                Isolation::Off => "off",
            };
            let _ = writeln!(
                o,
                "**Isolation ({mode}):** B run on A's inputs at every {mode}; still diverged: {}\n",
                if iso.diverged.is_empty() { "nothing".to_string() } else { code_list(&iso.diverged) }
            );
        }

        let s = &self.logit_summary;
        let _ = writeln!(o, "### Logits\n");
        if let Some(n) = &self.logits_note {
            let _ = writeln!(o, "_{n}._\n");
        }
        if self.logits.is_empty() {
            return o;
        }
        let _ = writeln!(
            o,
            "KLD(A‖B) mean {} · max {} · p99 {} · p90 {} · median {} · same top-1 {:.0}%\n",
            sci(s.mean_kld),
            sci(s.max_kld),
            sci(s.p99_kld),
            sci(s.p90_kld),
            sci(s.median_kld),
            100.0 * s.same_top1
        );
        let _ = writeln!(o, "| pos | token | max\\|Δlogit\\| | KLD | top-1 A | top-1 B | Δp | top-5 A | top-5 B |");
        let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|");
        for (m, t) in self.logits.iter().zip(&self.top_k) {
            let ids = |c: &[Candidate]| c.iter().take(5).map(|x| x.id.to_string()).collect::<Vec<_>>().join(" ");
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {:+.4} | {} | {} |",
                t.position,
                t.token,
                sci(m.max_abs),
                sci(m.kld),
                m.top1_a,
                m.top1_b,
                m.delta_p,
                ids(&t.a),
                ids(&t.b)
            );
        }
        o
    }
}

/// One compared stage at one position: (stage, class, max |Δ|, threshold).
type Cell = (StageId, Class, f64, f64);

/// The worst of `cells` at `id` over positions: ✓, ≈ max|Δ|, or ✗ max|Δ| (× threshold).
fn worst_cell(cells: &[Cell], id: StageId) -> String {
    let worst = cells.iter().filter(|c| c.0 == id).max_by(|x, y| x.1.cmp(&y.1).then(x.2.total_cmp(&y.2)));
    match worst {
        None => "".into(),
        Some(&(_, class, max_abs, threshold)) => match class {
            Class::Match => "✓".into(),
            Class::Noise => format!("≈ {}", sci(max_abs)),
            Class::Diverged => {
                let x = if threshold > 0.0 { max_abs / threshold } else { f64::INFINITY };
                format!("✗ {} ({}×)", sci(max_abs), sci(x))
            }
        },
    }
}

/// A stage x layer table of the worst class over positions (wide models: the first and last four
/// layers), then the stages outside the layers.
fn stage_table(o: &mut String, layers: usize, cells: &[Cell]) {
    let mut header = String::from("| stage |");
    let mut rule = String::from("|---|");
    let columns: Vec<Option<usize>> = if layers <= 8 {
        (0..layers).map(Some).collect()
    } else {
        (0..4).chain(layers - 4..layers).map(Some).collect()
    };
    for l in &columns {
        let _ = write!(header, " layer {} |", l.unwrap_or(0));
        rule.push_str("---|");
    }
    let _ = writeln!(o, "{header}\n{rule}");
    for &stage in Stage::ALL.iter().filter(|s| s.in_layer()) {
        if !cells.iter().any(|c| c.0.stage == stage) {
            continue;
        }
        let mut row = format!("| `{}` |", stage.name());
        for l in &columns {
            let _ = write!(row, " {} |", worst_cell(cells, StageId::new(*l, stage)));
        }
        let _ = writeln!(o, "{row}");
    }
    for stage in [Stage::TokEmbd, Stage::ResultNorm, Stage::ResultOutput] {
        let id = StageId::global(stage);
        if cells.iter().any(|c| c.0 == id) {
            let _ = writeln!(o, "\n`{}`: {}", stage.name(), worst_cell(cells, id));
        }
    }
    o.push('\n');
}

/// `x` with 3 significant digits.
pub fn sci(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if !x.is_finite() {
        format!("{x}")
    } else if (1e-3..1e4).contains(&x.abs()) {
        format!("{}", (x * 1e3).round() / 1e3)
    } else {
        format!("{x:.2e}")
    }
}

fn stage_place(layer: Option<usize>, stage: Stage) -> String {
    match layer {
        Some(l) => format!("layer {l}, stage {}", stage.name()),
        None => format!("stage {}", stage.name()),
    }
}

fn code_list<S: AsRef<str>>(items: &[S]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.iter().map(|s| format!("`{}`", s.as_ref())).collect::<Vec<_>>().join(", ")
    }
}

fn field_value(spec: Option<&PathSpec>, field: &str) -> String {
    spec.and_then(|s| s.fields().into_iter().find(|(f, _)| *f == field).map(|(_, v)| v)).unwrap_or_default()
}

/// What a dump held: the summary, then anything not compared and why.
fn dump_section(o: &mut String, side: &str, d: &DumpInfo) {
    let _ = writeln!(o, "### Dump {side}: `{}`\n", d.label);
    let _ = writeln!(o, "{}.\n", d.summary());
    if let Some(p) = d.metadata.get("producer") {
        let _ = writeln!(o, "- producer: `{}`", p.replace('`', "'"));
    }
    for w in &d.warnings {
        let _ = writeln!(o, "- ⚠ {w}");
    }
    for e in &d.entries {
        match &e.outcome {
            Outcome::Unaligned { stage, reason } => {
                let _ = writeln!(o, "- not compared: `{}` → `{stage}`: {reason}", e.name);
            }
            Outcome::Unmapped => {
                let _ = writeln!(o, "- unmapped: `{}` {:?}", e.name, e.shape);
            }
            _ => {}
        }
    }
    if !d.partial.is_empty() {
        let known: usize = d.partial.iter().map(|p| p.1).sum();
        let total: usize = d.partial.iter().map(|p| p.2).sum();
        let _ = writeln!(o, "- {} stages only partly known: {known} of {total} values compared", d.partial.len());
    }
    if !d.missing.is_empty() {
        let _ = writeln!(o, "- not in the dump: {}", code_list(&d.missing));
    }
    o.push('\n');
}
