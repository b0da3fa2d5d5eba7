//! Determinism: for the same model, path and tokens, every stage value of every position and the
//! logits are the same bits whatever the number of threads (1, 2, 3 and 4), for every preset,
//! weight type and way of feeding tokens (a prompt batch, then single decoding steps). Rows are
//! split among threads into tasks whose size follows the thread count, and no value may depend on
//! the split. Natively the llama.cpp kernels have an AVX2 variant chosen at run time (single
//! positions of Q4_0, Q4_1 and Q8_0 rows); the property holds whichever runs.
//! The same bits between the wasm builds, and between native and wasm, are pinned by
//! `tests/e2e/determinism.test.mjs`.

mod common;

use paritylab::forward::{forward, Runner};
use paritylab::model::Model;
use paritylab::path::PathSpec;
use paritylab::synth::{generate, SynthSpec};
use paritylab::trace::{Capture, Trace};

/// Every preset, and hf accumulating in f64.
const PRESETS: &[&str] = &["hf", "oracle-f64", "llama.cpp", "skainet-dsl", "skainet-legacy", "hf,accumulate=f64"];

/// What one run leaves: the trace (prompt positions, then decoded ones) and the last logits.
struct Run {
    trace: Trace,
    prompt_logits: Vec<f32>,
    last_logits: Vec<f32>,
}

/// `prompt` fed as one batch, then `decode` greedy steps (one token fed at a time), in a pool of
/// `threads` threads, capturing every value.
fn run(model: &Model<'_>, path: &PathSpec, prompt: &[u32], decode: usize, threads: usize) -> Run {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| {
        let mut r = Runner::new(model, path, Capture::Full).unwrap();
        r.feed(prompt).unwrap();
        let prompt_logits = r.logits();
        r.decode_greedy(decode).unwrap();
        let last_logits = r.logits();
        Run { trace: r.into_trace(), prompt_logits, last_logits }
    })
}

fn f32_bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Every stage of every position, bit for bit (values as f64: exact for f32 paths); on a
/// difference, where and by how much.
fn assert_same_trace(what: &str, a: &Trace, b: &Trace) {
    assert_eq!(a.tokens, b.tokens, "{what}: tokens (prompt and decoded)");
    assert_eq!(a.ids(), b.ids(), "{what}: stages");
    assert_eq!(a.is_f64(), b.is_f64(), "{what}: precision");
    for &id in a.ids() {
        for pos in 0..a.positions() {
            let (x, y) = (a.get(id, pos).unwrap().to_f64(), b.get(id, pos).unwrap().to_f64());
            assert_eq!(x.len(), y.len(), "{what}: {id} position {pos}: length");
            if let Some(i) = (0..x.len()).find(|&i| x[i].to_bits() != y[i].to_bits()) {
                let max = x.iter().zip(&y).fold(0f64, |m, (p, q)| m.max((p - q).abs()));
                panic!("{what}: {id} position {pos}: value {i} is {} then {} (max |diff| {max:e})", x[i], y[i]);
            }
        }
    }
}

fn assert_same_run(what: &str, want: &Run, got: &Run) {
    assert_same_trace(what, &want.trace, &got.trace);
    assert_eq!(f32_bits(&want.prompt_logits), f32_bits(&got.prompt_logits), "{what}: logits after the prompt");
    assert_eq!(f32_bits(&want.last_logits), f32_bits(&got.last_logits), "{what}: logits after decoding");
}

