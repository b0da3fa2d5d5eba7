//! Paths are data: a [`PathSpec`] is one value per convention where real implementations of the same
//! decoder differ. One forward pass reads it; presets are named values.
//!
//! Text form, used by the CLI, URLs and reports: `PRESET[,field=value...]`, e.g.
//! `hf,rope_pairing=interleaved,qk_norm_eps=1e-5`. Values are the variants in snake_case,
//! `metadata` for "from the GGUF metadata", or a number for a fixed value.

use crate::{Error, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Declares a convention enum: variants with their text names and a doc line each.
macro_rules! convention {
    ($(#[$meta:meta])* $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $( $(#[$vmeta])* $variant, )* }

        impl $name {
            pub const ALL: &'static [$name] = &[ $( $name::$variant, )* ];
            pub fn name(self) -> &'static str {
                match self { $( $name::$variant => $text, )* }
            }
            pub fn from_name(s: &str) -> Option<$name> {
                match s { $( $text => Some($name::$variant), )* _ => None }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::from_name(&s).ok_or_else(|| serde::de::Error::custom(format!(
                    "unknown value {s:?}; valid: {}", $name::ALL.iter().map(|v| v.name()).collect::<Vec<_>>().join(", "))))
            }
        }
    };
}

convention! {
    /// Which pairs of a head's dimensions RoPE rotates together.
    RopePairing {
        /// What the reference implementation does for the architecture: split-half for qwen2/qwen3,
        /// adjacent pairs for llama GGUFs (whose Q/K rows llama.cpp's converter permuted).
        Auto = "auto",
        /// Pairs (i, i + d/2): HF `rotate_half`; llama.cpp NEOX mode (qwen2, qwen3); SKaiNET legacy.
        SplitHalf = "split_half",
        /// Adjacent pairs (2i, 2i+1): llama.cpp NORM mode on converter-permuted llama weights;
        /// GPT-J; the SKaiNET DSL's default (wrong for Qwen).
        Interleaved = "interleaved",
    }
}

convention! {
    /// Where RMSNorm's epsilon goes.
    EpsPlacement {
        /// `x / sqrt(mean(x^2) + eps)`: HF, llama.cpp, both SKaiNET paths.
        InsideMean = "inside_mean",
        /// `x / sqrt((sum(x^2) + eps) / n)`: a plausible hand-written variant.
        InsideSum = "inside_sum",
        /// `x / (sqrt(mean(x^2)) + eps)`: LayerNorm-style placement some ports use.
        OutsideSqrt = "outside_sqrt",
    }
}

convention! {
    /// How a projection reads its weight matrix (GGUF stores `[out, in]` row-major).
    Projection {
        /// `x . W^T`: nn.Linear, ggml mul_mat, HF, llama.cpp, SKaiNET DSL.
        Transposed = "transposed",
        /// `if W.rows == x.cols then x . W else x . W^T`: SKaiNET legacy's guess, which uses square
        /// matrices untransposed when nothing pre-transposed them (all-FP32 models).
        ShapeGuess = "shape_guess",
        /// `x . W` with the stored bytes read as `[in, out]`: weights never transposed.
        AsStored = "as_stored",
    }
}

convention! {
    /// Where a path takes the head size from.
    HeadDim {
        /// `attention.key_length` (else hidden / heads, as llama.cpp): HF, llama.cpp.
        KeyLength = "key_length",
        /// `rope.dimension_count`, else the rows of `attn_q` / heads: the SKaiNET DSL.
        RopeDims = "rope_dims",
        /// hidden / heads, always: SKaiNET legacy (cannot load Qwen3-0.6B, head_dim 128 vs 64).
        DimOverHeads = "dim_over_heads",
    }
}

convention! {
    /// Qwen2's Q/K/V biases.
    QkvBias {
        /// Added after the projection: HF, llama.cpp, later SKaiNET DSL.
        Apply = "apply",
        /// Dropped: SKaiNET legacy.
        Ignore = "ignore",
    }
}

convention! {
    /// Where the attention scale `1/sqrt(head_dim)` is applied.
    AttnScale {
        /// On the scores `q.k` before softmax: HF eager attention, llama.cpp (kq_scale).
        OnScores = "on_scores",
        /// On q before the dot products (same math, other rounding): some fused kernels.
        OnQuery = "on_query",
        /// Not at all (a bug some ports had).
        None = "none",
    }
}

convention! {
    /// How softmax is computed.
    Softmax {
        /// `exp(x - max) / sum`: HF, llama.cpp, every careful implementation.
        MaxSubtracted = "max_subtracted",
        /// `exp(x) / sum`: the same math, overflows for large scores.
        Naive = "naive",
    }
}

convention! {
    /// A float width.
    Precision {
        F32 = "f32",
        F64 = "f64",
    }
}

convention! {
    /// How a matmul's input (the activation vector) is rounded before the product with the weights.
    #[derive(Default)]
    ActivationQuant {
        /// Not at all: f32 activations times the decoded weights (HF, candle, most ports).
        #[default]
        None = "none",
        /// As llama.cpp's CPU backend: rounded to the weight type's dot-product format (Q8_0 for
        /// Q4_0/Q5_0/Q8_0/IQ4_NL, Q8_1 for Q4_1/Q5_1, Q8_K for the k-quants and IQ4_XS, F16/BF16
        /// for F16/BF16 weights, none for F32), then integer products per block.
        LlamaCpp = "llama_cpp",
    }
}

convention! {
    /// Whether a BOS token is put in front of the given tokens.
    Bos {
        /// As the model's tokenizer says (`tokenizer.ggml.add_bos_token`): Qwen adds none, Llama
        /// adds one. HF's tokenizers.
        AsTokenizer = "as_tokenizer",
        /// Always prepend `tokenizer.ggml.bos_token_id`: SKaiNET legacy's generate loop.
        Prepend = "prepend",
        /// Never: the tokens are used as given.
        None = "none",
    }
}

/// A value taken from the GGUF metadata or fixed by the path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Source {
    Metadata,
    Fixed(f32),
}

