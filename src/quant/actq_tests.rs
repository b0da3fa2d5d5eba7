//! Against llama.cpp itself: `tests/data/actq/fixtures.json`, written by `make_fixtures.c` from the
//! built libggml-cpu.so (the activation bytes its `from_float` writes, and its `vec_dot` results:
//! the AVX2 kernels and their exported `_generic` scalar twins).

use super::*;
use serde_json::Value;

const FIXTURES: &str = include_str!("../../tests/data/actq/fixtures.json");

fn fixtures() -> Value {
    serde_json::from_str(FIXTURES).expect("fixtures.json parses")
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

fn format_named(name: &str) -> ActFormat {
    *ActFormat::ALL.iter().find(|f| f.name() == name).unwrap_or_else(|| panic!("format {name}"))
}

fn act_values(act: &Value) -> Vec<f32> {
    act["x"].as_array().expect("x").iter().map(|v| f32::from_bits(v.as_u64().expect("bits") as u32)).collect()
}

/// `(weight type, rows, [(activation index, row, vec_dot bits, generic bits)])` for every type.
#[allow(clippy::type_complexity)]
fn weight_sets(f: &Value) -> Vec<(GgmlType, Vec<Vec<u8>>, Vec<(usize, usize, u32, Option<u32>)>)> {
    f["weights"]
        .as_array()
        .expect("weights")
        .iter()
        .map(|w| {
            let t = GgmlType::from_name(w["type"].as_str().expect("type")).expect("known type");
            assert_eq!(ActFormat::for_weights(t).expect("supported").name(), w["vec_dot_type"].as_str().expect("vdt"));
            let rows = w["rows"].as_array().expect("rows").iter().map(|r| hex(r.as_str().expect("row"))).collect();
            let dots = w["dots"]
                .as_array()
                .expect("dots")
                .iter()
                .map(|d| {
                    let bits = |k: &str| d.get(k).and_then(Value::as_u64).map(|b| b as u32);
                    (
                        d["act"].as_u64().expect("act") as usize,
                        d["row"].as_u64().expect("row") as usize,
                        bits("vec_dot").expect("vec_dot"),
                        bits("generic"),
                    )
                })
                .collect();
            (t, rows, dots)
        })
        .collect()
}

/// The first `n` values of a weight row.
fn row_prefix(t: GgmlType, row: &[u8], n: usize) -> &[u8] {
    &row[..t.row_bytes(n as u64).expect("whole blocks") as usize]
}

#[test]
fn activation_bytes_are_llama_cpps() {
    let f = fixtures();
    let mut compared = std::collections::BTreeMap::<&str, usize>::new();
    for act in f["acts"].as_array().expect("acts") {
        let x = act_values(act);
        for (name, want) in act["formats"].as_object().expect("formats") {
            let format = format_named(name);
            let q = QuantizedActs::quantize(format, &x).expect("quantize");
            let want = hex(want.as_str().expect("hex"));
            assert_eq!(q.bytes().len(), want.len(), "{name} {}", act["name"]);
            if let Some(i) = (0..want.len()).find(|&i| q.bytes()[i] != want[i]) {
                panic!(
                    "{name} of {}: first different byte {i}: ours {:#04x}, llama.cpp {:#04x}",
                    act["name"],
                    q.bytes()[i],
                    want[i]
                );
            }
            *compared.entry(format.name()).or_default() += 1;
        }
    }
    eprintln!("activation vectors bit-equal to llama.cpp's from_float, per format: {compared:?}");
    assert_eq!(compared.len(), 5);
}

#[test]
fn vec_dot_scalar_is_ggml_generic_bit_for_bit_and_the_float_types_ggml_vec_dot() {
    let f = fixtures();
    let acts: Vec<Vec<f32>> = f["acts"].as_array().expect("acts").iter().map(act_values).collect();
    let mut checked = 0;
    for (t, rows, dots) in weight_sets(&f) {
        let format = ActFormat::for_weights(t).expect("supported");
        for &(a, r, avx2, generic) in &dots {
            let q = QuantizedActs::quantize(format, &acts[a]).expect("quantize");
            let row = row_prefix(t, &rows[r], acts[a].len());
            let ours = vec_dot_scalar(t, row, &q).expect("vec_dot_scalar");
            // The float types have one kernel in ggml (no `_generic`): ours reproduces it.
            let want = generic.unwrap_or(avx2);
            assert_eq!(
                ours.to_bits(),
                want,
                "{t} act {a} row {r}: ours {ours:e}, llama.cpp {:e} (avx2 {:e})",
                f32::from_bits(want),
                f32::from_bits(avx2)
            );
            assert_eq!(vec_dot(t, row, &q).expect("vec_dot").to_bits(), ours.to_bits(), "{t} fast");
            checked += 1;
        }
    }
    eprintln!("{checked} dot products bit-equal to llama.cpp's");
    assert!(checked > 700, "{checked}");
}

/// llama.cpp's AVX2 kernels sum the same exact integers in another f32 order: report how far.
#[test]
fn distance_to_the_avx2_kernels_is_float_rounding() {
    let f = fixtures();
    let acts: Vec<Vec<f32>> = f["acts"].as_array().expect("acts").iter().map(act_values).collect();
    let mut report = Vec::new();
    for (t, rows, dots) in weight_sets(&f) {
        let format = ActFormat::for_weights(t).expect("supported");
        let (mut max_rel, mut max_scaled, mut equal) = (0f64, 0f64, 0);
        for &(a, r, avx2, _) in &dots {
            let q = QuantizedActs::quantize(format, &acts[a]).expect("quantize");
            let row = row_prefix(t, &rows[r], acts[a].len());
            let ours = f64::from(vec_dot_scalar(t, row, &q).expect("dot"));
            let want = f64::from(f32::from_bits(avx2));
            // The natural scale of the sum's rounding: Σ |w| |x| of the rounded operands.
            let mut w = vec![0f32; acts[a].len()];
            super::super::dequantize_row(t, row, &mut w).expect("dequantize");
            let mut x = vec![0f32; acts[a].len()];
            q.dequantize(&mut x).expect("dequantize acts");
            let scale: f64 = w.iter().zip(&x).map(|(w, x)| f64::from(*w).abs() * f64::from(*x).abs()).sum();
            let diff = (ours - want).abs();
            if diff == 0.0 {
                equal += 1;
            }
            max_rel = max_rel.max(diff / want.abs().max(f64::MIN_POSITIVE));
            max_scaled = max_scaled.max(diff / scale.max(f64::MIN_POSITIVE));
        }
        report.push(format!(
            "{t}: {equal}/{} equal, max |diff|/|avx2| {max_rel:.2e}, max |diff|/sum|w*x| {max_scaled:.2e}",
            dots.len()
        ));
        assert!(max_scaled < 1e-6, "{t}: {max_scaled:e}");
    }
    eprintln!("vec_dot_scalar vs llama.cpp's AVX2 vec_dot:\n  {}", report.join("\n  "));
}

// ---- synthetic rows ----------------------------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn float(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 4.0
    }
    /// A finite f16 of magnitude below 2, as little-endian bytes.
    fn f16(&mut self) -> [u8; 2] {
        let bits = (self.next() as u16) & 0xbfff; // exponent at most 15: |x| < 2
        bits.to_le_bytes()
    }
}

