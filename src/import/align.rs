//! Lining a tensor up with a stage: the file's layout changes (reshape, transpose, heads-first,
//! the Llama Q/K row permutation, a scale), then positions first. A tensor that does not fit is
//! refused with the reason, never read in a different order.

use super::naming::{Scale, Transforms};
use super::raw::RawTensor;
use super::ModelShape;
use crate::arch::Arch;
use crate::trace::Stage;

/// A tensor's known elements in the stage's coordinates, before the positions are anchored.
#[derive(Debug, Clone)]
pub struct Placed {
    /// Positions the tensor holds (the last `t` of the run).
    pub t: usize,
    pub cells: Cells,
    /// Elements the tensor has for the stage (known ones).
    pub known: usize,
    /// What was done to line it up, for the report ("dropped leading 1s", "transposed [1, 0, 2]").
    pub steps: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum Cells {
    /// `(local position, index, value)`; `n` values per position.
    Vector { n: usize, cells: Vec<(usize, usize, f64)> },
    /// `(local query position, head, key position, value)`.
    Attention { heads: usize, keys: usize, cells: Vec<(usize, usize, usize, f64)> },
}

/// Multi-index of flat C-order index `i` in `shape` (empty shape: scalar).
fn unravel(mut i: usize, shape: &[usize], out: &mut [usize]) {
    for (d, &n) in shape.iter().enumerate().rev() {
        out[d] = if n == 0 { 0 } else { i % n };
        i = i.checked_div(n).unwrap_or(0);
    }
}

fn ravel(idx: &[usize], shape: &[usize]) -> usize {
    idx.iter().zip(shape).fold(0, |acc, (&i, &n)| acc * n + i)
}

/// The file's elements as `(flat index, value)` in the current `shape`, with transposes applied.
struct Work {
    shape: Vec<usize>,
    cells: Vec<(usize, f64)>,
    steps: Vec<String>,
}

impl Work {
    fn reshape(&mut self, dims: &[i64]) -> Result<(), String> {
        let total: usize = self.shape.iter().product();
        let fixed: usize = dims.iter().filter(|&&d| d > 0).map(|&d| d as usize).product();
        let new: Vec<usize> =
            dims.iter().map(|&d| if d == -1 { total.checked_div(fixed).unwrap_or(0) } else { d as usize }).collect();
        if new.iter().product::<usize>() != total {
            return Err(format!("cannot reshape {:?} to {dims:?}: {total} elements", self.shape));
        }
        self.steps.push(format!("reshaped {:?} to {new:?}", self.shape));
        self.shape = new;
        Ok(())
    }

    fn transpose(&mut self, axes: &[usize]) -> Result<(), String> {
        if axes.len() != self.shape.len() {
            return Err(format!("cannot transpose {:?} with axes {axes:?}: the ranks differ", self.shape));
        }
        let new_shape: Vec<usize> = axes.iter().map(|&a| self.shape[a]).collect();
        let mut old = vec![0; self.shape.len()];
        let mut idx = vec![0; self.shape.len()];
        for c in &mut self.cells {
            unravel(c.0, &self.shape, &mut old);
            for (d, &a) in axes.iter().enumerate() {
                idx[d] = old[a];
            }
            c.0 = ravel(&idx, &new_shape);
        }
        self.steps.push(format!("transposed {:?} by {axes:?} to {new_shape:?}", self.shape));
        self.shape = new_shape;
        Ok(())
    }