impl Source {
    /// The value to use, given the metadata's.
    pub fn resolve(self, metadata: f32) -> f32 {
        match self {
            Source::Metadata => metadata,
            Source::Fixed(v) => v,
        }
    }
    fn text(self) -> String {
        match self {
            Source::Metadata => "metadata".into(),
            Source::Fixed(v) => format!("{v:e}").replace("e0", ""),
        }
    }
    fn parse(field: &str, s: &str) -> Result<Source> {
        if s == "metadata" {
            return Ok(Source::Metadata);
        }
        match s.parse::<f32>() {
            Ok(v) if v.is_finite() && v > 0.0 => Ok(Source::Fixed(v)),
            _ => Err(Error::input(format!("{field}={s:?}: use metadata or a positive number such as 1e-5"))),
        }
    }
}

impl Serialize for Source {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Source::Metadata => s.serialize_str("metadata"),
            Source::Fixed(v) => s.serialize_f32(*v),
        }
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(f32),
        }
        match Raw::deserialize(d)? {
            Raw::Text(t) => Source::parse("value", &t).map_err(serde::de::Error::custom),
            Raw::Number(v) => Source::parse("value", &v.to_string()).map_err(serde::de::Error::custom),
        }
    }
}

/// One forward path: a value for every convention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathSpec {
    pub rope_pairing: RopePairing,
    /// RoPE base (theta).
    pub rope_base: Source,
    /// RMSNorm epsilon of the attention, FFN and final norms.
    pub norm_eps: Source,
    /// RMSNorm epsilon of Qwen3's per-head Q/K norms (`metadata` = the model's norm epsilon).
    pub qk_norm_eps: Source,
    pub eps_placement: EpsPlacement,
    pub projection: Projection,
    pub head_dim: HeadDim,
    pub qkv_bias: QkvBias,
    pub attn_scale: AttnScale,
    pub softmax: Softmax,
    /// Accumulators of dot products and reductions.
    pub accumulate: Precision,
    /// Activations, weights as read, RoPE tables, norms and softmax: f64 makes the path its own
    /// "f64 twin" (the `oracle-f64` preset is `hf` in f64).
    pub precision: Precision,
    pub bos: Bos,
    /// Rounding of matmul inputs (absent in specs written before it existed: `none`).
    #[serde(default)]
    pub activation_quant: ActivationQuant,
}

