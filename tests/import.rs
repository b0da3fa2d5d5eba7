//! Importing other engines' dumps: the HF transformers reference files themselves, our own dumps,
//! user-mapped dumps (with the Llama Q/K permutation), and malformed files.

mod common;

use paritylab::diff::{compare_sides, Class, CompareOptions, Report, Side};
use paritylab::dump::{self, DumpInfo as WrittenDump};
use paritylab::forward::{forward, Prompt};
use paritylab::import::{self, DumpFile, ImportOptions, ImportedDump, ModelShape, Outcome};
use paritylab::model::Model;
use paritylab::path::PathSpec;
use std::sync::Arc;

fn import_bytes(model: &Model<'_>, name: &str, bytes: &[u8], opts: &ImportOptions) -> paritylab::Result<ImportedDump> {
    let raw = import::read(&[DumpFile { name, bytes }])?;
    import::import(name, &raw, Some(&ModelShape::of(model)), None, opts)
}

/// Compare the built-in `hf` path (A) with a dump (B) on the dump's tokens.
fn against_hf(model: &Model<'_>, d: ImportedDump) -> Report {
    let prompt = Prompt::Ids(d.info.tokens.clone());
    let opts = CompareOptions::default();
    let c =
        compare_sides(Some(model), &Side::Path(PathSpec::hf()), &Side::Dump(Arc::new(d)), &prompt, &opts, &mut |_| {})
            .unwrap();
    Report::build(None, &c, &opts)
}

fn worst(r: &Report) -> String {
    let w = r.stages.iter().max_by(|a, b| {
        (a.metrics.max_abs / a.threshold.max(1e-300)).total_cmp(&(b.metrics.max_abs / b.threshold.max(1e-300)))
    });
    w.map(|s| format!("{} pos {}: {:.2e} vs threshold {:.2e}", s.name, s.position, s.metrics.max_abs, s.threshold))
        .unwrap_or_default()
}

#[test]
fn every_reference_file_imports_through_hf_names_and_matches_the_hf_path() {
    let manifest = common::read_json("manifest.json");
    let mut files = 0;
    for (model_name, m) in manifest["models"].as_object().unwrap() {
        let Some(gguf) = m["gguf"]["f32"].as_str() else { continue };
        let bytes = common::read_reference(gguf);
        let model = Model::from_bytes(&bytes).unwrap();
        for (seq, s) in m["sequences"].as_object().unwrap() {
            let file = s["file"].as_str().unwrap();
            let st = common::read_reference(file);
            for prefix in ["f32.", "f64."] {
                let what = format!("{model_name} {seq} {prefix}");
                let opts = ImportOptions { prefix: Some(prefix.into()), ..ImportOptions::default() };
                let d = import_bytes(&model, file, &st, &opts).unwrap_or_else(|e| panic!("{what}: {e}"));
                // Every tensor of that prefix is a stage (or a known non-stage, or a copy of one).
                for e in &d.info.entries {
                    assert!(
                        !matches!(e.outcome, Outcome::Unmapped | Outcome::Unaligned { .. }),
                        "{what}: {} was {:?}",
                        e.name,
                        e.outcome
                    );
                }
                // Every stage our path records is there, but the scaled scores HF does not expose.
                assert!(d.info.missing.iter().all(|s| s.ends_with(".kq")), "{what}: missing {:?}", d.info.missing);
                assert_eq!(d.info.prefix.as_deref(), Some(prefix));
                let r = against_hf(&model, d);
                assert!(r.agrees(), "{what}: {} (worst {})", r.verdict_line(), worst(&r));
                let classes: Vec<Class> = r.stages.iter().map(|s| s.class).collect();
                assert!(classes.len() >= 20, "{what}: only {} stage comparisons", classes.len());
                eprintln!("{what:<32} {} stage comparisons, worst {}", classes.len(), worst(&r));
            }
            files += 1;
        }
    }
    assert_eq!(files, 15, "5 tiny f32 models x 3 sequences");
}

