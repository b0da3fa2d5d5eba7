//! Projections: `out = W x` for a weight matrix kept in its GGUF type. Rows are decoded on the fly
//! (never a full f32 copy of a model) and split across threads by output row only, so the result is
//! the same bits for any thread count.

use crate::float::Float;
use crate::ggml::GgmlType;
use crate::model::Matrix;
use crate::path::{ActivationQuant, Precision, Projection};
use crate::quant;
use crate::quant::actq::{self, ActFormat, QuantizedActs};
use crate::quant::actq_rows;
use crate::{Error, Result};
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

/// Output rows per parallel task.
const ROWS_PER_TASK: usize = 16;

/// Matrices decoded whole, for the orientations that read the bytes across rows (small models
/// only: `as_stored` and `shape_guess` model bugs seen on tiny reproducers).
#[derive(Default)]
pub struct DenseCache {
    dense: HashMap<String, Vec<f32>>,
}

impl DenseCache {
    fn get(&mut self, w: &Matrix<'_>) -> Result<&[f32]> {
        if !self.dense.contains_key(w.name) {
            let mut flat = quant::try_alloc_f32(w.rows * w.cols, w.name)?;
            for (r, row) in flat.chunks_exact_mut(w.cols.max(1)).enumerate() {
                w.dequantize_row(r, row)?;
            }
            self.dense.insert(w.name.to_string(), flat);
        }
        Ok(self.dense.get(w.name).map(Vec::as_slice).unwrap_or(&[]))
    }
}

/// The orientation a projection really uses for `w` (the shape guess resolved).
pub fn orientation(w: &Matrix<'_>, projection: Projection) -> Projection {
    match projection {
        // Legacy: `if W.rows == x.cols then x.W else x.W^T`, with W [out, in] and x.cols = in.
        Projection::ShapeGuess if w.rows == w.cols => Projection::AsStored,
        Projection::ShapeGuess => Projection::Transposed,
        p => p,
    }
}

/// `out = W x` for `n` positions at once: `xs` holds `n` input vectors of `w.cols` values one after
/// the other, `out` receives `n` output vectors of `w.rows` values. `transposed` (nn.Linear):
/// `out[j] = sum_i W[j][i] x[i]`; `as_stored` reads the bytes as `[in, out]`:
/// `out[j] = sum_i flat[i * out + j] x[i]`. Each weight row is decoded once for all positions (the
/// prompt's positions share one read of the weights), and every output value is the bits the
/// one-position product gives: the same decoded row, the same dot product. With `rounding`
/// `llama_cpp` the inputs are first rounded to the dot-product format llama.cpp pairs with the
/// weight type, then multiplied with integer products per block (f32 paths only).
pub fn matmul<F: Float>(
    out: &mut [F],
    w: &Matrix<'_>,
    xs: &[F],
    projection: Projection,
    acc: Precision,
    rounding: ActivationQuant,
    cache: &mut DenseCache,
) -> Result<()> {
    matmuls(&mut [(out, w)], xs, projection, acc, rounding, cache)
}