/// The presets, in the order they are listed to users.
pub const PRESETS: &[(&str, &str)] = &[
    ("hf", "what HF transformers computes for the architecture: the reference"),
    ("oracle-f64", "hf computed in f64 end to end: the ground truth"),
    (
        "llama.cpp",
        "what llama.cpp's CPU backend computes: hf with every matmul input rounded to the weight type's \
         dot-product format (Q8_0 / Q8_1 / Q8_K) and integer dot products",
    ),
    ("skainet-dsl", "the SKaiNET DSL path of the source issue: interleaved RoPE, QK-norm eps fixed 1e-5"),
    (
        "skainet-legacy",
        "the SKaiNET legacy path of the source issue: shape-guessed projections (square weights untransposed), \
         head_dim = dim/heads, no Q/K/V bias",
    ),
];

/// The field names of the text form, in order.
pub const FIELDS: &[&str] = &[
    "rope_pairing",
    "rope_base",
    "norm_eps",
    "qk_norm_eps",
    "eps_placement",
    "projection",
    "head_dim",
    "qkv_bias",
    "attn_scale",
    "softmax",
    "accumulate",
    "precision",
    "bos",
    "activation_quant",
];

impl PathSpec {
    /// HF transformers' conventions.
    pub fn hf() -> PathSpec {
        PathSpec {
            rope_pairing: RopePairing::Auto,
            rope_base: Source::Metadata,
            norm_eps: Source::Metadata,
            qk_norm_eps: Source::Metadata,
            eps_placement: EpsPlacement::InsideMean,
            projection: Projection::Transposed,
            head_dim: HeadDim::KeyLength,
            qkv_bias: QkvBias::Apply,
            attn_scale: AttnScale::OnScores,
            softmax: Softmax::MaxSubtracted,
            accumulate: Precision::F32,
            precision: Precision::F32,
            bos: Bos::AsTokenizer,
            activation_quant: ActivationQuant::None,
        }
    }

    /// A preset by name.
    pub fn preset(name: &str) -> Option<PathSpec> {
        let hf = PathSpec::hf();
        Some(match name {
            "hf" => hf,
            "oracle-f64" => PathSpec { accumulate: Precision::F64, precision: Precision::F64, ..hf },
            "llama.cpp" => PathSpec { activation_quant: ActivationQuant::LlamaCpp, ..hf },
            "skainet-dsl" => PathSpec {
                rope_pairing: RopePairing::Interleaved,
                qk_norm_eps: Source::Fixed(1e-5),
                head_dim: HeadDim::RopeDims,
                bos: Bos::None,
                ..hf
            },
            // RoPE base and eps are constructor arguments of the legacy runtime (defaults 1e4 and
            // 1e-5); the issue's reproducer passed the model's values, which is what this preset
            // does. The generate loop prepended BOS, the issue's forward() calls did not: neither
            // does this preset (bos=prepend models the loop).
            "skainet-legacy" => PathSpec {
                rope_pairing: RopePairing::SplitHalf,
                projection: Projection::ShapeGuess,
                head_dim: HeadDim::DimOverHeads,
                qkv_bias: QkvBias::Ignore,
                bos: Bos::None,
                ..hf
            },
            _ => return None,
        })
    }

    /// Parse `PRESET[,field=value...]`, or a JSON object (a full spec).
    pub fn parse(text: &str) -> Result<PathSpec> {
        let text = text.trim();
        if text.starts_with('{') {
            return serde_json::from_str(text).map_err(|e| Error::input(format!("path spec JSON: {e}")));
        }
        let mut parts = text.split(',').map(str::trim);
        let name = parts.next().unwrap_or("");
        let mut spec = PathSpec::preset(name).ok_or_else(|| {
            Error::input(format!(
                "unknown path preset {name:?}; presets: {}",
                PRESETS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ))
        })?;
        for part in parts.filter(|p| !p.is_empty()) {
            let (field, value) = part
                .split_once('=')
                .ok_or_else(|| Error::input(format!("expected field=value after the preset, got {part:?}")))?;
            spec.set(field.trim(), value.trim())?;
        }
        Ok(spec)
    }

