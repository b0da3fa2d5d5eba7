//! The forward pass's contract: the ordered stage list, batches and single steps giving the same
//! bits, BOS handling, isolation mechanics, and clear errors for models and paths that cannot run.
//! (Thread counts: `tests/determinism.rs`.)

mod common;

use paritylab::forward::{forward, Injection, Isolation, Runner};
use paritylab::gguf::{Gguf, Writer, WriterValue};
use paritylab::model::{Config, Model};
use paritylab::path::PathSpec;
use paritylab::synth::{generate, SynthSpec};
use paritylab::trace::{Capture, Stage, StageId, Trace};

fn names(t: &Trace) -> Vec<String> {
    t.ids().iter().map(|id| id.name()).collect()
}

fn run_file(rel: &str, path: &str, tokens: &[u32]) -> Trace {
    let bytes = common::read_reference(rel);
    let model = Model::from_bytes(&bytes).unwrap();
    forward(&model, &PathSpec::parse(path).unwrap(), tokens, None).unwrap()
}

#[test]
fn the_ordered_stage_list_is_pinned() {
    let layer = |i: usize, qk_norm: bool| -> Vec<String> {
        let mut s = vec!["attn_norm", "q", "k", "v"];
        if qk_norm {
            s.extend(["q_normed", "k_normed"]);
        }
        s.extend([
            "q_rope",
            "k_rope",
            "kq",
            "kq_softmax",
            "kqv",
            "attn_out",
            "ffn_inp",
            "ffn_norm",
            "ffn_gate",
            "ffn_up",
            "ffn_silu",
            "ffn_act",
            "ffn_out",
            "l_out",
        ]);
        s.into_iter().map(|n| format!("blk.{i}.{n}")).collect()
    };
    for (file, qk_norm) in
        [("gguf/qwen3_gqa.f32.gguf", true), ("gguf/qwen2_small.f32.gguf", false), ("gguf/llama_small.f32.gguf", false)]
    {
        let mut want = vec!["tok_embd".to_string()];
        want.extend(layer(0, qk_norm));
        want.extend(layer(1, qk_norm));
        want.extend(["result_norm".to_string(), "result_output".to_string()]);
        assert_eq!(names(&run_file(file, "hf", &[1, 2])), want, "{file}");
    }
}

fn bits(v: &paritylab::trace::Values) -> Vec<u64> {
    v.to_f64().iter().map(|x| x.to_bits()).collect()
}

#[test]
fn a_batched_prompt_gives_the_bits_of_one_position_at_a_time() {
    // Rows of several types, GQA, qwen2 biases: every batched code path.
    for synth in [
        "source-issue,hidden=64,heads=4,kv_heads=2,head_dim=16,ffn=96,layers=2,vocab=100,type=q4_0,dist=normal:0.1",
        "source-issue,arch=qwen2,hidden=64,heads=4,kv_heads=1,head_dim=16,ffn=96,layers=2,vocab=100,type=f16,dist=normal:0.1",
        "source-issue,arch=llama,hidden=64,heads=2,kv_heads=2,head_dim=32,ffn=96,layers=1,vocab=100,type=q8_0",
    ] {
        let bytes = generate(&SynthSpec::parse(synth).unwrap()).unwrap();
        let model = Model::from_bytes(&bytes).unwrap();
        let tokens = [3u32, 1, 4, 1, 5, 9, 2];
        for preset in ["hf", "oracle-f64", "skainet-legacy"] {
            let path = PathSpec::parse(preset).unwrap();
            let batched = forward(&model, &path, &tokens, None).unwrap();
            let mut runner = Runner::new(&model, &path, Capture::Full).unwrap();
            runner.feed(&tokens[..3]).unwrap(); // a prompt, then single steps
            for &t in &tokens[3..] {
                runner.feed(&[t]).unwrap();
            }
            let stepped = runner.into_trace();
            assert_eq!(names(&batched), names(&stepped), "{synth} {preset}");
            for &id in batched.ids() {
                for pos in 0..tokens.len() {
                    let (a, b) = (batched.get(id, pos).unwrap(), stepped.get(id, pos).unwrap());
                    assert_eq!(bits(a), bits(b), "{synth} {preset} {id} position {pos}");
                }
            }
        }
    }
}

