//! The dump format: every recorded stage, named as documented, `[T, ...]` shapes, attention as
//! `[n_head, T, T]` with masked entries 0, f32 (f64 for the oracle), and the identifying metadata.

mod common;

use paritylab::dump::{sha256_hex, write, DumpInfo};
use paritylab::forward::forward;
use paritylab::model::Model;
use paritylab::path::PathSpec;
use safetensors::{Dtype, SafeTensors};

#[test]
fn a_dump_holds_every_stage_with_its_metadata() {
    let bytes = common::read_reference("gguf/qwen3_gqa.q8_0.gguf");
    let model = Model::from_bytes(&bytes).unwrap();
    let tokens = [1, 2, 3];
    for (preset, dtype) in [("hf", Dtype::F32), ("oracle-f64", Dtype::F64)] {
        let spec = PathSpec::preset(preset).unwrap();
        let trace = forward(&model, &spec, &tokens, None).unwrap();
        let sha = sha256_hex(&bytes);
        let file = write(&trace, &DumpInfo { path: &spec, model_sha256: &sha, architecture: "qwen3" }).unwrap();
        // One trace, one file, byte for byte (the metadata's keys come out sorted).
        let again = write(&trace, &DumpInfo { path: &spec, model_sha256: &sha, architecture: "qwen3" }).unwrap();
        assert!(file == again, "{preset}: two dumps of one trace differ");
        let st = SafeTensors::deserialize(&file).unwrap();
        let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&file[8..8 + n]).unwrap();
        let keys: Vec<&String> = header["__metadata__"].as_object().unwrap().keys().collect();
        assert!(keys.len() == 7 && keys.is_sorted(), "{keys:?}");
        assert_eq!(st.len(), trace.ids().len());
        for &id in trace.ids() {
            let t = st.tensor(&id.name()).unwrap();
            assert_eq!(t.dtype(), dtype);
            let want_shape = match id.stage.name() {
                "kq" | "kq_softmax" => vec![4, 3, 3],
                "q" | "q_normed" | "q_rope" | "kqv" => vec![3, 64],
                "k" | "v" | "k_normed" | "k_rope" => vec![3, 32],
                "ffn_gate" | "ffn_up" | "ffn_silu" | "ffn_act" => vec![3, 128],
                "result_output" => vec![3, 128],
                _ => vec![3, 64],
            };
            assert_eq!(t.shape(), want_shape, "{id}");
        }
        // Values round-trip; the attention matrix is causal (upper triangle 0) and rows sum to 1.
        let probs = common::safetensor_f64(&st, "blk.1.kq_softmax").unwrap().1;
        for h in 0..4 {
            for q in 0..3 {
                let row = &probs[h * 9 + q * 3..h * 9 + q * 3 + 3];
                assert!(row[q + 1..].iter().all(|&p| p == 0.0));
                assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-6);
            }
        }
        let logits = common::safetensor_f64(&st, "result_output").unwrap().1;
        assert_eq!(logits[128..256].iter().map(|&x| x as f32).collect::<Vec<_>>(), trace.logits(1).unwrap());
        let (_, meta) = SafeTensors::read_metadata(&file).unwrap();
        let meta = meta.metadata().clone().unwrap();
        assert_eq!(meta["format"], "paritylab-dump");
        assert_eq!(meta["format_version"], "1");
        assert_eq!(meta["token_ids"], "[1,2,3]");
        assert_eq!(meta["path_text"], preset);
        assert_eq!(PathSpec::parse(&meta["path"]).unwrap(), spec);
        assert_eq!(meta["model_sha256"], sha);
        assert_eq!(meta["architecture"], "qwen3");
    }
}
