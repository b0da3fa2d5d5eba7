//! Synthetic decoder models: a GGUF from a small spec and a seed, the same bytes forever.
//!
//! # The generator, version 1 (pinned by tests; a change needs a new version)
//! - RNG: SplitMix64 (`state += 0x9E3779B97F4A7C15`, then the usual xor-shift-multiply finaliser)
//!   seeded with `seed`, one stream for the whole file.
//! - Tensors in this order: `token_embd`, then per layer `attn_norm`, `attn_q`, `attn_k`, `attn_v`,
//!   (qwen2) `attn_q.bias`, `attn_k.bias`, `attn_v.bias`, (qwen3) `attn_q_norm`, `attn_k_norm`,
//!   `attn_output`, `ffn_norm`, `ffn_gate`, `ffn_up`, `ffn_down`; then `output_norm` and (untied)
//!   `output`. Values of each tensor are drawn in storage order (row-major `[out, in]`).
//! - `normal(scale)`: Box-Muller with the pure-Rust `libm` (identical on every platform):
//!   `u1 = (1 + (next >> 11)) * 2^-53`, `u2 = (next >> 11) * 2^-53`,
//!   `x = scale * sqrt(-2 ln u1) * cos(2 pi u2)`, computed in f64 and rounded to f32. One value per
//!   pair of draws. Norm weights are `1 + 0.25 * sqrt(-2 ln u1) cos(2 pi u2)`.
//! - `int(lo, hi)`: `lo + next % (hi - lo + 1)`. Norm weights are `1 + next % max(hi, 1)` (so in
//!   `1..=max(hi, 1)`).
//! - Matrices are stored in the chosen weight type when their rows are whole blocks of it, else as
//!   F16 (as llama.cpp's converter does); 1-D tensors (norms, biases) are always F32.

use crate::arch::Arch;
use crate::ggml::GgmlType;
use crate::gguf::{Writer, WriterValue};
use crate::quant::quantize::{quantize_row, QUANTIZABLE};
use crate::{Error, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// The generator version written to `paritylab.synth.version`.
pub const SYNTH_VERSION: u32 = 1;
/// Largest file the generator will produce (the wasm32 address space is 4 GiB).
pub const MAX_SYNTH_BYTES: u64 = 3 << 30;

/// How weights are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Distribution {
    /// Normal with mean 0 and standard deviation `scale`.
    Normal { scale: f32 },
    /// Uniform integers in `lo..=hi`, like the source issue's reproducer.
    Int { lo: i32, hi: i32 },
}

/// What to generate. The text form is `PRESET[,field=value...]`, e.g.
/// `source-issue,type=q8_0,seed=7`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynthSpec {
    pub arch: Arch,
    pub vocab: u32,
    pub hidden: u32,
    pub heads: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    pub ffn: u32,
    pub layers: u32,
    pub rope_base: f32,
    pub eps: f32,
    /// Output projection tied to the embedding (no `output.weight`).
    pub tied: bool,
    /// Storage type of the matrices.
    #[serde(rename = "type")]
    pub weight_type: GgmlTypeName,
    pub dist: Distribution,
    pub seed: u64,
}

/// A [`GgmlType`] that (de)serialises as its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GgmlTypeName(pub GgmlType);

impl Serialize for GgmlTypeName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.name().to_lowercase())
    }
}

impl<'de> Deserialize<'de> for GgmlTypeName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_weight_type(&s).map_err(serde::de::Error::custom)
    }
}

fn parse_weight_type(s: &str) -> Result<GgmlTypeName> {
    GgmlType::from_name(s).filter(|t| QUANTIZABLE.contains(t)).map(GgmlTypeName).ok_or_else(|| {
        Error::input(format!(
            "unknown weight type {s:?}; choose one of {}",
            QUANTIZABLE.iter().map(|t| t.name().to_lowercase()).collect::<Vec<_>>().join(", ")
        ))
    })
}

/// Named starting points for the text form: the source issue's reproducer, and a model of
/// Qwen3-0.6B's shape (its real dimensions, tied embeddings, Q8_0: about 634 MB) to see how the
/// engine does at a real model's size.
pub const PRESETS: &[&str] = &["source-issue", "qwen3-0.6b"];

