//! The thin JavaScript surface of the engine: a [`Session`] owning one loaded GGUF file, used by the
//! page's module worker. Results cross the boundary as plain JSON-shaped objects (the same JSON the
//! CLI prints), errors as JS `Error`s with the library's messages.

use crate::diff::{self, CompareOptions, Report, Tolerances};
use crate::dump::{self, DumpInfo};
use crate::forward::{Isolation, Prompt, Runner};
use crate::gguf::Gguf;
use crate::import::mapfile::MapFile;
use crate::import::naming::Naming;
use crate::import::{self as dump_import, Container, DumpFile, ImportOptions, ModelShape, RawDump};
use crate::logits::RunSummary;
use crate::model::Model;
use crate::path::{Bos, PathSpec, PRESETS};
use crate::tokenizer::EncodeOptions;
use crate::trace::{Capture, StageId, Trace};
use crate::{inspect, synth, Error};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

/// A parsed file: runnable, or only inspectable (with the reason it cannot run).
enum Parsed<'a> {
    Runnable(Box<Model<'a>>),
    InspectOnly(Gguf<'a>, Error),
}

impl<'a> Parsed<'a> {
    fn gguf(&self) -> &Gguf<'a> {
        match self {
            Parsed::Runnable(m) => &m.gguf,
            Parsed::InspectOnly(g, _) => g,
        }
    }
}

self_cell::self_cell!(
    /// The file's bytes and the parsed view borrowing them.
    struct Loaded {
        owner: Vec<u8>,
        #[covariant]
        dependent: Parsed,
    }
);

/// One loaded model, and the last run and comparison on it.
#[wasm_bindgen]
pub struct Session {
    loaded: Option<Loaded>,
    last: Option<(PathSpec, Trace)>,
    report: Option<Report>,
    comparison: Option<diff::Comparison>,
    sha256: Option<String>,
    file_name: Option<String>,
    /// Dumps dropped next to the model, by name (they outlive a model change).
    dumps: Vec<(String, RawDump)>,
    /// A file arriving in pieces (`begin_load`, `load_chunk`, `finish_load`) and its declared size.
    incoming: Option<(Vec<u8>, usize)>,
}

/// How the page reads a dump (every field optional).
#[derive(serde::Deserialize, Default, Clone)]
#[serde(default, deny_unknown_fields)]
struct DumpRequest {
    /// Which dump of a multi-dump file (`f32.`).
    prefix: Option<String>,
    /// A mapping file's text.
    map: Option<String>,
    naming: Option<String>,
    qk_row_order: Option<String>,
}

/// A dropped dump before it is lined up with a model.
#[derive(serde::Serialize)]
struct DumpPreview<'a> {
    name: &'a str,
    container: Container,
    naming: Option<Naming>,
    prefixes: Vec<String>,
    tensors: usize,
    token_ids: Option<&'a String>,
    producer: Option<&'a String>,
}

/// The options of `Session.compare`, as a JS object (every field optional).
#[derive(serde::Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct CompareRequest {
    isolation: Option<Isolation>,
    explain: bool,
    explain_budget: Option<usize>,
    noise_multiple: Option<f64>,
    atol: Option<f64>,
    rtol: Option<f64>,
    top_k: Option<usize>,
    /// What the runs keep (default `full`).
    capture: Option<Capture>,
    /// How to read the dumps among the sides.
    dump: Option<DumpRequest>,
}

/// The options of `Session.run`, as a JS object (every field optional).
#[derive(serde::Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RunRequest {
    /// What the run keeps (default `full`).
    capture: Option<Capture>,
    /// Tokens to decode greedily after the prompt.
    decode: usize,
}

/// Most tokens `Session.run` decodes after the prompt.
const MAX_DECODE: usize = 4096;

/// Options as a JS object (`undefined`/`null`: the defaults), through serde_json so that unknown
/// (misspelt) options are refused, not ignored.
fn options_from_js<T: serde::de::DeserializeOwned + Default>(options: JsValue, what: &str) -> Result<T, JsError> {
    if options.is_undefined() || options.is_null() {
        return Ok(T::default());
    }
    let value: serde_json::Value =
        serde_wasm_bindgen::from_value(options).map_err(|e| JsError::new(&format!("{what}: {e}")))?;
    serde_json::from_value(value).map_err(|e| JsError::new(&format!("{what}: {e}")))
}

