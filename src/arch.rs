//! The decoder architectures paritylab knows, by their GGUF `general.architecture` name.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Qwen3: per-head RMSNorm on Q and K (`attn_q_norm`, `attn_k_norm`), no Q/K/V bias.
    Qwen3,
    /// Qwen2 / Qwen2.5: Q/K/V biases, no QK norm.
    Qwen2,
    /// Llama family (Llama 2/3, SmolLM2, ...): no biases, no QK norm; the GGUF converter permutes
    /// Q/K rows so adjacent-pair RoPE applies.
    Llama,
}

impl Arch {
    pub const ALL: [Arch; 3] = [Arch::Qwen3, Arch::Qwen2, Arch::Llama];

    /// The `general.architecture` value, also the metadata key prefix.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Qwen3 => "qwen3",
            Arch::Qwen2 => "qwen2",
            Arch::Llama => "llama",
        }
    }

    pub fn from_name(name: &str) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.name() == name)
    }

    /// "qwen3, qwen2, llama", for error messages.
    pub fn supported_list() -> String {
        Arch::ALL.map(Arch::name).join(", ")
    }

    pub fn has_qk_norm(self) -> bool {
        self == Arch::Qwen3
    }

    pub fn has_qkv_bias(self) -> bool {
        self == Arch::Qwen2
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
