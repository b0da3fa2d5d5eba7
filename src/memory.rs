//! What loading a model and running it will take in memory, estimated from the header alone and
//! checked before any work starts. The browser engine has one linear memory of at most 4 GiB
//! (wasm32) that never shrinks: a model or a run that cannot fit is refused up front with what
//! takes the room and what to change, never half-loaded into a worker that then dies.
//!
//! The estimates are upper-leaning: a run's traces ([`TraceShape::bytes`]), its KV cache, the
//! working vectors of a prompt processed in one batch, and the f32 copies a path that reads weights
//! "as stored" makes of them.

use crate::gguf::{Gguf, Value};
use crate::model::Config;
use crate::path::{ActivationQuant, PathSpec, Precision, Projection};
use crate::trace::{Capture, TraceShape};
use crate::{Error, Result};
use serde::Serialize;

/// The wasm32 address space: the most memory the browser engine can ever have.
pub const WASM32_MEMORY: u64 = 4 << 30;
/// Kept for the engine itself: its code and static data, the threads' stacks, the allocator's
/// slack (wasm memory never shrinks, so freed blocks fragment it).
pub const ENGINE_RESERVE: u64 = 256 << 20;

/// The memory the browser engine can give a model and its runs.
pub fn wasm_budget() -> u64 {
    WASM32_MEMORY - ENGINE_RESERVE
}

/// One thing that takes memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Part {
    pub what: String,
    pub bytes: u64,
    /// What shrinks it: `capture`, `prompt`, `path` or `model`.
    pub lever: &'static str,
}

/// What a load or a run needs, against what is available.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Estimate {
    pub parts: Vec<Part>,
    pub total: u64,
    pub available: u64,
    pub fits: bool,
}

impl Estimate {
    pub fn new(parts: Vec<Part>, available: u64) -> Estimate {
        let total = parts.iter().fold(0u64, |t, p| t.saturating_add(p.bytes));
        Estimate { parts, total, available, fits: total <= available }
    }

    /// `Ok` when it fits; else the error a person can act on (what takes the room, what to change).
    pub fn check(self, doing: &str) -> Result<Estimate> {
        if self.fits {
            return Ok(self);
        }
        let mut parts: Vec<&Part> = self.parts.iter().filter(|p| p.bytes > 0).collect();
        parts.sort_by_key(|p| std::cmp::Reverse(p.bytes));
        let list = parts.iter().map(|p| format!("{} {}", p.what, show_bytes(p.bytes))).collect::<Vec<_>>().join(", ");
        let levers = |lever: &str| parts.iter().filter(|p| p.lever == lever).map(|p| p.bytes).sum::<u64>();
        let over = self.total - self.available;
        let mut advice = Vec::new();
        if levers("model") > self.available {
            advice.push(
                "the model alone is larger than the browser engine can hold: run it with the paritylab CLI, \
                 or use a smaller or more quantized file"
                    .to_string(),
            );
        } else {
            // The changes that alone could close the gap; when none can, every one that helps.
            let enough = ["capture", "prompt", "path"].iter().any(|l| levers(l) >= over);
            let helps = |lever: &str| if enough { levers(lever) >= over } else { levers(lever) > 0 };
            if helps("capture") {
                advice.push("lower the capture level (stats keeps per-stage summaries, off only the logits)".into());
            }
            if helps("prompt") {
                advice.push("shorten the prompt".into());
            }
            if helps("path") {
                advice.push("pick paths that do not read the weights as stored (projection=transposed)".into());
            }
        }
        Err(Error::Memory(format!(
            "not enough memory for {doing}: it needs about {} and the engine has {} (wasm32 memory is at most 4 GiB, \
             {} of it kept for the engine): {list}. To make it fit, {}.",
            show_bytes(self.total),
            show_bytes(self.available),
            show_bytes(ENGINE_RESERVE),
            if advice.is_empty() { "use a smaller model".into() } else { advice.join("; or ") },
        )))
    }
}

