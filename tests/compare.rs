//! The comparison engine on the reference models: the classifier (float noise vs real changes),
//! first divergences, isolation, explain, and the source issue's three comparisons, with the
//! measured numbers pinned.

mod common;

use paritylab::diff::explain::by_position;
use paritylab::diff::{compare, Class, CompareOptions, NoiseMethod, Report};
use paritylab::forward::Isolation;
use paritylab::model::Model;
use paritylab::path::PathSpec;
use paritylab::trace::Stage;

const TOKENS: [u32; 5] = [1, 2, 3, 4, 5];

fn report(file: &str, a: &str, b: &str, tokens: &[u32], opts: &CompareOptions) -> Report {
    let bytes = common::read_reference(file);
    let m = Model::from_bytes(&bytes).unwrap();
    let (pa, pb) = (PathSpec::parse(a).unwrap(), PathSpec::parse(b).unwrap());
    let c = compare(&m, &pa, &pb, tokens, opts).unwrap();
    Report::new(&m, Some(file.into()), paritylab::dump::sha256_hex(&bytes), &c, opts)
}

fn diverged(r: &Report) -> Vec<(usize, String)> {
    r.stages.iter().filter(|s| s.class == Class::Diverged).map(|s| (s.position, s.name.clone())).collect()
}

#[test]
fn the_classifier_tells_rounding_from_real_changes_on_every_f32_model() {
    let opts = CompareOptions::default();
    for model in ["qwen3_tiny_tied", "qwen3_tiny_untied", "qwen3_gqa", "qwen2_small", "llama_small"] {
        let file = format!("gguf/{model}.f32.gguf");
        let llama = model == "llama_small";
        // The same math with other rounding: never diverged.
        for same_math in ["hf,softmax=naive", "hf,attn_scale=on_query", "hf,accumulate=f64", "oracle-f64"] {
            let r = report(&file, "hf", same_math, &TOKENS, &opts);
            assert!(r.agrees(), "{model} {same_math}: {:?}", diverged(&r));
            if same_math != "hf,attn_scale=on_query" {
                // (Scaling q or the scores by 1/4 is exact: that one can be bit-identical.)
                assert!(r.stages.iter().any(|s| s.class == Class::Noise), "{model} {same_math}: all bitwise?");
            }
        }
        // A small real change (llama's eps is already 1e-5, so it moves the other way).
        let eps = if llama { "hf,norm_eps=1e-6" } else { "hf,norm_eps=1e-5" };
        let r = report(&file, "hf", eps, &TOKENS, &opts);
        let d = r.first_divergence.as_ref().unwrap_or_else(|| panic!("{model} {eps} agrees"));
        assert_eq!((d.position, d.layer, d.stage), (0, Some(0), Stage::AttnNorm), "{model} {eps}");
        assert!(d.rel_l2 < 1e-5, "{model}: a small change, rel L2 {}", d.rel_l2);
        // The other RoPE pairing (llama's auto is interleaved): position 0 is unrotated.
        let pairing = if llama { "hf,rope_pairing=split_half" } else { "hf,rope_pairing=interleaved" };
        let r = report(&file, "hf", pairing, &TOKENS, &opts);
        let d = r.first_divergence.as_ref().unwrap();
        assert_eq!((d.position, d.layer, d.stage), (1, Some(0), Stage::QRope), "{model} {pairing}");
        assert!(r.first_divergence_per_position[0].is_none(), "{model}: position 0 must agree");
    }
}

fn source_issue(file: &str) -> (Report, Report, Report) {
    let opts = CompareOptions { explain: true, isolation: Isolation::Stage, ..CompareOptions::default() };
    (
        report(file, "hf", "skainet-legacy", &[1, 5, 3], &opts),
        report(file, "hf", "skainet-dsl", &[1, 5, 3], &opts),
        report(file, "skainet-legacy", "skainet-dsl", &[1, 5, 3], &opts),
    )
}