fn js_error(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// A serialisable value as a plain JS object: the objects `paritylab ... --json` prints, with maps
/// as objects and every number exact (an f32 arrives as the double of the same value).
fn to_js<T: serde::Serialize + ?Sized>(value: &T) -> Result<JsValue, JsError> {
    value.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(js_error)
}

#[wasm_bindgen]
impl Session {
    #[wasm_bindgen(constructor)]
    pub fn new() -> Session {
        Session {
            loaded: None,
            last: None,
            report: None,
            comparison: None,
            sha256: None,
            file_name: None,
            dumps: Vec::new(),
            incoming: None,
        }
    }

    /// Start receiving a file of `size` bytes in pieces (`load_chunk`, then `finish_load`), so that
    /// the page never holds a second copy of a large file: the previous model is dropped and the
    /// whole size reserved now, or refused with the memory message.
    pub fn begin_load(&mut self, size: f64) -> Result<(), JsError> {
        self.drop_model();
        self.incoming = None;
        if !(size >= 0.0 && size.fract() == 0.0) {
            return Err(JsError::new(&format!("file size {size} is not a byte count")));
        }
        let bytes = size as u64;
        let held = self.dumps_bytes();
        let parts = vec![
            crate::memory::Part { what: "the file".into(), bytes, lever: "model" },
            crate::memory::Part { what: "dumps kept for comparing".into(), bytes: held, lever: "dumps" },
        ];
        crate::memory::Estimate::new(parts, crate::memory::wasm_budget())
            .check("loading this file")
            .map_err(js_error)?;
        let size =
            usize::try_from(bytes).map_err(|_| JsError::new("the file is larger than this engine can address"))?;
        let mut buffer = Vec::new();
        buffer.try_reserve_exact(size).map_err(|_| {
            js_error(Error::Memory(format!(
                "the browser did not give the engine the {} this file needs; close other tabs, or use a smaller file",
                crate::memory::show_bytes(bytes)
            )))
        })?;
        self.incoming = Some((buffer, size));
        Ok(())
    }

    /// Append the next piece of the file announced by `begin_load`.
    pub fn load_chunk(&mut self, chunk: &[u8]) -> Result<(), JsError> {
        let (buffer, size) = self.incoming.as_mut().ok_or_else(|| JsError::new("no file is being loaded"))?;
        if buffer.len() + chunk.len() > *size {
            self.incoming = None;
            return Err(JsError::new("the file grew while it was being read: drop it again"));
        }
        buffer.extend_from_slice(chunk);
        Ok(())
    }

    /// Parse the file received by `load_chunk` (as `load`).
    pub fn finish_load(&mut self) -> Result<JsValue, JsError> {
        let (buffer, size) = self.incoming.take().ok_or_else(|| JsError::new("no file is being loaded"))?;
        if buffer.len() != size {
            return Err(JsError::new(&format!(
                "only {} of the file's {size} bytes arrived: drop it again",
                buffer.len()
            )));
        }
        self.load(buffer)
    }

    /// Refuse a comparison that cannot fit (its built-in paths, each with its f64 twin; a dump side
    /// counts as the other side's path).
    fn check_compare_memory(
        &self,
        ra: &diff::SideRequest,
        rb: &diff::SideRequest,
        prompt: &Prompt,
        capture: Capture,
    ) -> Result<(), JsError> {
        let model = self.model()?;
        let spec = |r: &diff::SideRequest| match r {
            diff::SideRequest::Path(s) => Some(s.clone()),
            diff::SideRequest::Dump(_) => None,
        };
        let (sa, sb) = match (spec(ra), spec(rb)) {
            (Some(a), Some(b)) => (a, b),
            (Some(a), None) | (None, Some(a)) => (a.clone(), a),
            (None, None) => return Ok(()),
        };
        let positions = |s: &PathSpec| crate::forward::input_tokens(model, s, prompt).map(|t| t.len());
        // A prompt the paths cannot take is the comparison's own error to report.
        let (Ok(pa), Ok(pb)) = (positions(&sa), positions(&sb)) else { return Ok(()) };
        self.check_memory(crate::memory::compare_need(&model.config, (&sa, pa), (&sb, pb), capture), "this comparison")
    }

    fn drop_model(&mut self) {
        self.loaded = None;
        self.last = None;
        self.report = None;
        self.comparison = None;
        self.sha256 = None;
        self.file_name = None;
    }

    /// Bytes the kept dumps take (roughly: their values as f64).
    fn dumps_bytes(&self) -> u64 {
        self.dumps
            .iter()
            .flat_map(|(_, d)| &d.tensors)
            .map(|t| t.shape.iter().fold(8u64, |n, &d| n.saturating_mul(d as u64)))
            .fold(0, u64::saturating_add)
    }

    /// What the loaded model and the kept dumps hold (a run's budget is what remains).
    fn held_parts(&self) -> Vec<crate::memory::Part> {
        let mut parts = match self.loaded.as_ref().map(|l| l.borrow_dependent()) {
            Some(Parsed::Runnable(m)) => crate::memory::file_parts(&m.gguf, Some(&m.config)),
            Some(Parsed::InspectOnly(g, _)) => crate::memory::file_parts(g, None),
            None => Vec::new(),
        };
        parts.push(crate::memory::Part {
            what: "dumps kept for comparing".into(),
            bytes: self.dumps_bytes(),
            lever: "dumps",
        });
        parts
    }

    /// Refuse a run or a comparison whose estimate (`parts`) does not fit next to what is held.
    fn check_memory(&self, parts: Vec<crate::memory::Part>, doing: &str) -> Result<(), JsError> {
        let mut all = self.held_parts();
        all.extend(parts);
        crate::memory::Estimate::new(all, crate::memory::wasm_budget()).check(doing).map(|_| ()).map_err(js_error)
    }

    /// Parse a GGUF file and keep it. Returns the same description as `paritylab inspect --json`.
    /// On error the previously loaded file (if any) is dropped.
    pub fn load(&mut self, bytes: Vec<u8>) -> Result<JsValue, JsError> {
        self.drop_model();
        let loaded = Loaded::try_new(bytes, |b| {
            Gguf::parse(b).map(|g| match Model::from_gguf(g) {
                Ok(m) => Parsed::Runnable(Box::new(m)),
                Err(failed) => Parsed::InspectOnly(failed.0, failed.1),
            })
        })
        .map_err(js_error)?;
        let info = to_js(&inspect::inspect(loaded.borrow_dependent().gguf()))?;
        self.loaded = Some(loaded);
        Ok(info)
    }

    /// Generate a synthetic model from its text spec (see `synth`), load it, and return its
    /// description. `spec` empty means the source issue's reproducer.
    pub fn load_synthetic(&mut self, spec: &str) -> Result<JsValue, JsError> {
        let spec = synth::SynthSpec::parse(spec).map_err(js_error)?;
        let bytes = synth::generate(&spec).map_err(js_error)?;
        self.load(bytes)
    }

    /// Name the loaded file (for reports).
    pub fn set_file_name(&mut self, name: &str) {
        self.file_name = Some(name.to_string());
    }

    /// The loaded file's SHA-256 (hex), computed once.
    pub fn file_sha256(&mut self) -> Result<String, JsError> {
        self.sha256()
    }

    /// The loaded file's bytes (e.g. to download a synthetic model), copied straight into a JS
    /// array: no second copy in wasm memory, which never shrinks.
    pub fn file_bytes(&self) -> Result<js_sys::Uint8Array, JsError> {
        Ok(js_sys::Uint8Array::from(self.file()?.borrow_owner().as_slice()))
    }

    /// Value statistics (min, max, mean, std, NaN/Inf counts, histogram) of one tensor.
    pub fn tensor_stats(&self, name: &str) -> Result<JsValue, JsError> {
        let g = self.file()?.borrow_dependent().gguf();
        let t = g.require_tensor(name).map_err(js_error)?;
        to_js(&inspect::tensor_stats(t).map_err(js_error)?)
    }

    /// `{config, tokenizer, tokenizer_error}`: the model's hyper-parameters and its tokenizer
    /// (`{model, pre, vocab, add_bos, bos, normalizes}`, or null with the reason); throws the reason
    /// when the file cannot be run.
    pub fn model_info(&self) -> Result<JsValue, JsError> {
        let model = self.model()?;
        let (tokenizer, error) = match model.tokenizer() {
            Ok(Some(t)) => (
                Some(serde_json::json!({
                    "model": t.kind, "pre": t.pre, "vocab": t.vocab_size(), "add_bos": t.add_bos, "bos": t.bos,
                    "normalizes": t.normalizes(),
                })),
                None,
            ),
            Ok(None) => (None, None),
            Err(e) => (None, Some(e.to_string())),
        };
        to_js(&serde_json::json!({ "config": model.config, "tokenizer": tokenizer, "tokenizer_error": error }))
    }

    /// Tokenize text with the model's tokenizer: `{ids, pieces}` (pieces readable: spaces `␣`).
    pub fn tokenize(&self, text: JsValue, parse_special: bool, add_special: bool) -> Result<JsValue, JsError> {
        let text = text_from_js(text)?;
        let tok = self.model()?.require_tokenizer().map_err(js_error)?;
        let ids = tok.encode(&text, EncodeOptions { parse_special, add_special }).map_err(js_error)?;
        let pieces: Vec<String> = ids.iter().map(|&id| tok.display_piece(id)).collect();
        to_js(&serde_json::json!({ "ids": ids, "pieces": pieces, "add_bos": tok.add_bos, "bos": tok.bos }))
    }

    /// The tokens `path` will run for `prompt` (text or ids), BOS included as the path says:
    /// `{ids, pieces, bos_added}`. Pieces are null when the model has no vocabulary.
    pub fn input_tokens(&self, path: &str, prompt: JsValue) -> Result<JsValue, JsError> {
        let spec = PathSpec::parse(path).map_err(js_error)?;
        let prompt = prompt_from_js(prompt)?;
        let model = self.model()?;
        let ids = crate::forward::input_tokens(model, &spec, &prompt).map_err(js_error)?;
        // What the prompt is on its own: its ids, or the text's tokens without BOS.
        let given = match &prompt {
            Prompt::Ids(v) => v.len(),
            Prompt::Text(_) => {
                crate::forward::input_tokens(model, &PathSpec { bos: Bos::None, ..spec.clone() }, &prompt)
                    .map_err(js_error)?
                    .len()
            }
        };
        let pieces: Option<Vec<String>> =
            model.display_tokenizer().map(|t| ids.iter().map(|&id| t.display_piece(id)).collect());
        to_js(&serde_json::json!({ "ids": ids, "pieces": pieces, "bos_added": ids.len() > given }))
    }

    /// Readable pieces of token ids (null when the model has no usable vocabulary).
    pub fn pieces(&self, ids: Vec<u32>) -> Result<JsValue, JsError> {
        let pieces: Option<Vec<String>> =
            self.model()?.display_tokenizer().map(|t| ids.iter().map(|&id| t.display_piece(id)).collect());
        to_js(&pieces)
    }

    /// Token ids back to text (invalid UTF-8 as U+FFFD).
    pub fn decode(&self, ids: Vec<u32>) -> Result<String, JsError> {
        Ok(self.model()?.require_tokenizer().map_err(js_error)?.decode(&ids))
    }

    /// Run a path (`hf`, `skainet-dsl,rope_pairing=split_half`, or JSON) on a prompt (an array of
    /// token ids, or text); returns the top `top` next tokens per position (as
    /// `paritylab run --json`). `options`: `{capture: "full"|"stats"|"off", decode}` (default: full,
    /// no decoding): after the prompt, `decode` tokens are decoded greedily. The result also has
    /// `capture`, `prompt_tokens` (positions of the prompt, BOS included), `generated` (the decoded
    /// ids), `timing` (`{prompt_ms, decode_ms, memory_bytes}`, timed with `performance.now()`) and,
    /// with capture stats, `stage_stats` (`[{name, layer, stage, stats: [per position]}]`). The trace
    /// is kept for `stages`, `stage` and `dump`.
    pub fn run(&mut self, path: &str, prompt: JsValue, top: usize, options: JsValue) -> Result<JsValue, JsError> {
        let spec = PathSpec::parse(path).map_err(js_error)?;
        let prompt = prompt_from_js(prompt)?;
        let req: RunRequest = options_from_js(options, "run options")?;
        if req.decode > MAX_DECODE {
            return Err(JsError::new(&format!("decode {} tokens: at most {MAX_DECODE}", req.decode)));
        }
        let capture = req.capture.unwrap_or_default();
        let model = self.model()?;
        let tokens = crate::forward::input_tokens(model, &spec, &prompt).map_err(js_error)?;
        let positions = tokens.len().saturating_add(req.decode);
        self.check_memory(crate::memory::run_need(&model.config, &spec, positions, capture), "this run")?;
        self.last = None;
        let model = self.model()?;
        let mut runner = Runner::new(model, &spec, capture).map_err(js_error)?;
        let t0 = now_ms();
        runner.feed(&tokens).map_err(js_error)?;
        let t1 = now_ms();
        runner.decode_greedy(req.decode).map_err(js_error)?;
        let t2 = now_ms();
        let trace = runner.into_trace();
        let summary = RunSummary::new(&spec, &trace, top, model.display_tokenizer());
        let mut out = serde_json::to_value(&summary).map_err(js_error)?;
        if let Some(map) = out.as_object_mut() {
            map.insert("capture".into(), serde_json::json!(capture));
            map.insert("prompt_tokens".into(), serde_json::json!(tokens.len()));
            map.insert("generated".into(), serde_json::json!(trace.tokens[tokens.len()..]));
            map.insert(
                "timing".into(),
                serde_json::json!({ "prompt_ms": t1 - t0, "decode_ms": t2 - t1, "memory_bytes": memory_bytes() }),
            );
            if capture == Capture::Stats {
                let stats: Vec<serde_json::Value> = trace
                    .ids()
                    .iter()
                    .filter_map(|&id| {
                        let stats = trace.stats(id)?;
                        Some(serde_json::json!({ "name": id.name(), "layer": id.layer, "stage": id.stage, "stats": stats }))
                    })
                    .collect();
                map.insert("stage_stats".into(), serde_json::Value::Array(stats));
            }
        }
        self.last = Some((spec, trace));
        to_js(&out)
    }

    /// Bytes the traces of a run or a comparison would take at each capture level, estimated from
    /// the model's dimensions before running: `{full, stats, off}`. With `b`, the comparison of
    /// path `a` with path `b` (each path's trace and its noise measurement); without, a run of `a`
    /// decoding `decode` tokens after the prompt.
    pub fn trace_estimate(
        &self,
        a: &str,
        b: Option<String>,
        prompt: JsValue,
        decode: usize,
    ) -> Result<JsValue, JsError> {
        let prompt = prompt_from_js(prompt)?;
        let model = self.model()?;
        let spec_a = PathSpec::parse(a).map_err(js_error)?;
        let positions_a = crate::forward::input_tokens(model, &spec_a, &prompt).map_err(js_error)?.len();
        let spec_b = b.as_deref().map(PathSpec::parse).transpose().map_err(js_error)?;
        let positions_b = match &spec_b {
            Some(spec) => crate::forward::input_tokens(model, spec, &prompt).map_err(js_error)?.len(),
            None => 0,
        };
        let shape = crate::trace::TraceShape::of(&model.config);
        let estimate = |capture: Capture| match &spec_b {
            Some(spec_b) => diff::estimate_bytes(&shape, (&spec_a, positions_a), (spec_b, positions_b), capture),
            None => shape.bytes(
                positions_a.saturating_add(decode),
                capture,
                spec_a.precision == crate::path::Precision::F64,
            ),
        };
        to_js(&serde_json::json!({
            "full": estimate(Capture::Full), "stats": estimate(Capture::Stats), "off": estimate(Capture::Off),
        }))
    }

    /// Time a path on this model as `paritylab bench infer` does: `prompt` (token ids, as given) in
    /// one batch from an empty cache, then `decode` greedy steps; `capture` is `full`, `stats` or
    /// `off`. Returns `{prompt_ms, decode_ms, prompt_tokens, decode_tokens, peak_memory_bytes}`,
    /// timed with the worker's `performance.now()`. Nothing is kept.
    pub fn bench_infer(&self, path: &str, prompt: Vec<u32>, decode: usize, capture: &str) -> Result<JsValue, JsError> {
        let spec = PathSpec::parse(path).map_err(js_error)?;
        let capture = Capture::from_name(capture)
            .ok_or_else(|| JsError::new(&format!("capture {capture:?}: use full, stats or off")))?;
        let model = self.model()?;
        let mut runner = Runner::new(model, &spec, capture).map_err(js_error)?;
        runner.last_logits_only(); // as llama-bench: a prompt's last logits only
        let t0 = now_ms();
        runner.feed(&prompt).map_err(js_error)?;
        let t1 = now_ms();
        runner.decode_greedy(decode).map_err(js_error)?;
        let t2 = now_ms();
        to_js(&serde_json::json!({
            "prompt_ms": t1 - t0, "decode_ms": t2 - t1, "prompt_tokens": prompt.len(), "decode_tokens": decode,
            "peak_memory_bytes": memory_bytes(),
        }))
    }

    /// The last run's stages in execution order: `[{name, layer, stage, shape}]`.
    pub fn stages(&self) -> Result<JsValue, JsError> {
        let (_, trace) = self.last()?;
        let list: Vec<serde_json::Value> = trace
            .ids()
            .iter()
            .map(|&id| {
                let shape = trace.dense(id).map(|(s, _)| s).unwrap_or_default();
                serde_json::json!({ "name": id.name(), "layer": id.layer, "stage": id.stage, "shape": shape })
            })
            .collect();
        to_js(&list)
    }

    /// One stage of the last run as `{name, shape, values: Float32Array}` (the dump's layout).
    pub fn stage(&self, name: &str) -> Result<JsValue, JsError> {
        let (_, trace) = self.last()?;
        let id = StageId::parse(name).ok_or_else(|| JsError::new(&format!("{name:?} is not a stage name")))?;
        if !trace.keeps_values(id) {
            return Err(not_captured(trace.capture, "run"));
        }
        let (shape, values) = trace.dense(id).ok_or_else(|| JsError::new(&format!("the last run has no {name}")))?;
        let out = to_js(&serde_json::json!({ "name": name, "shape": shape }))?;
        let array = js_sys::Float32Array::from(values.iter().map(|&v| v as f32).collect::<Vec<f32>>().as_slice());
        js_sys::Reflect::set(&out, &JsValue::from_str("values"), &array)
            .map_err(|_| JsError::new("internal error: cannot build the result"))?;
        Ok(out)
    }

    /// Compare path B with reference path A on a prompt (token ids or text; the JSON report of
    /// `paritylab compare --json`). `options`: `{isolation: "off"|"layer"|"stage", explain,
    /// explain_budget, noise_multiple, atol, rtol, top_k}`, all optional.
    /// `progress`, when given, is called as `progress({step, done, total})` while it works.
    pub fn compare(
        &mut self,
        a: &str,
        b: &str,
        prompt: JsValue,
        options: JsValue,
        progress: Option<js_sys::Function>,
    ) -> Result<JsValue, JsError> {
        let prompt = prompt_from_js(prompt)?;
        let req: CompareRequest = options_from_js(options, "compare options")?;
        let (ra, rb) = (diff::SideRequest::parse(a).map_err(js_error)?, diff::SideRequest::parse(b).map_err(js_error)?);
        let defaults = CompareOptions::default();
        let opts = CompareOptions {
            tolerances: Tolerances {
                noise_multiple: req.noise_multiple.unwrap_or(defaults.tolerances.noise_multiple),
                atol: req.atol,
                rtol: req.rtol,
                ..defaults.tolerances
            },
            isolation: req.isolation.unwrap_or(Isolation::Off),
            explain: req.explain,
            explain_budget: req.explain_budget.unwrap_or(defaults.explain_budget),
            top_k: req.top_k.unwrap_or(defaults.top_k),
            capture: req.capture.unwrap_or_default(),
        };
        self.check_compare_memory(&ra, &rb, &prompt, opts.capture)?;
        // What the last comparison kept is replaced: free it before this one runs.
        self.report = None;
        self.comparison = None;
        let sha = self.sha256()?;
        let model = self.model()?;
        let mut report_progress = |p: diff::Progress| {
            if let (Some(f), Ok(v)) = (&progress, to_js(&p)) {
                let _ = f.call1(&JsValue::NULL, &v);
            }
        };
        let dump_req = req.dump.clone().unwrap_or_default();
        let map = dump_req
            .map
            .as_deref()
            .filter(|m| !m.trim().is_empty())
            .map(MapFile::parse)
            .transpose()
            .map_err(js_error)?;
        let shape = ModelShape::of(model);
        let dumps = &self.dumps;
        let mut import = |name: &str, tokens: Option<Vec<u32>>| {
            let (name, prefix) = dump_import::split_prefix(name);
            let (_, raw) = dumps.iter().find(|(n, _)| n == name).ok_or_else(|| {
                Error::input(format!("no dump named {name:?} has been added (drop the file next to the model)"))
            })?;
            let opts = ImportOptions {
                naming: dump_req.naming.as_deref().and_then(Naming::from_name),
                prefix: prefix.map(str::to_string).or_else(|| dump_req.prefix.clone().filter(|p| !p.is_empty())),
                map: map.clone(),
                tokens,
                hf_rows: dump_req.qk_row_order.as_deref().map(|o| o == "hf"),
            };
            dump_import::import(name, raw, Some(&shape), Some(&sha), &opts)
        };
        let (side_a, side_b, prompt) =
            diff::resolve_sides(model, ra, rb, Some(prompt), &mut import).map_err(js_error)?;
        let comparison = diff::compare_sides(Some(model), &side_a, &side_b, &prompt, &opts, &mut report_progress)
            .map_err(js_error)?;
        let report = Report::new(model, self.file_name.clone(), sha, &comparison, &opts);
        let out = to_js(&report)?;
        self.report = Some(report);
        self.comparison = Some(comparison);
        Ok(out)
    }

    /// One stage of the last comparison at a compared position: `{name, position, a, b}` with the
    /// values as Float64Arrays (B run on A's inputs when `isolated`).
    pub fn compared_stage(&self, name: &str, position: usize, isolated: bool) -> Result<JsValue, JsError> {
        let c = self.comparison.as_ref().ok_or_else(|| JsError::new("nothing has been compared yet"))?;
        let id = StageId::parse(name).ok_or_else(|| JsError::new(&format!("{name:?} is not a stage name")))?;
        if !c.a.trace.keeps_values(id) {
            return Err(not_captured(c.a.trace.capture, "compare"));
        }
        let b_trace = if isolated {
            c.isolated_trace.as_ref().ok_or_else(|| JsError::new("the last comparison ran without isolation"))?
        } else {
            &c.b.trace
        };
        let al = diff::Alignment::of(&c.a.trace, b_trace);
        let missing = || JsError::new(&format!("the comparison has no {name} at position {position}"));
        let a = c.a.trace.get(id, position + al.offset_a).ok_or_else(missing)?.to_f64();
        let b = b_trace.get(id, position + al.offset_b).ok_or_else(missing)?.to_f64();
        let out = to_js(&serde_json::json!({ "name": name, "position": position }))?;
        for (key, values) in [("a", a), ("b", b)] {
            js_sys::Reflect::set(&out, &JsValue::from_str(key), &js_sys::Float64Array::from(values.as_slice()))
                .map_err(|_| JsError::new("internal error: cannot build the result"))?;
        }
        Ok(out)
    }

    /// A dump (safetensors) of path A's or B's trace in the last comparison (`side`: "a" or "b").
    pub fn dump_path(&mut self, side: &str) -> Result<Vec<u8>, JsError> {
        let sha = self.sha256()?;
        let arch = self.model()?.config.arch.name();
        let c = self.comparison.as_ref().ok_or_else(|| JsError::new("nothing has been compared yet"))?;
        let (side, trace) = match side {
            "a" => (&c.side_a, &c.a.trace),
            "b" => (&c.side_b, &c.b.trace),
            _ => return Err(JsError::new("side must be \"a\" or \"b\"")),
        };
        let spec =
            side.spec().ok_or_else(|| JsError::new("that side is an imported dump: you have its file already"))?;
        if trace.capture != Capture::Full {
            return Err(not_captured(trace.capture, "compare"));
        }
        dump::write(trace, &DumpInfo { path: spec, model_sha256: &sha, architecture: arch }).map_err(js_error)
    }

    /// Keep a dump dropped next to the model under `name` (replacing one of that name): one file
    /// (safetensors, .npy, .npz, a llama.cpp eval-callback log) or several .npy files (and a
    /// metadata.json). `files`: an array of `{name, bytes: Uint8Array}`. Returns a preview:
    /// `{name, container, naming, prefixes, tensors, token_ids, producer}`.
    pub fn add_dump(&mut self, name: &str, files: js_sys::Array) -> Result<JsValue, JsError> {
        let mut owned: Vec<(String, Vec<u8>)> = Vec::new();
        for f in files.iter() {
            let get = |k: &str| js_sys::Reflect::get(&f, &JsValue::from_str(k)).ok();
            let file_name = get("name").and_then(|v| v.as_string()).unwrap_or_else(|| name.to_string());
            let bytes = get("bytes")
                .and_then(|v| v.dyn_into::<js_sys::Uint8Array>().ok())
                .ok_or_else(|| JsError::new("add_dump: each file is {name, bytes: Uint8Array}"))?;
            owned.push((file_name, bytes.to_vec()));
        }
        let refs: Vec<DumpFile<'_>> = owned.iter().map(|(n, b)| DumpFile { name: n, bytes: b }).collect();
        let raw = dump_import::read(&refs).map_err(js_error)?;
        self.dumps.retain(|(n, _)| n != name);
        self.dumps.push((name.to_string(), raw));
        self.dump_preview(name)
    }

    /// The preview of a kept dump (see `add_dump`).
    pub fn dump_preview(&self, name: &str) -> Result<JsValue, JsError> {
        let (n, raw) = self
            .dumps
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| JsError::new(&format!("no dump named {name:?}")))?;
        let names = raw.tensors.iter().map(|t| t.name.as_str());
        let naming = dump_import::naming::detect(names, raw.metadata.get("format").map(String::as_str));
        to_js(&DumpPreview {
            name: n,
            container: raw.container,
            naming,
            prefixes: if naming == Some(Naming::Hf) { dump_import::prefixes(&raw.tensors) } else { Vec::new() },
            tensors: raw.tensors.len(),
            token_ids: raw.metadata.get("token_ids"),
            producer: raw.metadata.get("producer"),
        })
    }

    /// Forget a kept dump.
    pub fn remove_dump(&mut self, name: &str) {
        self.dumps.retain(|(n, _)| n != name);
    }

    /// The last comparison as Markdown for a GitHub issue (with `share_url` when given).
    pub fn report_markdown(&self, share_url: Option<String>) -> Result<String, JsError> {
        let report = self.report.as_ref().ok_or_else(|| JsError::new("nothing has been compared yet"))?;
        Ok(report.markdown(share_url.as_deref()))
    }

    /// The last run as a dump file (safetensors, the format of `paritylab run --dump`).
    pub fn dump(&mut self) -> Result<Vec<u8>, JsError> {
        let sha = self.sha256()?;
        let arch = self.model()?.config.arch.name();
        let (spec, trace) = self.last()?;
        if trace.capture != Capture::Full {
            return Err(not_captured(trace.capture, "run"));
        }
        dump::write(trace, &DumpInfo { path: spec, model_sha256: &sha, architecture: arch }).map_err(js_error)
    }

    /// The loaded file's SHA-256 (computed once).
    fn sha256(&mut self) -> Result<String, JsError> {
        if self.sha256.is_none() {
            self.sha256 = Some(dump::sha256_hex(self.file()?.borrow_owner()));
        }
        Ok(self.sha256.clone().unwrap_or_default())
    }

    fn file(&self) -> Result<&Loaded, JsError> {
        self.loaded.as_ref().ok_or_else(|| JsError::new("no model is loaded"))
    }

    fn model(&self) -> Result<&Model<'_>, JsError> {
        match self.file()?.borrow_dependent() {
            Parsed::Runnable(m) => Ok(m),
            Parsed::InspectOnly(_, e) => Err(JsError::new(&format!("this file can be inspected but not run: {e}"))),
        }
    }

    fn last(&self) -> Result<&(PathSpec, Trace), JsError> {
        self.last.as_ref().ok_or_else(|| JsError::new("nothing has been run yet"))
    }
}

