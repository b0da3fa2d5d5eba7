//! A real model: SmolLM2-135M-Instruct Q4_1 (llama architecture, 30 layers, GQA 9/3, tied Q8_0
//! embedding). The `hf` path must match HF transformers on the dequantised weights within 2e-4 at
//! every position, and agree with llama.cpp's top-1 wherever llama.cpp's top-2 gap exceeds 0.1.

mod common;

use common::safetensor_f64;
use paritylab::forward::forward;
use paritylab::model::Model;
use paritylab::path::PathSpec;

fn top2(row: &[f64]) -> (usize, f64) {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
    (idx[0], row[idx[0]] - row[idx[1]])
}

#[test]
fn hf_path_matches_transformers_and_llama_cpp_top1() {
    let bytes = common::smollm2_bytes();
    assert_eq!(paritylab::dump::sha256_hex(&bytes)[..8], *"b179c952", "unexpected SmolLM2 file");
    let model = Model::from_bytes(&bytes).unwrap();
    assert_eq!((model.config.layers, model.config.heads, model.config.kv_heads, model.config.head_dim), (30, 9, 3, 64));
    for prompt in ["p1_capital", "p2_sentence"] {
        let st_bytes = common::read_reference(&format!("smollm2/{prompt}.safetensors"));
        let st = safetensors::SafeTensors::deserialize(&st_bytes).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&st_bytes).unwrap();
        let ids: Vec<u32> = serde_json::from_str(&meta.metadata().as_ref().unwrap()["token_ids"]).unwrap();
        let trace = forward(&model, &PathSpec::hf(), &ids, None).unwrap();
        let (shape, deq) = safetensor_f64(&st, "deq_q4_1.logits").unwrap();
        let (_, lcpp) = safetensor_f64(&st, "llamacpp.logits").unwrap();
        let vocab = shape[1];
        let mut worst = 0f64;
        let mut compared_top1 = 0;
        for pos in 0..ids.len() {
            let ours: Vec<f64> = trace.logits(pos).unwrap().iter().map(|&x| f64::from(x)).collect();
            let want = &deq[pos * vocab..(pos + 1) * vocab];
            let diff = ours.iter().zip(want).fold(0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(diff <= 2e-4, "{prompt} position {pos}: max |logit - deq_q4_1| = {diff:.3e} > 2e-4");
            worst = worst.max(diff);
            let (lcpp_top, gap) = top2(&lcpp[pos * vocab..(pos + 1) * vocab]);
            if gap > 0.1 {
                assert_eq!(top2(&ours).0, lcpp_top, "{prompt} position {pos}: top-1 differs from llama.cpp's");
                compared_top1 += 1;
            }
        }
        eprintln!("{prompt}: {} positions, max |logit - deq_q4_1| {worst:.3e}, top-1 = llama.cpp's at {compared_top1} positions with gap > 0.1", ids.len());
    }
}