#[test]
fn a_file_with_several_dumps_asks_which_one() {
    let bytes = common::read_reference("gguf/qwen3_tiny_untied.f32.gguf");
    let model = Model::from_bytes(&bytes).unwrap();
    let st = common::read_reference("refs/qwen3_tiny_untied/five.safetensors");
    let e = import_bytes(&model, "five.safetensors", &st, &ImportOptions::default()).unwrap_err().to_string();
    assert!(e.contains("several dumps") && e.contains("\"f32.\"") && e.contains("\"f64.\""), "{e}");
    let opts = ImportOptions { prefix: Some("f16.".into()), ..ImportOptions::default() };
    let e = import_bytes(&model, "five.safetensors", &st, &opts).unwrap_err().to_string();
    assert!(e.contains("no tensors with prefix \"f16.\""), "{e}");
}

#[test]
fn the_dequantised_reference_dumps_match_the_hf_path_on_their_gguf() {
    // deq_<type>. holds the hidden states and logits of transformers on the GGUF's dequantised
    // weights: a partial dump.
    for qtype in ["f16", "bf16", "q8_0"] {
        let bytes = common::read_reference(&format!("gguf/qwen3_gqa.{qtype}.gguf"));
        let model = Model::from_bytes(&bytes).unwrap();
        let st = common::read_reference("refs/qwen3_gqa/rand16.safetensors");
        let opts = ImportOptions { prefix: Some(format!("deq_{qtype}.")), ..ImportOptions::default() };
        let d = import_bytes(&model, "rand16.safetensors", &st, &opts).unwrap();
        let mapped: Vec<String> = d
            .info
            .entries
            .iter()
            .filter_map(|e| match &e.outcome {
                Outcome::Mapped { stage, .. } => Some(stage.clone()),
                _ => None,
            })
            .collect();
        assert!(
            mapped.contains(&"result_output".to_string()) && mapped.contains(&"result_norm".to_string()),
            "{mapped:?}"
        );
        let r = against_hf(&model, d);
        assert!(r.agrees(), "{qtype}: {} (worst {})", r.verdict_line(), worst(&r));
    }
}

#[test]
fn our_own_dump_reimported_is_an_exact_match() {
    for gguf in ["gguf/llama_small.f32.gguf", "gguf/qwen3_gqa.q8_0.gguf", "gguf/qwen2_small.bf16.gguf"] {
        let bytes = common::read_reference(gguf);
        let model = Model::from_bytes(&bytes).unwrap();
        let hf = PathSpec::hf();
        let trace = forward(&model, &hf, &[1, 5, 3, 9], None).unwrap();
        let sha = dump::sha256_hex(&bytes);
        let file = dump::write(&trace, &WrittenDump { path: &hf, model_sha256: &sha, architecture: "x" }).unwrap();
        let raw = import::read(&[DumpFile { name: "run.safetensors", bytes: &file }]).unwrap();
        let d = import::import(
            "run.safetensors",
            &raw,
            Some(&ModelShape::of(&model)),
            Some(&sha),
            &ImportOptions::default(),
        )
        .unwrap();
        assert!(d.info.missing.is_empty() && d.info.warnings.is_empty(), "{gguf}: {:?}", d.info);
        assert_eq!(d.info.tokens, [1, 5, 3, 9]);
        let r = against_hf(&model, d);
        assert!(r.agrees(), "{gguf}: {}", r.verdict_line());
        assert!(r.stages.iter().all(|s| s.class == Class::Match && s.metrics.bitwise_equal), "{gguf}");
        assert_eq!(r.stages.len(), trace.ids().len() * 4);
    }
}