    /// Set one field from its text value.
    pub fn set(&mut self, field: &str, value: &str) -> Result<()> {
        fn pick<T: Copy>(
            field: &str,
            value: &str,
            from: fn(&str) -> Option<T>,
            all: &[T],
            name: fn(T) -> &'static str,
        ) -> Result<T> {
            from(value).ok_or_else(|| {
                Error::input(format!(
                    "{field}={value:?} is not a valid value; valid: {}",
                    all.iter().map(|v| name(*v)).collect::<Vec<_>>().join(", ")
                ))
            })
        }
        match field {
            "rope_pairing" => {
                self.rope_pairing = pick(field, value, RopePairing::from_name, RopePairing::ALL, RopePairing::name)?
            }
            "rope_base" => self.rope_base = Source::parse(field, value)?,
            "norm_eps" => self.norm_eps = Source::parse(field, value)?,
            "qk_norm_eps" => self.qk_norm_eps = Source::parse(field, value)?,
            "eps_placement" => {
                self.eps_placement = pick(field, value, EpsPlacement::from_name, EpsPlacement::ALL, EpsPlacement::name)?
            }
            "projection" => {
                self.projection = pick(field, value, Projection::from_name, Projection::ALL, Projection::name)?
            }
            "head_dim" => self.head_dim = pick(field, value, HeadDim::from_name, HeadDim::ALL, HeadDim::name)?,
            "qkv_bias" => self.qkv_bias = pick(field, value, QkvBias::from_name, QkvBias::ALL, QkvBias::name)?,
            "attn_scale" => {
                self.attn_scale = pick(field, value, AttnScale::from_name, AttnScale::ALL, AttnScale::name)?
            }
            "softmax" => self.softmax = pick(field, value, Softmax::from_name, Softmax::ALL, Softmax::name)?,
            "accumulate" => {
                self.accumulate = pick(field, value, Precision::from_name, Precision::ALL, Precision::name)?
            }
            "precision" => self.precision = pick(field, value, Precision::from_name, Precision::ALL, Precision::name)?,
            "bos" => self.bos = pick(field, value, Bos::from_name, Bos::ALL, Bos::name)?,
            "activation_quant" => {
                self.activation_quant =
                    pick(field, value, ActivationQuant::from_name, ActivationQuant::ALL, ActivationQuant::name)?
            }
            other => {
                return Err(Error::input(format!("unknown path field {other:?}; fields: {}", FIELDS.join(", "))));
            }
        }
        Ok(())
    }

    /// Each field as (name, text value), in [`FIELDS`] order.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("rope_pairing", self.rope_pairing.name().into()),
            ("rope_base", self.rope_base.text()),
            ("norm_eps", self.norm_eps.text()),
            ("qk_norm_eps", self.qk_norm_eps.text()),
            ("eps_placement", self.eps_placement.name().into()),
            ("projection", self.projection.name().into()),
            ("head_dim", self.head_dim.name().into()),
            ("qkv_bias", self.qkv_bias.name().into()),
            ("attn_scale", self.attn_scale.name().into()),
            ("softmax", self.softmax.name().into()),
            ("accumulate", self.accumulate.name().into()),
            ("precision", self.precision.name().into()),
            ("bos", self.bos.name().into()),
            ("activation_quant", self.activation_quant.name().into()),
        ]
    }

    /// The fields where `self` and `other` differ.
    pub fn differences(&self, other: &PathSpec) -> Vec<&'static str> {
        self.fields().into_iter().zip(other.fields()).filter(|(a, b)| a.1 != b.1).map(|(a, _)| a.0).collect()
    }

    /// The shortest text form: the preset needing the fewest overrides, then the overrides.
    pub fn to_text(&self) -> String {
        let (name, base) = PRESETS
            .iter()
            .filter_map(|(n, _)| PathSpec::preset(n).map(|p| (*n, p)))
            .min_by_key(|(_, p)| p.differences(self).len())
            .unwrap_or(("hf", PathSpec::hf()));
        let mut text = name.to_string();
        let mine = self.fields();
        for field in base.differences(self) {
            if let Some((_, v)) = mine.iter().find(|(f, _)| *f == field) {
                text.push_str(&format!(",{field}={v}"));
            }
        }
        text
    }
}

/// A convention as a UI shows it: its name, its values (`numeric`: `metadata` or a number), and
/// what each value means.
#[derive(Debug, Clone, Serialize)]
pub struct FieldInfo {
    pub name: &'static str,
    pub numeric: bool,
    pub values: Vec<&'static str>,
    pub about: &'static str,
}

