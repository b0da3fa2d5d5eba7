//! Which stage a tensor name means, for each naming a dump may use: ours, HF transformers' module
//! names (and the names of `shared/reference`), and llama.cpp's graph callback names.

use crate::trace::{Stage, StageId};
use serde::Serialize;

/// A naming scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Naming {
    /// `tok_embd`, `blk.{i}.q`, ... (our own dumps, and [the format](../../docs/dump-format.md)).
    Paritylab,
    /// HF transformers: `model.layers.{i}.self_attn.q_proj`, `layers.{i}.mlp.down_proj`, ...
    Hf,
    /// llama.cpp's callback names: `attn_norm-0`, `Qcur-0`, `kqv_out-0`, `result_output`, ...
    LlamaCpp,
}

impl Naming {
    pub fn name(self) -> &'static str {
        match self {
            Naming::Paritylab => "paritylab",
            Naming::Hf => "hf",
            Naming::LlamaCpp => "llamacpp",
        }
    }
    pub fn from_name(s: &str) -> Option<Naming> {
        match s {
            "paritylab" => Some(Naming::Paritylab),
            "hf" => Some(Naming::Hf),
            "llamacpp" | "llama.cpp" => Some(Naming::LlamaCpp),
            _ => None,
        }
    }
}

/// How a tensor's values scale to the stage's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    Factor(f64),
    /// llama.cpp's `kq` is `k . q` before the softmax applies `1/sqrt(head_dim)`.
    InvSqrtHeadDim,
}

/// Layout changes that bring a tensor to the stage's layout, in this order: reshape and transpose
/// (on the shape as stored), scale, heads-first, then leading dimensions of size 1 are dropped and
/// the Q/K row order is fixed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transforms {
    /// numpy's reshape; one `-1` allowed.
    pub reshape: Option<Vec<i64>>,
    /// numpy's transpose: the new order of the axes.
    pub transpose: Option<Vec<usize>>,
    pub scale: Option<Scale>,
    /// The values are in HF's Q/K row order (Llama models: permuted to GGUF order on import).
    pub hf_rows: bool,
    /// ggml's `[n_head, T, head_dim]` layout before heads are merged (made positions first).
    pub heads_first: bool,
}

/// A stage a tensor can fill.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub stage: StageId,
    /// Among tensors for the same stage the highest priority wins (ties: the later tensor). A
    /// copy that can stand in for a stage (HF's `hidden_states.i`) has priority 0.
    pub priority: u8,
    pub tf: Transforms,
}

/// What a name means.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    Stage(Target),
    /// Known, but not a stage we compare; the reason is shown.
    Ignore(String),
    Unknown,
}

fn stage(stage: StageId, priority: u8) -> Route {
    Route::Stage(Target { stage, priority, tf: Transforms::default() })
}

fn with(stage: StageId, priority: u8, tf: Transforms) -> Route {
    Route::Stage(Target { stage, priority, tf })
}

fn hf_rows() -> Transforms {
    Transforms { hf_rows: true, ..Transforms::default() }
}

/// Our own names.
pub fn paritylab(name: &str, hf_order: bool) -> Route {
    match StageId::parse(name) {
        Some(id) if hf_order && is_qk(id.stage) => with(id, 2, hf_rows()),
        Some(id) => stage(id, 2),
        None => Route::Unknown,
    }
}

/// The stages whose element order follows the Q/K weight rows.
pub fn is_qk(s: Stage) -> bool {
    matches!(s, Stage::Q | Stage::K | Stage::QNormed | Stage::KNormed | Stage::QRope | Stage::KRope)
}

/// Split `layers.{i}.rest` (and `layers.{i}`).
fn layer_rest(name: &str) -> Option<(usize, &str)> {
    let rest = name.strip_prefix("layers.")?;
    let (i, rest) = rest.split_once('.').unwrap_or((rest, ""));
    Some((i.parse().ok()?, rest))
}

