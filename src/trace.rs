//! What a forward pass recorded: every stage of every layer at every position.
//!
//! Stage names follow llama.cpp's graph callbacks (`attn_norm`, `kqv`, `ffn_out`, `l_out`, ...) so
//! dumps line up with its eval-callback tool. A stage inside layer `i` is named `blk.{i}.{stage}`.

use serde::Serialize;
use std::collections::HashMap;

macro_rules! stages {
    ($( $(#[$meta:meta])* $variant:ident = $name:literal, )*) => {
        /// The stages of the decoder, in execution order.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Stage { $( $(#[$meta])* $variant, )* }

        impl Stage {
            /// Every stage in execution order.
            pub const ALL: &'static [Stage] = &[ $( Stage::$variant, )* ];
            pub fn name(self) -> &'static str {
                match self { $( Stage::$variant => $name, )* }
            }
            pub fn from_name(s: &str) -> Option<Stage> {
                match s { $( $name => Some(Stage::$variant), )* _ => None }
            }
        }
    };
}

stages! {
    /// Embedding row of the token `[hidden]`.
    TokEmbd = "tok_embd",
    /// RMSNorm before attention `[hidden]`.
    AttnNorm = "attn_norm",
    /// Query projection, after bias `[heads * head_dim]`.
    Q = "q",
    /// Key projection, after bias `[kv_heads * head_dim]`.
    K = "k",
    /// Value projection, after bias `[kv_heads * head_dim]`.
    V = "v",
    /// Qwen3: per-head RMSNorm of the queries `[heads * head_dim]`.
    QNormed = "q_normed",
    /// Qwen3: per-head RMSNorm of the keys `[kv_heads * head_dim]`.
    KNormed = "k_normed",
    /// Queries after RoPE `[heads * head_dim]`.
    QRope = "q_rope",
    /// Keys after RoPE `[kv_heads * head_dim]` (what the KV cache holds).
    KRope = "k_rope",
    /// Scaled attention scores over the keys so far `[heads, pos + 1]`.
    Kq = "kq",
    /// Attention probabilities `[heads, pos + 1]`.
    KqSoftmax = "kq_softmax",
    /// Attention output, heads merged `[heads * head_dim]`.
    Kqv = "kqv",
    /// Output projection `[hidden]`.
    AttnOut = "attn_out",
    /// First residual: layer input + attention `[hidden]`.
    FfnInp = "ffn_inp",
    /// RMSNorm before the FFN `[hidden]`.
    FfnNorm = "ffn_norm",
    /// Gate projection `[ffn]`.
    FfnGate = "ffn_gate",
    /// Up projection `[ffn]`.
    FfnUp = "ffn_up",
    /// `silu(gate)` `[ffn]`.
    FfnSilu = "ffn_silu",
    /// `silu(gate) * up` `[ffn]`.
    FfnAct = "ffn_act",
    /// Down projection `[hidden]`.
    FfnOut = "ffn_out",
    /// Second residual: the layer's output `[hidden]`.
    LOut = "l_out",
    /// Final RMSNorm `[hidden]`.
    ResultNorm = "result_norm",
    /// Logits `[vocab]`.
    ResultOutput = "result_output",
}

impl Stage {
    /// Whether the stage sits inside a layer.
    pub fn in_layer(self) -> bool {
        !matches!(self, Stage::TokEmbd | Stage::ResultNorm | Stage::ResultOutput)
    }
    /// Attention scores and probabilities: per position `[heads, pos + 1]`.
    pub fn is_attention_matrix(self) -> bool {
        matches!(self, Stage::Kq | Stage::KqSoftmax)
    }
}

impl Serialize for Stage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// A stage at a place in the network: `tok_embd`, `blk.3.q`, `result_output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct StageId {
    /// `None` outside the layers.
    pub layer: Option<usize>,
    pub stage: Stage,
}