/// [`matmul`] for several weight matrices applied to the same input (q, k and v; gate and up),
/// `(out, W)` each: one parallel region for all their rows (a decoding step is dozens of small
/// matmuls, and every region ends with the threads waiting for each other), and with `llama_cpp`
/// rounding the input rounded once per format. Each output value is the bits [`matmul`] gives.
pub fn matmuls<F: Float>(
    jobs: &mut [(&mut [F], &Matrix<'_>)],
    xs: &[F],
    projection: Projection,
    acc: Precision,
    rounding: ActivationQuant,
    cache: &mut DenseCache,
) -> Result<()> {
    let Some(cols) = jobs.first().map(|(_, w)| w.cols) else { return Ok(()) };
    let n = xs.len().checked_div(cols).unwrap_or(0);
    if n == 0 {
        return Ok(());
    }
    for (out, w) in jobs.iter() {
        if w.cols != cols || out.len() != n * w.rows || xs.len() != n * cols {
            return Err(Error::input(format!(
                "{}: a {}x{} matrix cannot map {} inputs to {} outputs",
                w.name,
                w.rows,
                w.cols,
                xs.len(),
                out.len()
            )));
        }
    }
    if jobs.iter().any(|(_, w)| orientation(w, projection) != Projection::Transposed) {
        if let [(out, w)] = jobs {
            return as_stored(out, w, xs, acc, cache);
        }
        for (out, w) in jobs.iter_mut() {
            matmuls(&mut [(&mut **out, *w)], xs, projection, acc, rounding, cache)?;
        }
        return Ok(());
    }
    if rounding == ActivationQuant::LlamaCpp {
        let (Some(xs), Some(outs)) = (
            F::as_f32s(xs),
            jobs.iter_mut().map(|(out, w)| Some((F::as_f32s_mut(out)?, *w))).collect::<Option<Vec<_>>>(),
        ) else {
            return Err(Error::input("activation_quant=llama_cpp computes in f32: use precision=f32"));
        };
        return matmuls_llama_cpp(outs, xs, n);
    }
    // Each task decodes a row once and dots it with every position.
    let ws: Vec<&Matrix<'_>> = jobs.iter().map(|(_, w)| *w).collect();
    by_rows(
        jobs.iter_mut().map(|(out, w)| (&mut **out, w.rows)).collect(),
        n,
        || vec![0f32; cols],
        |m, r0, row, chunk| {
            let w = ws[m];
            for (k, outs) in chunk.chunks_exact_mut(n).enumerate() {
                quant::fast::dequantize_row_fast(w.ggml_type, w.row(r0 + k), row)?;
                F::dot_positions(row, xs, outs, acc);
            }
            Ok(())
        },
    )
}

/// The orientations that read the bytes across rows (`as_stored`, a square `shape_guess`), on the
/// matrix decoded whole.
fn as_stored<F: Float>(out: &mut [F], w: &Matrix<'_>, xs: &[F], acc: Precision, cache: &mut DenseCache) -> Result<()> {
    let (rows, cols) = (w.rows, w.cols);
    let flat = cache.get(w)?;
    for (o, x) in out.chunks_exact_mut(rows).zip(xs.chunks_exact(cols)) {
        o.par_chunks_mut(ROWS_PER_TASK).enumerate().for_each_init(
            || vec![0f32; cols],
            |column, (ci, chunk)| {
                for (k, o) in chunk.iter_mut().enumerate() {
                    let j = ci * ROWS_PER_TASK + k;
                    for (i, c) in column.iter_mut().enumerate() {
                        *c = flat[i * rows + j];
                    }
                    *o = F::dot_weights(column, x, acc);
                }
            },
        );
    }
    Ok(())
}

/// Run `f` on a thread of the rayon pool, the caller waiting (directly when already on one). The
/// matmuls inside then split their rows among the pool's threads from within, instead of each one
/// being injected from outside: an injection puts the caller to sleep and wakes a pool thread.
/// Called from outside the pool, the other threads are also kept awake for as long as `f` runs
/// (each takes pending work as soon as it appears, and spins while there is none, as llama.cpp's
/// threads do): a forward pass is hundreds of small matmuls, and a sleeping web worker takes longer
/// to wake than a decoding step's matmul takes to run. Which thread computes a row never changes
/// its bits.
pub fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        return f();
    }
    let done = AtomicBool::new(false);
    rayon::scope(|s| {
        let home = rayon::current_thread_index();
        for _ in 1..rayon::current_num_threads() {
            let done = &done;
            s.spawn(move |_| keep_busy(done, home));
        }
        let out = f();
        done.store(true, Ordering::Release);
        out
    })
}

/// Run the pool's pending work until `done`; at once if this is `home`, the thread running the
/// forward pass (it may pick this job up itself while it waits for a matmul's other half).
fn keep_busy(done: &AtomicBool, home: Option<usize>) {
    if rayon::current_thread_index() == home {
        return;
    }
    while !done.load(Ordering::Acquire) {
        if rayon::yield_now() != Some(rayon::Yield::Executed) {
            std::hint::spin_loop();
        }
    }
}