fn explain_of(r: &Report) -> Vec<(usize, Vec<&'static str>)> {
    by_position(r.explain.as_ref().unwrap()).into_iter().collect()
}

/// `got` equals the pinned measurement to 1e-5 relative.
fn pinned(what: &str, got: f64, measured: f64) {
    assert!((got - measured).abs() <= 1e-5 * measured.abs(), "{what}: {got:.9e}, pinned {measured:.9e}");
}

#[test]
fn the_source_issue_end_to_end() {
    for file in ["gguf/qwen3_tiny_untied.f32.gguf", "gguf/qwen3_gqa.f32.gguf"] {
        let (legacy, dsl, both) = source_issue(file);
        let layers = if file.contains("gqa") { 2 } else { 1 };

        // Legacy vs hf: wrong from position 0, first at q; in stage isolation only the four
        // projections with square weights stay diverged; explained by the projection alone.
        let d = legacy.first_divergence.as_ref().unwrap();
        assert_eq!((d.position, d.layer, d.stage), (0, Some(0), Stage::Q), "{file}");
        let iso = &legacy.isolation.as_ref().unwrap().diverged;
        let mut want: Vec<String> = Vec::new();
        for l in 0..layers {
            for s in ["q", "k", "v", "attn_out"] {
                want.push(format!("blk.{l}.{s}"));
            }
        }
        let mut got = iso.clone();
        got.sort();
        want.sort();
        if file.contains("gqa") {
            // GQA: K and V are [32, 64] (not square), so only q and attn_out are used untransposed.
            want.retain(|n| n.ends_with(".q") || n.ends_with(".attn_out"));
        }
        assert_eq!(got, want, "{file}: stages diverged in isolation");
        assert_eq!(
            explain_of(&legacy),
            [(0, vec!["projection"]), (1, vec!["projection"]), (2, vec!["projection"])],
            "{file}"
        );

        // DSL vs hf: position 0 logits within noise while q_normed diverges; q_rope from position 1.
        let logits0 = dsl.stages.iter().find(|s| s.position == 0 && s.stage == Stage::ResultOutput).unwrap();
        assert!(logits0.class != Class::Diverged, "{file}: position 0 logits {:?}", logits0.class);
        let q_normed0 = dsl.stages.iter().find(|s| s.position == 0 && s.name == "blk.0.q_normed").unwrap();
        assert_eq!(q_normed0.class, Class::Diverged, "{file}");
        let first1 = dsl.first_divergence_per_position[1].as_ref().unwrap();
        assert_eq!(first1.stage, Stage::QNormed, "{file}: q_normed still diverges first at position 1");
        let rope1 = dsl.stages.iter().find(|s| s.position == 1 && s.name == "blk.0.q_rope").unwrap();
        assert_eq!(rope1.class, Class::Diverged);
        assert!(rope1.metrics.max_abs > 1e4 * q_normed0.metrics.max_abs, "{file}: RoPE pairing dominates");
        assert_eq!(
            explain_of(&dsl),
            [
                (0, vec!["qk_norm_eps"]),
                (1, vec!["rope_pairing", "qk_norm_eps"]),
                (2, vec!["rope_pairing", "qk_norm_eps"])
            ],
            "{file}"
        );
        let e = dsl.explain.as_ref().unwrap();
        assert_eq!(e.no_effect, ["head_dim", "bos"], "{file}");
        assert!(e.runs <= 8 && !e.capped);

        // DSL vs legacy: the union, position by position.
        assert_eq!(
            explain_of(&both),
            [
                (0, vec!["qk_norm_eps", "projection"]),
                (1, vec!["rope_pairing", "qk_norm_eps", "projection"]),
                (2, vec!["rope_pairing", "qk_norm_eps", "projection"])
            ],
            "{file}"
        );
        assert!(both
            .explain
            .as_ref()
            .unwrap()
            .summary
            .contains("positions 1-2: rope_pairing + qk_norm_eps + projection"));
    }
}