/// Offsets of the f16 fields (scales, mins) in a block of `t`.
fn f16_fields(t: GgmlType) -> &'static [usize] {
    match t {
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q2_K => &[80, 82],
        GgmlType::Q3_K => &[108],
        GgmlType::Q6_K => &[208],
        _ => &[0],
    }
}

/// A row of `n` values of `t`: random bytes with finite scales (any bit pattern of the codes is a
/// valid block).
fn synthetic_row(t: GgmlType, n: usize, rng: &mut Rng) -> Vec<u8> {
    match t {
        GgmlType::F32 => (0..n).flat_map(|_| rng.float().to_le_bytes()).collect(),
        GgmlType::F16 => (0..n).flat_map(|_| rng.f16()).collect(),
        GgmlType::BF16 => (0..n).flat_map(|_| (((rng.next() as u16) & 0x3fff) | 0x3000).to_le_bytes()).collect(),
        _ => {
            let size = t.type_size() as usize;
            let mut row: Vec<u8> = (0..t.row_bytes(n as u64).expect("blocks")).map(|_| rng.next() as u8).collect();
            for block in row.chunks_exact_mut(size) {
                for &at in f16_fields(t) {
                    block[at..at + 2].copy_from_slice(&rng.f16());
                }
            }
            row
        }
    }
}

fn synthetic_acts(n: usize, rng: &mut Rng) -> Vec<f32> {
    (0..n).map(|i| rng.float() * if i % 29 == 0 { 30.0 } else { 1.0 }).collect()
}

