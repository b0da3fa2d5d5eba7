//! User mapping files: their tensor names to our stages, with the layout changes that line them up
//! (see docs/dump-format.md, "Mapping files").

use super::naming::{Scale, Target, Transforms};
use crate::trace::StageId;
use crate::{Error, Result};
use serde_json::Value;

pub const FORMAT: &str = "paritylab-map/1";

/// A name pattern with at most one `{i}` (a layer number).
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    head: String,
    /// `Some(tail)` when the pattern has `{i}`.
    tail: Option<String>,
}

impl Pattern {
    pub fn parse(p: &str) -> Result<Pattern> {
        let mut parts = p.split("{i}");
        let head = parts.next().unwrap_or_default().to_string();
        let tail = parts.next().map(str::to_string);
        if parts.next().is_some() {
            return Err(Error::input(format!("mapping file: pattern {p:?} has more than one {{i}}")));
        }
        Ok(Pattern { head, tail })
    }

    /// `Some(layer)` (`None` inside when the pattern has no `{i}`) when `name` matches.
    pub fn matches(&self, name: &str) -> Option<Option<usize>> {
        let rest = name.strip_prefix(self.head.as_str())?;
        match &self.tail {
            None => rest.is_empty().then_some(None),
            Some(tail) => {
                let digits = rest.strip_suffix(tail.as_str())?;
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                Some(Some(digits.parse().ok()?))
            }
        }
    }

    fn has_layer(&self) -> bool {
        self.tail.is_some()
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    pattern: Pattern,
    /// `blk.{i}.q`, `tok_embd`, ...
    stage: String,
    tf: Transforms,
}

/// A parsed mapping file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MapFile {
    rules: Vec<Rule>,
    ignore: Vec<Pattern>,
}

/// What the map says about a name.
pub enum MapRoute {
    Stage(Target),
    Ignore,
    NoRule,
}

impl MapFile {
    pub fn parse(text: &str) -> Result<MapFile> {
        let v: Value = serde_json::from_str(text).map_err(|e| Error::input(format!("mapping file: not JSON: {e}")))?;
        let obj = v.as_object().ok_or_else(|| Error::input("mapping file: expected a JSON object"))?;
        match obj.get("format").and_then(Value::as_str) {
            Some(FORMAT) | None => {}
            Some(other) => {
                return Err(Error::input(format!(
                    "mapping file: format {other:?} is not supported (expected {FORMAT:?})"
                )))
            }
        }
        for key in obj.keys() {
            if !matches!(key.as_str(), "format" | "tensors" | "ignore") {
                return Err(Error::input(format!(
                    "mapping file: unknown key {key:?} (expected \"format\", \"tensors\", \"ignore\")"
                )));
            }
        }
        let mut map = MapFile::default();
        if let Some(t) = obj.get("tensors") {
            let t = t.as_object().ok_or_else(|| Error::input("mapping file: \"tensors\" must be an object"))?;
            for (name, spec) in t {
                map.rules.push(rule(name, spec)?);
            }
        }
        if let Some(ig) = obj.get("ignore") {
            let ig = ig.as_array().ok_or_else(|| Error::input("mapping file: \"ignore\" must be an array of names"))?;
            for p in ig {
                let p = p.as_str().ok_or_else(|| Error::input("mapping file: \"ignore\" must hold strings"))?;
                map.ignore.push(Pattern::parse(p)?);
            }
        }
        Ok(map)
    }

    /// The first rule matching `name`.
    pub fn route(&self, name: &str) -> MapRoute {
        for r in &self.rules {
            if let Some(layer) = r.pattern.matches(name) {
                let stage_name = match layer {
                    Some(i) => r.stage.replace("{i}", &i.to_string()),
                    None => r.stage.clone(),
                };
                // Checked when parsed: the template gives a valid stage for any layer.
                if let Some(stage) = StageId::parse(&stage_name) {
                    return MapRoute::Stage(Target { stage, priority: 3, tf: r.tf.clone() });
                }
            }
        }
        if self.ignore.iter().any(|p| p.matches(name).is_some()) {
            return MapRoute::Ignore;
        }
        MapRoute::NoRule
    }

    /// The rule patterns (for "mapped but missing from the dump" messages).
    pub fn patterns(&self) -> impl Iterator<Item = String> + '_ {
        self.rules.iter().map(|r| match &r.pattern.tail {
            Some(t) => format!("{}{{i}}{t}", r.pattern.head),
            None => r.pattern.head.clone(),
        })
    }

    pub fn matches_any_rule(&self, name: &str) -> bool {
        self.rules.iter().any(|r| r.pattern.matches(name).is_some())
    }
}

