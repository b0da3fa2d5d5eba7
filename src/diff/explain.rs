//! Which conventions explain a divergence: B is run again with some of A's conventions ("flips"),
//! alone and in small combinations, and for every position the smallest sets of flips that bring B
//! to A (every stage `match` or `noise`) are reported.
//!
//! The search is bounded: flips that change nothing on this model are set aside after one run each,
//! combinations grow one field at a time, supersets of a combination that already works everywhere
//! are skipped, and no more than `budget` runs are spent (the result says so when it stops early).

use super::{compare_stats, compare_traces, Alignment, Class, Measured, Tolerances};
use crate::forward::{forward_captured, Prompt};
use crate::model::Model;
use crate::path::{PathSpec, FIELDS};
use crate::trace::Trace;
use crate::{Error, Result};
use serde::Serialize;
use std::collections::BTreeMap;

/// Runs `explain` may spend by default.
pub const DEFAULT_BUDGET: usize = 128;

/// A range of positions and the flips needed there.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExplainRange {
    /// First and last position (inclusive).
    pub positions: [usize; 2],
    /// The smallest set of A's conventions that brings B to A there (field names).
    pub flips: Vec<&'static str>,
    /// Other sets of the same size that work as well.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<Vec<&'static str>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// Forward runs spent.
    pub runs: usize,
    pub budget: usize,
    /// The budget ran out before every position was explained.
    pub capped: bool,
    /// Fields where A and B differ.
    pub differing: Vec<&'static str>,
    /// Differing fields whose flip alone leaves B's trace bit-identical (e.g. `rope_pairing` auto
    /// vs split_half on a Qwen model): they cannot matter here.
    pub no_effect: Vec<&'static str>,
    /// Positions where B already agrees with A need no flips and are not listed.
    pub ranges: Vec<ExplainRange>,
    /// Positions no tried combination explains.
    pub unexplained: Vec<usize>,
    /// One sentence, e.g. "position 0: projection; positions 1-2: rope_pairing + qk_norm_eps".
    pub summary: String,
}

/// B with A's values for `fields`.
fn flipped(a: &PathSpec, b: &PathSpec, fields: &[&str]) -> Result<PathSpec> {
    let a_fields = a.fields();
    let mut out = b.clone();
    for f in fields {
        let value = a_fields.iter().find(|(n, _)| n == f).map(|(_, v)| v.clone()).unwrap_or_default();
        out.set(f, &value)?;
    }
    Ok(out)
}

/// Per aligned position: does `cand` agree with A everywhere (every stage match or noise: its
/// values, or at capture `stats` its statistics and the logits)?
fn agreement(a: &Measured, b: &Measured, cand: &Trace, tol: &Tolerances) -> Vec<bool> {
    // A candidate has no f64 twin of its own: it computes B's math on partly A's conventions, so
    // its noise is taken as the larger of A's and B's at the same stage and token.
    let ab = Alignment::of(&a.trace, &b.trace);
    let ac = Alignment::of(&a.trace, cand);
    let noise_b_at = |id, pa: usize| match (pa.checked_sub(ab.offset_a), pa < ab.offset_a + ab.len) {
        (Some(p), true) => b.noise(id, p + ab.offset_b),
        _ => 0.0,
    };
    let noise_cand = |id, pc: usize| {
        let pa = pc + ac.offset_a - ac.offset_b; // pc >= offset_b: it is an aligned position
        a.noise(id, pa).max(noise_b_at(id, pa))
    };
    let stats_noise_b_at = |id, pa: usize| match (pa.checked_sub(ab.offset_a), pa < ab.offset_a + ab.len) {
        (Some(p), true) => b.stats_noise(id, p + ab.offset_b),
        _ => 0.0,
    };
    let stats_noise_cand = |id, pc: usize| {
        let pa = pc + ac.offset_a - ac.offset_b;
        a.stats_noise(id, pa).max(stats_noise_b_at(id, pa))
    };
    let mut ok = vec![true; ac.len];
    for d in compare_traces(&a.trace, cand, &|id, p| a.noise(id, p), &noise_cand, tol) {
        if d.class == Class::Diverged {
            ok[d.position] = false;
        }
    }
    for d in compare_stats(&a.trace, cand, &|id, p| a.stats_noise(id, p), &stats_noise_cand, tol) {
        if d.class == Class::Diverged {
            ok[d.position] = false;
        }
    }
    ok
}