#[test]
fn fast_equals_scalar_on_odd_block_counts_for_every_type() {
    let mut rng = Rng(7);
    for &t in SUPPORTED {
        let format = ActFormat::for_weights(t).expect("supported");
        let block = (t.block_size() as usize).max(format.block_len());
        for blocks in [1, 3, 5, 7] {
            // The float types also get lengths that are not a multiple of 32 (the tails).
            for extra in if block == 1 { vec![0, 13, 31] } else { vec![0] } {
                let n = blocks * if block == 1 { 32 } else { block } + extra;
                let row = synthetic_row(t, n, &mut rng);
                let q = QuantizedActs::quantize(format, &synthetic_acts(n, &mut rng)).expect("quantize");
                let slow = vec_dot_scalar(t, &row, &q).expect("scalar");
                let fast = vec_dot(t, &row, &q).expect("fast");
                assert_eq!(fast.to_bits(), slow.to_bits(), "{t} n {n}: {fast:e} vs {slow:e}");
                assert!(slow.is_finite(), "{t} n {n}");
            }
        }
    }
}

/// The integer kernels against a float model built from the dequantised operands (independent of
/// the kernels' code): `Σ w x` in f64, with Q4_1/Q5_1's min term taken from the f16 block sums.
#[test]
fn vec_dot_is_the_dot_of_the_rounded_operands() {
    let mut rng = Rng(11);
    for &t in SUPPORTED {
        let format = ActFormat::for_weights(t).expect("supported");
        let n = 512;
        for _ in 0..4 {
            let row = synthetic_row(t, n, &mut rng);
            let q = QuantizedActs::quantize(format, &synthetic_acts(n, &mut rng)).expect("quantize");
            let mut w = vec![0f32; n];
            super::super::dequantize_row(t, &row, &mut w).expect("dequantize");
            let mut x = vec![0f32; n];
            q.dequantize(&mut x).expect("dequantize acts");
            let (want, scale) = if matches!(t, GgmlType::Q4_1 | GgmlType::Q5_1) {
                // ggml: Σ_blocks dx dy Σ q_w q_y + m s, with s = f16(dy Σ q_y), not Σ (dx q_w + m) dy q_y.
                let sums = q.q8_1_sums();
                let blocks: &[BlockQ8_1] = bytemuck::cast_slice(q.bytes());
                let mut want = 0f64;
                let mut scale = 0f64;
                for (b, ((w, x), s)) in w.chunks_exact(QK).zip(x.chunks_exact(QK)).zip(&sums).enumerate() {
                    let (d, m) = if t == GgmlType::Q4_1 {
                        let blk: &[BlockQ4_1] = bytemuck::cast_slice(&row);
                        (f16_le(blk[b].d), f16_le(blk[b].m))
                    } else {
                        let blk: &[BlockQ5_1] = bytemuck::cast_slice(&row);
                        (f16_le(blk[b].d), f16_le(blk[b].m))
                    };
                    let dy = f64::from(f16_le(blocks[b].d));
                    for (w, x) in w.iter().zip(x) {
                        let qw = ((f64::from(*w) - f64::from(m)) / f64::from(d)).round();
                        let qy = f64::from(*x) / dy;
                        want += f64::from(d) * dy * qw * qy;
                        scale += (f64::from(*w) * f64::from(*x)).abs();
                    }
                    want += f64::from(m) * f64::from(*s);
                }
                (want, scale)
            } else {
                let want: f64 = w.iter().zip(&x).map(|(w, x)| f64::from(*w) * f64::from(*x)).sum();
                let scale: f64 = w.iter().zip(&x).map(|(w, x)| (f64::from(*w) * f64::from(*x)).abs()).sum();
                (want, scale)
            };
            let got = f64::from(vec_dot(t, &row, &q).expect("dot"));
            assert!((got - want).abs() <= 1e-5 * scale, "{t}: {got} vs {want} (scale {scale})");
        }
    }
}