#[test]
fn capture_levels_keep_what_they_say_and_the_same_logits() {
    let bytes = common::read_reference("gguf/qwen3_gqa.q8_0.gguf");
    let model = Model::from_bytes(&bytes).unwrap();
    let path = PathSpec::parse("hf").unwrap();
    let tokens = [1u32, 5, 3, 7];
    let run = |capture| {
        let mut r = Runner::new(&model, &path, capture).unwrap();
        r.feed(&tokens).unwrap();
        let last = r.logits();
        (r.into_trace(), last)
    };
    let (full, last_full) = run(Capture::Full);
    let (stats, last_stats) = run(Capture::Stats);
    let (off, last_off) = run(Capture::Off);
    let logits = StageId::global(Stage::ResultOutput);
    let q = StageId::layer(0, Stage::Q);
    assert_eq!(last_full, last_stats);
    assert_eq!(last_full, last_off);
    assert_eq!(last_full, full.logits(3).unwrap());
    for pos in 0..tokens.len() {
        assert_eq!(bits(full.get(logits, pos).unwrap()), bits(off.get(logits, pos).unwrap()));
        assert_eq!(bits(full.get(logits, pos).unwrap()), bits(stats.get(logits, pos).unwrap()));
        // Statistics summarise exactly the values a full capture keeps.
        let values = full.get(q, pos).unwrap().to_f64();
        let s = stats.stats(q).unwrap()[pos];
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let rms = (values.iter().map(|v| v * v).sum::<f64>() / values.len() as f64).sqrt();
        assert_eq!((s.len, s.max, s.non_finite), (values.len(), max, 0));
        assert!((s.rms - rms).abs() <= 1e-12 * rms, "{} vs {rms}", s.rms);
    }
    assert_eq!(full.ids(), stats.ids());
    assert!(stats.get(q, 0).is_none() && off.get(q, 0).is_none() && off.stats(q).is_none());
    assert_eq!(off.ids(), &[logits]);
}

/// `last_logits_only` (what the benchmarks time, as llama-bench does) skips the other positions'
/// output projection and gives the same last logits, bit for bit, in both presets' kernels.
#[test]
fn last_logits_only_gives_the_same_last_logits() {
    let bytes = common::read_reference("gguf/qwen3_gqa.q8_0.gguf");
    let model = Model::from_bytes(&bytes).unwrap();
    for preset in ["hf", "llama.cpp"] {
        let path = PathSpec::parse(preset).unwrap();
        let run = |last_only: bool| {
            let mut r = Runner::new(&model, &path, Capture::Off).unwrap();
            if last_only {
                r.last_logits_only();
            }
            r.feed(&[1, 5, 3, 7]).unwrap();
            let prompt = r.logits();
            r.decode_greedy(3).unwrap();
            (prompt, r.logits(), r.into_trace())
        };
        let (all, skipped) = (run(false), run(true));
        let f32_bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(f32_bits(&all.0), f32_bits(&skipped.0), "{preset}");
        assert_eq!(f32_bits(&all.1), f32_bits(&skipped.1), "{preset}");
        assert!(!all.0.is_empty());
        assert_eq!(all.2.ids(), &[StageId::global(Stage::ResultOutput)]);
        assert!(skipped.2.ids().is_empty());
    }
}

#[test]
fn bos_is_prepended_only_when_the_path_says() {
    let hf = run_file("gguf/llama_small.f32.gguf", "hf", &[5, 6]);
    assert_eq!(hf.tokens, [5, 6], "ids given as ids are used as given");
    let prepend = run_file("gguf/llama_small.f32.gguf", "hf,bos=prepend", &[5, 6]);
    let bytes = common::read_reference("gguf/llama_small.f32.gguf");
    let bos = Config::from_gguf(&Gguf::parse(&bytes).unwrap()).unwrap().bos_token.unwrap();
    assert_eq!(prepend.tokens, [bos, 5, 6]);
    assert_eq!(prepend.positions(), 3);
}