/// Why stage values cannot be shown: the last run or comparison did not keep them.
fn not_captured(capture: Capture, action: &str) -> JsError {
    JsError::new(&format!(
        "values were not captured: the last {action} ran with capture {} (it keeps {}); set capture to full and \
         {action} again to see them",
        capture.name(),
        match capture {
            Capture::Stats => "per-stage statistics and the logits",
            _ => "the logits only",
        }
    ))
}

/// A JS string as Rust text, refusing lone surrogates (which have no UTF-8 form and would
/// otherwise be replaced silently).
fn text_from_js(v: JsValue) -> Result<String, JsError> {
    let s: js_sys::JsString = v.dyn_into().map_err(|_| JsError::new("expected text"))?;
    if !s.is_valid_utf16() {
        return Err(JsError::new(
            "the text contains a lone surrogate (half of a UTF-16 pair), which is not valid Unicode; remove it",
        ));
    }
    Ok(s.into())
}

/// A prompt from JS: a string (text) or an array of token ids.
fn prompt_from_js(v: JsValue) -> Result<Prompt, JsError> {
    if v.is_string() {
        return text_from_js(v).map(Prompt::Text);
    }
    let ids: Vec<u32> = serde_wasm_bindgen::from_value(v)
        .map_err(|_| JsError::new("the prompt must be text or an array of token ids (whole numbers)"))?;
    Ok(Prompt::Ids(ids))
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

/// Every PathSpec field for building controls: `[{name, numeric, values, about}]`.
#[wasm_bindgen]
pub fn path_fields() -> Result<JsValue, JsError> {
    to_js(&crate::path::field_infos())
}

/// A path's text form as `{text, fields: {name: value}}` (canonical text; throws a readable error).
#[wasm_bindgen]
pub fn path_spec(text: &str) -> Result<JsValue, JsError> {
    let spec = PathSpec::parse(text).map_err(js_error)?;
    let fields: serde_json::Map<String, serde_json::Value> =
        spec.fields().into_iter().map(|(k, v)| (k.to_string(), serde_json::Value::String(v))).collect();
    to_js(&serde_json::json!({ "text": spec.to_text(), "fields": fields }))
}

/// A synthetic spec's text form as `{text, spec, bytes}` (canonical text, every field, and about
/// how large the file is), or a readable error. Empty text: the source issue's reproducer.
#[wasm_bindgen]
pub fn synth_spec(text: &str) -> Result<JsValue, JsError> {
    let spec = synth::SynthSpec::parse(text).map_err(js_error)?;
    to_js(&serde_json::json!({ "text": spec.to_text(), "spec": spec, "bytes": spec.estimated_bytes() }))
}

/// The page's default state (the source issue's reproducer, DSL vs legacy).
#[wasm_bindgen]
pub fn default_state() -> Result<JsValue, JsError> {
    to_js(&crate::share::State::source_issue())
}

/// The URL hash (without `#`) of a page state; throws when a field is invalid.
#[wasm_bindgen]
pub fn encode_state(state: JsValue) -> Result<String, JsError> {
    let value: serde_json::Value = serde_wasm_bindgen::from_value(state).map_err(js_error)?;
    let state: crate::share::State =
        serde_json::from_value(value).map_err(|e| JsError::new(&format!("page state: {e}")))?;
    state.encode().map_err(js_error)
}

/// The page state in a URL hash; throws a message for the page when the link is bad.
#[wasm_bindgen]
pub fn decode_state(hash: &str) -> Result<JsValue, JsError> {
    to_js(&crate::share::State::decode(hash).map_err(js_error)?)
}

/// Stop the engine as a failed allocation does (`handle_alloc_error` aborts: a wasm trap), for the
/// page's test that a crashed engine is noticed and restarted. Nothing else calls it.
#[wasm_bindgen]
pub fn abort_for_test() {
    std::alloc::handle_alloc_error(std::alloc::Layout::new::<[u8; 1 << 20]>());
}

/// Bytes of wasm memory in use (the linear memory's size).
#[wasm_bindgen]
pub fn memory_bytes() -> f64 {
    (core::arch::wasm32::memory_size(0) * 65536) as f64
}

/// What the page will do after a load, as a JS object (every field optional).
#[derive(serde::Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct PlanRequest {
    a: Option<String>,
    /// With `b`: a comparison of `a` with `b`; without: a run of `a`.
    b: Option<String>,
    /// Text or token ids.
    prompt: Option<serde_json::Value>,
    capture: Option<Capture>,
    decode: usize,
}