/// Fields of the text form, in order.
pub const FIELDS: &[&str] = &[
    "arch",
    "vocab",
    "hidden",
    "heads",
    "kv_heads",
    "head_dim",
    "ffn",
    "layers",
    "rope_base",
    "eps",
    "tied",
    "type",
    "dist",
    "seed",
];

impl SynthSpec {
    /// The source issue's reproducer: Qwen3-flavoured, dim 32, 2 heads, 2 KV heads, head_dim 16,
    /// FFN 64, one layer, vocab 64, RoPE base 1e6, eps 1e-6, QK norm, small integer weights.
    pub fn source_issue() -> SynthSpec {
        SynthSpec {
            arch: Arch::Qwen3,
            vocab: 64,
            hidden: 32,
            heads: 2,
            kv_heads: 2,
            head_dim: 16,
            ffn: 64,
            layers: 1,
            rope_base: 1e6,
            eps: 1e-6,
            tied: false,
            weight_type: GgmlTypeName(GgmlType::F32),
            dist: Distribution::Int { lo: -2, hi: 2 },
            seed: 114,
        }
    }

    /// Qwen3-0.6B's shape: hidden 1024, 28 layers, 16 heads, 8 KV heads of 128, FFN 3072, vocab
    /// 151936, RoPE base 1e6, eps 1e-6, tied embeddings; Q8_0 weights drawn from N(0, 0.02).
    pub fn qwen3_0_6b() -> SynthSpec {
        SynthSpec {
            arch: Arch::Qwen3,
            vocab: 151_936,
            hidden: 1024,
            heads: 16,
            kv_heads: 8,
            head_dim: 128,
            ffn: 3072,
            layers: 28,
            rope_base: 1e6,
            eps: 1e-6,
            tied: true,
            weight_type: GgmlTypeName(GgmlType::Q8_0),
            dist: Distribution::Normal { scale: 0.02 },
            seed: 1,
        }
    }

    /// Parse the text form `PRESET[,field=value...]` (or a JSON object).
    pub fn parse(text: &str) -> Result<SynthSpec> {
        SynthSpec::parse_within(text, MAX_SYNTH_BYTES)
    }

    /// Parse a spec for [`header_only`]: a model of any size (nothing is generated).
    pub fn parse_unbounded(text: &str) -> Result<SynthSpec> {
        SynthSpec::parse_within(text, u64::MAX)
    }

    fn parse_within(text: &str, max_bytes: u64) -> Result<SynthSpec> {
        let text = text.trim();
        if text.starts_with('{') {
            let spec: SynthSpec =
                serde_json::from_str(text).map_err(|e| Error::input(format!("synthetic model spec: {e}")))?;
            spec.validate_within(max_bytes)?;
            return Ok(spec);
        }
        let mut parts = text.split(',');
        let preset = parts.next().unwrap_or("").trim();
        let mut spec = match preset {
            "source-issue" | "" => SynthSpec::source_issue(),
            "qwen3-0.6b" => SynthSpec::qwen3_0_6b(),
            other => {
                return Err(Error::input(format!(
                    "unknown synthetic preset {other:?}; presets: {}",
                    PRESETS.join(", ")
                )))
            }
        };
        for part in parts {
            let (field, value) = part
                .split_once('=')
                .ok_or_else(|| Error::input(format!("expected field=value in the synthetic spec, got {part:?}")))?;
            spec.set(field.trim(), value.trim())?;
        }
        spec.validate_within(max_bytes)?;
        Ok(spec)
    }

