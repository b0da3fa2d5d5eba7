//! The `paritylab` binary: `inspect` prints the library's description (text and JSON) and exits 2
//! with the library's message on bad input.

mod common;

use std::process::Command;

fn paritylab(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_paritylab")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn inspect_json_is_the_library_description() {
    let rel = "gguf/qwen2_small.q8_0.gguf";
    let path = common::reference_dir().join(rel);
    let (code, stdout, stderr) = paritylab(&["inspect", path.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let got: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let bytes = common::read_reference(rel);
    let want =
        serde_json::to_value(paritylab::inspect::inspect(&paritylab::gguf::Gguf::parse(&bytes).unwrap())).unwrap();
    assert_eq!(got, want);
    assert_eq!(got["tensors"][0]["name"], "token_embd.weight");
}

#[test]
fn inspect_text_shows_header_metadata_and_tensors() {
    let path = common::reference_dir().join("gguf/qwen3_realvocab.f16.gguf");
    let (code, stdout, _) = paritylab(&["inspect", path.to_str().unwrap(), "--stats"]);
    assert_eq!(code, 0);
    for needle in [
        "GGUF v3 · alignment 32",
        "architecture qwen3",
        "tokenizer.ggml.tokens",
        "string[151,936]",
        "(+151,920 more)",
        "blk.0.attn_q_norm.weight",
        "F16",
        "values",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in\n{stdout}");
    }
}

#[test]
fn bad_input_exits_2_with_the_message() {
    let dir = std::env::temp_dir().join(format!("paritylab-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage.gguf");
    std::fs::write(&garbage, b"GGUF\x03\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff").unwrap();
    let (code, _, stderr) = paritylab(&["inspect", garbage.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("the file is truncated") || stderr.contains("cannot fit"), "{stderr}");
    let (code, _, stderr) = paritylab(&["inspect", dir.join("missing.gguf").to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot read"), "{stderr}");
    let (code, _, _) = paritylab(&["inspect"]);
    assert_eq!(code, 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_prints_top_tokens_and_writes_a_dump() {
    let model = common::reference_dir().join("gguf/qwen3_tiny_untied.f32.gguf");
    let dir = std::env::temp_dir().join(format!("paritylab-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dump = dir.join("hf.safetensors");
    let (code, stdout, stderr) = paritylab(&[
        "run",
        model.to_str().unwrap(),
        "--tokens",
        "1,5,3",
        "--top",
        "3",
        "--dump",
        dump.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let out: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(out["path_text"], "hf");
    assert_eq!(out["tokens"], serde_json::json!([1, 5, 3]));
    assert_eq!(out["positions"].as_array().unwrap().len(), 3);
    assert_eq!(out["positions"][0]["top"].as_array().unwrap().len(), 3);
    // Library and CLI agree to the bit on the top logit.
    let bytes = std::fs::read(&model).unwrap();
    let m = paritylab::model::Model::from_bytes(&bytes).unwrap();
    let trace = paritylab::forward::forward(&m, &paritylab::path::PathSpec::hf(), &[1, 5, 3], None).unwrap();
    let best = paritylab::logits::top_k(&trace.logits(2).unwrap(), 1)[0].logit;
    assert_eq!(out["positions"][2]["top"][0]["logit"].as_f64().unwrap(), best);
    assert!(std::fs::metadata(&dump).unwrap().len() > 1000);

    let (code, stdout, _) = paritylab(&["run", model.to_str().unwrap(), "--tokens", "1,5", "--path", "skainet-dsl"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("path skainet-dsl") && stdout.contains("position 1"), "{stdout}");

    // A path file in JSON.
    let spec = dir.join("path.json");
    std::fs::write(
        &spec,
        serde_json::to_string(&paritylab::path::PathSpec::preset("skainet-legacy").unwrap()).unwrap(),
    )
    .unwrap();
    let (code, stdout, _) =
        paritylab(&["run", model.to_str().unwrap(), "--tokens", "1", "--path", spec.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(stdout.contains("path skainet-legacy"), "{stdout}");

    for bad in [
        &["--tokens", "1,99"][..],
        &["--tokens", "1", "--path", "hf,rope_pairing=sideways"][..],
        &["--tokens", "x"][..],
    ] {
        let mut args = vec!["run", model.to_str().unwrap()];
        args.extend_from_slice(bad);
        let (code, _, stderr) = paritylab(&args);
        assert_eq!(code, 2, "{bad:?}: {stderr}");
        assert!(!stderr.is_empty());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn compare_exit_codes_reports_and_json() {
    let model = common::reference_dir().join("gguf/qwen3_tiny_untied.f32.gguf");
    let m = model.to_str().unwrap();
    let dir = std::env::temp_dir().join(format!("paritylab-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (md, json) = (dir.join("report.md"), dir.join("report.json"));
    let (code, stdout, stderr) = paritylab(&[
        "compare",
        m,
        "--tokens",
        "1,5,3",
        "--a",
        "hf",
        "--b",
        "skainet-dsl",
        "--explain",
        "--isolate",
        "stage",
        "--report",
        md.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "diverge -> 1; {stderr}");
    assert!(stdout.contains("the paths diverge"), "{stdout}");
    let report = std::fs::read_to_string(&md).unwrap();
    assert_eq!(report, stdout);
    assert!(report.contains("position 0: qk_norm_eps; positions 1-2: rope_pairing + qk_norm_eps"), "{report}");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["schema"], "paritylab-report/1");
    assert_eq!(r["verdict"], "diverge");
    assert_eq!(r["first_divergence"]["position"], 0);
    assert_eq!(r["first_divergence"]["layer"], 0);
    assert_eq!(r["first_divergence"]["stage"], "q_normed");
    assert_eq!(r["explain"]["ranges"][0], serde_json::json!({"positions": [0, 0], "flips": ["qk_norm_eps"]}));
    assert_eq!(
        r["explain"]["ranges"][1],
        serde_json::json!({"positions": [1, 2], "flips": ["rope_pairing", "qk_norm_eps"]})
    );

    // The CLI's JSON is the library's report, number for number.
    let bytes = std::fs::read(&model).unwrap();
    let lib = paritylab::model::Model::from_bytes(&bytes).unwrap();
    let opts = paritylab::diff::CompareOptions {
        explain: true,
        isolation: paritylab::forward::Isolation::Stage,
        ..Default::default()
    };
    let (a, b) = (paritylab::path::PathSpec::hf(), paritylab::path::PathSpec::preset("skainet-dsl").unwrap());
    let c = paritylab::diff::compare(&lib, &a, &b, &[1, 5, 3], &opts).unwrap();
    let want = paritylab::diff::Report::new(
        &lib,
        Some("qwen3_tiny_untied.f32.gguf".into()),
        paritylab::dump::sha256_hex(&bytes),
        &c,
        &opts,
    );
    let want: serde_json::Value = serde_json::from_str(&serde_json::to_string(&want).unwrap()).unwrap();
    assert!(r == want, "the CLI's JSON report differs from the library's");

    let (code, stdout, _) = paritylab(&["compare", m, "--tokens", "1,5,3", "--a", "hf", "--b", "oracle-f64"]);
    assert_eq!(code, 0, "agree -> 0");
    assert!(stdout.contains("agree"));
    for bad in [
        vec!["compare", m, "--tokens", "1,5,3", "--b", "nope"],
        vec!["compare", m, "--tokens", "1,500", "--b", "hf"],
        vec!["compare", m, "--tokens", "1", "--b", "hf", "--atol", "1e-3"],
        vec!["compare", "/nonexistent.gguf", "--tokens", "1", "--b", "hf"],
        vec!["compare", m, "--tokens", "1", "--b", "skainet-legacy,bos=prepend", "--isolate", "stage"],
    ] {
        let (code, _, stderr) = paritylab(&bad);
        assert_eq!(code, 2, "{bad:?}: {stderr}");
        assert!(stderr.starts_with("error"), "{stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tokenize_and_prompts() {
    let model = common::reference_dir().join("gguf/qwen3_realvocab.q8_0.gguf");
    let m = model.to_str().unwrap();
    let (code, stdout, stderr) = paritylab(&["tokenize", m, "Hello world<|im_end|>", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let out: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(out, serde_json::json!({"ids": [9707, 1879, 151645], "pieces": ["Hello", "␣world", "<|im_end|>"]}));
    let (_, stdout, _) = paritylab(&["tokenize", m, "<|im_end|>", "--json", "--no-special"]);
    let out: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(out["ids"].as_array().unwrap().len() > 1);
    let (code, stdout, _) = paritylab(&["tokenize", m, "a b"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("2 tokens") && stdout.contains("␣b"), "{stdout}");

    let (code, stdout, stderr) = paritylab(&["run", m, "--prompt", "Hello world", "--json", "--top", "2"]);
    assert_eq!(code, 0, "{stderr}");
    let out: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(out["tokens"], serde_json::json!([9707, 1879]));
    assert_eq!(out["positions"][1]["text"], "␣world");
    let (code, _, _) = paritylab(&["compare", m, "--prompt", "Hello world", "--b", "hf,bos=prepend"]);
    assert_eq!(code, 1, "a prepended BOS changes every position");
    let (code, _, stderr) = paritylab(&["run", m, "--prompt", "x", "--tokens", "1"]);
    assert_eq!(code, 2, "--prompt and --tokens together: {stderr}");
    let synth_dir = std::env::temp_dir().join(format!("paritylab-synth-{}", std::process::id()));
    std::fs::create_dir_all(&synth_dir).unwrap();
    let synth = synth_dir.join("s.gguf");
    std::fs::write(&synth, paritylab::synth::generate(&paritylab::synth::SynthSpec::source_issue()).unwrap()).unwrap();
    let (code, _, stderr) = paritylab(&["run", synth.to_str().unwrap(), "--prompt", "hi"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no vocabulary"), "{stderr}");
    std::fs::remove_dir_all(&synth_dir).unwrap();
}

#[test]
fn compare_against_dumps_and_compare_dumps() {
    let r = common::reference_dir();
    let gguf = r.join("gguf/llama_small.f32.gguf");
    let refs = r.join("refs/llama_small/five.safetensors");
    let (g, f) = (gguf.to_str().unwrap(), refs.to_str().unwrap());
    let dir = std::env::temp_dir().join(format!("paritylab-cli-dumps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("r.json");

    // HF's own f32 run of the same model, as path B, with its tokens from the file.
    let b = format!("dump:{f}");
    let (code, out, err) =
        paritylab(&["compare", g, "--a", "hf", "--b", &b, "--prefix", "f32.", "--json", json.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("the paths agree")
            && out.contains("### Dump B")
            && out.contains("not in the dump: `blk.0.kq`, `blk.1.kq`"),
        "{out}"
    );
    assert!(err.contains("hf names, prefix \"f32.\""), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["b"]["kind"], "dump");
    assert_eq!(report["a"]["kind"], "path");
    assert_eq!(report["tokens"], serde_json::json!([1, 2, 3, 4, 5]));

    // Without a prefix the file's dumps are listed; a dump with the wrong tokens is refused.
    let (code, _, err) = paritylab(&["compare", g, "--b", &b]);
    assert_eq!(code, 2);
    assert!(err.contains("several dumps") && err.contains("--prefix"), "{err}");
    let (code, _, err) = paritylab(&["compare", g, "--b", &b, "--prefix", "f32.", "--tokens", "1,2,3"]);
    assert_eq!(code, 2);
    assert!(err.contains("ran tokens [1, 2, 3, 4, 5]"), "{err}");
    // Isolation needs two paths.
    let (code, _, err) = paritylab(&["compare", g, "--b", &b, "--prefix", "f32.", "--isolate", "stage"]);
    assert_eq!(code, 2);
    assert!(err.contains("two built-in paths"), "{err}");
    // A path that differs from the dump diverges (exit 1).
    let (code, out, _) = paritylab(&["compare", g, "--a", "hf,rope_pairing=split_half", "--b", &b, "--prefix", "f32."]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("first at `blk.0.q_rope`"), "{out}");

    // Two dumps without a model: HF's f64 and f32 runs agree within the assumed noise...
    let (code, out, err) = paritylab(&["compare-dumps", f, f, "--prefix-a", "f64.", "--prefix-b", "f32."]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("model | none"), "{out}");
    // ...but not when the assumed noise is far below f32 rounding.
    let (code, _, _) =
        paritylab(&["compare-dumps", f, f, "--prefix-a", "f64.", "--prefix-b", "f32.", "--dump-noise", "1e-12"]);
    assert_eq!(code, 1);
    // A llama.cpp log against HF's run of the same model and tokens does not share tokens.
    let log =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/llamacpp/llama_small.eval-callback.txt");
    let (code, _, err) = paritylab(&["compare-dumps", log.to_str().unwrap(), f, "--prefix-b", "f32.", "--model", g]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("share no final tokens"), "{err}");
    // A file that is not a dump.
    let (code, _, err) = paritylab(&["compare", g, "--b", &format!("dump:{g}")]);
    assert_eq!(code, 2);
    assert!(err.contains("not a dump paritylab reads"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