/// HF transformers names, after any prefix (`f32.`). `last_hidden` is the largest `k` of the
/// file's `hidden_states.k` (HF's last hidden state is after the final norm).
pub fn hf(name: &str, last_hidden: Option<usize>) -> Route {
    let name = name.strip_prefix("model.").unwrap_or(name);
    let g = StageId::global;
    match name {
        "embed" | "embed_tokens" => return stage(g(Stage::TokEmbd), 2),
        "final_norm" | "norm" => return stage(g(Stage::ResultNorm), 2),
        "logits" | "lm_head" => return stage(g(Stage::ResultOutput), 2),
        "rope.cos" | "rope.sin" | "rotary_emb" => return Route::Ignore("RoPE tables, not an activation".into()),
        _ => {}
    }
    if let Some(k) = name.strip_prefix("hidden_states.").and_then(|k| k.parse::<usize>().ok()) {
        return match (k, last_hidden) {
            (0, _) => stage(g(Stage::TokEmbd), 0),
            (k, Some(last)) if k == last => stage(g(Stage::ResultNorm), 0),
            (k, _) => stage(StageId::layer(k - 1, Stage::LOut), 0),
        };
    }
    let Some((i, rest)) = layer_rest(name) else { return Route::Unknown };
    let l = |s| StageId::layer(i, s);
    let rest = rest.strip_prefix("self_attn.").map(|r| format!("attn.{r}")).unwrap_or_else(|| rest.to_string());
    match rest.as_str() {
        "input" => Route::Ignore(format!(
            "the input of layer {i}: the same values as {}",
            if i == 0 { "tok_embd".to_string() } else { format!("blk.{}.l_out", i - 1) }
        )),
        "input_layernorm" => stage(l(Stage::AttnNorm), 2),
        "attn.q_proj" => with(l(Stage::Q), 1, hf_rows()),
        "attn.k_proj" => with(l(Stage::K), 1, hf_rows()),
        "attn.q_proj_gguf_order" => stage(l(Stage::Q), 2),
        "attn.k_proj_gguf_order" => stage(l(Stage::K), 2),
        "attn.v_proj" => stage(l(Stage::V), 2),
        "attn.v_heads" => stage(l(Stage::V), 1),
        "attn.q_norm" => with(l(Stage::QNormed), 2, hf_rows()),
        "attn.k_norm" => with(l(Stage::KNormed), 2, hf_rows()),
        "attn.q_rope" => with(l(Stage::QRope), 1, hf_rows()),
        "attn.k_rope" => with(l(Stage::KRope), 1, hf_rows()),
        "attn.q_rope_gguf_order" => stage(l(Stage::QRope), 2),
        "attn.k_rope_gguf_order" => stage(l(Stage::KRope), 2),
        "attn.scores" => stage(l(Stage::Kq), 2),
        "attn.probs" | "attn.attn_weights" => stage(l(Stage::KqSoftmax), 2),
        "attn.pre_o_proj" => stage(l(Stage::Kqv), 2),
        "attn.o_proj" | "attn" => stage(l(Stage::AttnOut), 2),
        "attn_residual" => stage(l(Stage::FfnInp), 2),
        "post_attention_layernorm" => stage(l(Stage::FfnNorm), 2),
        "mlp.gate_proj" => stage(l(Stage::FfnGate), 2),
        "mlp.up_proj" => stage(l(Stage::FfnUp), 2),
        "mlp.act_gate" | "mlp.act_fn" => stage(l(Stage::FfnSilu), 2),
        "mlp.act_mul_up" => stage(l(Stage::FfnAct), 2),
        "mlp.down_proj" | "mlp" => stage(l(Stage::FfnOut), 2),
        "output" | "" => stage(l(Stage::LOut), 2),
        _ => Route::Unknown,
    }
}

/// The prefix before an HF name (`f32.` in `f32.layers.0.input`), if the rest is an HF name.
pub fn hf_prefix(name: &str) -> Option<&str> {
    let starts = ["embed", "layers.", "final_norm", "logits", "hidden_states.", "rope.", "model.", "lm_head", "norm"];
    let mut at = 0;
    loop {
        let rest = &name[at..];
        if starts.iter().any(|s| rest.starts_with(s)) && hf(rest, None) != Route::Unknown {
            return Some(&name[..at]);
        }
        at += rest.find('.')? + 1;
    }
}

/// Data-movement ops: a tensor they produce is the tensor above it seen differently.
pub fn is_view_op(op: &str) -> bool {
    matches!(op, "RESHAPE" | "VIEW" | "PERMUTE" | "TRANSPOSE" | "CONT" | "CPY" | "DUP")
}