/// Every field of [`PathSpec`] for a UI.
pub fn field_infos() -> Vec<FieldInfo> {
    fn names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Vec<&'static str> {
        all.iter().map(|v| name(*v)).collect()
    }
    let f = |name, numeric, values, about| FieldInfo { name, numeric, values, about };
    vec![
        f("rope_pairing", false, names(RopePairing::ALL, RopePairing::name), "which dimensions RoPE rotates together"),
        f("rope_base", true, vec!["metadata"], "RoPE base (theta)"),
        f("norm_eps", true, vec!["metadata"], "RMSNorm epsilon"),
        f("qk_norm_eps", true, vec!["metadata"], "epsilon of Qwen3's per-head Q/K norms"),
        f("eps_placement", false, names(EpsPlacement::ALL, EpsPlacement::name), "where RMSNorm's epsilon goes"),
        f("projection", false, names(Projection::ALL, Projection::name), "how projections read the weights"),
        f("head_dim", false, names(HeadDim::ALL, HeadDim::name), "where the head size comes from"),
        f("qkv_bias", false, names(QkvBias::ALL, QkvBias::name), "Qwen2's Q/K/V biases"),
        f("attn_scale", false, names(AttnScale::ALL, AttnScale::name), "where 1/sqrt(head_dim) is applied"),
        f("softmax", false, names(Softmax::ALL, Softmax::name), "how softmax is computed"),
        f("accumulate", false, names(Precision::ALL, Precision::name), "accumulator width"),
        f("precision", false, names(Precision::ALL, Precision::name), "activation width (f64: the path's f64 twin)"),
        f("bos", false, names(Bos::ALL, Bos::name), "BOS in front of the prompt"),
        f(
            "activation_quant",
            false,
            names(ActivationQuant::ALL, ActivationQuant::name),
            "rounding of matmul inputs (llama_cpp: Q8 blocks and integer dot products)",
        ),
    ]
}

impl std::fmt::Display for PathSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips() {
        for (name, _) in PRESETS {
            let p = PathSpec::preset(name).unwrap();
            assert_eq!(p.to_text(), *name);
            assert_eq!(PathSpec::parse(name).unwrap(), p);
        }
        let p = PathSpec::parse("hf,rope_pairing=interleaved,qk_norm_eps=1e-5").unwrap();
        assert_eq!(p.rope_pairing, RopePairing::Interleaved);
        assert_eq!(p.qk_norm_eps, Source::Fixed(1e-5));
        // Closest preset wins: these overrides make it the DSL preset minus two fields.
        assert_eq!(PathSpec::parse(&p.to_text()).unwrap(), p);
        let json = serde_json::to_string(&p).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["qk_norm_eps"].as_f64().map(|v| v as f32), Some(1e-5), "{json}");
        assert_eq!(value["rope_base"], "metadata");
        assert_eq!(PathSpec::parse(&json).unwrap(), p);
        let odd = PathSpec::parse("oracle-f64,norm_eps=0.000123,bos=prepend").unwrap();
        assert_eq!(PathSpec::parse(&odd.to_text()).unwrap(), odd);
    }

    #[test]
    fn unknown_fields_and_values_list_the_valid_ones() {
        let e = PathSpec::parse("hf,rope_pairing=sideways").unwrap_err().to_string();
        assert!(e.contains("split_half") && e.contains("interleaved"), "{e}");
        let e = PathSpec::parse("hf,colour=red").unwrap_err().to_string();
        assert!(e.contains("qk_norm_eps") && e.contains("bos"), "{e}");
        let e = PathSpec::parse("hff").unwrap_err().to_string();
        assert!(e.contains("skainet-legacy"), "{e}");
        assert!(PathSpec::parse("hf,norm_eps=-1").is_err());
        assert!(PathSpec::parse("hf,norm_eps").is_err());
        assert!(PathSpec::parse("{\"rope_pairing\":\"auto\"}").is_err(), "a JSON spec must be complete");
    }

    #[test]
    fn presets_differ_where_the_issue_says() {
        let hf = PathSpec::hf();
        let dsl = PathSpec::preset("skainet-dsl").unwrap();
        let legacy = PathSpec::preset("skainet-legacy").unwrap();
        assert_eq!(dsl.differences(&hf), ["rope_pairing", "qk_norm_eps", "head_dim", "bos"]);
        assert_eq!(legacy.differences(&hf), ["rope_pairing", "projection", "head_dim", "qkv_bias", "bos"]);
    }
}
