//! Bring your own path: read activation dumps written by other engines (safetensors with our names,
//! HF transformers' or llama.cpp's names, `.npy` folders, `.npz`, llama.cpp's eval-callback logs)
//! and line them up with a model's stages as a [`Trace`], saying what was mapped, what was not and
//! why. The format is specified in `docs/dump-format.md`.

pub mod align;
pub mod llamacpp_text;
pub mod mapfile;
pub mod naming;
pub mod npy;
pub mod raw;
pub mod st;
pub mod zip;

use crate::arch::Arch;
use crate::model::Model;
use crate::trace::{Stage, StageId, Trace, Values};
use crate::{Error, Result};
use align::{Cells, Placed};
use mapfile::{MapFile, MapRoute};
use naming::{Naming, Route, Target};
use raw::{RawDtype, RawTensor};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// The sizes a dump is lined up against (from the GGUF it is compared with).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelShape {
    pub arch: Arch,
    pub layers: usize,
    pub hidden: usize,
    /// Rows of `attn_q` / `attn_k` / `attn_v`.
    pub q: usize,
    pub k: usize,
    pub v: usize,
    pub ffn: usize,
    pub vocab: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub qk_norm: bool,
}

impl ModelShape {
    pub fn of(model: &Model<'_>) -> ModelShape {
        let (c, w) = (&model.config, &model.weights);
        let l0 = w.layers.first();
        ModelShape {
            arch: c.arch,
            layers: c.layers,
            hidden: c.hidden,
            q: l0.map_or(0, |l| l.wq.rows),
            k: l0.map_or(0, |l| l.wk.rows),
            v: l0.map_or(0, |l| l.wv.rows),
            ffn: c.ffn,
            vocab: c.vocab,
            heads: c.heads,
            kv_heads: c.kv_heads,
            qk_norm: l0.is_some_and(|l| l.q_norm.is_some()),
        }
    }

    pub fn head_dim(&self) -> usize {
        self.q.checked_div(self.heads).unwrap_or(0)
    }

    /// Values per position of a vector stage.
    pub fn width(&self, s: Stage) -> usize {
        match s {
            Stage::TokEmbd
            | Stage::AttnNorm
            | Stage::AttnOut
            | Stage::FfnInp
            | Stage::FfnNorm
            | Stage::FfnOut
            | Stage::LOut
            | Stage::ResultNorm => self.hidden,
            Stage::Q | Stage::QNormed | Stage::QRope | Stage::Kqv => self.q,
            Stage::K | Stage::KNormed | Stage::KRope => self.k,
            Stage::V => self.v,
            Stage::FfnGate | Stage::FfnUp | Stage::FfnSilu | Stage::FfnAct => self.ffn,
            Stage::ResultOutput => self.vocab,
            Stage::Kq | Stage::KqSoftmax => 0,
        }
    }

    /// Every stage a forward pass of this model records, in execution order.
    pub fn stages(&self) -> Vec<StageId> {
        let mut out = vec![StageId::global(Stage::TokEmbd)];
        for l in 0..self.layers {
            for &s in Stage::ALL.iter().filter(|s| s.in_layer()) {
                if !self.qk_norm && matches!(s, Stage::QNormed | Stage::KNormed) {
                    continue;
                }
                out.push(StageId::layer(l, s));
            }
        }
        out.extend([StageId::global(Stage::ResultNorm), StageId::global(Stage::ResultOutput)]);
        out
    }
}

/// Execution order of stages: the embedding, the layers in order, the output.
pub fn exec_key(id: StageId) -> (usize, usize, usize) {
    let s = Stage::ALL.iter().position(|&x| x == id.stage).unwrap_or(usize::MAX);
    match (id.stage, id.layer) {
        (Stage::TokEmbd, _) => (0, 0, s),
        (_, Some(l)) => (1, l, s),
        (_, None) => (2, 0, s),
    }
}

/// One file of a dump (a dump is one file, or a folder of `.npy` files).
pub struct DumpFile<'a> {
    pub name: &'a str,
    pub bytes: &'a [u8],
}

/// The file format a dump came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Container {
    Safetensors,
    Npy,
    Npz,
    LlamaCppLog,
}

