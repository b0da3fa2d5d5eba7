//! candle's native CPU speed on the inference benchmark (a peer in bench/peers.mjs).
//!
//! `candle-bench MODEL.gguf bench/prompts.json` loads the GGUF with candle-transformers'
//! `quantized_llama::ModelWeights::from_gguf`, warms up, then measures once and prints one JSON
//! line of tokens/s: `pp16` and `pp64` (one forward over the whole prompt from an empty cache,
//! ending with the last position's logits), `tg32` (the start token at position 0, untimed, then
//! 32 single-token forwards at positions 1-32, each fed the previous step's argmax).
//!
//! Threads: candle's CPU backend sizes its pools from the environment when first used,
//! `RAYON_NUM_THREADS` (its rayon pool) and `CANDLE_NUM_THREADS` (the barrier pool of the
//! quantized matmuls, defaulting to `RAYON_NUM_THREADS`); bench/peers.mjs sets both.

use std::time::Instant;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Run one forward of `ids` at `pos` and bring the logits back (so the work is surely done).
fn forward(model: &mut ModelWeights, ids: &[u32], pos: usize) -> Result<Vec<f32>> {
    let x = Tensor::new(ids, &Device::Cpu)?.unsqueeze(0)?;
    Ok(model.forward(&x, pos)?.squeeze(0)?.to_vec1::<f32>()?)
}

fn argmax(xs: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best as u32
}

/// Tokens/s of one forward over `ids` from an empty cache.
fn prompt(model: &mut ModelWeights, ids: &[u32]) -> Result<f64> {
    model.clear_kv_cache();
    let t = Instant::now();
    forward(model, ids, 0)?;
    Ok(ids.len() as f64 / t.elapsed().as_secs_f64())
}

/// Tokens/s of `n` greedy single-token forwards after `start` at position 0.
fn decode(model: &mut ModelWeights, start: u32, n: usize) -> Result<f64> {
    model.clear_kv_cache();
    let mut next = argmax(&forward(model, &[start], 0)?);
    let t = Instant::now();
    for i in 0..n {
        next = argmax(&forward(model, &[next], 1 + i)?);
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

fn ids(v: &serde_json::Value, key: &str) -> Result<Vec<u32>> {
    let arr = v[key].as_array().ok_or_else(|| format!("prompts: no array {key}"))?;
    Ok(arr
        .iter()
        .map(|x| x.as_u64().map(|x| x as u32).ok_or("prompts: not a token id"))
        .collect::<std::result::Result<_, _>>()?)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        return Err("usage: candle-bench MODEL.gguf PROMPTS.json".into());
    }
    let prompts: serde_json::Value = serde_json::from_slice(&std::fs::read(&args[2])?)?;
    let (pp16, pp64) = (ids(&prompts, "pp16")?, ids(&prompts, "pp64")?);
    let start = prompts["tg_start"].as_u64().ok_or("prompts: no tg_start")? as u32;
    let n_gen = prompts["tg"].as_u64().unwrap_or(32) as usize;

    let t = Instant::now();
    let mut file = std::fs::File::open(&args[1])?;
    let content = gguf_file::Content::read(&mut file)?;
    let mut model = ModelWeights::from_gguf(content, &mut file, &Device::Cpu)?;
    let load_s = t.elapsed().as_secs_f64();

    // Warm-up, untimed (first use of the pools, repacked weights, page faults), like llama-bench.
    prompt(&mut model, &pp16)?;
    prompt(&mut model, &pp64)?;
    decode(&mut model, start, 4)?;

    let pp16 = prompt(&mut model, &pp16)?;
    let pp64 = prompt(&mut model, &pp64)?;
    let tg = decode(&mut model, start, n_gen)?;
    println!(
        "{}",
        serde_json::json!({
            "threads": candle_core::utils::get_num_threads(),
            "pp16": pp16,
            "pp64": pp64,
            format!("tg{n_gen}"): tg,
            "load_s": load_s,
            "avx": candle_core::utils::with_avx(),
        })
    );
    Ok(())
}