    fn set(&mut self, field: &str, value: &str) -> Result<()> {
        fn num<T: std::str::FromStr>(field: &str, value: &str) -> Result<T> {
            value.parse().map_err(|_| Error::input(format!("synthetic spec: {field}={value:?} is not a valid number")))
        }
        match field {
            "arch" => {
                self.arch = Arch::from_name(value).ok_or_else(|| {
                    Error::input(format!("unknown architecture {value:?}; supported: {}", Arch::supported_list()))
                })?
            }
            "vocab" => self.vocab = num(field, value)?,
            "hidden" => self.hidden = num(field, value)?,
            "heads" => self.heads = num(field, value)?,
            "kv_heads" => self.kv_heads = num(field, value)?,
            "head_dim" => self.head_dim = num(field, value)?,
            "ffn" => self.ffn = num(field, value)?,
            "layers" => self.layers = num(field, value)?,
            "rope_base" => self.rope_base = num(field, value)?,
            "eps" => self.eps = num(field, value)?,
            "tied" => {
                self.tied = match value {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    _ => return Err(Error::input(format!("synthetic spec: tied={value:?}; use true or false"))),
                }
            }
            "type" => self.weight_type = parse_weight_type(value)?,
            "dist" => self.dist = parse_dist(value)?,
            "seed" => self.seed = num(field, value)?,
            other => {
                return Err(Error::input(format!(
                    "unknown synthetic spec field {other:?}; fields: {}",
                    FIELDS.join(", ")
                )))
            }
        }
        Ok(())
    }

    /// The canonical text form (every field spelled out).
    pub fn to_text(&self) -> String {
        format!(
            "source-issue,arch={},vocab={},hidden={},heads={},kv_heads={},head_dim={},ffn={},layers={},rope_base={},eps={},tied={},type={},dist={},seed={}",
            self.arch,
            self.vocab,
            self.hidden,
            self.heads,
            self.kv_heads,
            self.head_dim,
            self.ffn,
            self.layers,
            self.rope_base,
            self.eps,
            self.tied,
            self.weight_type.0.name().to_lowercase(),
            dist_text(&self.dist),
            self.seed
        )
    }

    /// Check every field; sizes are checked before anything is allocated.
    pub fn validate(&self) -> Result<()> {
        self.validate_within(MAX_SYNTH_BYTES)
    }

    fn validate_within(&self, max_bytes: u64) -> Result<()> {
        let bad = |msg: String| Err(Error::input(format!("synthetic spec: {msg}")));
        for (name, v, max) in [
            ("vocab", self.vocab, 1 << 20),
            ("hidden", self.hidden, 1 << 16),
            ("heads", self.heads, 1024),
            ("kv_heads", self.kv_heads, 1024),
            ("head_dim", self.head_dim, 4096),
            ("ffn", self.ffn, 1 << 18),
            ("layers", self.layers, 512),
        ] {
            if v == 0 || v > max {
                return bad(format!("{name} is {v}; it must be between 1 and {max}"));
            }
        }
        if !self.heads.is_multiple_of(self.kv_heads) {
            return bad(format!("heads ({}) must be a multiple of kv_heads ({})", self.heads, self.kv_heads));
        }
        if !self.head_dim.is_multiple_of(2) {
            return bad(format!("head_dim ({}) must be even for RoPE", self.head_dim));
        }
        if !(self.rope_base.is_finite() && self.rope_base > 1.0) {
            return bad(format!("rope_base is {}; it must be a finite number above 1", self.rope_base));
        }
        if !(self.eps.is_finite() && self.eps > 0.0 && self.eps < 1.0) {
            return bad(format!("eps is {}; it must be between 0 and 1", self.eps));
        }
        match self.dist {
            Distribution::Normal { scale } if !(scale.is_finite() && scale > 0.0 && scale <= 1e6) => {
                return bad(format!("normal scale is {scale}; it must be in (0, 1e6]"))
            }
            Distribution::Int { lo, hi } if lo > hi || lo < -1_000_000 || hi > 1_000_000 => {
                return bad(format!("int range {lo}..{hi} must have lo <= hi within ±1e6"))
            }
            _ => {}
        }
        let bytes = self.estimated_bytes();
        if bytes > max_bytes {
            return bad(format!(
                "the model would take {} MiB, more than the {} MiB limit; make it smaller",
                bytes >> 20,
                max_bytes >> 20
            ));
        }
        Ok(())
    }

