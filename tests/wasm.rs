//! The wasm `Session` API in a real browser (headless Chromium), in both builds: the single-threaded
//! one, and the threaded one (`--features threads`), where a rayon pool of web workers must start
//! and actually run on more than one thread.
#![cfg(target_arch = "wasm32")]

use paritylab::gguf::Gguf;
use paritylab::inspect;
use paritylab::wasm::{build_info, pool_thread_indices, Session};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

static GQA_Q8: &[u8] = include_bytes!("../../shared/reference/gguf/qwen3_gqa.q8_0.gguf");
static QUANT: &[u8] = include_bytes!("../../shared/reference/quant/quant_vectors.gguf");

/// In the threaded build, start the pool (once) before anything touches rayon.
async fn ready() {
    #[cfg(feature = "threads")]
    {
        use std::sync::atomic::{AtomicBool, Ordering};
        static STARTED: AtomicBool = AtomicBool::new(false);
        if !STARTED.swap(true, Ordering::SeqCst) {
            wasm_bindgen_futures::JsFuture::from(paritylab::wasm::init_thread_pool(2)).await.unwrap();
        }
    }
}

fn json(v: &JsValue) -> serde_json::Value {
    let text: String = js_sys::JSON::stringify(v).unwrap().into();
    let mut v = serde_json::from_str(&text).unwrap();
    numbers_as_f64(&mut v);
    v
}

/// JavaScript has one number type: compare numbers as f64 (and -0 as 0, since JSON.stringify writes
/// -0 as 0).
fn numbers_as_f64(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Number(n) => *v = serde_json::json!(n.as_f64().unwrap() + 0.0),
        serde_json::Value::Array(items) => items.iter_mut().for_each(numbers_as_f64),
        serde_json::Value::Object(map) => map.values_mut().for_each(numbers_as_f64),
        _ => {}
    }
}

/// `value` as the JSON value the CLI prints, numbers as a JS caller sees them (exact doubles).
fn via_text<T: serde::Serialize>(value: &T) -> serde_json::Value {
    let mut v = serde_json::to_value(value).unwrap();
    numbers_as_f64(&mut v);
    v
}

/// Token ids as the page passes them (a JS array).
/// The report the page gets for a comparison on `TINY_UNTIED` (named as the tests load it), as JSON.
fn tiny_untied_report(
    model: &paritylab::model::Model<'_>,
    c: &paritylab::diff::Comparison,
    opts: &paritylab::diff::CompareOptions,
) -> serde_json::Value {
    let name = Some("qwen3_tiny_untied.f32.gguf".into());
    via_text(&paritylab::diff::Report::new(model, name, paritylab::dump::sha256_hex(TINY_UNTIED), c, opts))
}

fn ids(v: &[u32]) -> JsValue {
    js_sys::Array::from_iter(v.iter().map(|&x| JsValue::from(x))).into()
}

fn message(e: wasm_bindgen::JsError) -> String {
    js_sys::Error::from(JsValue::from(e)).message().into()
}

#[wasm_bindgen_test]
async fn load_returns_what_inspect_json_prints() {
    ready().await;
    let mut s = Session::new();
    let got = json(&s.load(GQA_Q8.to_vec()).unwrap());
    let want = via_text(&inspect::inspect(&Gguf::parse(GQA_Q8).unwrap()));
    assert_eq!(got, want);
    assert_eq!(got["architecture"], "qwen3");
    assert_eq!(got["tensors"].as_array().unwrap().len(), 24);
    assert_eq!(got["tensors"][1]["dims"], serde_json::json!([64.0]));
}