/// The reference's f64 tensors under a user's own names, written as a safetensors file.
fn user_named_dump(st: &safetensors::SafeTensors<'_>, rename: &[(&str, &str)], extra_meta: &[(&str, &str)]) -> Vec<u8> {
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, t) in st.tensors() {
        let Some(rest) = name.strip_prefix("f64.") else { continue };
        for (from, to) in rename {
            if let Some(i) = rest.strip_prefix("layers.").and_then(|r| r.strip_suffix(&format!(".{from}"))) {
                owned.push((to.replace("{i}", i), t.shape().to_vec(), t.data().to_vec()));
            } else if rest == *from {
                owned.push((to.to_string(), t.shape().to_vec(), t.data().to_vec()));
            }
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = owned
        .iter()
        .map(|(n, s, d)| {
            (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F64, s.clone(), d).unwrap())
        })
        .collect();
    let mut meta: std::collections::HashMap<String, String> =
        extra_meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    meta.insert("token_ids".into(), "[1, 2, 3, 4, 5]".into());
    safetensors::serialize(views, Some(meta)).unwrap()
}

#[test]
fn permuted_llama_q_k_rows_are_flagged_at_q_unless_the_map_declares_them() {
    let bytes = common::read_reference("gguf/llama_small.f32.gguf");
    let model = Model::from_bytes(&bytes).unwrap();
    let st_bytes = common::read_reference("refs/llama_small/five.safetensors");
    let st = safetensors::SafeTensors::deserialize(&st_bytes).unwrap();
    // Their engine: HF row order (q_proj, not the GGUF-order copy), their own names.
    let file = user_named_dump(
        &st,
        &[
            ("embed", "emb"),
            ("input_layernorm", "L{i}.norm1"),
            ("attn.q_proj", "L{i}.wq"),
            ("attn.k_proj", "L{i}.wk"),
            ("attn.v_proj", "L{i}.wv"),
            ("attn.q_rope", "L{i}.q_rot"),
            ("attn.k_rope", "L{i}.k_rot"),
            ("attn.probs", "L{i}.probs"),
            ("attn.pre_o_proj", "L{i}.ctx"),
            ("attn.o_proj", "L{i}.wo"),
            ("output", "L{i}.out"),
            ("logits", "logits_all"),
        ],
        &[],
    );
    let map = |rows: &str| {
        format!(
            r#"{{"format": "paritylab-map/1", "tensors": {{
                "emb": "tok_embd", "L{{i}}.norm1": "blk.{{i}}.attn_norm",
                "L{{i}}.wq": {{"stage": "blk.{{i}}.q"{rows}}}, "L{{i}}.wk": {{"stage": "blk.{{i}}.k"{rows}}},
                "L{{i}}.wv": "blk.{{i}}.v",
                "L{{i}}.q_rot": {{"stage": "blk.{{i}}.q_rope"{rows}}}, "L{{i}}.k_rot": {{"stage": "blk.{{i}}.k_rope"{rows}}},
                "L{{i}}.probs": "blk.{{i}}.kq_softmax", "L{{i}}.ctx": "blk.{{i}}.kqv", "L{{i}}.wo": "blk.{{i}}.attn_out",
                "L{{i}}.out": "blk.{{i}}.l_out", "logits_all": "result_output"}}}}"#
        )
    };
    let undeclared = paritylab::import::mapfile::MapFile::parse(&map("")).unwrap();
    let opts = ImportOptions { map: Some(undeclared), ..ImportOptions::default() };
    let d = import_bytes(&model, "theirs.safetensors", &file, &opts).unwrap();
    assert!(d.info.entries.iter().all(|e| matches!(e.outcome, Outcome::Mapped { .. })), "{:?}", d.info.entries);
    let r = against_hf(&model, d);
    let first = r.first_divergence.as_ref().expect("permuted rows must diverge");
    assert_eq!((first.name.as_str(), first.position), ("blk.0.q", 0), "{}", r.verdict_line());

    let declared = paritylab::import::mapfile::MapFile::parse(&map(r#", "qk_row_order": "hf""#)).unwrap();
    let opts = ImportOptions { map: Some(declared), ..ImportOptions::default() };
    let d = import_bytes(&model, "theirs.safetensors", &file, &opts).unwrap();
    let r = against_hf(&model, d);
    assert!(r.agrees(), "{} (worst {})", r.verdict_line(), worst(&r));
    // The same file declared in its metadata instead of a map, with our names.
    let ours = user_named_dump(
        &st,
        &[("attn.q_proj", "blk.{i}.q"), ("attn.k_proj", "blk.{i}.k"), ("logits", "result_output")],
        &[("qk_row_order", "hf")],
    );
    let d = import_bytes(&model, "ours.safetensors", &ours, &ImportOptions::default()).unwrap();
    assert!(against_hf(&model, d).agrees());
}

fn paritylab_dump(entries: &[(&str, safetensors::Dtype, Vec<usize>, Vec<u8>)], tokens: &str) -> Vec<u8> {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = entries
        .iter()
        .map(|(n, d, s, b)| (n.to_string(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let meta: std::collections::HashMap<String, String> = [
        ("format".to_string(), "paritylab-dump".to_string()),
        ("format_version".to_string(), "1".to_string()),
        ("token_ids".to_string(), tokens.to_string()),
    ]
    .into();
    safetensors::serialize(views, Some(meta)).unwrap()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn malformed_dumps_get_clear_errors() {
    let bytes = common::read_reference("gguf/qwen3_tiny_untied.f32.gguf");
    let model = Model::from_bytes(&bytes).unwrap();
    let trace = forward(&model, &PathSpec::hf(), &[1, 5, 3], None).unwrap();
    let embd = trace.dense(paritylab::trace::StageId::global(paritylab::trace::Stage::TokEmbd)).unwrap().1;
    let embd: Vec<f32> = embd.iter().map(|&v| v as f32).collect();
    let good = paritylab_dump(&[("tok_embd", safetensors::Dtype::F32, vec![3, 32], f32_bytes(&embd))], "[1, 5, 3]");
    assert!(import_bytes(&model, "good", &good, &ImportOptions::default()).is_ok());
    let err = |b: &[u8]| import_bytes(&model, "d.safetensors", b, &ImportOptions::default()).unwrap_err().to_string();

    // A header length past the end of the file.
    let mut long = good.clone();
    long[..8].copy_from_slice(&(good.len() as u64 * 2).to_le_bytes());
    let e = err(&long);
    assert!(e.contains("not a dump") || e.contains("header length"), "{e}");
    // Truncated data.
    let e = err(&good[..good.len() - 5]);
    assert!(e.contains("d.safetensors") && e.contains("safetensors"), "{e}");
    // A dtype whose bytes do not match its shape: the header says F32 [3, 32] but holds F16 bytes.
    let half: Vec<u8> = embd.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect();
    let header = format!(
        r#"{{"__metadata__":{{"format":"paritylab-dump","format_version":"1","token_ids":"[1, 5, 3]"}},"tok_embd":{{"dtype":"F32","shape":[3,32],"data_offsets":[0,{}]}}}}"#,
        half.len()
    );
    let mut lying = (header.len() as u64).to_le_bytes().to_vec();
    lying.extend(header.as_bytes());
    lying.extend(&half);
    let e = err(&lying);
    assert!(e.contains("tensor \"tok_embd\": dtype F32 with shape [3, 32] needs 384 bytes, but it holds 192"), "{e}");
    // An integer dtype.
    let ints = paritylab_dump(&[("tok_embd", safetensors::Dtype::I32, vec![3, 32], vec![0; 3 * 32 * 4])], "[1, 5, 3]");
    let e = err(&ints);
    assert!(e.contains("tok_embd") && e.contains("I32") && e.contains("F32, F16, BF16 or F64"), "{e}");
    // A shape that disagrees with the model: nothing lines up.
    let wrong =
        paritylab_dump(&[("tok_embd", safetensors::Dtype::F32, vec![3, 16], f32_bytes(&embd[..48]))], "[1, 5, 3]");
    let e = err(&wrong);
    assert!(
        e.contains("nothing in the dump lines up") && e.contains("16 values per position") && e.contains("32"),
        "{e}"
    );
    // One bad stage among good ones: imported, and the bad one reported.
    let mixed = paritylab_dump(
        &[
            ("tok_embd", safetensors::Dtype::F32, vec![3, 32], f32_bytes(&embd)),
            ("blk.0.attn_norm", safetensors::Dtype::F32, vec![32, 3], f32_bytes(&embd)),
        ],
        "[1, 5, 3]",
    );
    let d = import_bytes(&model, "mixed", &mixed, &ImportOptions::default()).unwrap();
    let bad = d.info.entries.iter().find(|e| e.name == "blk.0.attn_norm").unwrap();
    assert!(
        matches!(&bad.outcome, Outcome::Unaligned { reason, .. } if reason.contains("looks transposed")),
        "{bad:?}"
    );
    // More positions than tokens.
    let e = err(&paritylab_dump(&[("tok_embd", safetensors::Dtype::F32, vec![3, 32], f32_bytes(&embd))], "[1, 5]"));
    assert!(e.contains("positions") || e.contains("tokens"), "{e}");
    // Token ids that are not a list.
    let e = err(&paritylab_dump(&[("tok_embd", safetensors::Dtype::F32, vec![3, 32], f32_bytes(&embd))], "1 5 3"));
    assert!(e.contains("token_ids"), "{e}");
    // No token ids and none given.
    let no_tokens = {
        let views = vec![(
            "tok_embd".to_string(),
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![3, 32], &good[good.len() - 384..])
                .unwrap(),
        )];
        safetensors::serialize(views, None).unwrap()
    };
    let e = err(&no_tokens);
    assert!(e.contains("token ids") && e.contains("--tokens"), "{e}");
    // Not a dump at all.
    let e = err(b"hello world, this is text");
    assert!(e.contains("not a dump"), "{e}");

    // NaN: imported (it is what the user wants to find), named in a warning, and diverged.
    let mut nan = embd.clone();
    nan[40] = f32::NAN;
    let with_nan = paritylab_dump(&[("tok_embd", safetensors::Dtype::F32, vec![3, 32], f32_bytes(&nan))], "[1, 5, 3]");
    let d = import_bytes(&model, "nan", &with_nan, &ImportOptions::default()).unwrap();
    assert!(
        d.info
            .warnings
            .iter()
            .any(|w| w.contains("non-finite") && w.contains("tok_embd has NaN at position 1, index 8")),
        "{:?}",
        d.info.warnings
    );
    let r = against_hf(&model, d);
    let first = r.first_divergence.as_ref().unwrap();
    assert_eq!((first.name.as_str(), first.position), ("tok_embd", 1));
}

/// llama.cpp's own logs (llama-eval-callback at commit 0c1e570, the converter's commit; see
/// tests/data/llamacpp/README.md) on the reference GGUFs, against the `hf` path.
#[test]
fn llama_cpp_eval_callback_logs_import_and_match_the_hf_path_on_what_they_print() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/llamacpp");
    for (model_name, tokens) in [
        ("qwen3_tiny_untied", vec![30, 57, 17, 52, 17, 20, 14, 6]),
        ("qwen2_small", vec![30, 61, 52, 64, 14, 6]),
        ("llama_small", vec![30, 61, 52, 64, 14, 6]),
        ("qwen3_gqa", vec![30, 61, 52, 64, 14, 6]),
    ] {
        let bytes = common::read_reference(&format!("gguf/{model_name}.f32.gguf"));
        let model = Model::from_bytes(&bytes).unwrap();
        let log = std::fs::read(dir.join(format!("{model_name}.eval-callback.txt"))).unwrap();
        let d = import_bytes(&model, "log.txt", &log, &ImportOptions::default())
            .unwrap_or_else(|e| panic!("{model_name}: {e}"));
        // The token ids come from the log itself.
        assert_eq!(d.info.tokens, tokens, "{model_name}");
        assert_eq!(d.info.naming, Some(paritylab::import::naming::Naming::LlamaCpp));
        assert!(d.info.warnings.iter().any(|w| w.contains("first and last 3 values")), "{model_name}");
        let mapped: Vec<&str> = d
            .info
            .entries
            .iter()
            .filter_map(|e| match &e.outcome {
                Outcome::Mapped { stage, .. } => Some(stage.as_str()),
                _ => None,
            })
            .collect();
        for want in [
            "tok_embd",
            "blk.0.attn_norm",
            "blk.0.q",
            "blk.0.k",
            "blk.0.v",
            "blk.0.q_rope",
            "blk.0.k_rope",
            "blk.0.kq",
            "blk.0.kq_softmax",
            "blk.0.kqv",
            "blk.0.ffn_act",
            "blk.0.l_out",
            "result_output",
        ] {
            assert!(mapped.contains(&want), "{model_name}: {want} not mapped: {mapped:?}");
        }
        for e in &d.info.entries {
            assert!(!matches!(e.outcome, Outcome::Unaligned { .. } | Outcome::Unmapped), "{model_name}: {e:?}");
        }
        assert!(!d.info.partial.is_empty());
        let r = against_hf(&model, d);
        assert!(r.agrees(), "{model_name}: {} (worst {})", r.verdict_line(), worst(&r));
        // What was compared is said: only the printed values.
        assert!(r
            .stages
            .iter()
            .any(|s| s.of.is_some() && s.note.as_deref().is_some_and(|n| n.contains("known to both"))));
        eprintln!("{model_name:<18} {} comparisons, worst {}", r.stages.len(), worst(&r));
    }
}

/// llama.cpp on SmolLM2 Q4_1 rounds the activations to Q8_1 blocks inside its dot products; the
/// `hf` path dequantises weights to f32 and does not. The log imports whole (30 layers, tokens from
/// the log), and the paths part at the first projection by about that rounding, not more.
#[test]
fn a_real_model_log_shows_llama_cpp_activation_rounding_at_the_first_projection() {
    let bytes = common::smollm2_bytes();
    let model = Model::from_bytes(&bytes).unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/llamacpp");
    let log = std::fs::read(dir.join("SmolLM2-135M-Instruct.Q4_1.eval-callback.txt")).unwrap();
    let d = import_bytes(&model, "smollm2.log", &log, &ImportOptions::default()).unwrap();
    assert_eq!(d.info.tokens, [28120, 905]);
    assert!(d.info.entries.iter().all(|e| !matches!(e.outcome, Outcome::Unaligned { .. } | Outcome::Unmapped)));
    let layers = d
        .info
        .entries
        .iter()
        .filter(|e| matches!(&e.outcome, Outcome::Mapped { stage, .. } if stage.ends_with(".l_out")))
        .count();
    assert_eq!(layers, 30);
    let r = against_hf(&model, d);
    let first = r.first_divergence.as_ref().unwrap();
    assert_eq!((first.name.as_str(), first.position), ("blk.0.q", 0), "{}", r.verdict_line());
    let q = r.stages.iter().find(|s| s.name == "blk.0.q" && s.position == 0).unwrap();
    let rel = q.metrics.max_abs / q.metrics.max_ref;
    assert!(rel > 1e-4 && rel < 2e-2, "blk.0.q relative gap {rel:.2e}");
    // The embedding and the norm before it agree: the gap starts at the first quantised matmul.
    for s in r.stages.iter().filter(|s| s.position == 0 && (s.name == "tok_embd" || s.name == "blk.0.attn_norm")) {
        assert_ne!(s.class, Class::Diverged, "{}", s.name);
    }
    assert!(r.logits_note.is_some(), "the log has the last position's logits only, and only 6 of them");
}