#[test]
fn the_source_issue_numbers_are_pinned() {
    // (first divergence max |Δ|, mean KLD, max KLD) of legacy vs hf, dsl vs hf, dsl vs legacy.
    for (file, want) in [
        (
            "gguf/qwen3_tiny_untied.f32.gguf",
            [
                (3.6037557125, 5.0995827472e-1, 7.7880934493e-1),
                (8.5830688477e-6, 1.4500339292e-2, 3.2317297707e-2),
                (3.6037557125, 4.5983160300e-1, 7.4294925843e-1),
            ],
        ),
        (
            "gguf/qwen3_gqa.f32.gguf",
            [
                (3.4891053438, 8.5892131732, 2.5747094466e1),
                (1.5020370483e-5, 1.9255285222, 5.7765819337),
                (3.4891053438, 5.8997048778e-3, 1.7232940851e-2),
            ],
        ),
    ] {
        let (legacy, dsl, both) = source_issue(file);
        for (r, (max_abs, mean_kld, max_kld)) in [&legacy, &dsl, &both].into_iter().zip(want) {
            let what = format!("{file} {} vs {}", r.b.text, r.a.text);
            pinned(&format!("{what}: first divergence"), r.first_divergence.as_ref().unwrap().max_abs, max_abs);
            pinned(&format!("{what}: mean KLD"), r.logit_summary.mean_kld, mean_kld);
            pinned(&format!("{what}: max KLD"), r.logit_summary.max_kld, max_kld);
        }
    }
}

/// `hf` against `llama.cpp` on a Q4_0 model: the only differing convention is activation rounding,
/// whose noise is measured as a perturbation spread (and the report says so); explain names it.
#[test]
fn llama_cpp_rounding_is_measured_by_its_spread_and_explained() {
    let opts = CompareOptions { explain: true, ..CompareOptions::default() };
    let r = report("w256/gguf/llama_w256.q4_0.gguf", "hf", "llama.cpp", &TOKENS, &opts);
    assert_eq!(r.differing_fields, ["activation_quant"]);
    assert_eq!((r.a.noise, r.b.noise), (NoiseMethod::F64Twin, NoiseMethod::PerturbationSpread));
    assert!(r.markdown(None).contains("spread of 2 reruns"), "the report must say how B's noise was measured");
    // Q8_0 rounding of the first projection's input is a real change of the math, far above noise.
    let d = r.first_divergence.as_ref().unwrap();
    assert_eq!((d.position, d.name.as_str()), (0, "blk.0.q"));
    assert_eq!(
        explain_of(&r),
        [
            (0, vec!["activation_quant"]),
            (1, vec!["activation_quant"]),
            (2, vec!["activation_quant"]),
            (3, vec!["activation_quant"]),
            (4, vec!["activation_quant"])
        ]
    );
    // Against itself, the perturbed spread classifies every stage as match or noise.
    let same = report("w256/gguf/llama_w256.q4_0.gguf", "llama.cpp", "llama.cpp", &TOKENS, &opts);
    assert!(diverged(&same).is_empty());
}