/// llama.cpp's callback names (`name-{layer}`); `op` is the producing operation when the file
/// says (its logs do), which tells the projection `Qcur` from the rotated `Qcur`.
pub fn llamacpp(name: &str, op: Option<&str>) -> Route {
    let name = name.trim();
    if let Some((base, _)) = name.split_once(" (") {
        return Route::Ignore(format!("a view of {base}"));
    }
    let (base, layer) = match name.rsplit_once('-') {
        Some((b, i)) if !i.is_empty() && i.bytes().all(|c| c.is_ascii_digit()) => (b, i.parse::<usize>().ok()),
        _ => (name, None),
    };
    let view = op.is_some_and(is_view_op);
    let rope = op == Some("ROPE");
    let p = if view { 0 } else { 1 };
    let g = StageId::global;
    match (base, layer) {
        ("inp_embd" | "embd", None) => stage(g(Stage::TokEmbd), p),
        ("result_norm", None) => stage(g(Stage::ResultNorm), p),
        ("result_output", None) => stage(g(Stage::ResultOutput), p),
        ("norm", _) => Route::Ignore("RMSNorm before its weight is applied: not a stage".into()),
        (
            "inp_pos" | "inp_tokens" | "inp_out_ids" | "KQ_mask" | "kq_mask" | "inp_KQ_mask" | "inp_embd_scaled"
            | "k_cache_view" | "v_cache_view" | "cache_k" | "cache_v" | "v_cont" | "kq_mask_cnv",
            _,
        ) => Route::Ignore("llama.cpp bookkeeping, not an activation".into()),
        (n, None) if n.starts_with("cache_k_l") || n.starts_with("cache_v_l") => {
            Route::Ignore("the KV cache, not an activation of this run".into())
        }
        (n, None) if n.starts_with("node_") => {
            Route::Ignore("an unnamed llama.cpp node: which stage it is cannot be told from its name".into())
        }
        (_, Some(i)) => {
            let l = |s| StageId::layer(i, s);
            match base {
                "attn_norm" => stage(l(Stage::AttnNorm), p),
                // Without the op (a safetensors file), `Qcur` is the last tensor of that name:
                // after RoPE.
                "Qcur" if rope || op.is_none() => stage(l(Stage::QRope), p),
                "Kcur" if rope || op.is_none() => stage(l(Stage::KRope), p),
                "Qcur" => stage(l(Stage::Q), p),
                "Kcur" => stage(l(Stage::K), p),
                "Vcur" => stage(l(Stage::V), p),
                "Qcur_normed" => stage(l(Stage::QNormed), p),
                "Kcur_normed" => stage(l(Stage::KNormed), p),
                "kq" => {
                    with(l(Stage::Kq), p, Transforms { scale: Some(Scale::InvSqrtHeadDim), ..Transforms::default() })
                }
                "kq_soft_max" | "kq_soft_max_ext" => stage(l(Stage::KqSoftmax), p),
                // [n_head, T, head_dim] per ggml's layout before the heads are merged.
                "kqv" => with(l(Stage::Kqv), p, Transforms { heads_first: true, ..Transforms::default() }),
                "kqv_out" | "kqv_merged_cont" => stage(l(Stage::Kqv), p + 1),
                "attn_out" => stage(l(Stage::AttnOut), p),
                "ffn_inp" => stage(l(Stage::FfnInp), p),
                "ffn_norm" => stage(l(Stage::FfnNorm), p),
                "ffn_gate" => stage(l(Stage::FfnGate), p),
                "ffn_up" => stage(l(Stage::FfnUp), p),
                "ffn_silu" => stage(l(Stage::FfnSilu), p),
                "ffn_gate_par" | "ffn_swiglu" => stage(l(Stage::FfnAct), p),
                "ffn_out" => stage(l(Stage::FfnOut), p),
                "l_out" => stage(l(Stage::LOut), p),
                _ => Route::Unknown,
            }
        }
        _ => Route::Unknown,
    }
}