impl StageId {
    pub fn new(layer: Option<usize>, stage: Stage) -> Self {
        StageId { layer, stage }
    }
    pub fn global(stage: Stage) -> Self {
        StageId { layer: None, stage }
    }
    pub fn layer(layer: usize, stage: Stage) -> Self {
        StageId { layer: Some(layer), stage }
    }
    /// The dump name: `tok_embd`, `blk.{i}.{stage}`, `result_norm`, `result_output`.
    pub fn name(&self) -> String {
        match self.layer {
            Some(i) => format!("blk.{i}.{}", self.stage.name()),
            None => self.stage.name().to_string(),
        }
    }
    /// Parse a dump name.
    pub fn parse(name: &str) -> Option<StageId> {
        if let Some(rest) = name.strip_prefix("blk.") {
            let (i, stage) = rest.split_once('.')?;
            let stage = Stage::from_name(stage).filter(|s| s.in_layer())?;
            return Some(StageId::layer(i.parse().ok()?, stage));
        }
        Stage::from_name(name).filter(|s| !s.in_layer()).map(StageId::global)
    }
}

impl std::fmt::Display for StageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// One position's values of one stage, in the precision the path computed in.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::F32(v) => v.len(),
            Values::F64(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The values as f64 (exact).
    pub fn to_f64(&self) -> Vec<f64> {
        match self {
            Values::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Values::F64(v) => v.clone(),
        }
    }
    /// The values as f32 (f64 rounded to nearest).
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            Values::F32(v) => v.clone(),
            Values::F64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
    pub fn get(&self, i: usize) -> Option<f64> {
        match self {
            Values::F32(v) => v.get(i).map(|&x| f64::from(x)),
            Values::F64(v) => v.get(i).copied(),
        }
    }
}

/// Where a run first produced a NaN or an infinity: the earliest position, and in it the first stage
/// in execution order (a causal model's position depends only on itself and earlier ones, so what
/// comes first there is where it started).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NonFinite {
    /// Position in the run (its own tokens, BOS included).
    pub position: usize,
    pub token: u32,
    /// The dump name (`blk.3.ffn_out`).
    pub name: String,
    /// `None` outside the layers.
    pub layer: Option<usize>,
    pub stage: Stage,
    /// The first non-finite element of that stage.
    pub index: usize,
    /// `NaN`, `inf` or `-inf` (`None` with capture stats: the statistics keep only where).
    pub value: Option<&'static str>,
    /// Positions where some kept stage holds a non-finite value.
    pub positions: usize,
    /// Stage entries (stage x position) holding one.
    pub stages: usize,
}

fn non_finite_name(x: f64) -> &'static str {
    if x.is_nan() {
        "NaN"
    } else if x > 0.0 {
        "inf"
    } else {
        "-inf"
    }
}

/// How much of a run a trace keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capture {
    /// Every value of every stage: what comparisons, dumps and the inspector need.
    #[default]
    Full,
    /// Summary statistics per stage and position ([`StageStats`]), plus the logits.
    Stats,
    /// The logits only.
    Off,
}

impl Capture {
    pub const ALL: [Capture; 3] = [Capture::Full, Capture::Stats, Capture::Off];
    pub fn name(self) -> &'static str {
        match self {
            Capture::Full => "full",
            Capture::Stats => "stats",
            Capture::Off => "off",
        }
    }
    pub fn from_name(s: &str) -> Option<Capture> {
        Capture::ALL.into_iter().find(|c| c.name() == s)
    }
}

/// A stage's values at one position, summarised (capture `stats`). Non-finite values are counted
/// and left out of the other statistics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StageStats {
    pub len: usize,
    /// NaN when no value is finite.
    #[serde(serialize_with = "crate::json::float")]
    pub min: f64,
    #[serde(serialize_with = "crate::json::float")]
    pub max: f64,
    pub mean: f64,
    /// Root mean square.
    pub rms: f64,
    /// NaN and infinite values.
    pub non_finite: usize,
    /// Index of the first non-finite value.
    pub first_non_finite: Option<usize>,
}

impl StageStats {
    /// min, max, mean and RMS, in that order.
    pub fn values(&self) -> [f64; 4] {
        [self.min, self.max, self.mean, self.rms]
    }

    /// The largest |value| among min and max: the stage's scale (0 when nothing is finite).
    pub fn scale(&self) -> f64 {
        let s = self.min.abs().max(self.max.abs());
        if s.is_finite() {
            s
        } else {
            0.0
        }
    }

