//! The forward pass: one function for every path. It reads like the decoder it computes, one
//! comment per stage, and records every stage of every layer at every position in a [`Trace`].
//!
//! ```text
//! token -> tok_embd -> per layer: attn_norm -> q k v (+bias) -> q_normed k_normed (qwen3)
//!   -> q_rope k_rope -> KV cache -> kq (scaled scores) -> kq_softmax -> kqv -> attn_out
//!   -> ffn_inp (residual) -> ffn_norm -> ffn_gate ffn_up -> ffn_silu -> ffn_act (silu(gate) * up)
//!   -> ffn_out
//!   -> l_out (residual) ; then result_norm -> result_output (logits)
//! ```
//!
//! Positions run one at a time with a KV cache. A path in f64 (`precision=f64`) runs the same code
//! with `F = f64`. Isolation: given a reference trace, the pass replaces its own activation with the
//! reference's right after recording it, at every layer input (`layer`) or every stage (`stage`), so
//! each op's own error is separated from error carried in from earlier ops.

use crate::arch::Arch;
use crate::float::Float;
use crate::model::{Config, Model};
use crate::ops::matvec::{embedding_row, matvec, DenseCache};
use crate::ops::{rmsnorm, rope, rope_tables, silu, softmax};
use crate::path::{AttnScale, Bos, HeadDim, PathSpec, Precision, QkvBias, RopePairing, Softmax};
use crate::tokenizer::EncodeOptions;
use crate::trace::{Stage, StageId, Trace};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// Where a run takes activations from a reference trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// Propagate: each stage computes on the path's own earlier results.
    Off,
    /// Each layer starts from the reference's layer input (`tok_embd`, previous `l_out`).
    Layer,
    /// Each op starts from the reference's inputs: only an op's own math can differ.
    Stage,
}

impl Isolation {
    fn covers(self, stage: Stage) -> bool {
        match self {
            Isolation::Off => false,
            Isolation::Layer => matches!(stage, Stage::TokEmbd | Stage::LOut),
            Isolation::Stage => true,
        }
    }
}

/// A reference trace to inject, and where.
#[derive(Clone, Copy)]
pub struct Injection<'r> {
    pub reference: &'r Trace,
    pub mode: Isolation,
}

/// What a path runs on: token ids as given, or text for the model's tokenizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prompt {
    Ids(Vec<u32>),
    Text(String),
}

impl From<&[u32]> for Prompt {
    fn from(ids: &[u32]) -> Self {
        Prompt::Ids(ids.to_vec())
    }
}

impl<const N: usize> From<&[u32; N]> for Prompt {
    fn from(ids: &[u32; N]) -> Self {
        Prompt::Ids(ids.to_vec())
    }
}

impl From<&Vec<u32>> for Prompt {
    fn from(ids: &Vec<u32>) -> Self {
        Prompt::Ids(ids.clone())
    }
}

impl From<&Prompt> for Prompt {
    fn from(p: &Prompt) -> Self {
        p.clone()
    }
}

/// The token sequence a path runs. Text is tokenized (special tokens parsed) and gets a BOS as
/// the path says: `as_tokenizer` follows `tokenizer.ggml.add_bos_token`, `prepend` always,
/// `none` never. Token ids are used as given, except that `prepend` puts a BOS in front.
pub fn input_tokens(model: &Model<'_>, path: &PathSpec, prompt: &Prompt) -> Result<Vec<u32>> {
    let (mut ids, add_bos) = match prompt {
        Prompt::Ids(ids) => (ids.clone(), path.bos == Bos::Prepend),
        Prompt::Text(text) => {
            let tok = model.require_tokenizer()?;
            let ids = tok.encode(text, EncodeOptions { parse_special: true, add_special: false })?;
            let add = match path.bos {
                Bos::AsTokenizer => tok.add_bos,
                Bos::Prepend => true,
                Bos::None => false,
            };
            (ids, add)
        }
    };
    if add_bos {
        let bos = model.config.bos_token.ok_or_else(|| {
            Error::input("this path adds a BOS token but the model has no tokenizer.ggml.bos_token_id")
        })?;
        ids.insert(0, bos);
    }
    Ok(ids)
}