/// Before a file is read: parse its header from its first bytes (`prefix`) given its `size`, and
/// check that loading it, then doing `request` (see [`PlanRequest`]; sides that are dumps or not
/// paths are left out), fits in the engine's memory. Returns `{more: n}` when the header goes on
/// past the prefix (read `n` bytes and call again), else `{header_bytes, estimate}`
/// (`{parts: [{what, bytes, lever}], total, available, fits}`). Throws the header's error, or the
/// memory message when it does not fit.
#[wasm_bindgen]
pub fn plan_load(prefix: &[u8], size: f64, request: JsValue) -> Result<JsValue, JsError> {
    if !(size >= 0.0 && size.fract() == 0.0 && size < 2f64.powi(53)) {
        return Err(JsError::new(&format!("file size {size} is not a byte count")));
    }
    let size = size as u64;
    let req: PlanRequest = options_from_js(request, "load plan")?;
    let g = match Gguf::parse_header(prefix, size) {
        Ok(g) => g,
        Err(Error::HeaderBeyondPrefix { read }) => {
            let more = read.saturating_mul(4).max(1 << 20).min(size);
            return to_js(&serde_json::json!({ "more": more }));
        }
        Err(e) => return Err(js_error(e)),
    };
    plan(&g, &req)
}

/// As [`plan_load`] for the synthetic model of `spec` (before generating it).
#[wasm_bindgen]
pub fn plan_synthetic(spec: &str, request: JsValue) -> Result<JsValue, JsError> {
    let req: PlanRequest = options_from_js(request, "load plan")?;
    let spec = synth::SynthSpec::parse(spec).map_err(js_error)?;
    let (header, size) = synth::header_only(&spec).map_err(js_error)?;
    let g = Gguf::parse_header(&header, size).map_err(js_error)?;
    plan(&g, &req)
}