    /// The largest change of a statistic from `self` to `other` (min, max, mean, RMS), ignoring
    /// statistics that are NaN on both sides (no finite value).
    pub fn max_change(&self, other: &StageStats) -> f64 {
        self.values().iter().zip(other.values()).fold(0.0, |m: f64, (&x, y)| {
            if x.is_nan() && y.is_nan() {
                m
            } else {
                let d = (x - y).abs();
                if d.is_nan() {
                    f64::INFINITY
                } else {
                    m.max(d)
                }
            }
        })
    }

    /// Every statistic bit-identical.
    pub fn identical(&self, other: &StageStats) -> bool {
        self.len == other.len
            && self.non_finite == other.non_finite
            && self.first_non_finite == other.first_non_finite
            && self.values().iter().zip(other.values()).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    pub fn of(values: impl IntoIterator<Item = f64>) -> StageStats {
        let (mut min, mut max, mut sum, mut sq, mut len, mut finite) =
            (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0.0, 0, 0);
        let mut first_non_finite = None;
        let mut non_finite = 0;
        for (i, v) in values.into_iter().enumerate() {
            len += 1;
            if !v.is_finite() {
                non_finite += 1;
                first_non_finite.get_or_insert(i);
                continue;
            }
            finite += 1;
            min = min.min(v);
            max = max.max(v);
            sum += v;
            sq += v * v;
        }
        let n = finite.max(1) as f64;
        if finite == 0 {
            (min, max) = (f64::NAN, f64::NAN);
        }
        StageStats { len, min, max, mean: sum / n, rms: (sq / n).sqrt(), non_finite, first_non_finite }
    }
}

/// Everything a forward pass recorded.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// The tokens that ran, one per position (after BOS handling).
    pub tokens: Vec<u32>,
    /// Attention heads (the first dimension of `kq` / `kq_softmax`).
    pub heads: usize,
    /// Stages in execution order.
    order: Vec<StageId>,
    /// Per stage, per position.
    data: HashMap<StageId, Vec<Values>>,
    /// The elements that are known, where not all are (an imported dump that printed only some,
    /// or lacks some positions: an empty list).
    known: HashMap<(StageId, usize), Vec<usize>>,
    /// What the run kept.
    pub capture: Capture,
    /// Per stage, per position, with capture `stats`.
    stats: HashMap<StageId, Vec<StageStats>>,
}

impl Trace {
    pub fn new() -> Trace {
        Trace::default()
    }

    /// An empty trace for a run of `tokens` with `heads` attention heads.
    pub fn for_run(tokens: Vec<u32>, heads: usize) -> Trace {
        Trace { tokens, heads, ..Trace::default() }
    }

    /// An empty trace that keeps what `capture` says.
    pub fn with_capture(tokens: Vec<u32>, heads: usize, capture: Capture) -> Trace {
        Trace { tokens, heads, capture, ..Trace::default() }
    }

    /// Whether the values of stage `id` are kept (the logits always are).
    pub fn keeps_values(&self, id: StageId) -> bool {
        self.capture == Capture::Full || id.stage == Stage::ResultOutput
    }

    /// Whether statistics of stage `id` are kept.
    pub fn keeps_stats(&self, id: StageId) -> bool {
        self.capture == Capture::Stats && id.stage != Stage::ResultOutput
    }

    /// Record the summary of stage `id` at position `pos` (capture `stats`; positions in order).
    pub fn record_stats(&mut self, id: StageId, pos: usize, stats: StageStats) {
        put(&mut self.stats, &mut self.order, id, pos, stats);
    }

    /// The summaries of stage `id`, one per position (capture `stats`).
    pub fn stats(&self, id: StageId) -> Option<&[StageStats]> {
        self.stats.get(&id).map(Vec::as_slice)
    }

    /// The summary of stage `id` at `pos` (capture `stats`).
    pub fn stats_at(&self, id: StageId, pos: usize) -> Option<&StageStats> {
        self.stats.get(&id)?.get(pos)
    }