    /// The tensors of this spec: (name, ggml dims fastest first, is a matrix).
    fn tensors(&self) -> Vec<(String, Vec<u64>, bool)> {
        let (h, v, i) = (u64::from(self.hidden), u64::from(self.vocab), u64::from(self.ffn));
        let q = u64::from(self.heads) * u64::from(self.head_dim);
        let kv = u64::from(self.kv_heads) * u64::from(self.head_dim);
        let hd = u64::from(self.head_dim);
        let mut t = vec![("token_embd.weight".to_string(), vec![h, v], true)];
        for l in 0..self.layers {
            let n = |s: &str| format!("blk.{l}.{s}");
            t.push((n("attn_norm.weight"), vec![h], false));
            t.push((n("attn_q.weight"), vec![h, q], true));
            t.push((n("attn_k.weight"), vec![h, kv], true));
            t.push((n("attn_v.weight"), vec![h, kv], true));
            if self.arch.has_qkv_bias() {
                t.push((n("attn_q.bias"), vec![q], false));
                t.push((n("attn_k.bias"), vec![kv], false));
                t.push((n("attn_v.bias"), vec![kv], false));
            }
            if self.arch.has_qk_norm() {
                t.push((n("attn_q_norm.weight"), vec![hd], false));
                t.push((n("attn_k_norm.weight"), vec![hd], false));
            }
            t.push((n("attn_output.weight"), vec![q, h], true));
            t.push((n("ffn_norm.weight"), vec![h], false));
            t.push((n("ffn_gate.weight"), vec![h, i], true));
            t.push((n("ffn_up.weight"), vec![h, i], true));
            t.push((n("ffn_down.weight"), vec![i, h], true));
        }
        t.push(("output_norm.weight".to_string(), vec![h], false));
        if !self.tied {
            t.push(("output.weight".to_string(), vec![h, v], true));
        }
        t
    }

    /// The type a tensor is stored in.
    fn storage_type(&self, dims: &[u64], matrix: bool) -> GgmlType {
        let ty = self.weight_type.0;
        match (matrix, dims[0].is_multiple_of(ty.block_size())) {
            (false, _) => GgmlType::F32,
            (true, true) => ty,
            (true, false) => GgmlType::F16,
        }
    }

    /// Bytes of tensor data (an upper bound of the file size minus metadata).
    pub fn estimated_bytes(&self) -> u64 {
        self.tensors()
            .iter()
            .map(|(_, dims, matrix)| {
                let ty = self.storage_type(dims, *matrix);
                let n: u64 = dims.iter().product();
                n / ty.block_size() * ty.type_size() + 32
            })
            .sum::<u64>()
            + 4096
    }
}

fn dist_text(d: &Distribution) -> String {
    match d {
        Distribution::Normal { scale } => format!("normal:{scale}"),
        Distribution::Int { lo, hi } => format!("int:{lo}:{hi}"),
    }
}

/// `normal:SCALE` or `int:LO:HI`.
fn parse_dist(s: &str) -> Result<Distribution> {
    let parts: Vec<&str> = s.split(':').collect();
    let err = || {
        Error::input(format!(
            "synthetic spec: dist={s:?}; use normal:SCALE (e.g. normal:0.02) or int:LO:HI (e.g. int:-2:2)"
        ))
    };
    match parts.as_slice() {
        ["normal", scale] => Ok(Distribution::Normal { scale: scale.parse().map_err(|_| err())? }),
        ["int", lo, hi] => {
            Ok(Distribution::Int { lo: lo.parse().map_err(|_| err())?, hi: hi.parse().map_err(|_| err())? })
        }
        _ => Err(err()),
    }
}