/// Bytes for people: `3.0 GiB`, `41.2 MiB`, `512 B`.
pub fn show_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    let mut v = b as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// What a loaded model keeps besides its file's bytes: the small tensors decoded to f32 and the
/// tokenizer's tables (a few dozen bytes per token and per merge, plus the strings).
pub fn model_overhead(g: &Gguf<'_>, c: &Config) -> u64 {
    let vectors = (c.layers as u64)
        * (2 * c.hidden as u64 + 2 * c.head_dim as u64 + 2 * (c.heads + c.kv_heads) as u64 * c.head_dim as u64)
        + c.hidden as u64;
    let array = |key: &str| match g.get(key) {
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    };
    let tokens = array("tokenizer.ggml.tokens");
    let merges = array("tokenizer.ggml.merges");
    // Per token: its string (copied, ~8 bytes), a map entry each way and its score/type; per merge
    // a map entry of two ids and a rank.
    vectors * 4 + tokens * 96 + merges * 48
}

/// The working memory of one forward run of `path` over `positions` positions from an empty cache
/// (besides its trace): KV cache, the vectors of a batch, the f32 copies of weights read as stored.
pub fn run_parts(c: &Config, path: &PathSpec, positions: usize, name: &str) -> Vec<Part> {
    let width: u64 = if path.precision == Precision::F64 { 8 } else { 4 };
    let p = positions as u64;
    let (h, f, v) = (c.hidden as u64, c.ffn as u64, c.vocab as u64);
    let (q, kv) = ((c.heads * c.head_dim) as u64, (c.kv_heads * c.head_dim) as u64);
    let kv_cache = 2 * c.layers as u64 * p * kv * width;
    // x, the normed x, q, k, v, attention output, gate, up, activation, FFN output, logits, and the
    // scores of one head at a time; the activations quantized to 8 bits besides (llama.cpp path).
    let mut batch = p * (4 * h + 2 * q + 2 * kv + 3 * f + v) * width + c.heads as u64 * p * p * width;
    if path.activation_quant != ActivationQuant::None {
        batch += p * (h.max(f) + h.max(f) / 32 * 4);
    }
    let square = |rows: u64, cols: u64| match path.projection {
        Projection::AsStored => rows * cols * 4,
        Projection::ShapeGuess if rows == cols => rows * cols * 4,
        _ => 0,
    };
    let per_layer = square(q, h) + 2 * square(kv, h) + square(h, q) + 2 * square(f, h) + square(h, f);
    let dense = c.layers as u64 * per_layer + square(v, h);
    vec![
        Part { what: "KV cache".into(), bytes: kv_cache, lever: "prompt" },
        Part { what: "working vectors".into(), bytes: batch, lever: "prompt" },
        Part { what: format!("f32 copies of the weights {name} reads as stored"), bytes: dense, lever: "path" },
    ]
}

/// `the hf path` for a preset, else `the path`.
pub fn path_name(path: &PathSpec) -> String {
    crate::path::PRESETS
        .iter()
        .find(|(name, _)| PathSpec::preset(name).is_some_and(|p| &p == path))
        .map_or_else(|| "the path".to_string(), |(name, _)| format!("the {name} path"))
}

/// What running `path` alone takes: its trace at `capture` and one run's working memory.
pub fn run_need(c: &Config, path: &PathSpec, positions: usize, capture: Capture) -> Vec<Part> {
    let shape = TraceShape::of(c);
    let mut parts = vec![Part {
        what: format!("its trace at capture {}", capture.name()),
        bytes: shape.bytes(positions, capture, path.precision == Precision::F64),
        lever: "capture",
    }];
    parts.extend(run_parts(c, path, positions, &path_name(path)));
    parts
}