    /// Whether both traces hold bit-identical summaries of every stage at every position.
    pub fn same_stats(&self, other: &Trace) -> bool {
        self.stats.len() == other.stats.len()
            && self.stats.iter().all(|(id, xs)| {
                other
                    .stats
                    .get(id)
                    .is_some_and(|ys| xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| x.identical(y)))
            })
    }

    /// Record the values of stage `id` at position `pos` (positions are recorded in order).
    pub fn record(&mut self, id: StageId, pos: usize, values: Values) {
        put(&mut self.data, &mut self.order, id, pos, values);
    }

    /// Record values of which only the elements at `known` (ascending) are real.
    pub fn record_partial(&mut self, id: StageId, pos: usize, values: Values, known: Vec<usize>) {
        self.record(id, pos, values);
        self.known.insert((id, pos), known);
    }

    /// The known elements of stage `id` at `pos`, when not all are (`None`: all).
    pub fn known(&self, id: StageId, pos: usize) -> Option<&[usize]> {
        self.known.get(&(id, pos)).map(Vec::as_slice)
    }

    /// Whether every value of every stage is known.
    pub fn is_complete(&self) -> bool {
        self.known.is_empty()
    }

    /// The first NaN or infinity of the run, over what it kept (every value with capture full, the
    /// statistics' first non-finite index with stats, the logits with off).
    pub fn first_non_finite(&self) -> Option<NonFinite> {
        let mut first: Option<NonFinite> = None;
        let (mut positions, mut stages) = (0, 0);
        for pos in 0..self.positions() {
            let mut here = false;
            for &id in &self.order {
                let found = if let Some(v) = self.get(id, pos) {
                    let known = self.known(id, pos);
                    (0..v.len())
                        .filter(|i| known.is_none_or(|k| k.binary_search(i).is_ok()))
                        .find_map(|i| v.get(i).filter(|x| !x.is_finite()).map(|x| (i, Some(non_finite_name(x)))))
                } else if let Some(st) = self.stats_at(id, pos) {
                    st.first_non_finite.map(|i| (i, None))
                } else {
                    None
                };
                let Some((index, value)) = found else { continue };
                here = true;
                stages += 1;
                if first.is_none() {
                    first = Some(NonFinite {
                        position: pos,
                        token: self.tokens[pos],
                        name: id.name(),
                        layer: id.layer,
                        stage: id.stage,
                        index,
                        value,
                        positions: 0,
                        stages: 0,
                    });
                }
            }
            positions += usize::from(here);
        }
        first.map(|f| NonFinite { positions, stages, ..f })
    }

    /// Stages in execution order.
    pub fn ids(&self) -> &[StageId] {
        &self.order
    }

    /// Number of positions recorded.
    pub fn positions(&self) -> usize {
        self.tokens.len()
    }

    /// Values of stage `id` at position `pos`.
    pub fn get(&self, id: StageId, pos: usize) -> Option<&Values> {
        self.data.get(&id)?.get(pos)
    }

    /// Values of stage `id`, one entry per position.
    pub fn stage(&self, id: StageId) -> Option<&[Values]> {
        self.data.get(&id).map(Vec::as_slice)
    }

    /// The logits at `pos`.
    pub fn logits(&self, pos: usize) -> Option<Vec<f32>> {
        self.get(StageId::global(Stage::ResultOutput), pos).map(Values::to_f32)
    }

    /// Whether every value was computed in f64.
    pub fn is_f64(&self) -> bool {
        self.data.values().flatten().next().is_some_and(|v| matches!(v, Values::F64(_)))
    }

    /// Stage `id` as one dense tensor: `[T, n]` for vectors, `[heads, T, T]` for the attention
    /// matrices (key positions after the query's are masked: 0). Values as f64, with the shape.
    pub fn dense(&self, id: StageId) -> Option<(Vec<usize>, Vec<f64>)> {
        let per_pos = self.stage(id)?;
        let t = per_pos.len();
        if id.stage.is_attention_matrix() {
            let h = self.heads;
            let mut out = vec![0.0; h * t * t];
            for (q, v) in per_pos.iter().enumerate() {
                let keys = q + 1;
                for head in 0..h {
                    for k in 0..keys {
                        out[head * t * t + q * t + k] = v.get(head * keys + k).unwrap_or(0.0);
                    }
                }
            }
            Some((vec![h, t, t], out))
        } else {
            let n = per_pos.first().map_or(0, Values::len);
            let mut out = Vec::with_capacity(t * n);
            for v in per_pos {
                out.extend(v.to_f64());
            }
            Some((vec![t, n], out))
        }
    }
}

