//! Synthetic models: the same spec gives the same bytes forever (generator version 1), pinned by
//! SHA-256, and every generated model loads and runs.

use paritylab::dump::sha256_hex;
use paritylab::forward::forward;
use paritylab::model::Model;
use paritylab::path::PathSpec;
use paritylab::synth::{generate, SynthSpec};

/// (spec, SHA-256 of the file, size). Changing any of these needs a new generator version.
pub const PINNED: &[(&str, &str, usize)] = &[
    ("source-issue", "5543e0a521a79f66a523201a5950fda00a1fbf9466b1bba8fcb6426e8359b299", 59488),
    ("source-issue,type=q8_0,dist=normal:0.02,seed=7", "d3a24a0d4d9f30f5ab58f45dd129c7b550621ec8bfb1d9ef0d3910f3ecf443d9", 17376),
    (
        "source-issue,arch=llama,type=q4_0,hidden=64,heads=4,kv_heads=2,head_dim=16,ffn=128,layers=2,vocab=128,tied=true,dist=normal:0.1,seed=3",
        "4a9dcfb6c238cc54e288196ffa3e5857b9ac4660153306e0f5f15ca9eefa4249",
        49376,
    ),
    ("source-issue,arch=qwen2,type=bf16,dist=int:-3:3,seed=99", "2d494920c2c14020a833b3d926272fecb1c9f218d225421f4e6d808fdf92fd33", 31104),
    ("source-issue,type=f16,dist=normal:0.5", "cc9a491d80d6d6bc2f99f7af1d60a9e542fe124fe0f2026d61d62fba5349743b", 30816),
];

#[test]
fn pinned_specs_give_the_same_bytes() {
    for (spec, sha, size) in PINNED {
        let bytes = generate(&SynthSpec::parse(spec).unwrap()).unwrap();
        assert_eq!((sha256_hex(&bytes).as_str(), bytes.len()), (*sha, *size), "{spec}");
    }
}

#[test]
fn every_pinned_model_runs_every_preset() {
    for (spec, _, _) in PINNED {
        let bytes = generate(&SynthSpec::parse(spec).unwrap()).unwrap();
        let model = Model::from_bytes(&bytes).unwrap();
        for preset in ["hf", "oracle-f64", "skainet-dsl", "skainet-legacy"] {
            let trace = forward(&model, &PathSpec::preset(preset).unwrap(), &[1, 5, 3], None).unwrap();
            assert!(trace.logits(2).unwrap().iter().all(|x| x.is_finite()), "{spec} {preset}");
        }
    }
}

#[test]
fn the_cli_writes_the_same_file() {
    let dir = std::env::temp_dir().join(format!("paritylab-synth-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("m.gguf");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_paritylab"))
        .args(["synth", PINNED[1].0, "-o", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(status.status.success());
    assert_eq!(sha256_hex(&std::fs::read(&out).unwrap()), PINNED[1].1);
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_paritylab"))
        .args(["synth", "source-issue,layers=0", "-o", "x"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}