impl Container {
    pub fn name(self) -> &'static str {
        match self {
            Container::Safetensors => "safetensors",
            Container::Npy => ".npy folder",
            Container::Npz => ".npz",
            Container::LlamaCppLog => "llama.cpp eval-callback log",
        }
    }
}

/// A dump's tensors before mapping.
pub struct RawDump {
    pub container: Container,
    pub tensors: Vec<RawTensor>,
    pub metadata: BTreeMap<String, String>,
}

/// The token ids llama-eval-callback logs before its tensors: a line ending in
/// `number of input tokens = N`, then N lines each ending in one id.
fn logged_tokens(text: &str) -> Option<Vec<u32>> {
    let mut lines = text.lines();
    let n: usize =
        lines.by_ref().find_map(|l| l.trim_end().rsplit_once("number of input tokens = ")?.1.parse().ok())?;
    let ids: Vec<u32> = lines.take(n).map_while(|l| l.split_whitespace().last().and_then(|t| t.parse().ok())).collect();
    (ids.len() == n && n > 0).then_some(ids)
}

fn stem(name: &str) -> &str {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    base.strip_suffix(".npy").unwrap_or(base)
}

/// Read one file (safetensors, .npy, .npz, a llama.cpp log) or a folder's `.npy` files (with an
/// optional `metadata.json` holding the same keys as a safetensors dump's `__metadata__`).
pub fn read(files: &[DumpFile<'_>]) -> Result<RawDump> {
    let [first, ..] = files else { return Err(Error::input("no dump file given")) };
    if files.len() == 1 && !first.bytes.starts_with(b"\x93NUMPY") {
        let f = first;
        if f.bytes.starts_with(b"PK\x03\x04") || f.bytes.starts_with(b"PK\x05\x06") {
            let tensors = zip::read_npz(f.bytes).map_err(|e| Error::input(format!("{}: {e}", f.name)))?;
            return Ok(RawDump { container: Container::Npz, tensors, metadata: BTreeMap::new() });
        }
        if st::looks_like(f.bytes) {
            let (tensors, metadata) = st::read(f.name, f.bytes)?;
            return Ok(RawDump { container: Container::Safetensors, tensors, metadata });
        }
        let text = std::str::from_utf8(f.bytes).ok();
        if let Some(text) = text.filter(|t| t.contains("ggml_debug:") || t.contains("common_debug_cb_eval:")) {
            let tensors =
                llamacpp_text::read_eval_callback_log(text).map_err(|e| Error::input(format!("{}: {e}", f.name)))?;
            let mut metadata = BTreeMap::new();
            if let Some(ids) = logged_tokens(text) {
                metadata.insert("token_ids".to_string(), format!("{ids:?}"));
            }
            return Ok(RawDump { container: Container::LlamaCppLog, tensors, metadata });
        }
        return Err(Error::input(format!(
            "{}: not a dump paritylab reads: expected a safetensors file, a .npy/.npz file, or the log of \
             llama.cpp's llama-eval-callback",
            f.name
        )));
    }
    let mut tensors = Vec::new();
    let mut metadata = BTreeMap::new();
    let mut total = 0usize;
    for f in files {
        if stem(f.name) == "metadata.json" || f.name.ends_with("metadata.json") {
            let v: serde_json::Value =
                serde_json::from_slice(f.bytes).map_err(|e| Error::input(format!("{}: not JSON: {e}", f.name)))?;
            let obj = v.as_object().ok_or_else(|| Error::input(format!("{}: expected a JSON object", f.name)))?;
            for (k, v) in obj {
                let s = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                metadata.insert(k.clone(), s);
            }
            continue;
        }
        if !f.bytes.starts_with(b"\x93NUMPY") {
            return Err(Error::input(format!(
                "{}: several files make a dump only as a folder of .npy files (and metadata.json)",
                f.name
            )));
        }
        let t = npy::read_npy(stem(f.name), f.bytes)?;
        raw::check_budget(f.name, total, t.values.known())?;
        total += t.values.known();
        tensors.push(t);
    }
    Ok(RawDump { container: Container::Npy, tensors, metadata })
}

/// What happened to one tensor of the file.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// Compared as `stage` at positions `[first, last]`, `known` of `total` values.
    Mapped { stage: String, positions: [usize; 2], known: usize, total: usize, steps: Vec<String> },
    /// Another tensor fills the same stage (`used`).
    Duplicate { stage: String, used: String },
    /// Known, not a stage.
    Ignored { reason: String },
    /// Meant for `stage`, but its shape does not line up.
    Unaligned { stage: String, reason: String },
    /// No naming knows it.
    Unmapped,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: RawDtype,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// How to read a dump.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Force a naming (else detected from the names).
    pub naming: Option<Naming>,
    /// Which of several dumps in one file (`f32.` in the reference files).
    pub prefix: Option<String>,
    pub map: Option<MapFile>,
    /// The tokens the dump ran, when the file does not say.
    pub tokens: Option<Vec<u32>>,
    /// The dump's values are in HF's Q/K row order (overrides the metadata).
    pub hf_rows: Option<bool>,
}