#[test]
fn dequantize_is_d_times_q() {
    let mut rng = Rng(3);
    let x = synthetic_acts(512, &mut rng);
    for format in ActFormat::ALL {
        let q = QuantizedActs::quantize(format, &x).expect("quantize");
        let mut out = vec![0f32; 512];
        q.dequantize(&mut out).expect("dequantize");
        let b = q.bytes();
        for (i, &v) in out.iter().enumerate() {
            let want = match format {
                ActFormat::F32 => x[i],
                ActFormat::F16 => f16::from_f32(x[i]).to_f32(),
                ActFormat::BF16 => f32::from_bits(u32::from(f32_to_bf16(x[i])) << 16),
                ActFormat::Q8_0 => {
                    let blk = &b[34 * (i / 32)..];
                    f16_le([blk[0], blk[1]]) * f32::from(blk[2 + i % 32] as i8)
                }
                ActFormat::Q8_1 => {
                    let blk = &b[36 * (i / 32)..];
                    f16_le([blk[0], blk[1]]) * f32::from(blk[4 + i % 32] as i8)
                }
                ActFormat::Q8_K => {
                    let blk = &b[292 * (i / 256)..];
                    f32::from_le_bytes([blk[0], blk[1], blk[2], blk[3]]) * f32::from(blk[4 + i % 256] as i8)
                }
            };
            assert_eq!(v.to_bits(), want.to_bits(), "{format} value {i}");
            // Rounding to 8 bits keeps every value within half a step of the input.
            if matches!(format, ActFormat::Q8_0 | ActFormat::Q8_1) {
                let amax = x[i / 32 * 32..][..32].iter().fold(0f32, |m, v| m.max(v.abs()));
                assert!((v - x[i]).abs() <= amax / 127.0 * 0.5001 + amax * 1e-3, "{format} {i}");
            }
        }
    }
}

#[test]
fn q8_1_sums_are_f16_of_d_times_the_code_sum() {
    let mut rng = Rng(5);
    let x = synthetic_acts(96, &mut rng);
    let q = QuantizedActs::quantize(ActFormat::Q8_1, &x).expect("quantize");
    let sums = q.q8_1_sums();
    assert_eq!(sums.len(), 3);
    for (b, s) in sums.iter().enumerate() {
        let blk = &x[32 * b..32 * b + 32];
        let amax = blk.iter().fold(0f32, |m, v| m.max(v.abs()));
        let codes: i32 = q.bytes()[36 * b + 4..36 * b + 36].iter().map(|&c| i32::from(c as i8)).sum();
        assert_eq!(*s, f16::from_f32(amax / 127.0 * codes as f32).to_f32());
    }
    assert!(QuantizedActs::quantize(ActFormat::Q8_0, &x).expect("q8_0").q8_1_sums().is_empty());
}

#[test]
fn rounding_details_of_the_x86_quantisers() {
    // Q8_0: max 127 makes 127 / max exactly 1, so the codes are the values rounded half to even.
    let mut x = [0f32; 32];
    x[0] = 127.0;
    x[1] = 2.5;
    x[2] = -3.5;
    x[3] = 0.5;
    x[4] = -0.5;
    let q = QuantizedActs::quantize(ActFormat::Q8_0, &x).expect("q8_0");
    assert_eq!(&q.bytes()[2..7], &[127, 2, (-4i8) as u8, 0, 0]);
    // Q8_K: the first value of largest magnitude sets the sign of d.
    let mut y = [0f32; 256];
    y[3] = -2.0;
    y[9] = 2.0;
    y[10] = 1.0;
    let q = QuantizedActs::quantize(ActFormat::Q8_K, &y).expect("q8_k");
    let d = f32::from_le_bytes(q.bytes()[..4].try_into().expect("4 bytes"));
    assert_eq!(d, 1.0 / (-127.0 / -2.0));
    assert_eq!(q.bytes()[4 + 3] as i8, -127);
    assert_eq!(q.bytes()[4 + 10] as i8, 64); // 63.5 to even
                                             // An all-zero block: d = 0 and every code and block sum 0.
    let z = QuantizedActs::quantize(ActFormat::Q8_K, &[0f32; 256]).expect("zero");
    assert!(z.bytes().iter().all(|&b| b == 0));
}

#[test]
fn errors_name_the_problem() {
    let q = QuantizedActs::quantize(ActFormat::Q8_0, &[1.0; 64]).expect("q8_0");
    let e = vec_dot(GgmlType::Q4_1, &[0; 40], &q).expect_err("wrong format").to_string();
    assert!(e.contains("Q4_1") && e.contains("Q8_1") && e.contains("Q8_0"), "{e}");
    let e = vec_dot_scalar(GgmlType::Q4_0, &[0; 35], &q).expect_err("short row").to_string();
    assert!(e.contains("36") && e.contains("35"), "{e}");
    let e = vec_dot(GgmlType::IQ2_XXS, &[0; 66], &q).expect_err("unsupported").to_string();
    assert!(e.contains("IQ2_XXS") && e.contains("IQ4_XS"), "{e}");
    let e = QuantizedActs::quantize(ActFormat::Q8_K, &[0.0; 300]).expect_err("length").to_string();
    assert!(e.contains("300") && e.contains("256"), "{e}");
    assert!(ActFormat::for_weights(GgmlType::TQ1_0).is_err());
    let mut out = [0f32; 3];
    assert!(q.dequantize(&mut out).is_err());
}