/// Runs `model` with every preset in `presets` on `threads[0]` and each other thread count, and
/// checks the results are the same bits.
fn check_model(name: &str, model: &Model<'_>, presets: &[&str], prompt: &[u32], decode: usize, threads: &[usize]) {
    for preset in presets {
        let path = PathSpec::parse(preset).unwrap();
        let first = run(model, &path, prompt, decode, threads[0]);
        assert_eq!(first.trace.positions(), prompt.len() + decode);
        assert!(first.trace.ids().len() > 10, "{name} {preset}: every stage captured");
        for &n in &threads[1..] {
            let other = run(model, &path, prompt, decode, n);
            assert_same_run(&format!("{name} {preset}: {} threads vs {n}", threads[0]), &first, &other);
        }
        // The decoded positions fed as one batch with the prompt: the same bits as single steps (a
        // batch of one position takes other kernels than a batch of several, natively the AVX2
        // ones for Q4_0, Q4_1 and Q8_0 rows with llama.cpp's rounding).
        let all = &first.trace.tokens;
        let n = *threads.last().unwrap();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap();
        let batched = pool.install(|| forward(model, &path, all, None).unwrap());
        assert_same_trace(
            &format!("{name} {preset}: one batch vs prompt and steps, {n} threads"),
            &first.trace,
            &batched,
        );
    }
}

#[test]
fn synthetic_models_give_the_same_bits_on_1_2_3_and_4_threads() {
    // Rows per matmul that split into differently sized tasks for each thread count (q, k and v
    // 256 + 2 x 128 rows; the output 300, not a whole number of four-row tiles); GQA; qwen3's QK
    // norms, qwen2's biases, llama.
    let shape = "hidden=256,heads=4,kv_heads=2,head_dim=64,ffn=384,layers=2,vocab=300,dist=normal:0.05";
    let prompt = [3u32, 1, 4, 1, 5, 9, 2];
    for (arch, t) in [("llama", "q4_0"), ("qwen2", "q8_0"), ("qwen3", "f16"), ("llama", "bf16"), ("qwen3", "f32")] {
        let spec = format!("source-issue,arch={arch},type={t},{shape}");
        let model_bytes = generate(&SynthSpec::parse(&spec).unwrap()).unwrap();
        let model = Model::from_bytes(&model_bytes).unwrap();
        check_model(&spec, &model, PRESETS, &prompt, 3, &[1, 2, 3, 4]);
    }
}

#[test]
fn quantized_models_of_every_block_type_give_the_same_bits_on_1_2_3_and_4_threads() {
    // llama.cpp's own quantisations of one model (rows of 256): the block types without a synthetic
    // generator (Q4_1, Q5_0, Q5_1, IQ4_NL, the K-quants, IQ4_XS), all of them read by the tile
    // kernels or block by block.
    let prompt = [1u32, 2, 3, 4, 5];
    for t in ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "iq4_nl", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_xs"] {
        let name = format!("w256/gguf/llama_w256.{t}.gguf");
        let bytes = common::read_reference(&name);
        let model = Model::from_bytes(&bytes).unwrap();
        // Every preset where the tile kernels run; elsewhere the two kinds of matmul (decoded rows
        // in f32, llama.cpp's integer blocks), the other presets only changing what is around them.
        let presets = if ["q4_0", "q4_1", "q8_0"].contains(&t) { PRESETS } else { &["hf", "llama.cpp"][..] };
        check_model(&name, &model, presets, &prompt, 3, &[1, 2, 3, 4]);
    }
    for t in ["q4_1", "q5_1", "q8_0"] {
        let name = format!("w256/gguf/qwen3_w256.{t}.gguf");
        let bytes = common::read_reference(&name);
        let model = Model::from_bytes(&bytes).unwrap();
        check_model(&name, &model, &["hf", "llama.cpp"], &prompt, 3, &[1, 2, 3, 4]);
    }
}

#[test]
fn smollm2_q4_1_gives_the_same_bits_on_1_2_and_4_threads() {
    // A real model: Q4_1 projections, a tied Q8_0 embedding, 30 layers, GQA 9/3.
    let bytes = common::smollm2_bytes();
    let model = Model::from_bytes(&bytes).unwrap();
    // "<|im_start|>The capital of France is" (any ids would do).
    let prompt = [1u32, 504, 2365, 314, 260, 3458, 28];
    check_model("SmolLM2 Q4_1", &model, &["hf", "llama.cpp"], &prompt, 3, &[1, 2, 4]);
}
