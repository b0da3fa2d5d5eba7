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
use crate::ops::matvec::{embedding_row, matmul, matmuls, DenseCache};
use crate::ops::{each_row, rmsnorm, rope, rope_tables, silu, softmax};
use crate::path::{ActivationQuant, AttnScale, Bos, HeadDim, PathSpec, Precision, QkvBias, RopePairing, Softmax};
use crate::tokenizer::EncodeOptions;
use crate::trace::{Capture, Stage, StageId, StageStats, Trace};
use crate::{Error, Result};
use rayon::prelude::*;
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
        Precision::F64 => run::<f64>(model, path, &tokens, inject, None, Capture::Full),
        Precision::F32 => run::<f32>(model, path, &tokens, inject, None, Capture::Full),
    }
}

/// [`forward`] keeping only what `capture` says (no injection: that needs every value).
pub fn forward_captured(
    model: &Model<'_>,
    path: &PathSpec,
    prompt: impl Into<Prompt>,
    capture: Capture,
) -> Result<Trace> {
    let tokens = input_tokens(model, path, &prompt.into())?;
    match path.precision {
        Precision::F64 => run::<f64>(model, path, &tokens, None, None, capture),
        Precision::F32 => run::<f32>(model, path, &tokens, None, None, capture),
    }
}

/// A run that goes on: feed the prompt, then one token at a time (decoding), keeping what
/// `capture` says. [`forward`] is a `Runner` fed the whole prompt at once.
pub struct Runner<'m> {
    state: Either<'m>,
}

enum Either<'m> {
    F32(State<'m, 'static, f32>),
    F64(State<'m, 'static, f64>),
}

impl<'m> Runner<'m> {
    /// A runner for `path` on `model` (no tokens yet).
    ///
    /// # Errors
    /// The path cannot run this model (e.g. its head size does not fit the weights).
    pub fn new(model: &'m Model<'m>, path: &PathSpec, capture: Capture) -> Result<Runner<'m>> {
        let state = match path.precision {
            Precision::F64 => Either::F64(State::new(model, path, capture, None)?),
            Precision::F32 => Either::F32(State::new(model, path, capture, None)?),
        };
        Ok(Runner { state })
    }

    /// Run `tokens` (ids, used as given) at the next positions.
    ///
    /// # Errors
    /// No tokens, an id outside the vocabulary, or more positions than the model's context.
    pub fn feed(&mut self, tokens: &[u32]) -> Result<()> {
        match &mut self.state {
            Either::F32(s) => s.feed(tokens),
            Either::F64(s) => s.feed(tokens),
        }
    }

    /// From now on compute only the logits of the last position of each batch, as llama.cpp does
    /// for a prompt (and `llama-bench` times): the output projection of the other positions is
    /// skipped, and the trace gets no `result_output` stage. [`Runner::logits`] is unchanged.
    pub fn last_logits_only(&mut self) {
        match &mut self.state {
            Either::F32(s) => s.last_only = true,
            Either::F64(s) => s.last_only = true,
        }
    }

    /// Decode `steps` tokens greedily: feed [`Runner::argmax`] back, one token at a time.
    ///
    /// # Errors
    /// Nothing was fed yet, or the model's context is full.
    pub fn decode_greedy(&mut self, steps: usize) -> Result<()> {
        // The KV cache for every step up front: grown a position at a time it would double (and
        // leave freed blocks behind in wasm memory, which never shrinks).
        match &mut self.state {
            Either::F32(s) => s.reserve(steps)?,
            Either::F64(s) => s.reserve(steps)?,
        }
        for _ in 0..steps {
            let next = self.argmax().ok_or_else(|| Error::input("decoding needs a prompt first"))?;
            self.feed(&[next])?;
        }
        Ok(())
    }

    /// The logits after the last token fed (empty before any).
    pub fn logits(&self) -> Vec<f32> {
        match &self.state {
            Either::F32(s) => s.last_logits.clone(),
            Either::F64(s) => s.last_logits.iter().map(|&x| x as f32).collect(),
        }
    }

    /// The most likely next token (greedy decoding; the lowest id on ties).
    pub fn argmax(&self) -> Option<u32> {
        let logits = self.logits();
        let best = logits.iter().enumerate().reduce(|b, x| if x.1.total_cmp(b.1).is_gt() { x } else { b });
        best.map(|(i, _)| i as u32)
    }

    /// Positions run so far.
    pub fn positions(&self) -> usize {
        self.trace().tokens.len()
    }

    /// What was recorded so far.
    pub fn trace(&self) -> &Trace {
        match &self.state {
            Either::F32(s) => &s.rec.trace,
            Either::F64(s) => &s.rec.trace,
        }
    }

    pub fn into_trace(self) -> Trace {
        match self.state {
            Either::F32(s) => s.rec.trace,
            Either::F64(s) => s.rec.trace,
        }
    }
}