/// Search the flips that bring B to A, position by position (each side: its spec and its runs).
pub fn explain(
    model: &Model<'_>,
    prompt: &Prompt,
    (a, ma): (&PathSpec, &Measured),
    (b, mb): (&PathSpec, &Measured),
    tol: &Tolerances,
    budget: usize,
    progress: &mut dyn FnMut(super::Progress),
) -> Result<Explanation> {
    let differing = a.differences(b);
    let base = agreement(ma, mb, &mb.trace, tol);
    // Per position: the agreeing flip sets found so far (by size).
    let mut works: Vec<Vec<Vec<&'static str>>> =
        base.iter().map(|&ok| if ok { vec![vec![]] } else { vec![] }).collect();
    let mut runs = 0usize;
    let mut capped = false;
    let mut no_effect = Vec::new();

    let mut try_set =
        |set: &[&'static str], runs: &mut usize, works: &mut Vec<Vec<Vec<&'static str>>>| -> Result<Option<Trace>> {
            progress(super::Progress { step: "explain", done: *runs, total: budget });
            *runs += 1;
            let spec = flipped(a, b, set)?;
            let trace = match forward_captured(model, &spec, prompt, mb.trace.capture) {
                Ok(t) => t,
                // A combination that cannot run on this model (e.g. a head_dim source that does not
                // fit) simply does not explain anything.
                Err(Error::Input(_)) => return Ok(None),
                Err(e) => return Err(e),
            };
            let ok = agreement(ma, mb, &trace, tol);
            for (w, good) in works.iter_mut().zip(ok) {
                if good {
                    w.push(set.to_vec());
                }
            }
            Ok(Some(trace))
        };

    // 1. Each differing field alone; fields that change nothing are set aside.
    let mut relevant: Vec<&'static str> = Vec::new();
    for &f in &differing {
        if base.iter().all(|&ok| ok) {
            break;
        }
        if runs >= budget {
            capped = true;
            break;
        }
        match try_set(&[f], &mut runs, &mut works)? {
            Some(t) if same_trace(&t, &mb.trace) => no_effect.push(f),
            _ => relevant.push(f),
        }
    }

    // 2. Combinations of the relevant fields, smallest first. A size is tried only while some
    //    position has no explanation yet, and tried in full so equally small alternatives show.
    for size in 2..=relevant.len() {
        if capped || works.iter().all(|w| !w.is_empty()) {
            break;
        }
        for set in combinations(&relevant, size) {
            if runs >= budget {
                capped = true;
                break;
            }
            try_set(&set, &mut runs, &mut works)?;
        }
    }

    // 3. Per position the minimal sets; consecutive positions with the same answer form a range.
    let minimal: Vec<Option<Vec<Vec<&'static str>>>> = works
        .iter()
        .map(|w| {
            let min = w.iter().map(Vec::len).min()?;
            let mut sets: Vec<Vec<&'static str>> = w.iter().filter(|s| s.len() == min).cloned().collect();
            sets.sort_by_key(|s| s.iter().map(|f| field_index(f)).collect::<Vec<_>>());
            sets.dedup();
            Some(sets)
        })
        .collect();
    let mut ranges: Vec<ExplainRange> = Vec::new();
    let mut unexplained = Vec::new();
    for (p, sets) in minimal.iter().enumerate() {
        match sets {
            None => unexplained.push(p),
            Some(sets) if sets.first().is_none_or(Vec::is_empty) => {}
            Some(sets) => {
                let flips = sets[0].clone();
                let alternatives = sets[1..].to_vec();
                match ranges.last_mut() {
                    Some(r) if r.positions[1] + 1 == p && r.flips == flips && r.alternatives == alternatives => {
                        r.positions[1] = p
                    }
                    _ => ranges.push(ExplainRange { positions: [p, p], flips, alternatives }),
                }
            }
        }
    }
    let summary = summarise(&ranges, &unexplained, base.iter().all(|&ok| ok));
    Ok(Explanation { runs, budget, capped, differing, no_effect, ranges, unexplained, summary })
}

/// Every stage (its values, or its statistics) at every position bit-identical.
fn same_trace(x: &Trace, y: &Trace) -> bool {
    x.tokens == y.tokens
        && x.ids() == y.ids()
        && x.ids().iter().all(|&id| x.stage(id) == y.stage(id))
        && x.same_stats(y)
}

fn field_index(f: &str) -> usize {
    FIELDS.iter().position(|x| *x == f).unwrap_or(usize::MAX)
}

/// All `k`-element subsets of `items`, in lexicographic order of positions.
fn combinations(items: &[&'static str], k: usize) -> Vec<Vec<&'static str>> {
    let mut out = Vec::new();
    let mut idx: Vec<usize> = (0..k).collect();
    if k == 0 || k > items.len() {
        return out;
    }
    loop {
        out.push(idx.iter().map(|&i| items[i]).collect());
        let mut i = k;
        while i > 0 && idx[i - 1] == items.len() - k + i - 1 {
            i -= 1;
        }
        if i == 0 {
            return out;
        }
        idx[i - 1] += 1;
        for j in i..k {
            idx[j] = idx[j - 1] + 1;
        }
    }
}

/// `position 3` or `positions 1-2`.
pub fn positions_text(r: [usize; 2]) -> String {
    if r[0] == r[1] {
        format!("position {}", r[0])
    } else {
        format!("positions {}-{}", r[0], r[1])
    }
}

fn summarise(ranges: &[ExplainRange], unexplained: &[usize], agree: bool) -> String {
    if agree {
        return "the paths agree: nothing to explain".into();
    }
    let mut parts: Vec<String> =
        ranges.iter().map(|r| format!("{}: {}", positions_text(r.positions), r.flips.join(" + "))).collect();
    if !unexplained.is_empty() {
        let list: Vec<String> = unexplained.iter().map(usize::to_string).collect();
        parts.push(format!("unexplained at position {}", list.join(", ")));
    }
    if parts.is_empty() {
        "no flip needed".into()
    } else {
        parts.join("; ")
    }
}

/// Positions -> flips, for tests and reports.
pub fn by_position(e: &Explanation) -> BTreeMap<usize, Vec<&'static str>> {
    let mut m = BTreeMap::new();
    for r in &e.ranges {
        for p in r.positions[0]..=r.positions[1] {
            m.insert(p, r.flips.clone());
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combinations_are_all_subsets_in_order() {
        let c = combinations(&["a", "b", "c", "d"], 2);
        assert_eq!(c, [["a", "b"], ["a", "c"], ["a", "d"], ["b", "c"], ["b", "d"], ["c", "d"]]);
        assert_eq!(combinations(&["a", "b", "c"], 3), [["a", "b", "c"]]);
        assert!(combinations(&["a"], 2).is_empty());
    }

    #[test]
    fn summaries_read_like_sentences() {
        let r = |a, b, f: &[&'static str]| ExplainRange { positions: [a, b], flips: f.to_vec(), alternatives: vec![] };
        let s = summarise(&[r(0, 0, &["projection"]), r(1, 2, &["rope_pairing", "qk_norm_eps"])], &[], false);
        assert_eq!(s, "position 0: projection; positions 1-2: rope_pairing + qk_norm_eps");
        assert_eq!(summarise(&[], &[3], false), "unexplained at position 3");
        assert_eq!(summarise(&[], &[], true), "the paths agree: nothing to explain");
    }
}