/// Capture `stats`: the logits are compared as at `full` (the same numbers), every stage by its
/// statistics; the first stage whose statistics part is where the values part; rounding stays noise.
#[test]
fn capture_stats_compares_the_logits_and_every_stage_by_its_statistics() {
    use paritylab::trace::Capture;
    let stats = CompareOptions { capture: Capture::Stats, explain: true, ..CompareOptions::default() };
    let full = CompareOptions { explain: true, ..CompareOptions::default() };
    for (file, b) in [
        ("gguf/qwen3_tiny_untied.f32.gguf", "skainet-dsl"),
        ("gguf/qwen3_gqa.f32.gguf", "hf,norm_eps=1e-5"),
        ("gguf/qwen3_gqa.q8_0.gguf", "llama.cpp"),
        ("gguf/llama_small.f32.gguf", "hf,rope_pairing=split_half"),
    ] {
        let (s, f) = (report(file, "hf", b, &TOKENS, &stats), report(file, "hf", b, &TOKENS, &full));
        assert_eq!(s.capture, Capture::Stats);
        // Only the logits are compared value by value, with the numbers of a full capture.
        assert!(s.stages.iter().all(|d| d.stage == Stage::ResultOutput), "{file} {b}");
        let logits_of =
            |r: &Report| r.stages.iter().filter(|d| d.stage == Stage::ResultOutput).cloned().collect::<Vec<_>>();
        assert_eq!(logits_of(&s), logits_of(&f), "{file} {b}");
        assert_eq!((&s.logits, &s.top_k.len()), (&f.logits, &f.top_k.len()), "{file} {b}");
        // Every stage but the logits at every position has statistics.
        let per_position = f.stages.iter().filter(|d| d.position == 0 && d.stage != Stage::ResultOutput).count();
        assert_eq!(s.stage_stats.len(), per_position * TOKENS.len(), "{file} {b}");
        // Where the values first part, the statistics do too.
        let fd = f.first_divergence.as_ref().unwrap_or_else(|| panic!("{file} {b}: full agrees"));
        let sd = s.first_stats_divergence.as_ref().unwrap_or_else(|| panic!("{file} {b}: stats agree"));
        assert_eq!((sd.position, sd.layer, sd.stage), (fd.position, fd.layer, fd.stage), "{file} {b}");
        assert!(!s.agrees());
        assert!(s.verdict_line().contains("the statistics first part at"), "{}", s.verdict_line());
        // Explain reaches the same answer from statistics and logits.
        assert_eq!(s.explain.as_ref().map(|e| &e.summary), f.explain.as_ref().map(|e| &e.summary), "{file} {b}");
        let md = s.markdown(None);
        assert!(md.contains("### Stage statistics") && md.contains("| capture | `stats`"), "{md}");
    }
    // The same math rounded differently: the statistics stay within their measured noise.
    for b in ["oracle-f64", "hf,softmax=naive", "hf,accumulate=f64"] {
        let r = report("gguf/qwen3_gqa.f32.gguf", "hf", b, &TOKENS, &stats);
        assert!(r.agrees(), "{b}: {}", r.verdict_line());
        assert!(r.stage_stats.iter().any(|d| d.class == Class::Noise), "{b}: all bitwise?");
    }
}

#[test]
fn capture_off_compares_the_logits_only_and_refuses_what_needs_values() {
    use paritylab::trace::Capture;
    let off = CompareOptions { capture: Capture::Off, ..CompareOptions::default() };
    let r = report("gguf/qwen3_gqa.f32.gguf", "hf", "hf,norm_eps=1e-5", &TOKENS, &off);
    assert!(r.stages.iter().all(|d| d.stage == Stage::ResultOutput) && r.stage_stats.is_empty());
    assert_eq!(r.stages.len(), TOKENS.len());
    let d = r.first_divergence.as_ref().expect("a changed eps moves the logits");
    assert_eq!(d.stage, Stage::ResultOutput);
    assert!(r.verdict_line().contains("Capture off keeps only the logits"), "{}", r.verdict_line());
    assert!(report("gguf/qwen3_gqa.f32.gguf", "hf", "oracle-f64", &TOKENS, &off).agrees());

    let bytes = common::read_reference("gguf/qwen3_gqa.f32.gguf");
    let m = Model::from_bytes(&bytes).unwrap();
    let iso = CompareOptions { capture: Capture::Stats, isolation: Isolation::Stage, ..CompareOptions::default() };
    let err = compare(&m, &PathSpec::hf(), &PathSpec::hf(), &TOKENS, &iso).err().unwrap().to_string();
    assert!(err.contains("capture full"), "{err}");
}