fn plan(g: &Gguf<'_>, req: &PlanRequest) -> Result<JsValue, JsError> {
    let path = |t: &Option<String>| t.as_deref().and_then(|t| PathSpec::parse(t).ok());
    let positions = match &req.prompt {
        Some(serde_json::Value::String(t)) => crate::memory::text_tokens_bound(t),
        Some(serde_json::Value::Array(ids)) => ids.len() + 1,
        _ => 1,
    }
    .saturating_add(req.decode);
    let intent = path(&req.a).map(|a| crate::memory::Intent {
        a,
        b: path(&req.b),
        positions,
        capture: req.capture.unwrap_or(Capture::Off),
    });
    let parts = crate::memory::load_need(g, intent.as_ref());
    let doing = match &intent {
        Some(i) if i.b.is_some() => "loading this model and comparing its two paths",
        Some(_) => "loading this model and running it",
        None => "loading this model",
    };
    let estimate = crate::memory::Estimate::new(parts, crate::memory::wasm_budget()).check(doing).map_err(js_error)?;
    to_js(&serde_json::json!({ "header_bytes": g.data_offset, "estimate": estimate }))
}

/// The path presets: `[{name, description}]`.
#[wasm_bindgen]
pub fn presets() -> Result<JsValue, JsError> {
    let list: Vec<serde_json::Value> =
        PRESETS.iter().map(|(name, about)| serde_json::json!({ "name": name, "description": about })).collect();
    to_js(&list)
}