/// Where the token ids came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// `token_ids` in the file.
    File,
    /// Given by the user (the file has none, or they agree).
    Given,
}

/// A dump lined up with a model: its trace, and the account of every tensor.
#[derive(Debug, Clone)]
pub struct ImportedDump {
    pub info: DumpInfo,
    pub trace: Trace,
    /// Noise allowance per stage and position beyond float noise: storage and print rounding.
    pub allowance: HashMap<(StageId, usize), f64>,
}

/// What a dump is and what became of each of its tensors.
#[derive(Debug, Clone, Serialize)]
pub struct DumpInfo {
    /// The file's name (and prefix), as shown in reports: `dump:their.safetensors`.
    pub label: String,
    pub container: Container,
    pub naming: Option<Naming>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Other prefixes the file holds.
    pub prefixes: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    pub tokens: Vec<u32>,
    pub token_source: TokenSource,
    /// The values were computed in f64 (no float noise of its own is assumed).
    pub computed_f64: bool,
    /// Every tensor of the file and what became of it.
    pub entries: Vec<Entry>,
    /// Stages of the model the dump does not have.
    pub missing: Vec<String>,
    /// Stages compared on only some of their values (`name`, known, total).
    pub partial: Vec<(String, usize, usize)>,
    pub warnings: Vec<String>,
}

impl ImportedDump {
    /// The rounding allowance of stage `id` at `pos` (storage type, printing).
    pub fn allowance(&self, id: StageId, pos: usize) -> f64 {
        self.allowance.get(&(id, pos)).copied().unwrap_or(0.0)
    }
}

impl DumpInfo {
    /// Counts for a one-line summary: mapped, ignored or duplicate, unaligned, unmapped.
    pub fn counts(&self) -> [usize; 4] {
        let mut c = [0; 4];
        for e in &self.entries {
            let i = match e.outcome {
                Outcome::Mapped { .. } => 0,
                Outcome::Duplicate { .. } | Outcome::Ignored { .. } => 1,
                Outcome::Unaligned { .. } => 2,
                Outcome::Unmapped => 3,
            };
            c[i] += 1;
        }
        c
    }

    /// One line: what was read and what came of it.
    pub fn summary(&self) -> String {
        let [mapped, ignored, unaligned, unmapped] = self.counts();
        let mut s = format!(
            "{} ({}{}{}): {} tensors, {mapped} mapped to stages over {} positions",
            self.label,
            self.container.name(),
            self.naming.map(|n| format!(", {} names", n.name())).unwrap_or_default(),
            self.prefix.as_ref().map(|p| format!(", prefix {p:?}")).unwrap_or_default(),
            self.entries.len(),
            self.tokens.len()
        );
        for (n, what) in [(ignored, "ignored or duplicate"), (unaligned, "unaligned"), (unmapped, "unmapped")] {
            if n > 0 {
                s.push_str(&format!(", {n} {what}"));
            }
        }
        if !self.missing.is_empty() {
            s.push_str(&format!("; {} of the model's stages are not in the dump", self.missing.len()));
        }
        s
    }
}