/// Fill each `(out, rows)` (`n` vectors of `rows` values) one weight row at a time, the rows of all
/// of them split across threads in one region: `f(m, r, scratch, outs)` writes the results of rows
/// `r..r + outs.len() / n` of output `m` for every position into `outs` (`[row][position]`), with
/// `scratch` a per-task buffer made by `init`; the rows of a call start at a multiple of
/// `actq_rows::LANES`. With one position the outputs are written in place; otherwise results land
/// `[rows][n]` and are transposed after.
fn by_rows<F: Float, S>(
    mut outs: Vec<(&mut [F], usize)>,
    n: usize,
    init: impl Fn() -> S + Sync + Send,
    f: impl Fn(usize, usize, &mut S, &mut [F]) -> Result<()> + Sync,
) -> Result<()> {
    // About four tasks per thread (at least ROWS_PER_TASK rows each): fewer, larger tasks cost less
    // to hand out (web workers wake slowly). Each value is computed alike whatever the split.
    let total: usize = outs.iter().map(|(_, rows)| rows).sum();
    let per_task = (total / (4 * rayon::current_num_threads())).max(ROWS_PER_TASK).next_multiple_of(actq_rows::LANES);
    let mut staged: Vec<Vec<F>> = Vec::new();
    if n > 1 {
        for (_, rows) in &outs {
            staged.push(vec![F::ZERO; n * rows]);
        }
    }
    let tasks: Vec<(usize, usize, &mut [F])> = if n == 1 {
        outs.iter_mut().enumerate().flat_map(|(m, (out, _))| tasks_of(m, out, per_task)).collect()
    } else {
        staged.iter_mut().enumerate().flat_map(|(m, tmp)| tasks_of(m, tmp, per_task * n)).collect()
    };
    tasks.into_par_iter().try_for_each_init(&init, |scratch, (m, ci, chunk)| f(m, ci * per_task, scratch, chunk))?;
    // Back to `[position][row]`, the positions split across threads.
    for ((out, rows), tmp) in outs.iter_mut().zip(&staged) {
        out.par_chunks_exact_mut((*rows).max(1)).enumerate().for_each(|(t, out)| {
            for (r, o) in out.iter_mut().enumerate() {
                *o = tmp[r * n + t];
            }
        });
    }
    Ok(())
}

/// Output `m`'s chunks of `len` values, numbered.
fn tasks_of<F>(m: usize, out: &mut [F], len: usize) -> impl Iterator<Item = (usize, usize, &mut [F])> {
    out.chunks_mut(len).enumerate().map(move |(ci, chunk)| (m, ci, chunk))
}

