//! Plain-text rendering of CLI results for a terminal.

use paritylab::inspect::{Inspection, TensorStats, ValueSummary};
use paritylab::logits::RunSummary;
use paritylab::Result;
use serde_json::Value as Json;
use std::fmt::Write;

/// Columns a metadata value may take before it is cut.
const VALUE_WIDTH: usize = 90;

/// `1234567` -> `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A JSON value as one terminal-safe line (strings quoted and escaped).
fn one_line(v: &Json) -> String {
    match v {
        Json::String(s) => format!("{s:?}"),
        Json::Array(items) => items.iter().map(one_line).collect::<Vec<_>>().join(", "),
        Json::Object(o) => {
            // A nested array summary.
            let len = o.get("len").and_then(Json::as_u64).unwrap_or(0);
            let items = o.get("value").map(one_line).unwrap_or_default();
            format!("[{len}: {items}]")
        }
        other => other.to_string(),
    }
}

fn cut(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

fn value_text(v: &ValueSummary) -> (String, String) {
    match (&v.elem_type, v.len) {
        (Some(elem), Some(len)) => {
            let shown = v.value.as_array().map(Vec::len).unwrap_or(0) as u64;
            let more = if len > shown { format!(" (+{} more)", thousands(len - shown)) } else { String::new() };
            let mut items = cut(&one_line(&v.value), VALUE_WIDTH.saturating_sub(more.len()));
            if len > shown && !items.ends_with('…') {
                items.push_str(", …");
            }
            (format!("{elem}[{}]", thousands(len)), format!("[{items}]{more}"))
        }
        _ => {
            let mut text = cut(&one_line(&v.value), VALUE_WIDTH);
            if v.truncated {
                text.push_str(&format!(" ({} bytes)", thousands(v.len.unwrap_or(0))));
            }
            (v.ty.to_string(), text)
        }
    }
}

pub fn inspection(info: &Inspection) -> String {
    let mut o = String::new();
    let s = &info.summary;
    let _ = writeln!(
        o,
        "GGUF v{} · alignment {} · {} bytes · data section at byte {}",
        info.version,
        info.alignment,
        thousands(info.file_size),
        thousands(info.data_offset)
    );
    if let Some(arch) = &info.architecture {
        let name = info.name.as_deref().map(|n| format!(" · name {n:?}")).unwrap_or_default();
        let _ = writeln!(o, "architecture {arch}{name}");
    }
    let types: Vec<String> = s.types.iter().map(|t| format!("{} ×{}", t.ggml_type, t.tensors)).collect();
    let _ = writeln!(
        o,
        "{} tensors · {} parameters · {} bytes of tensor data · {}",
        s.tensor_count,
        thousands(s.parameters),
        thousands(s.tensor_bytes),
        types.join(", ")
    );

    let _ = writeln!(o, "\nmetadata ({} keys)", s.metadata_count);
    let key_w = info.metadata.iter().map(|m| m.key.chars().count()).max().unwrap_or(0).min(48);
    for m in &info.metadata {
        let (ty, text) = value_text(&m.value);
        let _ = writeln!(o, "  {:<key_w$}  {:<16} {}", cut(&m.key, 48), ty, text);
    }

    let _ = writeln!(o, "\ntensors ({})", s.tensor_count);
    let name_w = info.tensors.iter().map(|t| t.name.chars().count()).max().unwrap_or(4).clamp(4, 48);
    let _ = writeln!(o, "  {:<name_w$}  {:<8} {:<22} {:>14} {:>14}", "name", "type", "dims", "bytes", "offset");
    for t in &info.tensors {
        let dims = format!("{:?}", t.dims);
        let flag = if t.decodable { "" } else { "  (cannot decode)" };
        let _ = writeln!(
            o,
            "  {:<name_w$}  {:<8} {:<22} {:>14} {:>14}{flag}",
            cut(&t.name, 48),
            t.ggml_type,
            dims,
            thousands(t.bytes),
            thousands(t.offset)
        );
    }
    o
}

pub fn stats_table(stats: &[(&str, Result<TensorStats>)]) -> String {
    let mut o = String::new();
    let name_w = stats.iter().map(|(n, _)| n.chars().count()).max().unwrap_or(4).clamp(4, 48);
    let _ = writeln!(o, "\nvalues");
    let _ = writeln!(
        o,
        "  {:<name_w$}  {:>12} {:>12} {:>12} {:>12} {:>6} {:>6}",
        "name", "min", "max", "mean", "std", "NaN", "Inf"
    );
    for (name, s) in stats {
        match s {
            Ok(s) => {
                let _ = writeln!(
                    o,
                    "  {:<name_w$}  {:>12.5e} {:>12.5e} {:>12.5e} {:>12.5e} {:>6} {:>6}",
                    cut(name, 48),
                    s.min,
                    s.max,
                    s.mean,
                    s.std,
                    s.nan,
                    s.inf
                );
            }
            Err(e) => {
                let _ = writeln!(o, "  {:<name_w$}  {e}", cut(name, 48));
            }
        }
    }
    o
}

/// The top next tokens of every position of a run.
pub fn run(config: &paritylab::model::Config, summary: &RunSummary) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{}", config.describe());
    let _ = writeln!(o, "path {}", summary.path_text);
    let quoted = |t: &Option<String>| t.as_ref().map(|s| format!(" {s:?}")).unwrap_or_default();
    for p in &summary.positions {
        let _ = writeln!(o, "\nposition {} · token {}{} · next:", p.position, p.token, quoted(&p.text));
        for c in &p.top {
            let _ =
                writeln!(o, "  {:>8}{:<24} logit {:>12.6}  p {:.4}", c.id, cut(&quoted(&c.text), 24), c.logit, c.prob);
        }
    }
    o
}

/// Token ids with their pieces, one per line.
pub fn tokens(ids: &[u32], pieces: &[String]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{} tokens", ids.len());
    for (id, piece) in ids.iter().zip(pieces) {
        let _ = writeln!(o, "{id:>8}  {piece}");
    }
    o
}