fn rule(name: &str, spec: &Value) -> Result<Rule> {
    let bad = |what: &str| Error::input(format!("mapping file: tensor {name:?}: {what}"));
    let pattern = Pattern::parse(name)?;
    let (stage, obj) = match spec {
        Value::String(s) => (s.clone(), None),
        Value::Object(o) => {
            let s =
                o.get("stage").and_then(Value::as_str).ok_or_else(|| bad("needs a \"stage\" (e.g. \"blk.{i}.q\")"))?;
            (s.to_string(), Some(o))
        }
        _ => return Err(bad("expected a stage name or an object with \"stage\"")),
    };
    if stage.contains("{i}") != pattern.has_layer() {
        return Err(bad("the name and the stage must both have {i} or both not"));
    }
    if StageId::parse(&stage.replace("{i}", "0")).is_none() {
        return Err(bad(&format!(
            "{stage:?} is not a stage (tok_embd, blk.{{i}}.<stage>, result_norm, result_output; see docs/dump-format.md)"
        )));
    }
    let mut tf = Transforms::default();
    if let Some(o) = obj {
        for (k, v) in o {
            match k.as_str() {
                "stage" => {}
                "reshape" => {
                    let dims = v.as_array().ok_or_else(|| bad("\"reshape\" must be an array of integers"))?;
                    let dims: Vec<i64> = dims
                        .iter()
                        .map(|d| d.as_i64().filter(|&d| d == -1 || d > 0))
                        .collect::<Option<_>>()
                        .ok_or_else(|| bad("\"reshape\" holds positive integers and at most one -1"))?;
                    if dims.iter().filter(|&&d| d == -1).count() > 1 {
                        return Err(bad("\"reshape\" may hold one -1 at most"));
                    }
                    tf.reshape = Some(dims);
                }
                "transpose" => {
                    let axes = v.as_array().ok_or_else(|| bad("\"transpose\" must be an array of axes"))?;
                    let axes: Vec<usize> = axes
                        .iter()
                        .map(|a| a.as_u64().and_then(|a| usize::try_from(a).ok()))
                        .collect::<Option<_>>()
                        .ok_or_else(|| bad("\"transpose\" holds axis numbers"))?;
                    let mut sorted = axes.clone();
                    sorted.sort_unstable();
                    if sorted != (0..axes.len()).collect::<Vec<_>>() {
                        return Err(bad(&format!(
                            "\"transpose\" {axes:?} is not an order of the axes 0..{}",
                            axes.len()
                        )));
                    }
                    tf.transpose = Some(axes);
                }
                "scale" => {
                    let s = v.as_f64().filter(|s| s.is_finite()).ok_or_else(|| bad("\"scale\" must be a number"))?;
                    tf.scale = Some(Scale::Factor(s));
                }
                "qk_row_order" => match v.as_str() {
                    Some("hf") => tf.hf_rows = true,
                    Some("gguf") => tf.hf_rows = false,
                    _ => return Err(bad("\"qk_row_order\" is \"hf\" or \"gguf\"")),
                },
                other => {
                    return Err(bad(&format!(
                        "unknown key {other:?} (expected stage, reshape, transpose, scale, qk_row_order)"
                    )))
                }
            }
        }
    }
    Ok(Rule { pattern, stage, tf })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_layer_numbers() {
        let p = Pattern::parse("layers.{i}.wq").unwrap();
        assert_eq!(p.matches("layers.12.wq"), Some(Some(12)));
        assert_eq!(p.matches("layers..wq"), None);
        assert_eq!(p.matches("layers.1x.wq"), None);
        assert_eq!(Pattern::parse("emb").unwrap().matches("emb"), Some(None));
        assert!(Pattern::parse("a{i}b{i}").is_err());
    }

    #[test]
    fn a_map_routes_names_with_their_transforms() {
        let m = MapFile::parse(
            r#"{"format": "paritylab-map/1", "tensors": {"emb": "tok_embd",
                "L{i}.q": {"stage": "blk.{i}.q", "qk_row_order": "hf", "transpose": [1, 0]}},
                "ignore": ["rope.{i}.cos"]}"#,
        )
        .unwrap();
        let MapRoute::Stage(t) = m.route("L3.q") else { panic!() };
        assert_eq!(t.stage.name(), "blk.3.q");
        assert!(t.tf.hf_rows);
        assert_eq!(t.tf.transpose, Some(vec![1, 0]));
        assert!(matches!(m.route("rope.0.cos"), MapRoute::Ignore));
        assert!(matches!(m.route("other"), MapRoute::NoRule));
    }

    #[test]
    fn bad_maps_say_what_is_wrong() {
        for (text, want) in [
            ("[]", "expected a JSON object"),
            (r#"{"tensors": {"a": "blk.{i}.q"}}"#, "both have {i}"),
            (r#"{"tensors": {"a": "blk.0.nope"}}"#, "is not a stage"),
            (r#"{"tensors": {"a": {"stage": "tok_embd", "transpose": [0, 0]}}}"#, "not an order"),
            (r#"{"tensors": {"a": {"stage": "tok_embd", "reshape": [-1, -1]}}}"#, "one -1"),
            (r#"{"tensors": {"a": {"stage": "tok_embd", "flip": true}}}"#, "unknown key"),
            (r#"{"format": "other/2"}"#, "not supported"),
            (r#"{"tensor": {}}"#, "unknown key"),
        ] {
            let e = MapFile::parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