    /// Drop leading dimensions of size 1 while the rank is above `min_rank`.
    fn squeeze(&mut self, min_rank: usize) {
        let mut dropped = 0;
        while self.shape.len() > min_rank && self.shape.first() == Some(&1) {
            self.shape.remove(0);
            dropped += 1;
        }
        if dropped > 0 {
            self.steps.push(format!("dropped {dropped} leading dimension(s) of size 1"));
        }
    }
}

/// Llama's GGUF Q/K row order from HF's: within a head of `hd` rows, HF row `s * hd/2 + i` is
/// GGUF row `2 i + s` (the converter's permutation).
pub fn hf_to_gguf_row(j: usize, hd: usize) -> usize {
    let (head, r) = (j / hd, j % hd);
    let half = hd / 2;
    let (s, i) = (r / half, r % half);
    head * hd + 2 * i + s
}

/// Line `t` up with `stage` given the model's shape (when known) and the tensor's transforms.
/// `positions`: how many tokens the dump ran, when known (it settles whether a leading 1 is a
/// batch dimension or a single position).
pub fn place(
    t: &RawTensor,
    stage: Stage,
    tf: &Transforms,
    model: Option<&ModelShape>,
    positions: Option<usize>,
) -> Result<Placed, String> {
    let mut w = Work { shape: t.shape.clone(), cells: t.values.iter().collect(), steps: Vec::new() };
    if let Some(dims) = &tf.reshape {
        w.reshape(dims)?;
    }
    if let Some(axes) = &tf.transpose {
        w.transpose(axes)?;
    }
    let scale = match tf.scale {
        None => None,
        Some(Scale::Factor(f)) => Some(f),
        Some(Scale::InvSqrtHeadDim) => {
            let m = model.ok_or("its scale is 1/sqrt(head_dim): compare it with a model to know head_dim")?;
            Some(1.0 / (m.head_dim() as f64).sqrt())
        }
    };
    if let Some(f) = scale {
        w.cells.iter_mut().for_each(|c| c.1 *= f);
        w.steps.push(format!("scaled by {f}"));
    }
    if stage.is_attention_matrix() {
        return place_attention(w, stage, model);
    }
    let want = model.map(|m| m.width(stage));
    if tf.heads_first {
        // ggml's [n_head, T, head_dim] before the heads are merged.
        let m = model.ok_or("its layout is heads first: compare it with a model to know the head count")?;
        w.squeeze(3);
        let heads =
            if matches!(stage, Stage::K | Stage::V | Stage::KRope | Stage::KNormed) { m.kv_heads } else { m.heads };
        if w.shape.len() == 3 && w.shape[0] == heads {
            w.transpose(&[1, 0, 2])?;
        } else if !(w.shape.len() == 2 && heads == 1) {
            return Err(format!("expected [{heads} heads, positions, head_dim], found {:?}", w.shape));
        }
    }
    // Leading 1s may be a batch dimension or a single position: take the reading whose position
    // count is the dump's, else the one with the batch dimensions dropped.
    let ones = w.shape.iter().take_while(|&&d| d == 1).count().min(w.shape.len().saturating_sub(1));
    let reading = |k: usize| -> Result<(usize, usize), String> {
        match &w.shape[k..] {
            [] => Err("a scalar is not a stage".into()),
            [n] => match want {
                Some(want) if *n != want => {
                    Err(format!("shape {:?} does not hold {want} values per position", w.shape))
                }
                _ => Ok((1, *n)),
            },
            [t, rest @ ..] => {
                let n: usize = rest.iter().product();
                match want {
                    Some(want) if n != want => {
                        let hint = if w.shape.len() == 2 && w.shape[0] == want {
                            format!(
                                " (it looks transposed: [{want}, {t}]; declare \"transpose\": [1, 0] in a mapping file)"
                            )
                        } else {
                            String::new()
                        };
                        Err(format!(
                            "shape {:?} gives {n} values per position, the model's {} has {want}{hint}",
                            w.shape,
                            stage.name()
                        ))
                    }
                    _ => Ok((*t, n)),
                }
            }
        }
    };
    type Reading = Result<(usize, usize), String>;
    let readings: Vec<(usize, Reading)> = (0..=ones).map(|k| (k, reading(k))).collect();
    let chosen = readings
        .iter()
        .find(|(_, r)| matches!(r, Ok((t, _)) if Some(*t) == positions))
        .or_else(|| readings.iter().rev().find(|(_, r)| r.is_ok()))
        .or_else(|| readings.last());
    let (k, (tpos, n)) = match chosen {
        Some((k, Ok(r))) => (*k, *r),
        Some((_, Err(e))) => return Err(e.clone()),
        None => return Err("an empty shape is not a stage".into()),
    };
    if k > 0 {
        w.shape.drain(..k);
        w.steps.push(format!("dropped {k} leading dimension(s) of size 1"));
    }
    let rows = if tf.hf_rows { model.filter(|m| m.arch == Arch::Llama) } else { None };
    let hd = model.map(ModelShape::head_dim).unwrap_or(0);
    if rows.is_some() {
        if hd == 0 || !hd.is_multiple_of(2) || !n.is_multiple_of(hd) {
            return Err(format!("cannot apply the Llama Q/K row permutation: {n} values are not whole heads of {hd}"));
        }
        w.steps.push("Q/K rows permuted from HF order to GGUF order".into());
    } else if tf.hf_rows && model.is_none() {
        w.steps.push("Q/K rows left in the file's order (no model to tell the architecture)".into());
    }
    let known = w.cells.len();
    let cells = w
        .cells
        .into_iter()
        .map(|(flat, v)| {
            let (i, j) = (flat / n, flat % n);
            let j = if rows.is_some() { hf_to_gguf_row(j, hd) } else { j };
            (i, j, v)
        })
        .collect();
    Ok(Placed { t: tpos, cells: Cells::Vector { n, cells }, known, steps: w.steps })
}

fn place_attention(mut w: Work, stage: Stage, model: Option<&ModelShape>) -> Result<Placed, String> {
    w.squeeze(3);
    if w.shape.len() == 2 && model.is_some_and(|m| m.heads == 1) {
        w.shape.insert(0, 1);
    }
    let [heads, t, keys] = w.shape[..] else {
        return Err(format!("{} is [heads, positions, keys]; found {:?}", stage.name(), w.shape));
    };
    if let Some(m) = model {
        if heads != m.heads {
            return Err(format!("{:?} has {heads} heads first, the model has {}", w.shape, m.heads));
        }
    }
    if keys < t {
        return Err(format!("{:?} has fewer key columns ({keys}) than positions ({t})", w.shape));
    }
    let known = w.cells.len();
    let cells = w
        .cells
        .into_iter()
        .map(|(flat, v)| {
            let (h, rest) = (flat / (t * keys), flat % (t * keys));
            (rest / keys, h, rest % keys, v)
        })
        .collect();
    Ok(Placed { t, cells: Cells::Attention { heads, keys, cells }, known, steps: w.steps })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::raw::{RawDtype, RawValues};

    fn shape(arch: Arch) -> ModelShape {
        ModelShape {
            arch,
            layers: 1,
            hidden: 8,
            q: 8,
            k: 4,
            v: 4,
            ffn: 16,
            vocab: 10,
            heads: 2,
            kv_heads: 1,
            qk_norm: false,
        }
    }

    fn tensor(shape: Vec<usize>) -> RawTensor {
        let n = shape.iter().product::<usize>();
        RawTensor::dense("x", shape, RawDtype::F32, (0..n).map(|i| i as f64).collect()).unwrap()
    }

    fn vector(p: &Placed) -> Vec<(usize, usize, f64)> {
        match &p.cells {
            Cells::Vector { cells, .. } => cells.clone(),
            Cells::Attention { .. } => panic!(),
        }
    }

    #[test]
    fn positions_first_with_any_per_position_shape() {
        let m = shape(Arch::Qwen3);
        let p = place(&tensor(vec![1, 3, 2, 4]), Stage::Q, &Transforms::default(), Some(&m), Some(3)).unwrap();
        assert_eq!(p.t, 3);
        assert_eq!(vector(&p)[9], (1, 1, 9.0));
        let one = place(&tensor(vec![8]), Stage::AttnNorm, &Transforms::default(), Some(&m), None).unwrap();
        assert_eq!(one.t, 1);
    }

    #[test]
    fn a_leading_one_is_a_position_or_a_batch_as_the_token_count_says() {
        let m = shape(Arch::Qwen3);
        // [1, 2 heads, 4]: one position of 8 values (not 2 positions of 4).
        let p = place(&tensor(vec![1, 2, 4]), Stage::Q, &Transforms::default(), Some(&m), Some(1)).unwrap();
        assert_eq!(p.t, 1);
        // [1, 3, 8]: a batch of one, three positions.
        let p = place(&tensor(vec![1, 3, 8]), Stage::AttnNorm, &Transforms::default(), Some(&m), Some(3)).unwrap();
        assert_eq!(p.t, 3);
        // Without a model: the batch reading, unless the token count says otherwise.
        assert_eq!(place(&tensor(vec![1, 3, 8]), Stage::AttnNorm, &Transforms::default(), None, None).unwrap().t, 3);
        assert_eq!(place(&tensor(vec![1, 3, 8]), Stage::AttnNorm, &Transforms::default(), None, Some(1)).unwrap().t, 1);
    }

    #[test]
    fn a_transposed_tensor_is_refused_with_a_hint() {
        let m = shape(Arch::Qwen3);
        let e = place(&tensor(vec![8, 3]), Stage::AttnNorm, &Transforms::default(), Some(&m), None).unwrap_err();
        assert!(e.contains("looks transposed"), "{e}");
        let tf = Transforms { transpose: Some(vec![1, 0]), ..Transforms::default() };
        let p = place(&tensor(vec![8, 3]), Stage::AttnNorm, &tf, Some(&m), Some(3)).unwrap();
        // Element (row 5, column 2) of the file is position 2, index 5.
        assert!(vector(&p).contains(&(2, 5, 17.0)));
    }

    #[test]
    fn llama_rows_are_permuted_per_head_only_for_llama() {
        assert_eq!((0..4).map(|j| hf_to_gguf_row(j, 4)).collect::<Vec<_>>(), [0, 2, 1, 3]);
        assert_eq!(hf_to_gguf_row(5, 4), 6);
        let tf = Transforms { hf_rows: true, ..Transforms::default() };
        let llama = place(&tensor(vec![1, 8]), Stage::Q, &tf, Some(&shape(Arch::Llama)), None).unwrap();
        let js: Vec<usize> = vector(&llama).iter().map(|c| c.1).collect();
        assert_eq!(js, [0, 2, 1, 3, 4, 6, 5, 7]);
        let qwen = place(&tensor(vec![1, 8]), Stage::Q, &tf, Some(&shape(Arch::Qwen3)), None).unwrap();
        assert_eq!(vector(&qwen).iter().map(|c| c.1).collect::<Vec<_>>(), (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn heads_first_layouts_are_merged() {
        let m = shape(Arch::Qwen3);
        let tf = Transforms { heads_first: true, ..Transforms::default() };
        // [2 heads, 3 positions, 4 head_dim]: element (h=1, t=2, d=3) = 1*12 + 2*4 + 3 = 23.
        let p = place(&tensor(vec![1, 2, 3, 4]), Stage::Kqv, &tf, Some(&m), None).unwrap();
        assert!(vector(&p).contains(&(2, 7, 23.0)));
    }

    #[test]
    fn attention_is_heads_positions_keys() {
        let m = shape(Arch::Qwen3);
        let p = place(&tensor(vec![2, 2, 5]), Stage::KqSoftmax, &Transforms::default(), Some(&m), None).unwrap();
        let Cells::Attention { heads, keys, cells } = &p.cells else { panic!() };
        assert_eq!((*heads, *keys, p.t), (2, 5, 2));
        assert!(cells.contains(&(1, 1, 3, 18.0)));
        let e = place(&tensor(vec![3, 2, 2]), Stage::Kq, &Transforms::default(), Some(&m), None).unwrap_err();
        assert!(e.contains("3 heads"), "{e}");
    }

    #[test]
    fn sparse_values_keep_their_indices() {
        let m = shape(Arch::Qwen3);
        let t = RawTensor {
            name: "x".into(),
            shape: vec![2, 8],
            dtype: RawDtype::F32,
            values: RawValues::Sparse { index: vec![0, 15], values: vec![1.0, 2.0], quantum: 5e-5 },
            op: None,
        };
        let p = place(&t, Stage::AttnNorm, &Transforms::default(), Some(&m), None).unwrap();
        assert_eq!(vector(&p), [(0, 0, 1.0), (1, 7, 2.0)]);
        assert_eq!(p.known, 2);
    }
}