/// llama.cpp's CPU matmul: each input vector rounded to the weight type's dot-product format
/// once, then every row dotted with it on the blocks (integer products), rows split across threads.
/// The 32-value block types unpack each row once for all positions (`actq_rows`); the others dot
/// block by block (`actq::vec_dot`). Both give the bits of `actq::vec_dot_scalar`.
fn matmuls_llama_cpp(mut jobs: Vec<(&mut [f32], &Matrix<'_>)>, xs: &[f32], n: usize) -> Result<()> {
    // The input rounded once per format the weights ask for (and widened for the tiles).
    let mut formats: Vec<(ActFormat, Vec<QuantizedActs>, Option<actq_rows::Inputs>)> = Vec::new();
    let mut which = Vec::with_capacity(jobs.len());
    for (_, w) in &jobs {
        let (t, cols) = (w.ggml_type, w.cols);
        let format = ActFormat::for_weights(t)?;
        let i = match formats.iter().position(|(f, _, _)| *f == format) {
            Some(i) => i,
            None => {
                // One position per task: each is rounded alike whichever thread runs it.
                let acts = xs
                    .par_chunks_exact(cols.max(1))
                    .map(|x| QuantizedActs::quantize(format, x))
                    .collect::<Result<Vec<_>>>()?;
                formats.push((format, acts, None));
                formats.len() - 1
            }
        };
        let (_, acts, inputs) = &mut formats[i];
        if let Some(a) = acts.first() {
            actq::check(t, w.row(0), a)?; // every row has the length of row 0
        }
        if actq_rows::supports(t) && inputs.is_none() {
            *inputs = Some(actq_rows::Inputs::new(acts)?);
        }
        which.push(i);
    }
    let ws: Vec<&Matrix<'_>> = jobs.iter().map(|(_, w)| *w).collect();
    by_rows(
        jobs.iter_mut().map(|(out, w)| (&mut **out, w.rows)).collect(),
        n,
        actq_rows::Tile::default,
        |m, r0, tile, chunk| {
            let (w, (_, acts, inputs)) = (ws[m], &formats[which[m]]);
            let t = w.ggml_type;
            let Some(inputs) = inputs.as_ref().filter(|_| actq_rows::supports(t)) else {
                for (k, outs) in chunk.chunks_exact_mut(n).enumerate() {
                    for (o, a) in outs.iter_mut().zip(acts) {
                        *o = actq::vec_dot(t, w.row(r0 + k), a)?;
                    }
                }
                return Ok(());
            };
            for (k, outs) in chunk.chunks_mut(actq_rows::LANES * n).enumerate() {
                let r = r0 + k * actq_rows::LANES;
                let mut lanes = [&[][..]; actq_rows::LANES];
                let used = outs.len() / n;
                for (l, bytes) in lanes.iter_mut().enumerate().take(used) {
                    *bytes = w.row(r + l);
                }
                tile_kernel(t, &lanes[..used], w.cols, tile, inputs, outs);
            }
            Ok(())
        },
    )
}

/// Up to `LANES` weight rows against every position, in the widest build the CPU runs.
#[inline(always)]
fn tile_kernel(
    t: GgmlType,
    rows: &[&[u8]],
    cols: usize,
    tile: &mut actq_rows::Tile,
    inputs: &actq_rows::Inputs,
    outs: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if avx2_available() {
        // SAFETY: the CPU has AVX2, FMA and F16C (checked just above).
        return unsafe { avx2::tile_kernel(t, rows, cols, tile, inputs, outs) };
    }
    actq_rows::dot_rows(t, rows, cols, tile, inputs, outs);
}

/// The llama.cpp row kernel compiled for AVX2 + FMA + F16C (x86-64 CPUs since 2013): the block
/// sums become `vpmaddwd` on 16 lanes and the fused multiply-adds one instruction. Same bits: the
/// integers are exact and a fused multiply-add is correctly rounded by definition.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::*;

    /// # Safety
    /// The CPU must support AVX2, FMA and F16C ([`avx2_available`]).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn tile_kernel(
        t: GgmlType,
        rows: &[&[u8]],
        cols: usize,
        tile: &mut actq_rows::Tile,
        inputs: &actq_rows::Inputs,
        outs: &mut [f32],
    ) {
        // SAFETY: the caller guarantees AVX2, FMA and F16C.
        if !unsafe { actq_rows::avx2::dot_one(t, rows, inputs, outs) } {
            actq_rows::dot_rows(t, rows, cols, tile, inputs, outs);
        }
    }
}

/// Whether the CPU runs the AVX2 + FMA + F16C kernels (the standard library caches what it detects).
#[cfg(target_arch = "x86_64")]
pub fn avx2_available() -> bool {
    std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("fma")
        && std::is_x86_feature_detected!("f16c")
}

