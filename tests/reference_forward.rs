//! The `hf` and `oracle-f64` paths against HF transformers (`shared/reference`), with the README's
//! tolerances, for every tiny model, every GGUF type and every sequence, and the w256 models in all
//! twelve quantised types. Run with `--nocapture` for the worst error per model and type.

mod common;

use common::{rel_err, safetensor_f64};
use paritylab::forward::forward;
use paritylab::model::Model;
use paritylab::path::PathSpec;
use paritylab::trace::{Stage, StageId, Trace};
use serde_json::Value as Json;

/// Our stage and the reference tensor (without prefix) it must equal. Llama's q/k are compared in
/// GGUF row order (the converter permuted them; the reference keeps copies in that order).
fn reference_name(id: StageId, llama: bool) -> Option<String> {
    let gguf_order = if llama { "_gguf_order" } else { "" };
    let layer = |s: &str| id.layer.map(|i| format!("layers.{i}.{s}"));
    match id.stage {
        Stage::TokEmbd => Some("embed".into()),
        Stage::AttnNorm => layer("input_layernorm"),
        Stage::Q => layer(&format!("attn.q_proj{gguf_order}")),
        Stage::K => layer(&format!("attn.k_proj{gguf_order}")),
        Stage::V => layer("attn.v_proj"),
        Stage::QNormed => layer("attn.q_norm"),
        Stage::KNormed => layer("attn.k_norm"),
        Stage::QRope => layer(&format!("attn.q_rope{gguf_order}")),
        Stage::KRope => layer(&format!("attn.k_rope{gguf_order}")),
        Stage::Kq => None, // HF does not expose the scaled scores
        Stage::KqSoftmax => layer("attn.probs"),
        Stage::Kqv => layer("attn.pre_o_proj"),
        Stage::AttnOut => layer("attn.o_proj"),
        Stage::FfnInp => layer("attn_residual"),
        Stage::FfnNorm => layer("post_attention_layernorm"),
        Stage::FfnGate => layer("mlp.gate_proj"),
        Stage::FfnUp => layer("mlp.up_proj"),
        Stage::FfnSilu => layer("mlp.act_gate"),
        Stage::FfnAct => layer("mlp.act_mul_up"),
        Stage::FfnOut => layer("mlp.down_proj"),
        Stage::LOut => layer("output"),
        Stage::ResultNorm => Some("final_norm".into()),
        Stage::ResultOutput => Some("logits".into()),
    }
}

struct Worst {
    intermediate: f64,
    logits: f64,
    compared: usize,
}

/// HF's `hidden_states.i` for our stage: i = 1..L-1 is the output of layer i-1, L is after the
/// final norm. Some reference prefixes (`deq_*` of the tiny models) keep only these and the logits.
fn hidden_state_name(id: StageId, layers: usize) -> Option<String> {
    match (id.stage, id.layer) {
        (Stage::LOut, Some(i)) if i + 1 < layers => Some(format!("hidden_states.{}", i + 1)),
        (Stage::ResultNorm, None) => Some(format!("hidden_states.{layers}")),
        _ => None,
    }
}

/// Compare every stage of `trace` with the reference tensors under `prefix`; panic past tolerance.
fn compare(
    what: &str,
    trace: &Trace,
    st: &safetensors::SafeTensors<'_>,
    prefix: &str,
    llama: bool,
    tol_intermediate: f64,
    tol_logits: f64,
) -> Worst {
    let mut worst = Worst { intermediate: 0.0, logits: 0.0, compared: 0 };
    let layers = trace.ids().iter().filter_map(|id| id.layer).max().map_or(0, |l| l + 1);
    for &id in trace.ids() {
        let names = [reference_name(id, llama), hidden_state_name(id, layers)];
        let Some((shape, want)) = names.iter().flatten().find_map(|n| safetensor_f64(st, &format!("{prefix}{n}")))
        else {
            continue;
        };
        let (our_shape, got) = trace.dense(id).unwrap();
        assert_eq!(got.len(), want.len(), "{what} {id}: shapes {our_shape:?} vs {shape:?}");
        let err = rel_err(&got, &want);
        let (tol, slot) = if id.stage == Stage::ResultOutput {
            (tol_logits, &mut worst.logits)
        } else {
            (tol_intermediate, &mut worst.intermediate)
        };
        assert!(err <= tol, "{what} {id}: relative error {err:.3e} > {tol:.0e}");
        *slot = slot.max(err);
        worst.compared += 1;
    }
    worst
}