/// [`forward`] with the first layer's input nudged by a relative 1e-7 (a sign per element from
/// `seed`): the spread between such runs is the noise floor of paths whose rounding is chaotic
/// (8-bit activation rounding), where an f64 twin measures nothing useful.
pub fn forward_perturbed(
    model: &Model<'_>,
    path: &PathSpec,
    prompt: impl Into<Prompt>,
    seed: u64,
    capture: Capture,
) -> Result<Trace> {
    let tokens = input_tokens(model, path, &prompt.into())?;
    match path.precision {
        Precision::F64 => run::<f64>(model, path, &tokens, None, Some(seed), capture),
        Precision::F32 => run::<f32>(model, path, &tokens, None, Some(seed), capture),
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
    rounding: ActivationQuant,
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
        if path.activation_quant == ActivationQuant::LlamaCpp
            && (path.precision == Precision::F64 || path.accumulate == Precision::F64)
        {
            return Err(Error::input(
                "activation_quant=llama_cpp rounds activations to 8-bit blocks and sums integers, in f32 as \
                 llama.cpp does: use precision=f32 and accumulate=f32 with it",
            ));
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
            rounding: path.activation_quant,
        })
    }
}

/// Records each stage (values, statistics or nothing, as the trace's capture says), then injects
/// the reference's values where the isolation mode says.
struct Recorder<'r> {
    trace: Trace,
    inject: Option<Injection<'r>>,
}

