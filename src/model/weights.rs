//! The model's tensors, checked against the config. Matrices stay in their GGUF type as views into
//! the file's bytes; the small 1-D tensors (norm weights, biases) are decoded to f32 once. This is
//! the only code that names tensors.

use super::Config;
use crate::ggml::GgmlType;
use crate::gguf::{Gguf, Tensor};
use crate::quant;
use crate::{Error, Result};

/// A weight matrix as stored: `rows` x `cols` row-major (GGUF dims `[cols, rows]`), each row whole
/// blocks of `ggml_type`.
#[derive(Debug, Clone, Copy)]
pub struct Matrix<'a> {
    pub name: &'a str,
    pub ggml_type: GgmlType,
    pub rows: usize,
    pub cols: usize,
    pub data: &'a [u8],
}

impl<'a> Matrix<'a> {
    fn from_tensor(t: &Tensor<'a>, rows: usize, cols: usize) -> Result<Matrix<'a>> {
        let want = [cols as u64, rows as u64];
        if t.dims != want {
            return Err(Error::input(format!("{} has dims {:?}, expected {:?}", t.name, t.dims, want)));
        }
        if !quant::is_supported(t.ggml_type) {
            return Err(quant::unsupported(t.name, t.ggml_type));
        }
        Ok(Matrix { name: t.name, ggml_type: t.ggml_type, rows, cols, data: t.data })
    }

    /// Bytes of one stored row.
    pub fn row_bytes(&self) -> usize {
        self.data.len() / self.rows.max(1)
    }

    /// The stored bytes of row `r` (`r < rows`).
    pub fn row(&self, r: usize) -> &'a [u8] {
        let n = self.row_bytes();
        &self.data[r * n..(r + 1) * n]
    }

    /// Decode row `r` into `out` (length `cols`).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) -> Result<()> {
        quant::dequantize_row(self.ggml_type, self.row(r), out)
    }
}

/// One decoder layer's weights.
#[derive(Debug, Clone)]
pub struct Layer<'a> {
    /// `[hidden]`
    pub attn_norm: Vec<f32>,
    /// `[heads * head_dim, hidden]`
    pub wq: Matrix<'a>,
    /// `[kv_heads * head_dim, hidden]`
    pub wk: Matrix<'a>,
    /// `[kv_heads * head_dim, hidden]`
    pub wv: Matrix<'a>,
    /// Qwen2: `[heads * head_dim]`, `[kv_heads * head_dim]` x 2.
    pub bq: Option<Vec<f32>>,
    pub bk: Option<Vec<f32>>,
    pub bv: Option<Vec<f32>>,
    /// Qwen3: `[head_dim]`, shared by all heads.
    pub q_norm: Option<Vec<f32>>,
    pub k_norm: Option<Vec<f32>>,
    /// `[hidden, heads * head_dim]`
    pub wo: Matrix<'a>,
    /// `[hidden]`
    pub ffn_norm: Vec<f32>,
    /// `[ffn, hidden]`
    pub w_gate: Matrix<'a>,
    /// `[ffn, hidden]`
    pub w_up: Matrix<'a>,
    /// `[hidden, ffn]`
    pub w_down: Matrix<'a>,
}

/// All weights of a decoder.
#[derive(Debug, Clone)]
pub struct Weights<'a> {
    /// `[vocab, hidden]`
    pub token_embd: Matrix<'a>,
    pub layers: Vec<Layer<'a>>,
    /// `[hidden]`
    pub output_norm: Vec<f32>,
    /// `[vocab, hidden]`; the embedding itself when the model is tied.
    pub output: Matrix<'a>,
}

impl<'a> Weights<'a> {
    /// Find and check every tensor the config calls for.
    ///
    /// # Errors
    /// A tensor is missing, has other dims than the config implies, or has a type that cannot be
    /// decoded.
    pub fn from_gguf(g: &Gguf<'a>, c: &Config) -> Result<Weights<'a>> {
        let (h, q, kv, f) = (c.hidden, c.heads * c.head_dim, c.kv_heads * c.head_dim, c.ffn);
        let matrix = |name: &str, rows: usize, cols: usize| Matrix::from_tensor(g.require_tensor(name)?, rows, cols);
        let vector = |name: &str, len: usize| -> Result<Vec<f32>> {
            let t = g.require_tensor(name)?;
            if t.dims != [len as u64] {
                return Err(Error::input(format!("{} has dims {:?}, expected [{len}]", t.name, t.dims)));
            }
            quant::dequantize_tensor(t)
        };
        let optional = |name: &str, len: usize| -> Result<Option<Vec<f32>>> {
            if g.tensor(name).is_some() {
                vector(name, len).map(Some)
            } else {
                Ok(None)
            }
        };

        let token_embd = matrix("token_embd.weight", c.vocab, h)?;
        let mut layers = Vec::with_capacity(c.layers);
        for i in 0..c.layers {
            let n = |s: &str| format!("blk.{i}.{s}");
            let layer = Layer {
                attn_norm: vector(&n("attn_norm.weight"), h)?,
                wq: matrix(&n("attn_q.weight"), q, h)?,
                wk: matrix(&n("attn_k.weight"), kv, h)?,
                wv: matrix(&n("attn_v.weight"), kv, h)?,
                bq: optional(&n("attn_q.bias"), q)?,
                bk: optional(&n("attn_k.bias"), kv)?,
                bv: optional(&n("attn_v.bias"), kv)?,
                q_norm: optional(&n("attn_q_norm.weight"), c.head_dim)?,
                k_norm: optional(&n("attn_k_norm.weight"), c.head_dim)?,
                wo: matrix(&n("attn_output.weight"), h, q)?,
                ffn_norm: vector(&n("ffn_norm.weight"), h)?,
                w_gate: matrix(&n("ffn_gate.weight"), f, h)?,
                w_up: matrix(&n("ffn_up.weight"), f, h)?,
                w_down: matrix(&n("ffn_down.weight"), h, f)?,
            };
            if c.arch.has_qk_norm() && (layer.q_norm.is_none() || layer.k_norm.is_none()) {
                return Err(Error::input(format!(
                    "{} and {} are required for {}",
                    n("attn_q_norm.weight"),
                    n("attn_k_norm.weight"),
                    c.arch
                )));
            }
            layers.push(layer);
        }
        let output_norm = vector("output_norm.weight", h)?;
        let output = if c.tied { token_embd } else { matrix("output.weight", c.vocab, h)? };
        Ok(Weights { token_embd, layers, output_norm, output })
    }
}
