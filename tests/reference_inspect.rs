//! `inspect` on every GGUF in `shared/reference` agrees with what the reference manifests say about
//! those files: tensor names, ggml types and shapes (and byte sizes where the manifest lists them).

mod common;

use paritylab::gguf::Gguf;
use paritylab::inspect::inspect;
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// Tensor name -> (type, dims, bytes).
type TensorTable = BTreeMap<String, (String, Vec<u64>, u64)>;

/// The inspect JSON (what `paritylab inspect --json` prints) and its tensor table.
fn inspected(rel: &str) -> (Json, TensorTable) {
    let bytes = common::read_reference(rel);
    let g = Gguf::parse(&bytes).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let json = serde_json::to_value(inspect(&g)).unwrap();
    let tensors = json["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let dims = t["dims"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
            (
                t["name"].as_str().unwrap().to_string(),
                (t["type"].as_str().unwrap().to_string(), dims, t["bytes"].as_u64().unwrap()),
            )
        })
        .collect();
    (json, tensors)
}

/// The ggml dims each tensor of a model must have, from its HF config.
fn expected_dims(name: &str, cfg: &Json) -> Vec<u64> {
    let g = |k: &str| cfg[k].as_u64().unwrap_or_else(|| panic!("config {k}"));
    let (h, v, i, nh, nkv) =
        (g("hidden_size"), g("vocab_size"), g("intermediate_size"), g("num_attention_heads"), g("num_key_value_heads"));
    let hd = cfg["head_dim"].as_u64().unwrap_or(h / nh);
    let suffix = name.splitn(3, '.').last().unwrap();
    match if name.starts_with("blk.") { suffix } else { name } {
        "token_embd.weight" | "output.weight" => vec![h, v],
        "output_norm.weight" | "attn_norm.weight" | "ffn_norm.weight" => vec![h],
        "attn_q.weight" => vec![h, nh * hd],
        "attn_k.weight" | "attn_v.weight" => vec![h, nkv * hd],
        "attn_output.weight" => vec![nh * hd, h],
        "attn_q.bias" => vec![nh * hd],
        "attn_k.bias" | "attn_v.bias" => vec![nkv * hd],
        "attn_q_norm.weight" | "attn_k_norm.weight" => vec![hd],
        "ffn_gate.weight" | "ffn_up.weight" => vec![h, i],
        "ffn_down.weight" => vec![i, h],
        other => panic!("unexpected tensor {other}"),
    }
}

#[test]
fn tiny_models_match_the_manifest() {
    let manifest = common::read_json("manifest.json");
    let mut files = 0;
    for (model, m) in manifest["models"].as_object().unwrap() {
        for (qtype, path) in m["gguf"].as_object().unwrap() {
            let rel = path.as_str().unwrap();
            let (json, tensors) = inspected(rel);
            let want = m["gguf_tensor_types"][qtype].as_object().unwrap();
            let got_names: Vec<&String> = tensors.keys().collect();
            let mut want_names: Vec<&String> = want.keys().collect();
            want_names.sort();
            assert_eq!(got_names, want_names, "{rel}: tensor names");
            for (name, ty) in want {
                let (got_ty, dims, _) = &tensors[name];
                assert_eq!(got_ty, ty.as_str().unwrap(), "{rel}: {name} type");
                assert_eq!(dims, &expected_dims(name, &m["config"]), "{rel}: {name} dims");
            }
            assert_eq!(json["architecture"], m["arch"], "{rel}");
            assert_eq!(json["summary"]["tensor_count"].as_u64().unwrap() as usize, want.len());
            files += 1;
            eprintln!("{model} {qtype}: {} tensors ok", want.len());
        }
    }
    assert_eq!(files, 22, "every reference GGUF checked");
}

#[test]
fn w256_models_and_quant_vectors_match_the_manifest() {
    let manifest = common::read_json("w256/manifest.json");
    let mut files = 0;
    for (_model, m) in manifest["models"].as_object().unwrap() {
        for (_qtype, f) in m["gguf"].as_object().unwrap() {
            let rel = format!("w256/{}", f["path"].as_str().unwrap());
            let bytes = common::read_reference(&rel);
            assert_eq!(bytes.len() as u64, f["bytes"].as_u64().unwrap(), "{rel} size");
            let (json, tensors) = inspected(&rel);
            let listed = f["tensors"].as_array().unwrap();
            assert_eq!(listed.len(), tensors.len(), "{rel}");
            for t in listed {
                let name = t["name"].as_str().unwrap();
                let (ty, dims, n_bytes) = &tensors[name];
                assert_eq!(ty, t["ggml_type"].as_str().unwrap(), "{rel}: {name}");
                let ne: Vec<u64> = t["ne"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
                assert_eq!(dims, &ne, "{rel}: {name}");
                assert_eq!(*n_bytes, t["n_bytes"].as_u64().unwrap(), "{rel}: {name}");
            }
            assert_eq!(json["file_size"].as_u64().unwrap(), bytes.len() as u64);
            files += 1;
        }
    }
    assert_eq!(files, 24);

    let q = &manifest["quant_vectors"]["gguf"];
    let (_, tensors) = inspected("quant/quant_vectors.gguf");
    for (name, t) in q["tensors"].as_object().unwrap() {
        let (ty, dims, _) = &tensors[name];
        assert_eq!(ty, t["ggml_type"].as_str().unwrap());
        let ne: Vec<u64> = t["ne"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
        assert_eq!(dims, &ne);
    }
}

#[test]
fn real_vocabulary_arrays_are_summarised() {
    let (json, _) = inspected("gguf/qwen3_realvocab.q8_0.gguf");
    let tokens = json["metadata"].as_array().unwrap().iter().find(|e| e["key"] == "tokenizer.ggml.tokens").unwrap();
    assert_eq!(tokens["type"], "array");
    assert_eq!(tokens["elem_type"], "string");
    assert_eq!(tokens["len"], 151936);
    assert_eq!(tokens["truncated"], true);
    assert_eq!(tokens["value"].as_array().unwrap().len(), paritylab::inspect::ARRAY_PREVIEW);
    assert_eq!(tokens["value"][0], "!");
    // The whole description stays small.
    assert!(serde_json::to_string(&json).unwrap().len() < 64 * 1024);
}