/// SplitMix64's increment.
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64 (Steele, Lea, Flood 2014), the generator's only source of randomness.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
    /// The generator seeded with `seed` after `draws` values were drawn (the state moves by a
    /// constant per draw).
    pub fn at(seed: u64, draws: u64) -> Self {
        SplitMix64(seed.wrapping_add(draws.wrapping_mul(GOLDEN_GAMMA)))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN_GAMMA);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A standard normal value (Box-Muller, one value per two draws).
    fn std_normal(&mut self) -> f64 {
        const TWO_POW_M53: f64 = 1.0 / (1u64 << 53) as f64;
        let u1 = (1 + (self.next_u64() >> 11)) as f64 * TWO_POW_M53;
        let u2 = (self.next_u64() >> 11) as f64 * TWO_POW_M53;
        libm::sqrt(-2.0 * libm::log(u1)) * libm::cos(2.0 * std::f64::consts::PI * u2)
    }
    fn int_in(&mut self, lo: i32, hi: i32) -> i64 {
        let range = (i64::from(hi) - i64::from(lo) + 1) as u64;
        i64::from(lo) + (self.next_u64() % range) as i64
    }
}

/// Values drawn and stored per task: a multiple of every block size, so each chunk quantizes on
/// its own and the bytes do not depend on how the work is split.
const CHUNK: usize = 1 << 16;

impl SynthSpec {
    /// RNG draws per value: two for a normal value (Box-Muller), one for an integer.
    fn draws_per_value(&self) -> u64 {
        match self.dist {
            Distribution::Normal { .. } => 2,
            Distribution::Int { .. } => 1,
        }
    }

    /// The next value of a tensor (a norm weight when `is_norm`).
    fn draw(&self, rng: &mut SplitMix64, is_norm: bool) -> f32 {
        let x = match (self.dist, is_norm) {
            (Distribution::Normal { .. }, true) => 1.0 + 0.25 * rng.std_normal(),
            (Distribution::Normal { scale }, false) => f64::from(scale) * rng.std_normal(),
            (Distribution::Int { hi, .. }, true) => 1.0 + rng.int_in(0, hi.max(1) - 1) as f64,
            (Distribution::Int { lo, hi }, false) => rng.int_in(lo, hi) as f64,
        };
        x as f32
    }
}

/// A writer holding `spec`'s metadata (the model's hyperparameters and the generator's version and
/// spec), no tensors yet.
fn metadata(spec: &SynthSpec) -> Writer {
    let a = spec.arch.name();
    let mut w = Writer::new();
    let key = |k: &str| format!("{a}.{k}");
    w.metadata("general.architecture", WriterValue::String(a.into()))
        .metadata("general.name", WriterValue::String(format!("paritylab synthetic {a}")))
        .metadata(key("context_length"), WriterValue::U32(4096))
        .metadata(key("embedding_length"), WriterValue::U32(spec.hidden))
        .metadata(key("block_count"), WriterValue::U32(spec.layers))
        .metadata(key("feed_forward_length"), WriterValue::U32(spec.ffn))
        .metadata(key("attention.head_count"), WriterValue::U32(spec.heads))
        .metadata(key("attention.head_count_kv"), WriterValue::U32(spec.kv_heads))
        .metadata(key("attention.key_length"), WriterValue::U32(spec.head_dim))
        .metadata(key("attention.value_length"), WriterValue::U32(spec.head_dim))
        .metadata(key("attention.layer_norm_rms_epsilon"), WriterValue::F32(spec.eps))
        .metadata(key("rope.freq_base"), WriterValue::F32(spec.rope_base))
        .metadata(key("rope.dimension_count"), WriterValue::U32(spec.head_dim))
        .metadata("paritylab.synth.version", WriterValue::U32(SYNTH_VERSION))
        .metadata("paritylab.synth.spec", WriterValue::String(spec.to_text()));
    w
}

/// The header of the file [`generate`] would write for `spec` and that file's size, without
/// generating any values (for a sparse file of a model too large to make: its data reads as zeros,
/// valid weights of every type). No size limit applies.
pub fn header_only(spec: &SynthSpec) -> Result<(Vec<u8>, u64)> {
    spec.validate_within(u64::MAX)?;
    let mut w = metadata(spec);
    for (name, dims, matrix) in spec.tensors() {
        w.declare(name.as_str(), spec.storage_type(&dims, matrix), &dims)?;
    }
    w.header()
}