/// Row `r` of the embedding, decoded.
pub fn embedding_row<F: Float>(w: &Matrix<'_>, r: usize) -> Result<Vec<F>> {
    let mut row = vec![0f32; w.cols];
    w.dequantize_row(r, &mut row)?;
    Ok(row.into_iter().map(F::from_f32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(values: &[f32], rows: usize, cols: usize) -> (Vec<u8>, usize, usize) {
        (values.iter().flat_map(|v| v.to_le_bytes()).collect(), rows, cols)
    }

    #[test]
    fn orientations_on_a_hand_computed_matrix() {
        // W = [[1, 2, 3], [4, 5, 6]] stored [out=2, in=3]; x = [1, 0, -1]
        let (bytes, rows, cols) = matrix(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3);
        let w = Matrix { name: "w", ggml_type: GgmlType::F32, rows, cols, data: &bytes };
        let x = [1.0f64, 0.0, -1.0];
        let mut out = [0.0f64; 2];
        let mut cache = DenseCache::default();
        matmul(&mut out, &w, &x, Projection::Transposed, Precision::F64, ActivationQuant::None, &mut cache).unwrap();
        assert_eq!(out, [-2.0, -2.0]);
        // As stored: the bytes read as [in=3, out=2] = [[1, 2], [3, 4], [5, 6]]; x . M = [1 - 5, 2 - 6]
        matmul(&mut out, &w, &x, Projection::AsStored, Precision::F64, ActivationQuant::None, &mut cache).unwrap();
        assert_eq!(out, [-4.0, -4.0]);
        // The shape guess transposes a non-square matrix...
        matmul(&mut out, &w, &x, Projection::ShapeGuess, Precision::F64, ActivationQuant::None, &mut cache).unwrap();
        assert_eq!(out, [-2.0, -2.0]);
        // ...and uses a square one as stored: W = [[1, 2], [3, 4]], x = [1, 1] -> x . W = [4, 6]
        let (sq, r2, c2) = matrix(&[1.0, 2.0, 3.0, 4.0], 2, 2);
        let w2 = Matrix { name: "sq", ggml_type: GgmlType::F32, rows: r2, cols: c2, data: &sq };
        let mut out2 = [0.0f32; 2];
        matmul(
            &mut out2,
            &w2,
            &[1.0f32, 1.0],
            Projection::ShapeGuess,
            Precision::F32,
            ActivationQuant::None,
            &mut cache,
        )
        .unwrap();
        assert_eq!(out2, [4.0, 6.0]);
        matmul(
            &mut out2,
            &w2,
            &[1.0f32, 1.0],
            Projection::Transposed,
            Precision::F32,
            ActivationQuant::None,
            &mut cache,
        )
        .unwrap();
        assert_eq!(out2, [3.0, 7.0]);
    }

    #[test]
    fn grouped_matmuls_give_the_bits_of_one_matmul_each() {
        use crate::quant::quantize::quantize_row;
        let cols = 64;
        let value = |i: usize| ((i * 7919 % 1009) as f32 / 1009.0 - 0.5) * 2.0;
        // Odd row counts (not whole tiles), a tile type, a block-by-block type and a float type.
        let shapes = [(GgmlType::Q4_0, 37), (GgmlType::Q8_0, 10), (GgmlType::F16, 7)];
        let bytes: Vec<Vec<u8>> = shapes
            .iter()
            .enumerate()
            .map(|(m, &(t, rows))| {
                let vals: Vec<f32> = (0..rows * cols).map(|i| value(i + 100 * m)).collect();
                let mut b = Vec::new();
                quantize_row(t, &vals, &mut b).unwrap();
                b
            })
            .collect();
        let ws: Vec<Matrix<'_>> = shapes
            .iter()
            .zip(&bytes)
            .map(|(&(ggml_type, rows), data)| Matrix { name: "w", ggml_type, rows, cols, data })
            .collect();
        for n in [1, 3] {
            let xs: Vec<f32> = (0..n * cols).map(|i| value(5 * i + 3)).collect();
            for rounding in [ActivationQuant::None, ActivationQuant::LlamaCpp] {
                let mut cache = DenseCache::default();
                let mut alone: Vec<Vec<f32>> = ws.iter().map(|w| vec![0.0; n * w.rows]).collect();
                for (out, w) in alone.iter_mut().zip(&ws) {
                    matmul(out, w, &xs, Projection::Transposed, Precision::F32, rounding, &mut cache).unwrap();
                }
                let mut grouped: Vec<Vec<f32>> = ws.iter().map(|w| vec![0.0; n * w.rows]).collect();
                let mut jobs: Vec<(&mut [f32], &Matrix<'_>)> =
                    grouped.iter_mut().zip(&ws).map(|(o, w)| (&mut o[..], w)).collect();
                matmuls(&mut jobs, &xs, Projection::Transposed, Precision::F32, rounding, &mut cache).unwrap();
                let bits = |v: &Vec<Vec<f32>>| v.iter().flatten().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&grouped), bits(&alone), "n={n} {rounding:?}");
                assert!(alone.iter().flatten().any(|&x| x != 0.0));
            }
        }
    }
}