/// The estimate a page uses to pick a capture level is close to what a trace really holds.
#[test]
fn trace_estimates_follow_the_values_a_trace_holds() {
    use paritylab::trace::{Capture, TraceShape};
    for file in ["gguf/qwen3_gqa.f32.gguf", "gguf/qwen2_small.f32.gguf", "gguf/llama_small.f32.gguf"] {
        let bytes = common::read_reference(file);
        let m = Model::from_bytes(&bytes).unwrap();
        let shape = TraceShape::of(&m.config);
        let tokens: Vec<u32> = (1..=12).collect();
        let t = paritylab::forward::forward(&m, &PathSpec::hf(), &tokens, None).unwrap();
        let values: usize = t.ids().iter().map(|&id| t.stage(id).unwrap().iter().map(|v| v.len()).sum::<usize>()).sum();
        let entries = (t.ids().len() * tokens.len()) as u64;
        let est = shape.bytes(tokens.len(), Capture::Full, false);
        assert!(
            est >= 4 * values as u64 && est <= 4 * values as u64 + 64 * entries,
            "{file}: {est} for {values} values"
        );
        assert_eq!(shape.bytes(tokens.len(), Capture::Full, true) - est, 4 * values as u64, "{file}: f64 doubles");
        let logits = 4 * (tokens.len() * m.config.vocab) as u64;
        assert!(shape.bytes(tokens.len(), Capture::Off, false) >= logits);
        assert!(shape.bytes(tokens.len(), Capture::Stats, false) < est / 2);
    }
}

#[test]
fn a_nan_is_reported_where_it_first_appears_and_the_comparison_goes_on() {
    // Large weights make the attention scores overflow exp(): the naive softmax (no max
    // subtracted) gets inf / inf = NaN from layer 0's scores on; the max-subtracted one stays finite.
    let spec =
        paritylab::synth::SynthSpec::parse("source-issue,arch=llama,type=f32,dist=int:-100:100,layers=2").unwrap();
    let bytes = paritylab::synth::generate(&spec).unwrap();
    let m = Model::from_bytes(&bytes).unwrap();
    let tokens = [1, 5, 3];
    for capture in [paritylab::trace::Capture::Full, paritylab::trace::Capture::Stats] {
        let opts = CompareOptions { capture, ..CompareOptions::default() };
        let (a, b) = (PathSpec::hf(), PathSpec::parse("hf,softmax=naive").unwrap());
        let c = compare(&m, &a, &b, &tokens, &opts).unwrap();
        let r = Report::new(&m, None, "00".into(), &c, &opts);
        assert_eq!(r.non_finite.a, None, "{capture:?}");
        let f = r.non_finite.b.as_ref().unwrap_or_else(|| panic!("{capture:?}: no NaN found"));
        assert_eq!((f.position, f.layer, f.stage, f.name.as_str()), (0, Some(0), Stage::KqSoftmax, "blk.0.kq_softmax"));
        assert_eq!(f.token, 1);
        // Full capture knows the value; stats only where it is.
        let want = if capture == paritylab::trace::Capture::Full { Some("NaN") } else { None };
        assert_eq!(f.value, want);
        assert!(f.positions == 3 && f.stages > 3, "{f:?}");
        // The comparison went on past it: every stage at every position compared, logits too.
        assert!(!r.agrees());
        assert_eq!(r.logits.len(), 3);
        let line = &r.non_finite_lines()[0];
        assert!(line.starts_with("B (`hf,softmax=naive`) produces"), "{line}");
        assert!(
            line.contains("first at `blk.0.kq_softmax` (layer 0, stage kq_softmax) of position 0 (token 1)"),
            "{line}"
        );
        assert!(r.markdown(None).contains("**NaN/Inf:** B"), "markdown");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["non_finite"]["b"]["name"], "blk.0.kq_softmax");
        assert!(json["non_finite"]["a"].is_null());
    }
}