/// Generate the GGUF file of `spec`, in one buffer of the file's exact size: each tensor is drawn
/// and quantized in chunks straight into its place (chunks in parallel: SplitMix64 can jump to any
/// draw, so the bytes are those of one sequential stream).
pub fn generate(spec: &SynthSpec) -> Result<Vec<u8>> {
    spec.validate()?;
    let mut w = metadata(spec);

    // Per tensor: its storage type, value count, whether it is a norm, and its first draw.
    let mut plan = Vec::new();
    let mut draw = 0u64;
    for (name, dims, matrix) in spec.tensors() {
        let ty = spec.storage_type(&dims, matrix);
        w.declare(name.as_str(), ty, &dims)?;
        let n = dims.iter().product::<u64>();
        plan.push((ty, n as usize, name.ends_with("norm.weight"), draw));
        draw += n * spec.draws_per_value();
    }
    w.to_bytes_with(|i, dst| {
        let (ty, n, is_norm, first) = plan[i];
        let chunk_bytes = ty.row_bytes(CHUNK as u64).unwrap_or(0) as usize;
        dst.par_chunks_mut(chunk_bytes.max(1)).enumerate().try_for_each_init(
            || (Vec::with_capacity(CHUNK), Vec::with_capacity(chunk_bytes)),
            |(values, bytes): &mut (Vec<f32>, Vec<u8>), (c, out)| -> Result<()> {
                let done = c * CHUNK;
                let mut rng = SplitMix64::at(spec.seed, first + done as u64 * spec.draws_per_value());
                values.clear();
                values.extend((done..n.min(done + CHUNK)).map(|_| spec.draw(&mut rng, is_norm)));
                bytes.clear();
                quantize_row(ty, values, bytes)?;
                if bytes.len() != out.len() {
                    return Err(Error::Write(format!(
                        "synthetic tensor {i}: {} bytes for {} places",
                        bytes.len(),
                        out.len()
                    )));
                }
                out.copy_from_slice(bytes);
                Ok(())
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::Gguf;

    #[test]
    fn text_form_round_trips_and_rejects_nonsense() {
        let s = SynthSpec::parse("source-issue,type=q8_0,seed=7,dist=normal:0.5,arch=qwen2").unwrap();
        assert_eq!(s.weight_type.0, GgmlType::Q8_0);
        assert_eq!(s.dist, Distribution::Normal { scale: 0.5 });
        assert_eq!(SynthSpec::parse(&s.to_text()).unwrap(), s);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(SynthSpec::parse(&json).unwrap(), s);
        for bad in [
            "nope",
            "source-issue,vocab=0",
            "source-issue,heads=3,kv_heads=2",
            "source-issue,head_dim=15",
            "source-issue,type=q6_k",
            "source-issue,color=red",
            "source-issue,dist=int:3:1",
            "source-issue,hidden=65536,ffn=262144,layers=512",
            "source-issue,eps=-1",
            "source-issue,seed",
        ] {
            let err = SynthSpec::parse(bad).unwrap_err().to_string();
            assert!(!err.is_empty(), "{bad}");
        }
        let err = SynthSpec::parse("source-issue,color=red").unwrap_err().to_string();
        assert!(err.contains("head_dim") && err.contains("seed"), "{err}");
    }

    #[test]
    fn source_issue_model_has_the_issue_shape() {
        let bytes = generate(&SynthSpec::source_issue()).unwrap();
        let g = Gguf::parse(&bytes).unwrap();
        assert_eq!(g.architecture().as_deref(), Some("qwen3"));
        assert_eq!(g.tensor("blk.0.attn_q.weight").unwrap().dims, [32, 32]);
        assert_eq!(g.tensor("blk.0.attn_q_norm.weight").unwrap().dims, [16]);
        assert_eq!(g.tensor("output.weight").unwrap().dims, [32, 64]);
        let q = crate::quant::dequantize_tensor(g.tensor("blk.0.attn_q.weight").unwrap()).unwrap();
        assert!(q.iter().all(|x| x.fract() == 0.0 && (-2.0..=2.0).contains(x)));
        assert!(q.iter().any(|&x| x == -2.0) && q.contains(&2.0));
        let norm = crate::quant::dequantize_tensor(g.tensor("blk.0.attn_norm.weight").unwrap()).unwrap();
        assert!(norm.iter().all(|&x| x == 1.0 || x == 2.0));
    }

    #[test]
    fn rows_that_are_not_whole_blocks_fall_back_to_f16() {
        let spec = SynthSpec::parse("source-issue,hidden=48,type=q4_0,dist=normal:0.1").unwrap();
        let g_bytes = generate(&spec).unwrap();
        let g = Gguf::parse(&g_bytes).unwrap();
        assert_eq!(g.tensor("blk.0.attn_q.weight").unwrap().ggml_type, GgmlType::F16); // rows of 48
        assert_eq!(g.tensor("blk.0.attn_output.weight").unwrap().ggml_type, GgmlType::Q4_0);
        // rows of 32
    }

    /// The generator as first written: one RNG stream, each tensor drawn whole, then quantized and
    /// added. The chunked, parallel [`generate`] must give these bytes.
    fn generate_sequential(spec: &SynthSpec) -> Vec<u8> {
        let mut w = metadata(spec);
        let mut rng = SplitMix64::new(spec.seed);
        for (name, dims, matrix) in spec.tensors() {
            let n = dims.iter().product::<u64>() as usize;
            let is_norm = name.ends_with("norm.weight");
            let values: Vec<f32> = (0..n).map(|_| spec.draw(&mut rng, is_norm)).collect();
            let ty = spec.storage_type(&dims, matrix);
            let mut bytes = Vec::new();
            quantize_row(ty, &values, &mut bytes).unwrap();
            w.tensor(name, ty, &dims, bytes).unwrap();
        }
        w.to_bytes().unwrap()
    }

    #[test]
    fn chunked_generation_gives_the_sequential_bytes() {
        // Tensors of several chunks (an embedding of 4 * 65536 values and a bit), partial last
        // chunks, normal and integer draws, block types and the F16 fallback.
        for text in [
            "source-issue,vocab=4100,hidden=64,heads=4,kv_heads=2,head_dim=16,ffn=128,type=q8_0,dist=normal:0.02",
            "source-issue,vocab=3000,hidden=96,heads=2,kv_heads=1,head_dim=48,ffn=1056,type=q4_0,dist=int:-3:4,seed=5",
            "source-issue,arch=qwen2,vocab=3500,hidden=40,heads=2,kv_heads=2,head_dim=20,type=f16,tied=true",
        ] {
            let spec = SynthSpec::parse(text).unwrap();
            assert!(spec.tensors().iter().any(|(_, d, _)| d.iter().product::<u64>() > 2 * CHUNK as u64), "{text}");
            assert_eq!(generate(&spec).unwrap(), generate_sequential(&spec), "{text}");
        }
    }

    #[test]
    fn jumping_ahead_lands_on_the_same_draw() {
        let mut r = SplitMix64::new(42);
        for _ in 0..1000 {
            r.next_u64();
        }
        assert_eq!(SplitMix64::at(42, 1000).next_u64(), r.next_u64());
    }

    #[test]
    fn the_qwen3_preset_has_qwen3_0_6b_shape() {
        let s = SynthSpec::parse("qwen3-0.6b").unwrap();
        assert_eq!(s, SynthSpec::qwen3_0_6b());
        assert_eq!(SynthSpec::parse(&s.to_text()).unwrap(), s);
        assert_eq!(
            (s.hidden, s.layers, s.heads, s.kv_heads, s.head_dim, s.ffn, s.vocab),
            (1024, 28, 16, 8, 128, 3072, 151_936)
        );
        // 596M weights in Q8_0 (34 bytes per 32): about 634 MB.
        let mb = s.estimated_bytes() as f64 / 1e6;
        assert!((630.0..640.0).contains(&mb), "{mb} MB");
    }

    #[test]
    fn splitmix_matches_the_published_sequence() {
        // First outputs for seed 1234567 from the reference implementation (Vigna's splitmix64.c).
        let mut r = SplitMix64::new(1234567);
        assert_eq!(r.next_u64(), 6457827717110365317);
        assert_eq!(r.next_u64(), 3203168211198807973);
    }
}