#[wasm_bindgen_test]
async fn a_file_loaded_in_pieces_equals_one_loaded_whole_and_is_planned_from_its_header() {
    ready().await;
    let whole = json(&Session::new().load(GQA_Q8.to_vec()).unwrap());
    let mut s = Session::new();
    s.begin_load(GQA_Q8.len() as f64).unwrap();
    for piece in GQA_Q8.chunks(1000) {
        s.load_chunk(piece).unwrap();
    }
    assert_eq!(json(&s.finish_load().unwrap()), whole);
    // Too many bytes, too few, or nothing announced: clear errors, no model.
    s.begin_load(10.0).unwrap();
    assert!(message(s.load_chunk(&GQA_Q8[..11]).unwrap_err()).contains("grew"));
    s.begin_load(GQA_Q8.len() as f64).unwrap();
    s.load_chunk(&GQA_Q8[..100]).unwrap();
    assert!(message(s.finish_load().unwrap_err()).contains("only 100 of the file's"));
    assert!(message(s.finish_load().unwrap_err()).contains("no file is being loaded"));
    assert!(message(s.begin_load(5e9).unwrap_err()).contains("not enough memory for loading this file"));

    // The header from the first bytes: asks for more while it goes on, then the estimate.
    let g = Gguf::parse(GQA_Q8).unwrap();
    let request =
        js_sys::JSON::parse(r#"{"a": "hf", "b": "llama.cpp", "prompt": [1, 2, 3], "capture": "full"}"#).unwrap();
    let size = GQA_Q8.len() as f64;
    let more = json(&paritylab::wasm::plan_load(&GQA_Q8[..64], size, request.clone()).unwrap());
    assert!(more["more"].as_f64().is_some_and(|n| n > 64.0), "{more}");
    let header = &GQA_Q8[..g.data_offset as usize];
    let plan = json(&paritylab::wasm::plan_load(header, size, request).unwrap());
    assert_eq!(plan["estimate"]["fits"], true);
    assert_eq!(plan["estimate"]["parts"][0]["bytes"].as_f64(), Some(size));
    let bad = js_sys::JSON::parse(r#"{"capture": "some"}"#).unwrap();
    assert!(message(paritylab::wasm::plan_load(header, size, bad).unwrap_err()).contains("load plan"));
    // A declared size the tensors do not fit in is the header's own error.
    let err = message(paritylab::wasm::plan_load(header, header.len() as f64, JsValue::UNDEFINED).unwrap_err());
    assert!(err.contains("tensor") && err.contains("file"), "{err}");
}

#[wasm_bindgen_test]
async fn errors_carry_the_library_messages_and_the_session_recovers() {
    ready().await;
    let mut s = Session::new();
    let err = message(s.load(b"this is not a model".to_vec()).unwrap_err());
    assert!(err.starts_with("not a GGUF file"), "{err}");
    let truncated = message(s.load(GQA_Q8[..GQA_Q8.len() / 2].to_vec()).unwrap_err());
    let lib = Gguf::parse(&GQA_Q8[..GQA_Q8.len() / 2]).unwrap_err().to_string();
    assert_eq!(truncated, lib);
    assert!(message(s.tensor_stats("token_embd.weight").unwrap_err()).contains("no model"));
    // A good file after bad ones.
    s.load(GQA_Q8.to_vec()).unwrap();
    assert!(message(s.tensor_stats("nope").unwrap_err()).contains("no tensor named \"nope\""));
}

#[wasm_bindgen_test]
async fn tensor_stats_decode_every_supported_type() {
    ready().await;
    let mut s = Session::new();
    s.load(QUANT.to_vec()).unwrap();
    let g = Gguf::parse(QUANT).unwrap();
    for t in &g.tensors {
        let got = json(&s.tensor_stats(t.name).unwrap());
        let want = via_text(&inspect::tensor_stats(t).unwrap());
        assert_eq!(got, want, "{}", t.name);
    }
}

#[wasm_bindgen_test]
async fn synthetic_default_loads() {
    ready().await;
    let mut s = Session::new();
    let info = json(&s.load_synthetic("").unwrap());
    assert_eq!(info["architecture"], "qwen3");
    let bytes = s.file_bytes().unwrap();
    assert_eq!(bytes.to_vec(), paritylab::synth::generate(&paritylab::synth::SynthSpec::source_issue()).unwrap());
}

#[wasm_bindgen_test]
async fn build_reports_simd_and_its_threads() {
    ready().await;
    let info = json(&build_info().unwrap());
    assert_eq!(info["simd"], true);
    let threads = pool_thread_indices();
    if cfg!(feature = "threads") {
        assert_eq!(info["threads_build"], true);
        assert_eq!(info["threads"].as_f64(), Some(2.0));
        assert_eq!(threads, [0, 1], "both pool threads ran a task");
    } else {
        assert_eq!(info["threads_build"], false);
        assert_eq!(info["threads"].as_f64(), Some(1.0));
        assert_eq!(threads.len(), 1);
    }
}

#[wasm_bindgen_test]
async fn run_exposes_the_trace_stages_and_dump() {
    ready().await;
    let mut s = Session::new();
    s.load(GQA_Q8.to_vec()).unwrap();
    let info = json(&s.model_info().unwrap());
    assert_eq!(info["config"]["head_dim"].as_f64(), Some(16.0));
    assert_eq!(info["tokenizer"]["pre"], "qwen2");
    let mut summary = json(&s.run("hf", ids(&[1, 2, 3]), 5, JsValue::UNDEFINED).unwrap());
    assert_eq!(summary["capture"], "full");
    assert_eq!(summary["prompt_tokens"].as_f64(), Some(3.0));
    assert_eq!(summary["generated"], serde_json::json!([]));
    assert!(summary["timing"]["prompt_ms"].as_f64().is_some_and(|ms| ms >= 0.0));
    assert!(summary["timing"]["memory_bytes"].as_f64().is_some_and(|b| b >= GQA_Q8.len() as f64));
    for key in ["capture", "prompt_tokens", "generated", "timing"] {
        summary.as_object_mut().unwrap().remove(key);
    }
    let model = paritylab::model::Model::from_bytes(GQA_Q8).unwrap();
    let trace = paritylab::forward::forward(&model, &paritylab::path::PathSpec::hf(), &[1, 2, 3], None).unwrap();
    let want = via_text(&paritylab::logits::RunSummary::new(
        &paritylab::path::PathSpec::hf(),
        &trace,
        5,
        model.display_tokenizer(),
    ));
    assert_eq!(summary, want);

    let stages = json(&s.stages().unwrap());
    let names: Vec<&str> = stages.as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, trace.ids().iter().map(|id| id.name()).collect::<Vec<_>>());
    let stage = s.stage("blk.1.kq_softmax").unwrap();
    let values = js_sys::Float32Array::from(js_sys::Reflect::get(&stage, &"values".into()).unwrap()).to_vec();
    let (shape, dense) = trace.dense(paritylab::trace::StageId::parse("blk.1.kq_softmax").unwrap()).unwrap();
    assert_eq!(shape, [4, 3, 3]);
    assert_eq!(values, dense.iter().map(|&v| v as f32).collect::<Vec<_>>());
    assert!(message(s.stage("blk.9.q").unwrap_err()).contains("no blk.9.q"));

    let dump = s.dump().unwrap();
    let st = safetensors::SafeTensors::deserialize(&dump).unwrap();
    assert_eq!(st.len(), trace.ids().len());

    assert!(message(s.run("hf,rope_pairing=sideways", ids(&[1]), 5, JsValue::UNDEFINED).unwrap_err())
        .contains("split_half"));
    assert!(message(s.run("hf", ids(&[1000]), 5, JsValue::UNDEFINED).unwrap_err()).contains("out of range"));
    // A file that parses but is not a model: inspectable, not runnable.
    s.load(QUANT.to_vec()).unwrap();
    assert!(message(s.model_info().unwrap_err()).contains("\"quantzoo\" is not supported"));
    assert!(message(s.run("hf", ids(&[1]), 5, JsValue::UNDEFINED).unwrap_err()).contains("inspected but not run"));
}

/// `run` with capture stats and decoding: the runner's tokens and statistics, values refused with
/// a message that says how to get them; and the estimates a page picks a capture level from.
#[wasm_bindgen_test]
async fn run_with_capture_stats_decodes_and_keeps_statistics() {
    use paritylab::trace::{Capture, TraceShape};
    ready().await;
    let mut s = Session::new();
    s.load(GQA_Q8.to_vec()).unwrap();
    let options = js_sys::JSON::parse(r#"{"capture": "stats", "decode": 2}"#).unwrap();
    let got = json(&s.run("hf", ids(&[1, 2, 3]), 5, options).unwrap());
    let model = paritylab::model::Model::from_bytes(GQA_Q8).unwrap();
    let hf = paritylab::path::PathSpec::hf();
    let mut runner = paritylab::forward::Runner::new(&model, &hf, Capture::Stats).unwrap();
    runner.feed(&[1, 2, 3]).unwrap();
    runner.decode_greedy(2).unwrap();
    let trace = runner.into_trace();
    assert_eq!(got["capture"], "stats");
    assert_eq!(got["tokens"], via_text(&trace.tokens));
    assert_eq!(got["generated"], via_text(&trace.tokens[3..].to_vec()));
    assert_eq!(got["positions"].as_array().unwrap().len(), 5);
    let stats = got["stage_stats"].as_array().unwrap();
    assert_eq!(stats.len(), trace.ids().len() - 1, "every stage but the logits");
    for entry in stats {
        let id = paritylab::trace::StageId::parse(entry["name"].as_str().unwrap()).unwrap();
        assert_eq!(entry["stats"], via_text(&trace.stats(id).unwrap()), "{id}");
    }
    assert!(got["timing"]["decode_ms"].as_f64().is_some_and(|ms| ms >= 0.0));
    let err = message(s.stage("blk.0.q").unwrap_err());
    assert!(err.contains("values were not captured") && err.contains("capture stats"), "{err}");
    assert!(message(s.dump().unwrap_err()).contains("set capture to full"));
    let bad = js_sys::JSON::parse(r#"{"capture": "some"}"#).unwrap();
    assert!(message(s.run("hf", ids(&[1]), 5, bad).unwrap_err()).contains("run options"));

    let shape = TraceShape::of(&model.config);
    let run = json(&s.trace_estimate("hf", None, ids(&[1, 2, 3]), 4).unwrap());
    for c in Capture::ALL {
        assert_eq!(run[c.name()].as_f64(), Some(shape.bytes(7, c, false) as f64), "{}", c.name());
    }
    let both = json(&s.trace_estimate("hf", Some("oracle-f64".into()), ids(&[1, 2, 3]), 0).unwrap());
    let want = paritylab::diff::estimate_bytes(
        &shape,
        (&hf, 3),
        (&paritylab::path::PathSpec::preset("oracle-f64").unwrap(), 3),
        Capture::Full,
    );
    assert_eq!(both["full"].as_f64(), Some(want as f64));
    assert!(both["stats"].as_f64() < both["full"].as_f64());

    let bytes = s.file_bytes().unwrap().to_vec();
    assert!(bytes == GQA_Q8, "file_bytes gives the file back");
}

static TINY_UNTIED: &[u8] = include_bytes!("../../shared/reference/gguf/qwen3_tiny_untied.f32.gguf");

#[wasm_bindgen_test]
async fn compare_returns_the_library_report_and_markdown() {
    ready().await;
    let mut s = Session::new();
    s.load(TINY_UNTIED.to_vec()).unwrap();
    s.set_file_name("qwen3_tiny_untied.f32.gguf");
    let options = js_sys::JSON::parse(r#"{"isolation": "stage", "explain": true}"#).unwrap();
    let got = json(&s.compare("hf", "skainet-legacy", ids(&[1, 5, 3]), options, None).unwrap());
    assert_eq!(got["verdict"], "diverge");
    assert_eq!(got["first_divergence"]["stage"], "q");
    assert_eq!(got["explain"]["summary"], "positions 0-2: projection");

    let model = paritylab::model::Model::from_bytes(TINY_UNTIED).unwrap();
    let opts = paritylab::diff::CompareOptions {
        isolation: paritylab::forward::Isolation::Stage,
        explain: true,
        ..Default::default()
    };
    let (a, b) = (paritylab::path::PathSpec::hf(), paritylab::path::PathSpec::preset("skainet-legacy").unwrap());
    let c = paritylab::diff::compare(&model, &a, &b, &[1, 5, 3], &opts).unwrap();
    assert_eq!(got, tiny_untied_report(&model, &c, &opts));
    let md = s.report_markdown(Some("https://example.test/#x".into())).unwrap();
    assert!(md.contains("the paths diverge") && md.contains("https://example.test/#x"), "{md}");

    let refused = |s: &mut Session, options: &str| match s.compare(
        "hf",
        "hf",
        ids(&[1]),
        js_sys::JSON::parse(options).unwrap(),
        None,
    ) {
        Ok(_) => panic!("{options} was accepted"),
        Err(e) => message(e),
    };
    assert!(refused(&mut s, r#"{"isolation": "sideways"}"#).contains("compare options"));
    assert!(refused(&mut s, r#"{"explian": true}"#).contains("explian"));
    assert!(refused(&mut s, r#"{"isolation": "stage", "capture": "stats"}"#).contains("capture full"));

    // Capture stats: the library's report, and values refused with a way to get them.
    let options = js_sys::JSON::parse(r#"{"capture": "stats", "explain": true}"#).unwrap();
    let got = json(&s.compare("hf", "skainet-dsl", ids(&[1, 5, 3]), options, None).unwrap());
    let opts = paritylab::diff::CompareOptions {
        capture: paritylab::trace::Capture::Stats,
        explain: true,
        ..Default::default()
    };
    let dsl = paritylab::path::PathSpec::preset("skainet-dsl").unwrap();
    let c = paritylab::diff::compare(&model, &a, &dsl, &[1, 5, 3], &opts).unwrap();
    assert_eq!(got, tiny_untied_report(&model, &c, &opts));
    assert_eq!(got["capture"], "stats");
    assert!(got["stage_stats"].as_array().is_some_and(|s| !s.is_empty()));
    assert!(message(s.compared_stage("blk.0.q", 0, false).unwrap_err()).contains("values were not captured"));
    assert!(message(s.dump_path("a").unwrap_err()).contains("set capture to full"));
}

static REALVOCAB: &[u8] = include_bytes!("../../shared/reference/gguf/qwen3_realvocab.q8_0.gguf");

#[wasm_bindgen_test]
async fn tokenize_decode_and_text_prompts() {
    ready().await;
    let mut s = Session::new();
    s.load(REALVOCAB.to_vec()).unwrap();
    let out = json(&s.tokenize("Hello world".into(), true, true).unwrap());
    assert_eq!(out["ids"], serde_json::json!([9707.0, 1879.0]));
    assert_eq!(out["pieces"], serde_json::json!(["Hello", "␣world"]));
    assert_eq!(s.decode(vec![9707, 1879]).unwrap(), "Hello world");
    let special = json(&s.tokenize("a<|im_end|>b".into(), true, true).unwrap());
    assert_eq!(special["ids"], serde_json::json!([64.0, 151645.0, 65.0]));
    let plain = json(&s.tokenize("a<|im_end|>b".into(), false, true).unwrap());
    assert!(plain["ids"].as_array().unwrap().len() > 3);
    // A lone surrogate cannot become UTF-8: refused, not silently replaced.
    let lone = js_sys::JsString::from_char_code1(0xD800);
    let text: JsValue = js_sys::JsString::from("ab").concat(&lone).into();
    let err = match s.tokenize(text.clone(), true, true) {
        Ok(_) => panic!("a lone surrogate was accepted"),
        Err(e) => message(e),
    };
    assert!(err.contains("lone surrogate"), "{err}");
    assert!(s.run("hf", text, 3, JsValue::UNDEFINED).is_err());
    // Text prompts run; each path's BOS handling is visible in input_tokens.
    let run = json(&s.run("hf", "Hello world".into(), 3, JsValue::UNDEFINED).unwrap());
    assert_eq!(run["tokens"], serde_json::json!([9707.0, 1879.0]));
    let with_bos = json(&s.input_tokens("hf,bos=prepend", "Hello world".into()).unwrap());
    assert_eq!(with_bos["ids"], serde_json::json!([151643.0, 9707.0, 1879.0]));
    assert_eq!(with_bos["bos_added"], true);
    let without = json(&s.input_tokens("hf", ids(&[9707, 1879])).unwrap());
    assert_eq!(without["bos_added"], false);
}

#[wasm_bindgen_test]
async fn playground_api_state_synth_paths_and_progress() {
    ready().await;
    // Share state round trip, and a bad link's message.
    let state = paritylab::wasm::default_state().unwrap();
    let hash = paritylab::wasm::encode_state(state.clone()).unwrap();
    assert!(hash.starts_with("s1."));
    assert_eq!(json(&paritylab::wasm::decode_state(&hash).unwrap()), json(&state));
    let err = message(paritylab::wasm::decode_state("s1.garbage!").unwrap_err());
    assert!(err.contains("damaged"), "{err}");
    // The synthetic generator gives the pinned bytes in wasm too (libm, not the platform's maths).
    let spec = json(&paritylab::wasm::synth_spec("source-issue,type=q8_0,dist=normal:0.02,seed=7").unwrap());
    let mut s = Session::new();
    s.load_synthetic(spec["text"].as_str().unwrap()).unwrap();
    assert_eq!(s.file_sha256().unwrap(), "d3a24a0d4d9f30f5ab58f45dd129c7b550621ec8bfb1d9ef0d3910f3ecf443d9");
    // Path fields and specs for the editors.
    let fields = json(&paritylab::wasm::path_fields().unwrap());
    assert_eq!(fields.as_array().unwrap().len(), paritylab::path::FIELDS.len());
    let p = json(&paritylab::wasm::path_spec("skainet-dsl").unwrap());
    assert_eq!(p["fields"]["rope_pairing"], "interleaved");
    // Progress is reported while comparing.
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::<String>::new()));
    let sink = seen.clone();
    let callback = wasm_bindgen::closure::Closure::<dyn FnMut(JsValue)>::new(move |v: JsValue| {
        sink.borrow_mut().push(json(&v)["step"].as_str().unwrap_or("").to_string());
    });
    let f: &js_sys::Function = callback.as_ref().unchecked_ref();
    let options = js_sys::JSON::parse(r#"{"explain": true}"#).unwrap();
    s.compare("skainet-dsl", "skainet-legacy", ids(&[1, 5, 3]), options, Some(f.clone())).unwrap();
    let steps = seen.borrow().clone();
    assert!(steps.contains(&"A".to_string()) && steps.contains(&"explain".to_string()), "{steps:?}");
    assert!(paritylab::wasm::memory_bytes() > 1e6);
}

/// llama.cpp's activation rounding and quantised dot products (`quant::actq`) in the browser: the
/// SIMD128 `vec_dot` returns exactly the bits of `vec_dot_scalar`, which are llama.cpp's own (its
/// `_generic` scalar kernels, and its float kernels) on the vectors llama.cpp wrote into
/// `tests/data/actq/fixtures.json`, and the activation bytes are its `from_float`'s. Then synthetic
/// rows of every type with odd block counts (and F32/F16/BF16 lengths with a tail).
#[wasm_bindgen_test]
fn actq_simd_equals_scalar_and_llama_cpp() {
    use paritylab::ggml::GgmlType;
    use paritylab::quant::actq::{has_simd, vec_dot, vec_dot_scalar, ActFormat, QuantizedActs};
    assert!(has_simd(GgmlType::Q4_K) && has_simd(GgmlType::BF16));

    let hex = |s: &str| -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    };
    let f: serde_json::Value = serde_json::from_str(include_str!("data/actq/fixtures.json")).unwrap();
    let acts: Vec<Vec<f32>> = f["acts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["x"].as_array().unwrap().iter().map(|v| f32::from_bits(v.as_u64().unwrap() as u32)).collect())
        .collect();
    for (a, act) in f["acts"].as_array().unwrap().iter().enumerate() {
        for (name, want) in act["formats"].as_object().unwrap() {
            let format = *ActFormat::ALL.iter().find(|f| f.name() == name).unwrap();
            let q = QuantizedActs::quantize(format, &acts[a]).unwrap();
            assert_eq!(q.bytes(), &hex(want.as_str().unwrap())[..], "{name} of act {a}");
        }
    }
    let mut checked = 0;
    for w in f["weights"].as_array().unwrap() {
        let t = GgmlType::from_name(w["type"].as_str().unwrap()).unwrap();
        let format = ActFormat::for_weights(t).unwrap();
        let rows: Vec<Vec<u8>> = w["rows"].as_array().unwrap().iter().map(|r| hex(r.as_str().unwrap())).collect();
        for d in w["dots"].as_array().unwrap() {
            let (a, r) = (d["act"].as_u64().unwrap() as usize, d["row"].as_u64().unwrap() as usize);
            let want = d.get("generic").unwrap_or(&d["vec_dot"]).as_u64().unwrap() as u32;
            let q = QuantizedActs::quantize(format, &acts[a]).unwrap();
            let row = &rows[r][..t.row_bytes(acts[a].len() as u64).unwrap() as usize];
            let fast = vec_dot(t, row, &q).unwrap();
            assert_eq!(fast.to_bits(), vec_dot_scalar(t, row, &q).unwrap().to_bits(), "{t} act {a} row {r}");
            assert_eq!(fast.to_bits(), want, "{t} act {a} row {r}: {fast:e} vs llama.cpp {:e}", f32::from_bits(want));
            checked += 1;
        }
    }
    assert!(checked > 700, "{checked}");

    // Synthetic rows: random codes, finite f16 scales of magnitude below 2.
    let mut state = 99u64;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let z = (state ^ (state >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for &t in paritylab::quant::SUPPORTED {
        let format = ActFormat::for_weights(t).unwrap();
        let block = t.block_size() as usize * if t.block_size() == 1 { 32 } else { 1 };
        let f16_at: &[usize] = match t {
            GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
            GgmlType::Q2_K => &[80, 82],
            GgmlType::Q3_K => &[108],
            GgmlType::Q6_K => &[208],
            _ => &[0],
        };
        for blocks in [1, 3, 5, 9] {
            for tail in if t.block_size() == 1 { vec![0, 7, 31] } else { vec![0] } {
                let n = blocks * block + tail;
                let mut row: Vec<u8> = (0..t.row_bytes(n as u64).unwrap()).map(|_| next() as u8).collect();
                match t {
                    GgmlType::F32 => {
                        for v in row.chunks_exact_mut(4) {
                            v.copy_from_slice(&(((next() >> 40) as f32 / 16_777_216.0 - 0.5) * 4.0).to_le_bytes());
                        }
                    }
                    GgmlType::F16 | GgmlType::BF16 => {
                        for v in row.chunks_exact_mut(2) {
                            v[1] &= 0x3f; // |x| < 2
                        }
                    }
                    _ => {
                        for b in row.chunks_exact_mut(t.type_size() as usize) {
                            for &at in f16_at {
                                b[at + 1] &= 0xbf;
                            }
                        }
                    }
                }
                let x: Vec<f32> = (0..n)
                    .map(|i| ((next() >> 40) as f32 / 16_777_216.0 - 0.5) * if i % 29 == 0 { 60.0 } else { 2.0 })
                    .collect();
                let q = QuantizedActs::quantize(format, &x).unwrap();
                let (fast, slow) = (vec_dot(t, &row, &q).unwrap(), vec_dot_scalar(t, &row, &q).unwrap());
                assert!(slow.is_finite(), "{t} n {n}");
                assert_eq!(fast.to_bits(), slow.to_bits(), "{t} n {n}: {fast:e} vs {slow:e}");
            }
        }
    }
}

/// The SIMD128 row decoders and dot kernels of the f32 paths give their scalar twins' bits in the
/// browser too (every type, odd block counts; dot lengths with every tail).
#[wasm_bindgen_test]
fn f32_simd_kernels_equal_their_scalar_twins() {
    use paritylab::ops::dot::{dot4_f32, dot_f32, dot_f32_scalar};
    use paritylab::quant::{dequantize_row, fast::dequantize_row_fast, SUPPORTED};
    const { assert!(paritylab::ops::simd::VECTOR) };
    let mut state = 7u64;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    for &t in SUPPORTED {
        for blocks in [1usize, 3, 7] {
            let n = t.block_size() as usize * blocks * if t.block_size() == 1 { 40 } else { 1 };
            let bytes: Vec<u8> = (0..t.row_bytes(n as u64).unwrap()).map(|_| next() as u8).collect();
            let (mut slow, mut fast) = (vec![0f32; n], vec![0f32; n]);
            dequantize_row(t, &bytes, &mut slow).unwrap();
            dequantize_row_fast(t, &bytes, &mut fast).unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&slow), bits(&fast), "{} with {blocks} blocks", t.name());
        }
    }
    let mut value = || (next() as f32 / u32::MAX as f32 - 0.5) * 4.0;
    for n in [1usize, 7, 8, 9, 33, 255, 576] {
        let w: Vec<f32> = (0..n).map(|_| value()).collect();
        let xs: Vec<Vec<f32>> = (0..4).map(|_| (0..n).map(|_| value()).collect()).collect();
        let four = dot4_f32(&w, [&xs[0], &xs[1], &xs[2], &xs[3]]);
        for (k, x) in xs.iter().enumerate() {
            let slow = dot_f32_scalar(&w, x).to_bits();
            assert_eq!((dot_f32(&w, x).to_bits(), four[k].to_bits()), (slow, slow), "n = {n}");
        }
    }
}

/// The llama.cpp kernels' fused multiply-add goes through f64 inline on wasm32 (no FMA
/// instruction): it gives libm's correctly rounded `fmaf` bits or declines, in the browser's f64
/// arithmetic too, and declines the double-rounding traps.
#[wasm_bindgen_test]
fn fma_through_f64_matches_libm_in_the_browser() {
    use paritylab::quant::actq::fma_f64;
    let mut state = 11u64;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 32) as u32
    };
    let mut declined = 0;
    for k in 0..200_000 {
        // Odd k: ordinary values (the decline rate is counted on those); even k: any bits.
        let ordinary = k % 2 == 1;
        let a = if ordinary { (next() >> 8) as f32 / 4e6 - 2.0 } else { f32::from_bits(next()) };
        let b = (next() >> 8) as f32 / 4e6 - 2.0;
        let c = if !ordinary {
            f32::from_bits(next())
        } else if k % 4 == 1 {
            -(a * b)
        } else {
            a + b
        };
        let want = libm::fmaf(a, b, c);
        match fma_f64(a, b, c) {
            Some(r) => assert!(r.to_bits() == want.to_bits() || (r.is_nan() && want.is_nan()), "{a:e} {b:e} {c:e}"),
            None => declined += usize::from(ordinary && want != 0.0),
        }
    }
    assert!(declined < 1_000, "{declined} of 100000 ordinary cases declined");
    for _ in 0..1_000 {
        // (2^-24 c's exponent (1 + 2^-23)) (1 - 2^-23) + c, c odd: f64 lands on the f32 midpoint.
        let c = f32::from_bits((next() & 0x3fff_fffe) | 1 | 0x3000_0000);
        let a = f32::from_bits(c.to_bits() & 0x7f80_0000) * f32::EPSILON * 0.5 * f32::from_bits(0x3f80_0001);
        assert_eq!(fma_f64(a, f32::from_bits(0x3f7f_fffe), c), None);
    }
}

/// The SIMD128 chains' four-lane fused multiply-add gives libm's `fmaf` bits lane by lane: random
/// and special values, the products of the llama.cpp chains (short f16 scales times integer block
/// sums, plus short mins: exact f64 sums, a quarter of them on an f32 midpoint), and the inexact
/// double-rounding traps that must take the scalar way.
#[cfg(target_feature = "simd128")]
#[wasm_bindgen_test]
fn four_lane_fma_matches_libm_in_the_browser() {
    use paritylab::quant::actq_rows::fma_lanes;
    let mut state = 17u64;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 32) as u32
    };
    let f16ish = |bits: u32| f32::from_bits(bits & 0xffff_e000); // 11 significant bits
    let mut midpoints = 0;
    for k in 0..100_000 {
        let lane = |k: usize, next: &mut dyn FnMut() -> u32| match k % 3 {
            0 => (f32::from_bits(next()), f32::from_bits(next()), f32::from_bits(next())),
            1 => {
                let d = f16ish(next() & 0x3fff_ffff) * f16ish(0x3c00_0000 | (next() & 0x07ff_ffff));
                let s = (next() % 60_961) as i32 - 30_480;
                (d, s as f32, f16ish(next() & 0xbfff_ffff) * f16ish(next() & 0x3fff_ffff))
            }
            _ => {
                // (2^-24 c's exponent (1 + 2^-23)) (1 - 2^-23) + c, c odd: an inexact f64 midpoint.
                let c = f32::from_bits((next() & 0x3fff_fffe) | 1 | 0x3000_0000);
                let a = f32::from_bits(c.to_bits() & 0x7f80_0000) * f32::EPSILON * 0.5 * f32::from_bits(0x3f80_0001);
                (a, f32::from_bits(0x3f7f_fffe), c)
            }
        };
        let x: [(f32, f32, f32); 4] = core::array::from_fn(|j| lane(k + j, &mut next));
        let got = fma_lanes(x.map(|v| v.0), x.map(|v| v.1), x.map(|v| v.2));
        for (j, &(a, b, c)) in x.iter().enumerate() {
            let want = libm::fmaf(a, b, c);
            let r = f64::from(a) * f64::from(b) + f64::from(c);
            midpoints += usize::from(r.to_bits() & 0x1fff_ffff == 0x1000_0000);
            assert!(got[j].to_bits() == want.to_bits() || (got[j].is_nan() && want.is_nan()), "{a:e} {b:e} {c:e}");
        }
    }
    assert!(midpoints > 10_000, "only {midpoints} f64 sums on an f32 midpoint");
}

/// The byte-nibble block sums of relaxed-SIMD builds (`i32x4.relaxed_dot_i8x16_i7x16_add_s`, or
/// the scalar twin in other builds) equal the reference's for every nibble and every activation
/// byte (-128 included), one and two positions at a time, with and without Q4_0's offset.
#[wasm_bindgen_test]
fn nibble_block_sums_equal_the_scalar_ones_in_the_browser() {
    use paritylab::quant::actq_rows::{nibble_sums, nibble_sums2, nibble_sums_scalar, LANES};
    let mut state = 13u64;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    for blocks in [1usize, 3, 18] {
        let cols = blocks * 32;
        let n: Vec<u8> = (0..LANES * cols).map(|_| (next() % 16) as u8).collect();
        let mut a: Vec<i8> = (0..2 * cols).map(|_| next() as u8 as i8).collect();
        a[0] = i8::MIN;
        a[cols - 1] = i8::MAX;
        let qsum: Vec<i32> = a.chunks_exact(32).map(|b| b.iter().map(|&v| i32::from(v)).sum()).collect();
        for offset in [0, 8] {
            let (mut want0, mut want1) = (vec![0i32; LANES * blocks], vec![0i32; LANES * blocks]);
            nibble_sums_scalar(&n, cols, &a[..cols], &qsum[..blocks], offset, &mut want0);
            nibble_sums_scalar(&n, cols, &a[cols..], &qsum[blocks..], offset, &mut want1);
            let (mut got0, mut got1) = (vec![0i32; LANES * blocks], vec![0i32; LANES * blocks]);
            nibble_sums(&n, cols, &a[..cols], &qsum[..blocks], offset, &mut got0);
            assert_eq!(got0, want0, "{blocks} blocks, offset {offset}");
            nibble_sums2(&n, cols, &a, &qsum, offset, &mut got0, &mut got1);
            assert_eq!((got0, got1), (want0, want1), "{blocks} blocks, offset {offset}, pair");
        }
    }
}

/// Every f16 bit pattern as a block's scale (and, for Q4_1, its min): the decoding kernels' own
/// f16 conversion (signs, subnormals, zeros, infinities, NaNs) and the tiles give
/// `vec_dot_scalar`'s results (its bits; NaN where it is NaN).
#[wasm_bindgen_test]
fn llama_cpp_kernels_take_every_f16_scale_in_the_browser() {
    use paritylab::ggml::GgmlType;
    use paritylab::quant::actq::{vec_dot_scalar, ActFormat, QuantizedActs};
    use paritylab::quant::actq_rows::{dot_one, dot_tile, unpack_rows, Inputs, Tile};
    let mut state = 7u64;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    let same = |got: f32, want: f32| got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan());
    for t in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0] {
        let x: Vec<f32> = (0..32).map(|_| (next() % 2001) as f32 / 1000.0 - 1.0).collect();
        let acts = QuantizedActs::quantize(ActFormat::for_weights(t).unwrap(), &x).unwrap();
        let inputs = Inputs::new(std::slice::from_ref(&acts)).unwrap();
        let mut tile = Tile::default();
        for first in (0..=u16::MAX).step_by(4) {
            let rows: Vec<Vec<u8>> = (0..4u16)
                .map(|k| {
                    let mut bytes: Vec<u8> = (0..t.type_size()).map(|_| next() as u8).collect();
                    bytes[..2].copy_from_slice(&(first + k).to_le_bytes());
                    if t == GgmlType::Q4_1 {
                        bytes[2..4].copy_from_slice(&(!(first + k)).rotate_left(5).to_le_bytes());
                    }
                    bytes
                })
                .collect();
            let refs: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
            let mut direct = [0f32; 4];
            assert!(dot_one(t, &refs, &inputs, &mut direct), "{t} has a direct kernel");
            unpack_rows(t, &refs, 32, &mut tile);
            let mut tiled = [0f32; 4];
            dot_tile(t, &mut tile, &inputs, &mut tiled);
            for (k, row) in rows.iter().enumerate() {
                let want = vec_dot_scalar(t, row, &acts).unwrap();
                assert!(same(direct[k], want), "{t} scale {:#06x}: {} != {want}", first as usize + k, direct[k]);
                assert!(same(tiled[k], want), "{t} scale {:#06x} (tile): {} != {want}", first as usize + k, tiled[k]);
            }
        }
    }
}

/// The llama.cpp matmul's tile kernels (`actq_rows`: SIMD128 unpacking, block sums and the
/// lane-wise f32 chains with their fused multiply-adds through f64) give `vec_dot_scalar`'s bits
/// for every (row, position) in the browser: every 32-value block type, odd block counts, tiles of
/// 1 to 4 rows.
#[wasm_bindgen_test]
fn llama_cpp_tiles_equal_vec_dot_scalar_in_the_browser() {
    use paritylab::ggml::GgmlType;
    use paritylab::quant::actq::{vec_dot_scalar, ActFormat, QuantizedActs};
    use paritylab::quant::actq_rows::{dot_one, dot_tile, unpack_rows, Inputs, Tile};
    let mut state = 3u64;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    for t in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::IQ4_NL] {
        for (blocks, used) in [(1usize, 4usize), (3, 1), (5, 3), (18, 4)] {
            let cols = blocks * 32;
            let format = ActFormat::for_weights(t).unwrap();
            let acts: Vec<QuantizedActs> = (0..5)
                .map(|_| {
                    let x: Vec<f32> = (0..cols).map(|_| (next() % 2001) as f32 / 1000.0 - 1.0).collect();
                    QuantizedActs::quantize(format, &x).unwrap()
                })
                .collect();
            let rows: Vec<Vec<u8>> = (0..used)
                .map(|_| {
                    let mut bytes: Vec<u8> = (0..t.row_bytes(cols as u64).unwrap()).map(|_| next() as u8).collect();
                    let bs = t.type_size() as usize;
                    for b in 0..blocks {
                        bytes[b * bs + 1] &= 0x3b; // finite, modest f16 scales (and mins)
                        if matches!(t, GgmlType::Q4_1 | GgmlType::Q5_1) {
                            bytes[b * bs + 3] &= 0xbb;
                        }
                    }
                    bytes
                })
                .collect();
            let refs: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
            let inputs = Inputs::new(&acts).unwrap();
            let mut tile = Tile::default();
            unpack_rows(t, &refs, cols, &mut tile);
            let mut outs = vec![0f32; used * acts.len()];
            dot_tile(t, &mut tile, &inputs, &mut outs);
            for (k, row) in rows.iter().enumerate() {
                for (p, a) in acts.iter().enumerate() {
                    let want = vec_dot_scalar(t, row, a).unwrap();
                    assert_eq!(
                        outs[k * acts.len() + p].to_bits(),
                        want.to_bits(),
                        "{t} {blocks} blocks row {k} pos {p}"
                    );
                }
            }
            // Decoding: one position straight from the bytes where a direct kernel exists.
            let one = Inputs::new(&acts[..1]).unwrap();
            let mut outs = vec![f32::NAN; used];
            if dot_one(t, &refs, &one, &mut outs) {
                for (k, row) in rows.iter().enumerate() {
                    let want = vec_dot_scalar(t, row, &acts[0]).unwrap();
                    assert_eq!(outs[k].to_bits(), want.to_bits(), "{t} {blocks} blocks row {k}, one position");
                }
            } else {
                assert!(!matches!(t, GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q8_0), "{t} has a direct kernel");
            }
        }
    }
}