/// Run `path` on a prompt (BOS handled as the path says) and record every stage.
///
/// # Errors
/// Bad tokens, a path that cannot run on this model (e.g. its head size does not fit the weights),
/// or an injection whose shapes do not match.
pub fn forward(
    model: &Model<'_>,
    path: &PathSpec,
    prompt: impl Into<Prompt>,
    inject: Option<Injection<'_>>,
) -> Result<Trace> {
    let tokens = input_tokens(model, path, &prompt.into())?;
    match path.precision {
        Precision::F64 => run::<f64>(model, path, &tokens, inject),
        Precision::F32 => run::<f32>(model, path, &tokens, inject),
    }
}

/// A path's conventions resolved against one model: plain numbers and choices.
struct Plan<F> {
    head_dim: usize,
    pairing: RopePairing,
    rope_base: f64,
    eps: F,
    qk_eps: F,
    /// Multiplies the scores (`on_scores`) or the queries (`on_query`).
    scale: F,
    acc: Precision,
}

/// An f32 read from metadata as the decimal it was written from (`1e-6`, not 9.99999997e-7), so the
/// f64 path uses the value the model's authors meant (HF's config holds the decimal).
fn decimal(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

impl<F: Float> Plan<F> {
    fn new(model: &Model<'_>, path: &PathSpec) -> Result<Plan<F>> {
        let c = &model.config;
        let wq = &model.weights.layers[0].wq;
        let head_dim = match path.head_dim {
            HeadDim::KeyLength => c.head_dim,
            HeadDim::RopeDims => c.rope_dims.unwrap_or(wq.rows / c.heads),
            HeadDim::DimOverHeads => c.hidden / c.heads,
        };
        if head_dim * c.heads != wq.rows
            || head_dim * c.kv_heads != model.weights.layers[0].wk.rows
            || head_dim % 2 != 0
        {
            return Err(Error::input(format!(
                "this path takes head_dim = {head_dim} (head_dim={}), but {} has {} rows = {} heads x {}: \
                 the path cannot run this model",
                path.head_dim.name(),
                wq.name,
                wq.rows,
                c.heads,
                c.head_dim
            )));
        }
        let pairing = match (path.rope_pairing, c.arch) {
            (RopePairing::Auto, Arch::Llama) => RopePairing::Interleaved,
            (RopePairing::Auto, Arch::Qwen2 | Arch::Qwen3) => RopePairing::SplitHalf,
            (p, _) => p,
        };
        Ok(Plan {
            head_dim,
            pairing,
            rope_base: decimal(path.rope_base.resolve(c.rope_base)),
            eps: F::from_f64(decimal(path.norm_eps.resolve(c.eps))),
            qk_eps: F::from_f64(decimal(path.qk_norm_eps.resolve(c.eps))),
            scale: F::from_f64(1.0 / (head_dim as f64).sqrt()),
            acc: path.accumulate,
        })
    }
}

/// Records each stage, then injects the reference's values where the isolation mode says.
struct Recorder<'t, 'r> {
    trace: &'t mut Trace,
    inject: Option<Injection<'r>>,
}

impl Recorder<'_, '_> {
    fn stage<F: Float>(&mut self, id: StageId, pos: usize, x: &mut [F]) -> Result<()> {
        self.trace.record(id, pos, F::values(x));
        if let Some(Injection { reference, mode }) = self.inject {
            if mode.covers(id.stage) {
                let r = reference.get(id, pos).ok_or_else(|| {
                    Error::input(format!("the reference trace has no {id} at position {pos} to inject"))
                })?;
                if r.len() != x.len() {
                    return Err(Error::input(format!(
                        "cannot isolate {id}: the reference has {} values at position {pos}, this path {}",
                        r.len(),
                        x.len()
                    )));
                }
                for (i, xi) in x.iter_mut().enumerate() {
                    *xi = F::from_f64(r.get(i).unwrap_or(0.0));
                }
            }
        }
        Ok(())
    }
}

fn check_tokens(c: &Config, tokens: &[u32]) -> Result<()> {
    if tokens.is_empty() {
        return Err(Error::input("no tokens to run"));
    }
    if tokens.len() > c.context {
        return Err(Error::input(format!("{} tokens exceed the model's context length {}", tokens.len(), c.context)));
    }
    if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= c.vocab) {
        return Err(Error::input(format!(
            "token id {bad} is out of range: the vocabulary has {} tokens (0 to {})",
            c.vocab,
            c.vocab - 1
        )));
    }
    Ok(())
}