impl Recorder<'_> {
    /// Whether an injection replaces any of the attention's inner stages (scores, softmax, kqv).
    fn injects_attention(&self) -> bool {
        self.inject.is_some_and(|i| [Stage::Kq, Stage::KqSoftmax, Stage::Kqv].iter().any(|&s| i.mode.covers(s)))
    }

    /// Stage `id` for positions `first..`: `xs` holds one vector of `n` values per position.
    fn stage<F: Float>(&mut self, id: StageId, first: usize, xs: &mut [F], n: usize) -> Result<()> {
        for (i, x) in xs.chunks_exact_mut(n.max(1)).enumerate() {
            self.one(id, first + i, x)?;
        }
        Ok(())
    }

    fn one<F: Float>(&mut self, id: StageId, pos: usize, x: &mut [F]) -> Result<()> {
        if self.trace.keeps_values(id) {
            self.trace.record(id, pos, F::values(x));
        } else if self.trace.keeps_stats(id) {
            self.trace.record_stats(id, pos, StageStats::of(x.iter().map(|v| v.to_f64())));
        }
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

fn check_tokens(c: &Config, done: usize, tokens: &[u32]) -> Result<()> {
    if tokens.is_empty() {
        return Err(Error::input("no tokens to run"));
    }
    if done + tokens.len() > c.context {
        return Err(Error::input(format!(
            "{} tokens exceed the model's context length {}",
            done + tokens.len(),
            c.context
        )));
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

/// One batch of `tokens` from an empty cache, keeping what `capture` says; `perturb`: see
/// [`forward_perturbed`].
fn run<F: Float>(
    model: &Model<'_>,
    path: &PathSpec,
    tokens: &[u32],
    inject: Option<Injection<'_>>,
    perturb: Option<u64>,
    capture: Capture,
) -> Result<Trace> {
    let mut state = State::<F>::new(model, path, capture, inject)?;
    state.perturb = perturb;
    state.feed(tokens)?;
    Ok(state.rec.trace)
}

/// A run in progress: the KV cache and the trace so far. Tokens are fed in batches (the prompt,
/// then one token per decoding step); a batch goes through each layer together, so a weight row is
/// read once per batch, and every value is the bits a position-by-position run gives.
struct State<'m, 'r, F> {
    model: &'m Model<'m>,
    path: PathSpec,
    plan: Plan<F>,
    rec: Recorder<'r>,
    dense: DenseCache,
    /// Per layer, post-RoPE keys and the values of every position so far, `[pos][kv * hd]`.
    cache_k: Vec<Vec<F>>,
    cache_v: Vec<Vec<F>>,
    /// The last position's logits.
    last_logits: Vec<F>,
    /// Nudge the first layer's input by a relative 1e-7 (seeded signs), to measure how a path
    /// whose rounding is chaotic spreads a tiny change ([`forward_perturbed`]).
    perturb: Option<u64>,
    /// Compute the logits of each batch's last position only ([`Runner::last_logits_only`]).
    last_only: bool,
}

impl<'m, 'r, F: Float> State<'m, 'r, F> {
    fn new(model: &'m Model<'m>, path: &PathSpec, capture: Capture, inject: Option<Injection<'r>>) -> Result<Self> {
        let plan = Plan::<F>::new(model, path)?;
        let c = &model.config;
        Ok(State {
            model,
            path: path.clone(),
            plan,
            rec: Recorder { trace: Trace::with_capture(Vec::new(), c.heads, capture), inject },
            dense: DenseCache::default(),
            cache_k: vec![Vec::new(); c.layers],
            cache_v: vec![Vec::new(); c.layers],
            last_logits: Vec::new(),
            perturb: None,
            last_only: false,
        })
    }

    /// Room in the KV cache for `positions` more positions (at most up to the model's context).
    fn reserve(&mut self, positions: usize) -> Result<()> {
        let c = &self.model.config;
        let left = c.context.saturating_sub(self.rec.trace.tokens.len());
        let room = positions.min(left) * c.kv_heads * self.plan.head_dim;
        for cache in self.cache_k.iter_mut().chain(self.cache_v.iter_mut()) {
            cache.try_reserve_exact(room).map_err(|_| {
                Error::input(format!("not enough memory for the KV cache of {positions} more positions"))
            })?;
        }
        Ok(())
    }

    /// Run `tokens` at the next positions and record every stage, on a thread of the pool (see
    /// [`crate::ops::matvec::in_pool`]).
    fn feed(&mut self, tokens: &[u32]) -> Result<()> {
        crate::ops::matvec::in_pool(|| self.feed_here(tokens))
    }

    fn feed_here(&mut self, tokens: &[u32]) -> Result<()> {
        let (model, path, plan) = (self.model, &self.path, &self.plan);
        let (c, w) = (&model.config, &model.weights);
        let p0 = self.rec.trace.tokens.len();
        check_tokens(c, p0, tokens)?;
        self.rec.trace.tokens.extend_from_slice(tokens);
        let n = tokens.len();
        let (hd, nh, nkv) = (plan.head_dim, c.heads, c.kv_heads);
        let group = nh / nkv; // query heads per KV head (GQA)
        let (proj, acc, placement) = (path.projection, plan.acc, path.eps_placement);
        let (qn, kvn) = (nh * hd, nkv * hd);
        let rec = &mut self.rec;
        let dense = &mut self.dense;
        let zeros = |len: usize| vec![F::ZERO; len];
        let tables: Vec<(Vec<F>, Vec<F>)> = (p0..p0 + n).map(|p| rope_tables::<F>(p, hd, plan.rope_base)).collect();

        // Embedding: row `token` of token_embd.                                     [n, hidden]
        let mut x = Vec::with_capacity(n * c.hidden);
        for &token in tokens {
            x.extend(embedding_row::<F>(&w.token_embd, token as usize)?);
        }
        rec.stage(StageId::global(Stage::TokEmbd), p0, &mut x, c.hidden)?;
        if let Some(seed) = self.perturb {
            let nudge = F::from_f64(1e-7);
            for (i, xi) in x.iter_mut().enumerate() {
                // splitmix64 of (seed, absolute element index): a sign per element.
                let mut z = seed.wrapping_add(((p0 * c.hidden + i) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                let d = if (z ^ (z >> 31)) & 1 == 0 { nudge } else { -nudge };
                *xi = *xi + *xi * d;
            }
        }

        for (l, layer) in w.layers.iter().enumerate() {
            let id = |stage| StageId::layer(l, stage);

            // 1. Attention RMSNorm.                                                  [n, hidden]
            let mut xn = zeros(n * c.hidden);
            each_row(&mut xn, c.hidden, |i, o| {
                rmsnorm(o, &x[i * c.hidden..(i + 1) * c.hidden], &layer.attn_norm, plan.eps, placement, acc);
            });
            rec.stage(id(Stage::AttnNorm), p0, &mut xn, c.hidden)?;

            // 2. Projections q = Wq xn, k = Wk xn, v = Wv xn (+ Qwen2 biases).   [n, heads * hd], [n, kv * hd]
            let mut q = zeros(n * qn);
            let mut k = zeros(n * kvn);
            let mut v = zeros(n * kvn);
            let qkv = &mut [(&mut q[..], &layer.wq), (&mut k[..], &layer.wk), (&mut v[..], &layer.wv)];
            matmuls(qkv, &xn, proj, acc, plan.rounding, dense)?;
            if path.qkv_bias == QkvBias::Apply {
                for (out, bias) in [(&mut q, &layer.bq), (&mut k, &layer.bk), (&mut v, &layer.bv)] {
                    if let Some(b) = bias {
                        for row in out.chunks_exact_mut(b.len().max(1)) {
                            row.iter_mut().zip(b).for_each(|(o, &bi)| *o += F::from_f32(bi));
                        }
                    }
                }
            }
            rec.stage(id(Stage::Q), p0, &mut q, qn)?;
            rec.stage(id(Stage::K), p0, &mut k, kvn)?;
            rec.stage(id(Stage::V), p0, &mut v, kvn)?;

            // 3. Qwen3: RMSNorm of each head of q and k (one weight of length hd for all heads).
            if let (Some(qw), Some(kw)) = (&layer.q_norm, &layer.k_norm) {
                for (vec, weight, stage, len) in [(&mut q, qw, Stage::QNormed, qn), (&mut k, kw, Stage::KNormed, kvn)] {
                    for head in vec.chunks_exact_mut(hd) {
                        let input = head.to_vec();
                        rmsnorm(head, &input, weight, plan.qk_eps, placement, acc);
                    }
                    rec.stage(id(stage), p0, vec, len)?;
                }
            }

            // 4. RoPE on every head of q and k at each position (position 0 is the identity).
            for (i, (cos, sin)) in tables.iter().enumerate() {
                let heads = q[i * qn..(i + 1) * qn].chunks_exact_mut(hd);
                for head in heads.chain(k[i * kvn..(i + 1) * kvn].chunks_exact_mut(hd)) {
                    rope(head, cos, sin, plan.pairing);
                }
            }
            rec.stage(id(Stage::QRope), p0, &mut q, qn)?;
            rec.stage(id(Stage::KRope), p0, &mut k, kvn)?;

            // 5. KV cache: post-RoPE keys and values of every position so far.
            self.cache_k[l].extend_from_slice(&k);
            self.cache_v[l].extend_from_slice(&v);
            let (keys, values) = (&self.cache_k[l], &self.cache_v[l]);

            // 6-8. Attention, one query position at a time: it sees keys 0..=pos (causal).
            // 6. Scores: head h reads KV head h / group; scaled by 1/sqrt(hd).    [heads, pos + 1]
            let scores = |i: usize| {
                let n_keys = p0 + i + 1;
                let mut kq = zeros(nh * n_keys);
                for h in 0..nh {
                    let g = h / group;
                    let mut qh = q[i * qn + h * hd..i * qn + (h + 1) * hd].to_vec();
                    if path.attn_scale == AttnScale::OnQuery {
                        qh.iter_mut().for_each(|x| *x = *x * plan.scale);
                    }
                    for (u, key) in keys.chunks_exact(kvn).take(n_keys).enumerate() {
                        let mut s = F::dot(&qh, &key[g * hd..(g + 1) * hd], acc);
                        if path.attn_scale == AttnScale::OnScores {
                            s = s * plan.scale;
                        }
                        kq[h * n_keys + u] = s;
                    }
                }
                kq
            };
            // 7. Softmax over the keys.
            let normalize = |kq: &mut [F], n_keys: usize| {
                for row in kq.chunks_exact_mut(n_keys) {
                    softmax(row, path.softmax == Softmax::MaxSubtracted, acc);
                }
            };
            // 8. Weighted sum of the values, heads merged.                          [heads * hd]
            let weighted = |kq: &[F], out: &mut [F]| {
                let n_keys = kq.len() / nh;
                let mut column = zeros(n_keys);
                for h in 0..nh {
                    let g = h / group;
                    let p = &kq[h * n_keys..(h + 1) * n_keys];
                    for d in 0..hd {
                        for (c, value) in column.iter_mut().zip(values.chunks_exact(kvn)) {
                            *c = value[g * hd + d];
                        }
                        out[h * hd + d] = F::dot(p, &column, acc);
                    }
                }
            };
            let mut kqv = zeros(n * qn);
            if n == 1 || rec.injects_attention() {
                // In order, each stage recorded (and maybe replaced) before the next reads it.
                for (i, out) in kqv.chunks_exact_mut(qn).enumerate() {
                    let pos = p0 + i;
                    let mut kq = scores(i);
                    rec.one(id(Stage::Kq), pos, &mut kq)?;
                    normalize(&mut kq, pos + 1);
                    rec.one(id(Stage::KqSoftmax), pos, &mut kq)?;
                    weighted(&kq, out);
                    rec.one(id(Stage::Kqv), pos, out)?;
                }
            } else {
                // The positions split across threads, a bounded chunk at a time (their score
                // matrices are kept until recorded, in order).
                let keep_scores = rec.trace.keeps_values(id(Stage::Kq)) || rec.trace.keeps_stats(id(Stage::Kq));
                let chunk = ((1 << 20) / (nh * (p0 + n)).max(1)).clamp(1, n);
                for (ci, outs) in kqv.chunks_mut(chunk * qn).enumerate() {
                    let first = ci * chunk;
                    let mut done: Vec<(Option<Vec<F>>, Vec<F>)> = outs
                        .par_chunks_exact_mut(qn)
                        .enumerate()
                        .map(|(j, out)| {
                            let i = first + j;
                            let mut kq = scores(i);
                            let raw = keep_scores.then(|| kq.clone());
                            normalize(&mut kq, p0 + i + 1);
                            weighted(&kq, out);
                            (raw, kq)
                        })
                        .collect();
                    for (j, ((raw, soft), out)) in done.iter_mut().zip(outs.chunks_exact_mut(qn)).enumerate() {
                        let pos = p0 + first + j;
                        if let Some(raw) = raw {
                            rec.one(id(Stage::Kq), pos, raw)?;
                        }
                        rec.one(id(Stage::KqSoftmax), pos, soft)?;
                        rec.one(id(Stage::Kqv), pos, out)?;
                    }
                }
            }

            // 9. Output projection and the first residual.                             [n, hidden]
            let mut attn_out = zeros(n * c.hidden);
            matmul(&mut attn_out, &layer.wo, &kqv, proj, acc, plan.rounding, dense)?;
            rec.stage(id(Stage::AttnOut), p0, &mut attn_out, c.hidden)?;
            let mut ffn_inp: Vec<F> = x.iter().zip(&attn_out).map(|(&a, &b)| a + b).collect();
            rec.stage(id(Stage::FfnInp), p0, &mut ffn_inp, c.hidden)?;

            // 10. FFN RMSNorm, then SwiGLU: down(silu(gate(x)) * up(x)).              [n, ffn] -> [n, hidden]
            let mut fx = zeros(n * c.hidden);
            each_row(&mut fx, c.hidden, |i, o| {
                rmsnorm(o, &ffn_inp[i * c.hidden..(i + 1) * c.hidden], &layer.ffn_norm, plan.eps, placement, acc);
            });
            rec.stage(id(Stage::FfnNorm), p0, &mut fx, c.hidden)?;
            let mut gate = zeros(n * c.ffn);
            let mut up = zeros(n * c.ffn);
            let gate_up = &mut [(&mut gate[..], &layer.w_gate), (&mut up[..], &layer.w_up)];
            matmuls(gate_up, &fx, proj, acc, plan.rounding, dense)?;
            rec.stage(id(Stage::FfnGate), p0, &mut gate, c.ffn)?;
            rec.stage(id(Stage::FfnUp), p0, &mut up, c.ffn)?;
            let mut act = gate;
            each_row(&mut act, c.ffn, |_, row| row.iter_mut().for_each(|g| *g = silu(*g)));
            rec.stage(id(Stage::FfnSilu), p0, &mut act, c.ffn)?;
            each_row(&mut act, c.ffn, |i, row| {
                row.iter_mut().zip(&up[i * c.ffn..]).for_each(|(a, &u)| *a = *a * u);
            });
            rec.stage(id(Stage::FfnAct), p0, &mut act, c.ffn)?;
            let mut ffn_out = zeros(n * c.hidden);
            matmul(&mut ffn_out, &layer.w_down, &act, proj, acc, plan.rounding, dense)?;
            rec.stage(id(Stage::FfnOut), p0, &mut ffn_out, c.hidden)?;

            // 11. Second residual: the layer's output is the next layer's input.
            x = ffn_inp.iter().zip(&ffn_out).map(|(&a, &b)| a + b).collect();
            rec.stage(id(Stage::LOut), p0, &mut x, c.hidden)?;
        }

        // Final RMSNorm and the output projection (the embedding when tied).          [n, vocab]
        let mut xn = zeros(n * c.hidden);
        each_row(&mut xn, c.hidden, |i, o| {
            rmsnorm(o, &x[i * c.hidden..(i + 1) * c.hidden], &w.output_norm, plan.eps, placement, acc);
        });
        rec.stage(StageId::global(Stage::ResultNorm), p0, &mut xn, c.hidden)?;
        let from = if self.last_only { n - 1 } else { 0 };
        let mut logits = zeros((n - from) * c.vocab);
        matmul(&mut logits, &w.output, &xn[from * c.hidden..], proj, acc, plan.rounding, dense)?;
        if !self.last_only {
            rec.stage(StageId::global(Stage::ResultOutput), p0, &mut logits, c.vocab)?;
        }
        self.last_logits = logits.split_off((n - from - 1) * c.vocab);
        Ok(())
    }
}