/// Guess the naming of a file from its names (and its `format` metadata).
pub fn detect<'a>(names: impl Iterator<Item = &'a str> + Clone, format_meta: Option<&str>) -> Option<Naming> {
    if format_meta == Some(crate::dump::FORMAT) {
        return Some(Naming::Paritylab);
    }
    let count = |f: &dyn Fn(&str) -> bool| names.clone().filter(|n| f(n)).count();
    let ours = count(&|n| StageId::parse(n).is_some());
    let hf_n = count(&|n| hf_prefix(n).is_some());
    let ll =
        count(&|n| matches!(llamacpp(n, None), Route::Stage(_)) && n.contains('-') || n == "inp_embd" || n == "embd");
    let best =
        [(ours, Naming::Paritylab), (ll, Naming::LlamaCpp), (hf_n, Naming::Hf)].into_iter().max_by_key(|(n, _)| *n)?;
    (best.0 > 0).then_some(best.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(r: Route) -> (String, u8, Transforms) {
        match r {
            Route::Stage(t) => (t.stage.name(), t.priority, t.tf),
            other => panic!("not a stage: {other:?}"),
        }
    }

    #[test]
    fn hf_names_of_modules_and_of_the_reference_files() {
        assert_eq!(st(hf("model.layers.3.self_attn.q_proj", None)).0, "blk.3.q");
        assert!(st(hf("layers.0.attn.q_proj", None)).2.hf_rows);
        assert!(!st(hf("layers.0.attn.q_proj_gguf_order", None)).2.hf_rows);
        assert_eq!(st(hf("model.layers.1.mlp.down_proj", None)).0, "blk.1.ffn_out");
        assert_eq!(st(hf("layers.1.mlp.act_gate", None)).0, "blk.1.ffn_silu");
        assert_eq!(st(hf("hidden_states.2", Some(2))).0, "result_norm");
        assert_eq!(st(hf("hidden_states.1", Some(2))), ("blk.0.l_out".into(), 0, Transforms::default()));
        assert_eq!(st(hf("model.layers.4", None)).0, "blk.4.l_out");
        assert!(matches!(hf("rope.cos", None), Route::Ignore(_)));
        assert_eq!(hf("layers.0.attn.rotary", None), Route::Unknown);
        assert_eq!(hf_prefix("f32.layers.0.input"), Some("f32."));
        assert_eq!(hf_prefix("deq_q8_0.logits"), Some("deq_q8_0."));
        assert_eq!(hf_prefix("model.layers.0.mlp"), Some(""));
        assert_eq!(hf_prefix("blk.0.q"), None);
    }

    #[test]
    fn llamacpp_names_use_the_op_to_tell_repeated_names_apart() {
        assert_eq!(st(llamacpp("Qcur-0", Some("MUL_MAT"))).0, "blk.0.q");
        assert_eq!(st(llamacpp("Qcur-0", Some("ROPE"))).0, "blk.0.q_rope");
        assert_eq!(st(llamacpp("Qcur-0", None)).0, "blk.0.q_rope");
        assert_eq!(st(llamacpp("Vcur-1", Some("RESHAPE"))).1, 0);
        assert!(matches!(llamacpp("Qcur-0 (reshaped)", Some("RESHAPE")), Route::Ignore(_)));
        assert!(st(llamacpp("kqv-0", Some("MUL_MAT"))).2.heads_first);
        assert_eq!(st(llamacpp("kqv_out-0", Some("CONT"))).1, 1);
        assert_eq!(st(llamacpp("kqv_out-0", Some("MUL_MAT"))).1, 2);
        assert_eq!(st(llamacpp("result_output", None)).0, "result_output");
        assert_eq!(st(llamacpp("ffn_swiglu-2", Some("GLU"))).0, "blk.2.ffn_act");
        assert!(matches!(llamacpp("norm-0", Some("RMS_NORM")), Route::Ignore(_)));
        assert_eq!(llamacpp("ffn_moe_gate-0", None), Route::Unknown);
    }

    #[test]
    fn detection_prefers_the_naming_most_names_follow() {
        let ours = ["tok_embd", "blk.0.q", "result_output"];
        assert_eq!(detect(ours.iter().copied(), None), Some(Naming::Paritylab));
        let hf_names = ["f32.embed", "f32.layers.0.attn.q_proj", "f32.logits"];
        assert_eq!(detect(hf_names.iter().copied(), None), Some(Naming::Hf));
        let ll = ["inp_embd", "attn_norm-0", "Qcur-0", "result_output"];
        assert_eq!(detect(ll.iter().copied(), None), Some(Naming::LlamaCpp));
        assert_eq!(detect(["x", "y"].iter().copied(), None), None);
    }
}