#[test]
fn requantize_reuses_the_buffer() {
    let mut q = QuantizedActs::new(ActFormat::Q8_K);
    assert!(q.is_empty());
    q.requantize(&[0.5; 512]).expect("first");
    let (ptr, cap) = (q.bytes().as_ptr(), q.bytes.capacity());
    q.requantize(&[0.25; 256]).expect("second");
    assert_eq!((q.bytes().as_ptr(), q.bytes.capacity()), (ptr, cap));
    assert_eq!(q.len(), 256);
    assert_eq!(q, QuantizedActs::quantize(ActFormat::Q8_K, &[0.25; 256]).expect("fresh"));
    assert!(q.requantize(&[1.0; 100]).is_err());
    assert!(q.is_empty());
}

/// Triples for `fma_f64`: random bit patterns (every exponent, NaN and infinity included), random
/// ordinary values, cancellations and special values.
pub(super) fn fma_cases(seed: u64, n: usize) -> Vec<(f32, f32, f32)> {
    let mut rng = Rng(seed);
    let mut out = vec![
        (0.0, -1.0, 0.0),
        (-0.0, 1.0, -0.0),
        (f32::INFINITY, 0.0, 1.0),
        (f32::MAX, 2.0, -f32::MAX),
        (f32::MIN_POSITIVE, 0.5, 0.0),
        (1e-30, 1e-10, 1e-40),
    ];
    while out.len() < n {
        let (a, b) = (rng.float(), rng.float());
        let c = match rng.next() % 4 {
            0 => f32::from_bits(rng.next() as u32),
            1 => -(a * b) * (1.0 + (rng.next() % 7) as f32 * f32::EPSILON),
            _ => rng.float() * 8.0,
        };
        let a = if rng.next().is_multiple_of(7) { f32::from_bits(rng.next() as u32) } else { a };
        out.push((a, b, c));
    }
    out
}

/// Double-rounding traps: `a * b + c` a hair (2^-46 of `a * b`) below an f32 midpoint, so that the
/// f64 sum lands exactly on it: `c` has an odd last bit, `a * b = half its ulp * (1 - 2^-46)` from
/// `(1 + 2^-23) (1 - 2^-23)`.
pub(super) fn fma_traps(seed: u64, n: usize) -> Vec<(f32, f32, f32)> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|k| {
            let c = f32::from_bits((rng.next() as u32 & 0x3fff_fffe) | 1 | 0x3000_0000);
            let half_ulp = f32::from_bits(c.to_bits() & 0x7f80_0000) * f32::EPSILON * 0.5;
            let (a, b) = (half_ulp * f32::from_bits(0x3f80_0001), f32::from_bits(0x3f7f_fffe));
            if k % 2 == 0 {
                (a, b, c)
            } else {
                (-a, b, -c)
            }
        })
        .collect()
}

#[test]
fn fma_through_f64_is_correctly_rounded_or_declines() {
    let check = |cases: &[(f32, f32, f32)]| {
        let mut declined = 0;
        for &(a, b, c) in cases {
            let want = libm::fmaf(a, b, c);
            match fma_f64(a, b, c) {
                Some(r) => assert!(
                    r.to_bits() == want.to_bits() || (r.is_nan() && want.is_nan()),
                    "fma({a:e}, {b:e}, {c:e}): {r:e} vs {want:e}"
                ),
                None => declined += 1,
            }
            assert_eq!(fma(a, b, c).to_bits(), want.to_bits(), "fma({a:e}, {b:e}, {c:e})");
        }
        declined
    };
    // Every trap is declined (the naive f64 route would round each one the wrong way)...
    let traps = fma_traps(9, 10_000);
    assert_eq!(check(&traps), traps.len());
    let (a, b, c) = traps[0];
    assert_ne!((f64::from(a) * f64::from(b) + f64::from(c)) as f32, libm::fmaf(a, b, c));
    // ...and other values almost never are (NaN, subnormal results).
    let cases = fma_cases(7, 400_000);
    let declined = check(&cases);
    assert!(declined < cases.len() / 50, "{declined} of {} declined", cases.len());
}
