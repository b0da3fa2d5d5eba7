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