/// Greedy top-1 agrees with the reference wherever the reference's top-2 gap is above 1e-4.
fn check_top1(what: &str, trace: &Trace, st: &safetensors::SafeTensors<'_>, prefix: &str) {
    let Some((shape, want)) = safetensor_f64(st, &format!("{prefix}logits")) else { return };
    let vocab = shape[1];
    for pos in 0..shape[0] {
        let row = &want[pos * vocab..(pos + 1) * vocab];
        let mut idx: Vec<usize> = (0..vocab).collect();
        idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        if row[idx[0]] - row[idx[1]] <= 1e-4 {
            continue;
        }
        let ours = trace.logits(pos).unwrap();
        let top = (0..vocab).max_by(|&a, &b| ours[a].total_cmp(&ours[b])).unwrap();
        assert_eq!(top, idx[0], "{what}: top-1 at position {pos}");
    }
}

fn tokens_of(seq: &Json) -> Vec<u32> {
    seq["token_ids"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as u32).collect()
}

#[test]
fn hf_and_oracle_match_transformers_on_every_tiny_model() {
    let manifest = common::read_json("manifest.json");
    let hf = PathSpec::hf();
    let oracle = PathSpec::preset("oracle-f64").unwrap();
    let mut files = 0;
    for (model, m) in manifest["models"].as_object().unwrap() {
        let llama = m["arch"] == "llama";
        for (qtype, path) in m["gguf"].as_object().unwrap() {
            let bytes = common::read_reference(path.as_str().unwrap());
            let model_ = Model::from_bytes(&bytes).unwrap_or_else(|e| panic!("{model} {qtype}: {e}"));
            let (mut worst_i, mut worst_l, mut worst_oracle) = (0f64, 0f64, 0f64);
            for (seq_name, seq) in m["sequences"].as_object().unwrap() {
                let what = format!("{model}.{qtype} {seq_name}");
                let st_bytes = common::read_reference(seq["file"].as_str().unwrap());
                let st = safetensors::SafeTensors::deserialize(&st_bytes).unwrap();
                let tokens = tokens_of(seq);
                let trace = forward(&model_, &hf, &tokens, None).unwrap();
                let (prefix, tol_i, tol_l) = if qtype == "f32" {
                    ("f64.".to_string(), 5e-6, 2e-6)
                } else {
                    (format!("deq_{qtype}."), 1e-5, 1e-5)
                };
                let w = compare(&what, &trace, &st, &prefix, llama, tol_i, tol_l);
                // Every stage for f64.*; the deq_* files keep hidden states and (but for the real
                // vocabulary) logits.
                let min = if qtype == "f32" { 15 } else { 1 + usize::from(!model.contains("realvocab")) };
                assert!(w.compared >= min, "{what}: only {} stages compared", w.compared);
                check_top1(&what, &trace, &st, &prefix);
                worst_i = worst_i.max(w.intermediate);
                worst_l = worst_l.max(w.logits);
                if qtype == "f32" {
                    let t64 = forward(&model_, &oracle, &tokens, None).unwrap();
                    assert!(t64.is_f64());
                    let w = compare(&format!("{what} oracle-f64"), &t64, &st, "f64.", llama, 1e-10, 1e-10);
                    worst_oracle = worst_oracle.max(w.intermediate.max(w.logits));
                }
            }
            eprintln!(
                "{model:<18} {qtype:<5} hf: intermediates {worst_i:.2e}, logits {worst_l:.2e}{}",
                if qtype == "f32" { format!("; oracle-f64 {worst_oracle:.2e}") } else { String::new() }
            );
            files += 1;
        }
    }
    assert_eq!(files, 22);
}

#[test]
fn hf_matches_transformers_on_every_w256_quantised_type() {
    let manifest = common::read_json("w256/manifest.json");
    let hf = PathSpec::hf();
    let mut files = 0;
    for (model, m) in manifest["models"].as_object().unwrap() {
        let llama = m["arch"] == "llama";
        let tokens: Vec<u32> =
            m["sequences"]["five"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as u32).collect();
        for (qtype, f) in m["gguf"].as_object().unwrap() {
            let what = format!("{model}.{qtype}");
            let bytes = common::read_reference(&format!("w256/{}", f["path"].as_str().unwrap()));
            let model_ = Model::from_bytes(&bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
            let st_bytes = common::read_reference(&format!("w256/refs/{model}/{qtype}.five.safetensors"));
            let st = safetensors::SafeTensors::deserialize(&st_bytes).unwrap();
            let trace = forward(&model_, &hf, &tokens, None).unwrap();
            let prefix = format!("deq_{qtype}.");
            let w = compare(&what, &trace, &st, &prefix, llama, 1e-5, 1e-5);
            assert!(w.compared >= 20, "{what}: only {} stages compared", w.compared);
            check_top1(&what, &trace, &st, &prefix);
            eprintln!("{model:<12} {qtype:<7} hf: intermediates {:.2e}, logits {:.2e}", w.intermediate, w.logits);
            files += 1;
        }
    }
    assert_eq!(files, 24);
}