/// What comparing `a` and `b` takes: the traces both sides keep (each with its f64 twin, see
/// [`crate::diff::estimate_bytes`]) and the working memory of the largest single run (runs go one
/// after the other).
pub fn compare_need(
    c: &Config,
    (a, positions_a): (&PathSpec, usize),
    (b, positions_b): (&PathSpec, usize),
    capture: Capture,
) -> Vec<Part> {
    let shape = TraceShape::of(c);
    let traces = crate::diff::estimate_bytes(&shape, (a, positions_a), (b, positions_b), capture);
    let mut parts =
        vec![Part { what: format!("traces at capture {}", capture.name()), bytes: traces, lever: "capture" }];
    let twin = |p: &PathSpec| PathSpec { precision: Precision::F64, accumulate: Precision::F64, ..p.clone() };
    let (name_a, name_b) = (path_name(a), path_name(b));
    let runs = [
        run_parts(c, a, positions_a, &name_a),
        run_parts(c, b, positions_b, &name_b),
        run_parts(c, &twin(a), positions_a, &name_a),
        run_parts(c, &twin(b), positions_b, &name_b),
    ];
    let largest = runs.into_iter().max_by_key(|r| r.iter().map(|p| p.bytes).sum::<u64>()).unwrap_or_default();
    parts.extend(largest);
    parts
}

/// The file's own part of a load: its bytes, kept in memory, and what the model builds from them.
pub fn file_parts(g: &Gguf<'_>, c: Option<&Config>) -> Vec<Part> {
    let mut parts = vec![Part { what: "the file".into(), bytes: g.file_len, lever: "model" }];
    if let Some(c) = c {
        parts.push(Part { what: "model tables and tokenizer".into(), bytes: model_overhead(g, c), lever: "model" });
    }
    parts
}

/// What the page will do once a model is loaded: compare `a` with `b`, or run `a` alone.
#[derive(Debug, Clone)]
pub struct Intent {
    pub a: PathSpec,
    pub b: Option<PathSpec>,
    /// Positions each path runs (an upper bound for a text prompt: [`text_tokens_bound`]).
    pub positions: usize,
    pub capture: Capture,
}

/// What loading the file whose header is `g` takes, and then doing `intent`, from the header
/// alone (a file whose model cannot be read is only inspected: its bytes).
pub fn load_need(g: &Gguf<'_>, intent: Option<&Intent>) -> Vec<Part> {
    let config = Config::from_gguf(g).ok();
    let mut parts = file_parts(g, config.as_ref());
    if let (Some(c), Some(i)) = (&config, intent) {
        parts.extend(match &i.b {
            Some(b) => compare_need(c, (&i.a, i.positions), (b, i.positions), i.capture),
            None => run_need(c, &i.a, i.positions, i.capture),
        });
    }
    parts
}