fn run<F: Float>(model: &Model<'_>, path: &PathSpec, tokens: &[u32], inject: Option<Injection<'_>>) -> Result<Trace> {
    let (c, w) = (&model.config, &model.weights);
    check_tokens(c, tokens)?;
    let plan = Plan::<F>::new(model, path)?;
    let (hd, nh, nkv) = (plan.head_dim, c.heads, c.kv_heads);
    let group = nh / nkv; // query heads per KV head (GQA)
    let (proj, acc, placement) = (path.projection, plan.acc, path.eps_placement);

    let mut trace = Trace::for_run(tokens.to_vec(), nh);
    let mut rec = Recorder { trace: &mut trace, inject };
    let mut dense = DenseCache::default();
    // KV cache per layer: one post-RoPE key and one value vector per position.
    let mut cache_k: Vec<Vec<Vec<F>>> = vec![Vec::with_capacity(tokens.len()); c.layers];
    let mut cache_v: Vec<Vec<Vec<F>>> = vec![Vec::with_capacity(tokens.len()); c.layers];
    let zeros = |n: usize| vec![F::ZERO; n];

    for (pos, &token) in tokens.iter().enumerate() {
        // Embedding: row `token` of token_embd.                                     [hidden]
        let mut x: Vec<F> = embedding_row(&w.token_embd, token as usize)?;
        rec.stage(StageId::global(Stage::TokEmbd), pos, &mut x)?;
        let (cos, sin) = rope_tables::<F>(pos, hd, plan.rope_base);

        for (l, layer) in w.layers.iter().enumerate() {
            let id = |stage| StageId::layer(l, stage);

            // 1. Attention RMSNorm.                                                  [hidden]
            let mut xn = zeros(c.hidden);
            rmsnorm(&mut xn, &x, &layer.attn_norm, plan.eps, placement, acc);
            rec.stage(id(Stage::AttnNorm), pos, &mut xn)?;

            // 2. Projections q = Wq xn, k = Wk xn, v = Wv xn (+ Qwen2 biases).   [heads * hd], [kv * hd]
            let mut q = zeros(nh * hd);
            let mut k = zeros(nkv * hd);
            let mut v = zeros(nkv * hd);
            matvec(&mut q, &layer.wq, &xn, proj, acc, &mut dense)?;
            matvec(&mut k, &layer.wk, &xn, proj, acc, &mut dense)?;
            matvec(&mut v, &layer.wv, &xn, proj, acc, &mut dense)?;
            if path.qkv_bias == QkvBias::Apply {
                for (out, bias) in [(&mut q, &layer.bq), (&mut k, &layer.bk), (&mut v, &layer.bv)] {
                    if let Some(b) = bias {
                        out.iter_mut().zip(b).for_each(|(o, &bi)| *o += F::from_f32(bi));
                    }
                }
            }
            rec.stage(id(Stage::Q), pos, &mut q)?;
            rec.stage(id(Stage::K), pos, &mut k)?;
            rec.stage(id(Stage::V), pos, &mut v)?;

            // 3. Qwen3: RMSNorm of each head of q and k (one weight of length hd for all heads).
            if let (Some(qw), Some(kw)) = (&layer.q_norm, &layer.k_norm) {
                for (vec, weight, stage) in [(&mut q, qw, Stage::QNormed), (&mut k, kw, Stage::KNormed)] {
                    for head in vec.chunks_exact_mut(hd) {
                        let input = head.to_vec();
                        rmsnorm(head, &input, weight, plan.qk_eps, placement, acc);
                    }
                    rec.stage(id(stage), pos, vec)?;
                }
            }

            // 4. RoPE on every head of q and k (position 0 is the identity).
            for head in q.chunks_exact_mut(hd).chain(k.chunks_exact_mut(hd)) {
                rope(head, &cos, &sin, plan.pairing);
            }
            rec.stage(id(Stage::QRope), pos, &mut q)?;
            rec.stage(id(Stage::KRope), pos, &mut k)?;

            // 5. KV cache: post-RoPE keys and values of every position so far.
            cache_k[l].push(k);
            cache_v[l].push(v);
            let (keys, values) = (&cache_k[l], &cache_v[l]);
            let n_keys = pos + 1;

            // 6. Scores: head h reads KV head h / group; scaled by 1/sqrt(hd).      [heads, pos + 1]
            let mut kq = zeros(nh * n_keys);
            for h in 0..nh {
                let g = h / group;
                let mut qh = q[h * hd..(h + 1) * hd].to_vec();
                if path.attn_scale == AttnScale::OnQuery {
                    qh.iter_mut().for_each(|x| *x = *x * plan.scale);
                }
                for (u, key) in keys.iter().enumerate() {
                    let mut s = F::dot(&qh, &key[g * hd..(g + 1) * hd], acc);
                    if path.attn_scale == AttnScale::OnScores {
                        s = s * plan.scale;
                    }
                    kq[h * n_keys + u] = s;
                }
            }
            rec.stage(id(Stage::Kq), pos, &mut kq)?;

            // 7. Softmax over the keys (causal: only keys up to this position exist).
            for row in kq.chunks_exact_mut(n_keys) {
                softmax(row, path.softmax == Softmax::MaxSubtracted, acc);
            }
            rec.stage(id(Stage::KqSoftmax), pos, &mut kq)?;

            // 8. Weighted sum of the values, heads merged.                            [heads * hd]
            let mut kqv = zeros(nh * hd);
            for h in 0..nh {
                let g = h / group;
                let p = &kq[h * n_keys..(h + 1) * n_keys];
                for d in 0..hd {
                    let column: Vec<F> = values.iter().map(|v| v[g * hd + d]).collect();
                    kqv[h * hd + d] = F::dot(p, &column, acc);
                }
            }
            rec.stage(id(Stage::Kqv), pos, &mut kqv)?;

            // 9. Output projection and the first residual.                             [hidden]
            let mut attn_out = zeros(c.hidden);
            matvec(&mut attn_out, &layer.wo, &kqv, proj, acc, &mut dense)?;
            rec.stage(id(Stage::AttnOut), pos, &mut attn_out)?;
            let mut ffn_inp: Vec<F> = x.iter().zip(&attn_out).map(|(&a, &b)| a + b).collect();
            rec.stage(id(Stage::FfnInp), pos, &mut ffn_inp)?;

            // 10. FFN RMSNorm, then SwiGLU: down(silu(gate(x)) * up(x)).                [ffn] -> [hidden]
            let mut fx = zeros(c.hidden);
            rmsnorm(&mut fx, &ffn_inp, &layer.ffn_norm, plan.eps, placement, acc);
            rec.stage(id(Stage::FfnNorm), pos, &mut fx)?;
            let mut gate = zeros(c.ffn);
            let mut up = zeros(c.ffn);
            matvec(&mut gate, &layer.w_gate, &fx, proj, acc, &mut dense)?;
            matvec(&mut up, &layer.w_up, &fx, proj, acc, &mut dense)?;
            rec.stage(id(Stage::FfnGate), pos, &mut gate)?;
            rec.stage(id(Stage::FfnUp), pos, &mut up)?;
            let mut act: Vec<F> = gate.iter().map(|&g| silu(g)).collect();
            rec.stage(id(Stage::FfnSilu), pos, &mut act)?;
            act.iter_mut().zip(&up).for_each(|(a, &u)| *a = *a * u);
            rec.stage(id(Stage::FfnAct), pos, &mut act)?;
            let mut ffn_out = zeros(c.hidden);
            matvec(&mut ffn_out, &layer.w_down, &act, proj, acc, &mut dense)?;
            rec.stage(id(Stage::FfnOut), pos, &mut ffn_out)?;

            // 11. Second residual: the layer's output is the next layer's input.
            x = ffn_inp.iter().zip(&ffn_out).map(|(&a, &b)| a + b).collect();
            rec.stage(id(Stage::LOut), pos, &mut x)?;
        }

        // Final RMSNorm and the output projection (the embedding when tied).          [vocab]
        let mut xn = zeros(c.hidden);
        rmsnorm(&mut xn, &x, &w.output_norm, plan.eps, placement, acc);
        rec.stage(StageId::global(Stage::ResultNorm), pos, &mut xn)?;
        let mut logits = zeros(c.vocab);
        matvec(&mut logits, &w.output, &xn, proj, acc, &mut dense)?;
        rec.stage(StageId::global(Stage::ResultOutput), pos, &mut logits)?;
    }
    Ok(trace)
}