const OTHER_PREFIX: &str = "another prefix's dump";

/// `NAME#PREFIX` names one dump of a file holding several (`five.safetensors#f32.`).
pub fn split_prefix(name: &str) -> (&str, Option<&str>) {
    match name.rsplit_once('#') {
        Some((n, p)) if !n.is_empty() && !p.is_empty() => (n, Some(p)),
        _ => (name, None),
    }
}

/// The HF prefixes of a file's names (`f32.`, `f64.`, `deq_q8_0.`), in first-seen order.
pub fn prefixes(tensors: &[RawTensor]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in tensors {
        if let Some(p) = naming::hf_prefix(&t.name) {
            if !out.iter().any(|x| x == p) {
                out.push(p.to_string());
            }
        }
    }
    out
}

fn parse_tokens(s: &str) -> Result<Vec<u32>> {
    serde_json::from_str::<Vec<u32>>(s)
        .map_err(|e| Error::input(format!("the dump's token_ids metadata is not a JSON array of token ids: {e}")))
}

/// Line a read dump up with a model (`None`: no model, shapes are taken as they come).
pub fn import(
    label: &str,
    dump: &RawDump,
    model: Option<&ModelShape>,
    model_sha256: Option<&str>,
    opts: &ImportOptions,
) -> Result<ImportedDump> {
    let RawDump { container, tensors, metadata } = dump;
    let (container, metadata) = (*container, metadata.clone());
    let mut warnings = Vec::new();
    let names = || tensors.iter().map(|t| t.name.as_str());
    let naming = opts.naming.or_else(|| naming::detect(names(), metadata.get("format").map(String::as_str)));
    if let Some(v) =
        metadata.get("format_version").filter(|_| metadata.get("format").is_some_and(|f| f == crate::dump::FORMAT))
    {
        if v != crate::dump::FORMAT_VERSION {
            return Err(Error::input(format!(
                "{label}: dump format version {v:?}; this paritylab reads version {}",
                crate::dump::FORMAT_VERSION
            )));
        }
    }

    // Several dumps in one file (the reference files' f32./f64./deq_*.): one must be chosen.
    let all_prefixes = if naming == Some(Naming::Hf) { prefixes(tensors) } else { Vec::new() };
    let prefix = match (&opts.prefix, all_prefixes.as_slice()) {
        (Some(p), _) => {
            if !all_prefixes.iter().any(|x| x == p) {
                return Err(Error::input(format!(
                    "{label}: no tensors with prefix {p:?}; the file's prefixes are {}",
                    list_or_none(&all_prefixes)
                )));
            }
            Some(p.clone())
        }
        (None, [only]) => Some(only.clone()).filter(|p| !p.is_empty()),
        (None, []) => None,
        (None, many) => {
            return Err(Error::input(format!(
                "{label} holds several dumps, with prefixes {}: choose one (--prefix in the CLI)",
                list_or_none(many)
            )))
        }
    };

    let hf_rows_meta = match metadata.get("qk_row_order").map(String::as_str) {
        None | Some("gguf") => false,
        Some("hf") => true,
        Some(other) => {
            return Err(Error::input(format!("{label}: qk_row_order is {other:?}; expected \"gguf\" or \"hf\"")))
        }
    };
    let hf_rows = opts.hf_rows.unwrap_or(hf_rows_meta);
    let last_hidden = tensors
        .iter()
        .filter_map(|t| {
            let n = t.name.strip_prefix(prefix.as_deref().unwrap_or(""))?;
            n.strip_prefix("hidden_states.")?.parse::<usize>().ok()
        })
        .max();

    // 1. Route every tensor.
    let mut entries: Vec<Entry> = Vec::with_capacity(tensors.len());
    let mut routes: Vec<Option<Target>> = Vec::with_capacity(tensors.len());
    for t in tensors {
        let entry =
            |outcome| Entry { name: t.name.clone(), shape: t.shape.clone(), dtype: t.dtype, op: t.op.clone(), outcome };
        let own = match (&prefix, naming) {
            (Some(p), Some(Naming::Hf)) => match t.name.strip_prefix(p.as_str()) {
                Some(rest) => Some(rest),
                // Another dump of the same file: not part of this one (dropped from the account).
                None => {
                    entries.push(entry(Outcome::Ignored { reason: OTHER_PREFIX.into() }));
                    routes.push(None);
                    continue;
                }
            },
            _ => Some(t.name.as_str()),
        };
        let name = own.unwrap_or(&t.name);
        let mut route = match opts.map.as_ref().map(|m| m.route(&t.name)) {
            Some(MapRoute::Stage(target)) => Route::Stage(target),
            Some(MapRoute::Ignore) => Route::Ignore("ignored by the mapping file".into()),
            Some(MapRoute::NoRule) | None => match naming {
                Some(Naming::Paritylab) | None => naming::paritylab(name, hf_rows),
                Some(Naming::Hf) => naming::hf(name, last_hidden),
                Some(Naming::LlamaCpp) => naming::llamacpp(name, t.op.as_deref()),
            },
        };
        // Our own names are understood whatever the naming.
        if route == Route::Unknown {
            route = naming::paritylab(name, hf_rows);
        }
        if let Route::Stage(target) = &mut route {
            if hf_rows && naming::is_qk(target.stage.stage) && naming != Some(Naming::Hf) {
                target.tf.hf_rows = true;
            }
        }
        if t.values.known() == 0 {
            if let Route::Stage(target) = &route {
                route = Route::Ignore(format!("no values printed (type {}) for {}", t.dtype.name(), target.stage));
            }
        }
        match route {
            Route::Stage(target) => {
                entries.push(entry(Outcome::Unmapped)); // replaced below
                routes.push(Some(target));
            }
            Route::Ignore(reason) => {
                entries.push(entry(Outcome::Ignored { reason }));
                routes.push(None);
            }
            Route::Unknown => {
                entries.push(entry(Outcome::Unmapped));
                routes.push(None);
            }
        }
    }
    if let Some(map) = &opts.map {
        for p in map.patterns() {
            if !tensors.iter().any(|t| {
                map.matches_any_rule(&t.name)
                    && mapfile::Pattern::parse(&p).ok().and_then(|pp| pp.matches(&t.name)).is_some()
            }) {
                warnings.push(format!("the mapping file names {p:?}, which is not in the dump"));
            }
        }
    }

    // 2. The positions: the file's token ids, or the ones given.
    let file_tokens = metadata.get("token_ids").map(|s| parse_tokens(s)).transpose()?;
    let (tokens, token_source) = match (file_tokens, &opts.tokens) {
        (Some(f), Some(g)) if &f != g => {
            return Err(Error::input(format!(
                "{label} ran tokens {f:?}, but the comparison was asked for {g:?}: compare on the dump's tokens"
            )))
        }
        (Some(f), _) => (f, TokenSource::File),
        (None, Some(g)) => (g.clone(), TokenSource::Given),
        (None, None) => {
            return Err(Error::input(format!(
                "{label} does not record the token ids it ran (no token_ids metadata): give them (--tokens or --prompt)"
            )))
        }
    };
    let positions = tokens.len();

    // 3. Per stage, the candidates by priority (ties: the later tensor); the first that lines up
    //    is used.
    let mut by_stage: BTreeMap<(usize, usize, usize), Vec<usize>> = BTreeMap::new();
    let mut stage_of: HashMap<(usize, usize, usize), StageId> = HashMap::new();
    for (i, r) in routes.iter().enumerate() {
        if let Some(t) = r {
            let key = exec_key(t.stage);
            by_stage.entry(key).or_default().push(i);
            stage_of.insert(key, t.stage);
        }
    }
    let mut placed: Vec<(StageId, usize, Placed)> = Vec::new();
    for (key, mut cands) in by_stage {
        let id = stage_of[&key];
        cands.sort_by_key(|&i| (std::cmp::Reverse(routes[i].as_ref().map_or(0, |t| t.priority)), std::cmp::Reverse(i)));
        let mut used: Option<usize> = None;
        for &i in &cands {
            let Some(target) = &routes[i] else { continue };
            if used.is_some() {
                continue;
            }
            if let Some(layer) = id.layer {
                if model.is_some_and(|m| layer >= m.layers) {
                    entries[i].outcome = Outcome::Unaligned {
                        stage: id.name(),
                        reason: format!(
                            "the model has {} layers (0 to {})",
                            model.map_or(0, |m| m.layers),
                            model.map_or(0, |m| m.layers).saturating_sub(1)
                        ),
                    };
                    continue;
                }
            }
            if id.stage.in_layer()
                && matches!(id.stage, Stage::QNormed | Stage::KNormed)
                && model.is_some_and(|m| !m.qk_norm)
            {
                entries[i].outcome = Outcome::Unaligned { stage: id.name(), reason: "the model has no QK norm".into() };
                continue;
            }
            match align::place(&tensors[i], id.stage, &target.tf, model, Some(positions)) {
                Ok(p) => {
                    used = Some(i);
                    placed.push((id, i, p));
                }
                Err(reason) => entries[i].outcome = Outcome::Unaligned { stage: id.name(), reason },
            }
        }
        if let Some(u) = used {
            for &i in &cands {
                if i != u && matches!(entries[i].outcome, Outcome::Unmapped) {
                    entries[i].outcome = Outcome::Duplicate { stage: id.name(), used: tensors[u].name.clone() };
                }
            }
        }
    }
    let nothing = |entries: &[Entry]| -> Error {
        let mut why: Vec<String> = entries
            .iter()
            .filter_map(|e| match &e.outcome {
                Outcome::Unaligned { stage, reason } => Some(format!("{} ({stage}): {reason}", e.name)),
                _ => None,
            })
            .take(3)
            .collect();
        if why.is_empty() {
            let first: Vec<&str> = names().take(5).collect();
            why.push(format!(
                "no tensor name is a stage in the {} naming (first names: {}); a mapping file can name them",
                naming.map_or("known", Naming::name),
                first.join(", ")
            ));
        }
        Error::input(format!("{label}: nothing in the dump lines up with the model: {}", why.join("; ")))
    };
    if placed.is_empty() {
        return Err(nothing(&entries));
    }

    // 4. Anchor every stage at the last positions and build the trace.
    placed.sort_by_key(|(id, _, _)| exec_key(*id));
    let heads = model.map_or_else(
        || {
            placed
                .iter()
                .find_map(|(_, _, p)| match p.cells {
                    Cells::Attention { heads, .. } => Some(heads),
                    Cells::Vector { .. } => None,
                })
                .unwrap_or(0)
        },
        |m| m.heads,
    );
    let mut trace = Trace::for_run(tokens.clone(), heads);
    let mut allowance = HashMap::new();
    let mut partial = Vec::new();
    let precision = metadata.get("precision").map(String::as_str);
    let computed_f64 = match precision {
        Some("f64") => true,
        Some("f32" | "f16" | "bf16") => false,
        Some(other) => {
            return Err(Error::input(format!("{label}: precision {other:?} is not one of f32, f64, f16, bf16")))
        }
        None => placed.iter().all(|(_, i, _)| tensors[*i].dtype == RawDtype::F64),
    };
    let mut non_finite: Option<String> = None;
    for (id, i, p) in placed {
        let t = &tensors[i];
        if p.t > positions {
            entries[i].outcome = Outcome::Unaligned {
                stage: id.name(),
                reason: format!("{} positions, but the dump ran {positions} tokens", p.t),
            };
            continue;
        }
        let offset = positions - p.t;
        // Storage rounding beyond the computing precision, and the printing's resolution.
        let storage = match t.dtype {
            RawDtype::F16 | RawDtype::BF16 => t.dtype.unit_roundoff(),
            RawDtype::F32 if computed_f64 => t.dtype.unit_roundoff(),
            _ => 0.0,
        };
        let quantum = t.values.quantum();
        let mut known_total = 0;
        let mut total = 0;
        let rows: Vec<(Vec<f64>, Vec<bool>)> = match &p.cells {
            Cells::Vector { n, cells } => {
                let mut rows = vec![(vec![f64::NAN; *n], vec![false; *n]); p.t];
                for &(i, j, v) in cells {
                    if let Some(r) = rows.get_mut(i) {
                        r.0[j] = v;
                        r.1[j] = true;
                    }
                }
                rows
            }
            Cells::Attention { heads, cells, .. } => {
                let mut rows: Vec<(Vec<f64>, Vec<bool>)> = (0..p.t)
                    .map(|i| {
                        let len = heads * (offset + i + 1);
                        (vec![f64::NAN; len], vec![false; len])
                    })
                    .collect();
                for &(i, h, k, v) in cells {
                    let pos = offset + i;
                    if k <= pos {
                        if let Some(r) = rows.get_mut(i) {
                            let idx = h * (pos + 1) + k;
                            r.0[idx] = v;
                            r.1[idx] = true;
                        }
                    }
                }
                rows
            }
        };
        let width = rows.first().map_or(0, |r| r.0.len());
        for pos in 0..offset {
            let n = if id.stage.is_attention_matrix() { heads * (pos + 1) } else { width };
            trace.record_partial(id, pos, Values::F64(vec![f64::NAN; n]), Vec::new());
        }
        for (i, (values, known)) in rows.into_iter().enumerate() {
            let pos = offset + i;
            let k: Vec<usize> = known.iter().enumerate().filter(|(_, &b)| b).map(|(j, _)| j).collect();
            known_total += k.len();
            total += values.len();
            let max = k.iter().map(|&j| values[j].abs()).filter(|v| v.is_finite()).fold(0.0, f64::max);
            allowance.insert((id, pos), storage * max + quantum);
            if non_finite.is_none() {
                if let Some(&j) = k.iter().find(|&&j| !values[j].is_finite()) {
                    non_finite = Some(format!(
                        "{} has {} at position {pos}, index {j} (tensor {:?})",
                        id.name(),
                        values[j],
                        t.name
                    ));
                }
            }
            if k.len() == values.len() {
                trace.record(id, pos, Values::F64(values));
            } else {
                trace.record_partial(id, pos, Values::F64(values), k);
            }
        }
        let total_all = total
            + (0..offset)
                .map(|pos| if id.stage.is_attention_matrix() { heads * (pos + 1) } else { width })
                .sum::<usize>();
        if known_total < total_all {
            partial.push((id.name(), known_total, total_all));
        }
        let mut steps = p.steps;
        if offset > 0 {
            steps.push(format!("holds the last {} of {positions} positions", p.t));
        }
        entries[i].outcome = Outcome::Mapped {
            stage: id.name(),
            positions: [offset, positions - 1],
            known: known_total,
            total: total_all,
            steps,
        };
    }
    if trace.ids().is_empty() {
        return Err(nothing(&entries));
    }
    if let Some(nf) = non_finite {
        warnings.push(format!("the dump holds non-finite values: first, {nf}"));
    }
    let missing = model
        .map(|m| m.stages().into_iter().filter(|id| trace.stage(*id).is_none()).map(|id| id.name()).collect())
        .unwrap_or_default();
    if let (Some(want), Some(have)) = (model_sha256, metadata.get("model_sha256")) {
        if !want.eq_ignore_ascii_case(have) {
            warnings.push(format!(
                "the dump was made from a different GGUF (model_sha256 {}…, this model {}…)",
                have.get(..12).unwrap_or(have),
                want.get(..12).unwrap_or(want)
            ));
        }
    }
    if container == Container::LlamaCppLog {
        warnings.push(
            "llama.cpp's log prints the first and last 3 values of each dimension, to 4 decimals: only those are \
             compared, with 0.00005 of print rounding allowed"
                .into(),
        );
    }
    let label = match &prefix {
        Some(p) => format!("{label} [{}]", p.trim_end_matches('.')),
        None => label.to_string(),
    };
    entries.retain(|e| !matches!(&e.outcome, Outcome::Ignored { reason } if reason == OTHER_PREFIX));
    let info = DumpInfo {
        label,
        container,
        naming,
        prefix,
        prefixes: all_prefixes,
        metadata,
        tokens,
        token_source,
        computed_f64,
        entries,
        missing,
        partial,
        warnings,
    };
    Ok(ImportedDump { info, trace, allowance })
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>().join(", ")
    }
}