/// An upper bound on the tokens a text prompt becomes: byte-level BPE and SentencePiece with byte
/// fallback make at most one token per byte (plus a space SentencePiece adds), and a chat
/// template or BOS adds a few.
pub fn text_tokens_bound(text: &str) -> usize {
    text.len() + 8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::Gguf;

    fn config() -> (Vec<u8>, Config) {
        let spec = crate::synth::SynthSpec::parse("").unwrap();
        let bytes = crate::synth::generate(&spec).unwrap();
        let c = Config::from_gguf(&Gguf::parse(&bytes).unwrap()).unwrap();
        (bytes, c)
    }

    #[test]
    fn a_run_needs_more_with_more_positions_and_a_fuller_capture() {
        let (_, c) = config();
        let total = |p: &[Part]| p.iter().map(|x| x.bytes).sum::<u64>();
        let hf = PathSpec::hf();
        assert!(total(&run_need(&c, &hf, 8, Capture::Full)) > total(&run_need(&c, &hf, 8, Capture::Stats)));
        assert!(total(&run_need(&c, &hf, 16, Capture::Stats)) > total(&run_need(&c, &hf, 8, Capture::Stats)));
        // The legacy path's shape guess reads square matrices as stored: f32 copies of them.
        let legacy = PathSpec::preset("skainet-legacy").unwrap();
        let dense = |p: &PathSpec| run_parts(&c, p, 1, "it").iter().find(|x| x.lever == "path").unwrap().bytes;
        assert_eq!(dense(&hf), 0);
        let square = (c.hidden * c.hidden * 4) as u64;
        assert!(dense(&legacy) >= square, "{} < {square}", dense(&legacy));
    }

    #[test]
    fn what_does_not_fit_is_refused_with_what_takes_the_room_and_what_to_change() {
        let parts = vec![
            Part { what: "the file".into(), bytes: 3 << 30, lever: "model" },
            Part { what: "traces at capture full".into(), bytes: 2 << 30, lever: "capture" },
        ];
        let err = Estimate::new(parts.clone(), wasm_budget()).check("this comparison").unwrap_err().to_string();
        assert!(err.contains("not enough memory for this comparison"), "{err}");
        assert!(err.contains("the file 3.0 GiB") && err.contains("traces at capture full 2.0 GiB"), "{err}");
        assert!(err.contains("lower the capture level"), "{err}");
        assert!(Estimate::new(parts[..1].to_vec(), wasm_budget()).check("x").is_ok());
        let huge = vec![Part { what: "the file".into(), bytes: 5 << 30, lever: "model" }];
        let err = Estimate::new(huge, wasm_budget()).check("loading this model").unwrap_err().to_string();
        assert!(err.contains("paritylab CLI"), "{err}");
    }

    #[test]
    fn a_sparse_three_gib_model_is_refused_from_its_header() {
        // Llama-7B-shaped layers in Q4_0 to about 3 GiB, written as a header and a declared size.
        let spec = crate::synth::SynthSpec::parse_unbounded(
            "source-issue,arch=llama,vocab=32000,hidden=4096,heads=32,kv_heads=32,head_dim=128,ffn=11008,layers=27,type=q4_0",
        )
        .unwrap();
        let (header, size) = crate::synth::header_only(&spec).unwrap();
        assert!(size > 3 << 30 && size < (13 << 30) / 4, "{size}");
        let g = Gguf::parse_header(&header, size).unwrap();
        let intent = |a: &str, b: Option<&str>| Intent {
            a: PathSpec::parse(a).unwrap(),
            b: b.map(|b| PathSpec::parse(b).unwrap()),
            positions: 4,
            capture: Capture::Stats,
        };
        // The source issue's pair reads the square attention matrices as stored: f32 copies.
        let need = Estimate::new(load_need(&g, Some(&intent("skainet-dsl", Some("skainet-legacy")))), wasm_budget());
        let err = need.check("loading this model and comparing").unwrap_err().to_string();
        assert!(err.contains("not enough memory") && err.contains("the file 3.0 GiB"), "{err}");
        // hf against llama.cpp on four positions fits next to the file.
        assert!(Estimate::new(load_need(&g, Some(&intent("hf", Some("llama.cpp")))), wasm_budget()).fits);
    }

    #[test]
    fn the_estimate_is_not_below_what_a_run_allocates() {
        // The KV cache and trace of a real run stay within the estimate.
        let (bytes, c) = config();
        let model = crate::model::Model::from_bytes(&bytes).unwrap();
        let hf = PathSpec::hf();
        let mut runner = crate::forward::Runner::new(&model, &hf, Capture::Full).unwrap();
        runner.feed(&[1, 2, 3, 4, 5]).unwrap();
        let trace = runner.trace();
        let kept: usize = trace
            .ids()
            .iter()
            .map(|&id| (0..5).filter_map(|p| trace.get(id, p)).map(|v| v.len() * 4).sum::<usize>())
            .sum();
        let est = run_need(&c, &hf, 5, Capture::Full);
        assert!(est[0].bytes >= kept as u64, "trace estimate {} < {kept}", est[0].bytes);
    }
}