/// The stages a forward pass records and their sizes, for estimating a trace's memory before a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceShape {
    pub layers: usize,
    pub hidden: usize,
    pub ffn: usize,
    pub vocab: usize,
    pub heads: usize,
    /// Values of `q` (heads x head_dim) and of `k`/`v` (KV heads x head_dim).
    pub q: usize,
    pub kv: usize,
    /// Whether `q_normed` and `k_normed` are recorded (Qwen3).
    pub qk_norm: bool,
}

impl TraceShape {
    /// The shape of a model's traces (head size as the model's metadata gives it).
    pub fn of(c: &crate::model::Config) -> TraceShape {
        TraceShape {
            layers: c.layers,
            hidden: c.hidden,
            ffn: c.ffn,
            vocab: c.vocab,
            heads: c.heads,
            q: c.heads * c.head_dim,
            kv: c.kv_heads * c.head_dim,
            qk_norm: c.arch.has_qk_norm(),
        }
    }

    /// Bytes a trace of `positions` positions (from an empty cache) takes at `capture`, values in
    /// f32 or, when `f64`, in f64. An estimate: the values, plus a fixed allowance per stage and
    /// position for the bookkeeping.
    pub fn bytes(&self, positions: usize, capture: Capture, f64: bool) -> u64 {
        let width: u64 = if f64 { 8 } else { 4 };
        let p = positions as u64;
        let logits = p * self.vocab as u64 * width;
        let per_layer_stages = 18 + 2 * u64::from(self.qk_norm);
        let entries = p * (3 + self.layers as u64 * per_layer_stages);
        const ENTRY: u64 = 48; // a Vec header and its enum tag, or a StageStats
        match capture {
            Capture::Off => logits + p * ENTRY,
            Capture::Stats => logits + entries * (ENTRY + std::mem::size_of::<StageStats>() as u64),
            Capture::Full => {
                let (h, f, q, kv) = (self.hidden as u64, self.ffn as u64, self.q as u64, self.kv as u64);
                let norms = u64::from(self.qk_norm);
                // attn_norm, attn_out, ffn_inp, ffn_norm, ffn_out, l_out; q, q_rope, kqv (+ q_normed);
                // k, v, k_rope (+ k_normed); ffn_gate, ffn_up, ffn_silu, ffn_act.
                let vectors = 6 * h + (3 + norms) * q + (3 + norms) * kv + 4 * f;
                // kq and kq_softmax: heads x (pos + 1) at position pos.
                let scores = 2 * self.heads as u64 * (p * (p + 1) / 2);
                let values = p * (2 * h) + self.layers as u64 * (p * vectors + scores);
                logits + values * width + entries * ENTRY
            }
        }
    }
}

/// Store `value` as stage `id`'s entry for position `pos` (appended when it is the next one),
/// adding `id` to the execution order the first time it is seen.
fn put<T>(map: &mut HashMap<StageId, Vec<T>>, order: &mut Vec<StageId>, id: StageId, pos: usize, value: T) {
    let slot = map.entry(id).or_insert_with(|| {
        order.push(id);
        Vec::new()
    });
    if slot.len() == pos {
        slot.push(value);
    } else if let Some(v) = slot.get_mut(pos) {
        *v = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for &s in Stage::ALL {
            let id = if s.in_layer() { StageId::layer(7, s) } else { StageId::global(s) };
            assert_eq!(StageId::parse(&id.name()), Some(id));
        }
        assert_eq!(StageId::parse("blk.0.result_norm"), None);
        assert_eq!(StageId::parse("q"), None);
        assert_eq!(StageId::parse("blk.x.q"), None);
    }

    #[test]
    fn attention_matrices_are_dense_and_masked() {
        let mut t = Trace::for_run(vec![1, 2], 2);
        let id = StageId::layer(0, Stage::KqSoftmax);
        t.record(id, 0, Values::F32(vec![1.0, 1.0]));
        t.record(id, 1, Values::F32(vec![0.25, 0.75, 0.5, 0.5]));
        let (shape, v) = t.dense(id).unwrap();
        assert_eq!(shape, [2, 2, 2]);
        assert_eq!(v, [1.0, 0.0, 0.25, 0.75, 1.0, 0.0, 0.5, 0.5]);
    }
}