#[test]
fn isolating_a_path_against_itself_changes_nothing() {
    let bytes = common::read_reference("gguf/qwen3_gqa.f32.gguf");
    let model = Model::from_bytes(&bytes).unwrap();
    let hf = PathSpec::hf();
    let tokens = [1, 7, 3, 9];
    let plain = forward(&model, &hf, &tokens, None).unwrap();
    for mode in [Isolation::Layer, Isolation::Stage] {
        let iso = forward(&model, &hf, &tokens, Some(Injection { reference: &plain, mode })).unwrap();
        for &id in plain.ids() {
            for pos in 0..tokens.len() {
                assert_eq!(plain.get(id, pos), iso.get(id, pos), "{mode:?} {id} {pos}");
            }
        }
    }
    // Injecting f64 values into an f32 path is fine (rounded); injecting mismatched shapes is not.
    let oracle = forward(&model, &PathSpec::preset("oracle-f64").unwrap(), &tokens, None).unwrap();
    let iso = forward(&model, &hf, &tokens, Some(Injection { reference: &oracle, mode: Isolation::Stage })).unwrap();
    assert_eq!(iso.positions(), 4);
    let short = forward(&model, &hf, &tokens[..2], None).unwrap();
    let err = forward(&model, &hf, &tokens, Some(Injection { reference: &short, mode: Isolation::Layer })).unwrap_err();
    assert!(err.to_string().contains("no tok_embd at position 2"), "{err}");
}

#[test]
fn paths_and_inputs_that_cannot_run_say_why() {
    // A model whose heads x head_dim (2 x 32) differs from its hidden size (32), like Qwen3-0.6B.
    let bytes = generate(&SynthSpec::parse("source-issue,head_dim=32").unwrap()).unwrap();
    let model = Model::from_bytes(&bytes).unwrap();
    assert_eq!(model.config.head_dim, 32);
    let err = forward(&model, &PathSpec::preset("skainet-legacy").unwrap(), &[1], None).unwrap_err().to_string();
    assert!(err.contains("head_dim = 16") && err.contains("dim_over_heads") && err.contains("64 rows"), "{err}");
    forward(&model, &PathSpec::hf(), &[1, 2], None).unwrap();

    let err = forward(&model, &PathSpec::hf(), &[64], None).unwrap_err().to_string();
    assert!(err.contains("token id 64 is out of range") && err.contains("64 tokens"), "{err}");
    assert!(forward(&model, &PathSpec::hf(), &[], None).is_err());
    let err = forward(&model, &PathSpec::parse("hf,bos=prepend").unwrap(), &[1], None).unwrap_err().to_string();
    assert!(err.contains("bos_token_id"), "{err}");
}

#[test]
fn configs_that_cannot_load_say_why() {
    let source = generate(&SynthSpec::source_issue()).unwrap();
    let g = Gguf::parse(&source).unwrap();
    // Rebuild the file with one metadata entry changed (or removed).
    let with = |key: &str, value: Option<WriterValue>| -> Vec<u8> {
        let mut w = Writer::new();
        for (k, v) in &g.metadata {
            if *k != key {
                w.metadata(*k, WriterValue::from(v));
            }
        }
        if let Some(v) = value {
            w.metadata(key, v);
        }
        for t in &g.tensors {
            w.tensor(t.name, t.ggml_type, &t.dims, t.data.to_vec()).unwrap();
        }
        w.to_bytes().unwrap()
    };
    let err_of = |bytes: Vec<u8>| Model::from_bytes(&bytes).err().map(|e| e.to_string()).unwrap_or_default();

    let e = err_of(with("general.architecture", Some(WriterValue::String("gemma3".into()))));
    assert!(e.contains("\"gemma3\" is not supported") && e.contains("qwen3, qwen2, llama"), "{e}");
    let e = err_of(with("qwen3.block_count", None));
    assert!(e.contains("qwen3.block_count is missing"), "{e}");
    let e = err_of(with("qwen3.attention.head_count_kv", Some(WriterValue::U32(3))));
    assert!(e.contains("qwen3.attention.head_count_kv is 3, expected a divisor of the head count 2"), "{e}");
    let e = err_of(with("qwen3.embedding_length", Some(WriterValue::String("32".into()))));
    assert!(e.contains("qwen3.embedding_length is the string \"32\""), "{e}");
    let e = err_of(with("qwen3.attention.key_length", Some(WriterValue::U32(8))));
    assert!(e.contains("value_length is 16, expected 8"), "{e}");
    let e = err_of(with("qwen3.feed_forward_length", Some(WriterValue::U32(48))));
    assert!(e.contains("blk.0.ffn_gate.weight has dims [32, 64], expected [32, 48]"), "{e}");
}