/// What this build is: `{ version, simd, threads_build, threads }` where `threads` is the size of
/// the rayon pool actually running.
#[wasm_bindgen]
pub fn build_info() -> Result<JsValue, JsError> {
    to_js(&serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "simd": cfg!(target_feature = "simd128"),
        "threads_build": cfg!(feature = "threads"),
        "threads": rayon::current_num_threads(),
    }))
}

/// Run one task on every thread of the pool and return the distinct thread indices that ran it
/// (proof that the pool is really parallel).
#[wasm_bindgen]
pub fn pool_thread_indices() -> Vec<u32> {
    let mut ids: Vec<u32> = rayon::broadcast(|ctx| ctx.index() as u32);
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// `performance.now()` of the worker (or page), in milliseconds.
fn now_ms() -> f64 {
    let global = js_sys::global();
    js_sys::Reflect::get(&global, &JsValue::from_str("performance"))
        .ok()
        .and_then(|perf| {
            let now = js_sys::Reflect::get(&perf, &JsValue::from_str("now")).ok()?;
            js_sys::Function::from(now).call0(&perf).ok()?.as_f64()
        })
        .unwrap_or_else(js_sys::Date::now)
}

/// The matmul micro-benchmark (`ops::microbench`: the projection kernels alone, GFLOP/s and
/// GOP/s) on this build's pool: `{threads, kernels: [...]}`. `budget_ms` per kernel.
#[wasm_bindgen]
pub fn bench_matmul(budget_ms: f64) -> Result<JsValue, JsError> {
    let kernels = crate::ops::microbench::run(&now_ms, budget_ms).map_err(js_error)?;
    to_js(&serde_json::json!({ "threads": rayon::current_num_threads(), "kernels": kernels }))
}
