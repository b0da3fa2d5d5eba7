//! The page's state in a URL: everything needed to reproduce a comparison (model source, prompt,
//! both paths, tolerances, isolation, capture level, the selected view), as compact JSON, deflated,
//! base64url, behind a format prefix: `#s1.<data>`. Fields added later are optional, so older links
//! still open (a link without `capture` captures everything, as the page did then).
//!
//! The decoder treats the link as hostile: the text, the inflated JSON and every field are bounded
//! and checked before anything uses them, and each failure says what is wrong with the link.

use crate::forward::{Isolation, Prompt};
use crate::path::PathSpec;
use crate::synth::SynthSpec;
use crate::trace::Capture;
use crate::{Error, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// The state format this code writes and reads.
pub const VERSION: u32 = 1;
/// The hash prefix of this format.
pub const PREFIX: &str = "s1.";
/// Longest encoded state accepted (characters after the prefix).
pub const MAX_ENCODED: usize = 64 * 1024;
/// Largest inflated JSON accepted: a link cannot make the page inflate a bomb.
pub const MAX_JSON: usize = 256 * 1024;
/// Most prompt tokens / characters a link may carry.
pub const MAX_PROMPT: usize = 8192;

/// Where the model comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelSource {
    /// A synthetic model, by its spec's text form.
    Synth(String),
    /// A file fetched from an https URL (or http on localhost).
    Url(String),
    /// A local file the user must drop again, identified by its SHA-256.
    File { sha256: String, name: String, size: u64 },
}

/// Tolerances as the page edits them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedTolerances {
    pub noise_multiple: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atol: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtol: Option<f64>,
}

impl Default for SharedTolerances {
    fn default() -> Self {
        SharedTolerances { noise_multiple: crate::diff::Tolerances::default().noise_multiple, atol: None, rtol: None }
    }
}

/// What the results show.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct View {
    /// Selected position (`None`: the maximum over positions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    /// Selected stage, by its dump name (`blk.0.q`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
}

/// The whole shareable state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub v: u32,
    pub model: ModelSource,
    pub prompt: Prompt,
    /// Path A and B in their text form.
    pub a: String,
    pub b: String,
    #[serde(default)]
    pub tolerances: SharedTolerances,
    #[serde(default = "off")]
    pub isolation: Isolation,
    #[serde(default)]
    pub explain: bool,
    /// What the runs keep (absent: `full`).
    #[serde(default, skip_serializing_if = "is_full")]
    pub capture: Capture,
    #[serde(default)]
    pub view: View,
}

fn off() -> Isolation {
    Isolation::Off
}

fn is_full(c: &Capture) -> bool {
    *c == Capture::Full
}

impl State {
    /// The page's default: the source issue's reproducer, DSL vs legacy, explained.
    pub fn source_issue() -> State {
        State {
            v: VERSION,
            model: ModelSource::Synth(SynthSpec::source_issue().to_text()),
            prompt: Prompt::Ids(vec![1, 5, 3]),
            a: "skainet-dsl".into(),
            b: "skainet-legacy".into(),
            tolerances: SharedTolerances::default(),
            isolation: Isolation::Off,
            explain: true,
            capture: Capture::Full,
            view: View::default(),
        }
    }

    /// Check every field (the same checks whether the state came from a link or the page).
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::input(format!("this link's state is not valid: {msg}")));
        if self.v != VERSION {
            return bad(format!("version {} (expected {VERSION})", self.v));
        }
        match &self.model {
            ModelSource::Synth(spec) => {
                SynthSpec::parse(spec)?;
            }
            ModelSource::Url(url) => check_url(url)?,
            ModelSource::File { sha256, name, size } => {
                if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return bad("the file's SHA-256 is not 64 hex digits".into());
                }
                if name.chars().count() > 512 || *size > 1 << 40 {
                    return bad("the file's name or size is implausible".into());
                }
            }
        }
        match &self.prompt {
            Prompt::Ids(ids) if ids.is_empty() || ids.len() > MAX_PROMPT => {
                return bad(format!("the prompt has {} token ids (1 to {MAX_PROMPT})", ids.len()))
            }
            Prompt::Text(t) if t.chars().count() > MAX_PROMPT => {
                return bad(format!("the prompt text is longer than {MAX_PROMPT} characters"))
            }
            _ => {}
        }
        PathSpec::parse(&self.a)?;
        PathSpec::parse(&self.b)?;
        let t = &self.tolerances;
        if !(t.noise_multiple.is_finite() && t.noise_multiple > 0.0 && t.noise_multiple <= 1e12) {
            return bad(format!("noise multiple {}", t.noise_multiple));
        }
        for (name, v) in [("atol", t.atol), ("rtol", t.rtol)] {
            if let Some(v) = v {
                if !(v.is_finite() && v >= 0.0) {
                    return bad(format!("{name} {v}"));
                }
            }
        }
        if self.capture != Capture::Full && self.isolation != Isolation::Off {
            return bad(format!("isolation needs capture full, not {}", self.capture.name()));
        }
        if let Some(stage) = &self.view.stage {
            if crate::trace::StageId::parse(stage).is_none() {
                return bad(format!("{stage:?} is not a stage"));
            }
        }
        Ok(())
    }

    /// The URL hash (without `#`).
    pub fn encode(&self) -> Result<String> {
        self.validate()?;
        let json = serde_json::to_vec(self).map_err(Error::input)?;
        let deflated = miniz_oxide::deflate::compress_to_vec(&json, 9);
        Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(deflated)))
    }

    /// Read a URL hash (with or without `#`).
    ///
    /// # Errors
    /// A message for the page: unknown or future format, damaged data, invalid fields.
    pub fn decode(hash: &str) -> Result<State> {
        let hash = hash.strip_prefix('#').unwrap_or(hash);
        let Some(data) = hash.strip_prefix(PREFIX) else {
            if let Some(rest) = hash.strip_prefix('s') {
                if let Some(v) = rest.split('.').next().and_then(|v| v.parse::<u32>().ok()) {
                    if v > VERSION {
                        return Err(Error::input(format!(
                            "this link was made by a newer paritylab (state format {v}); this page reads format {VERSION}"
                        )));
                    }
                }
            }
            return Err(Error::input(
                "this link's state is not in a format paritylab knows (it should start with #s1.)",
            ));
        };
        if data.len() > MAX_ENCODED {
            return Err(Error::input(format!("this link's state is too long ({} characters)", data.len())));
        }
        let deflated =
            URL_SAFE_NO_PAD.decode(data).map_err(|_| Error::input("this link's state is damaged (not base64url)"))?;
        let json = miniz_oxide::inflate::decompress_to_vec_with_limit(&deflated, MAX_JSON).map_err(|e| {
            if matches!(e.status, miniz_oxide::inflate::TINFLStatus::HasMoreOutput) {
                Error::input(format!("this link's state inflates to more than {MAX_JSON} bytes"))
            } else {
                Error::input("this link's state is damaged (it does not inflate)")
            }
        })?;
        let value: serde_json::Value =
            serde_json::from_slice(&json).map_err(|e| Error::input(format!("this link's state is damaged: {e}")))?;
        if let Some(v) = value.get("v").and_then(serde_json::Value::as_u64) {
            if v > u64::from(VERSION) {
                return Err(Error::input(format!(
                    "this link was made by a newer paritylab (state version {v}); this page reads version {VERSION}"
                )));
            }
        }
        let state: State =
            serde_json::from_value(value).map_err(|e| Error::input(format!("this link's state is not valid: {e}")))?;
        state.validate()?;
        Ok(state)
    }
}

/// A model URL must be https, or http to this machine.
pub fn check_url(url: &str) -> Result<()> {
    let lower = url.to_ascii_lowercase();
    // (Not http://[::1]: the page's Content-Security-Policy cannot name an IPv6 host.)
    let local = ["http://localhost", "http://127.0.0.1"]
        .iter()
        .any(|p| lower.starts_with(p) && matches!(lower.as_bytes().get(p.len()), None | Some(b':' | b'/')));
    if url.len() > 4096 || !(lower.starts_with("https://") || local) || url.chars().any(char::is_whitespace) {
        return Err(Error::input(format!(
            "{:?} is not a URL paritylab fetches: use https:// (or http://localhost)",
            url.chars().take(120).collect::<String>()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_compact() {
        let mut s = State::source_issue();
        s.view = View { position: Some(2), stage: Some("blk.0.q".into()) };
        s.tolerances.atol = Some(1e-4);
        s.prompt = Prompt::Text("Héllo <|im_end|> 世界".into());
        let hash = s.encode().unwrap();
        assert!(hash.starts_with("s1.") && hash.len() < 600, "{hash}");
        assert_eq!(State::decode(&format!("#{hash}")).unwrap(), s);
        assert_eq!(State::decode(&State::source_issue().encode().unwrap()).unwrap(), State::source_issue());
    }

    #[test]
    fn the_capture_level_travels_and_old_links_capture_everything() {
        let mut s = State::source_issue();
        s.capture = Capture::Stats;
        let hash = s.encode().unwrap();
        assert_eq!(State::decode(&hash).unwrap().capture, Capture::Stats);
        // A link made before the capture level existed: the same hash as then, and `full`.
        let old = State::source_issue().encode().unwrap();
        let json = serde_json::to_string(&State::source_issue()).unwrap();
        assert!(!json.contains("capture"), "{json}");
        assert_eq!(State::decode(&old).unwrap().capture, Capture::Full);
        let forge = |json: &str| {
            format!("s1.{}", URL_SAFE_NO_PAD.encode(miniz_oxide::deflate::compress_to_vec(json.as_bytes(), 9)))
        };
        let bad = json.replace("\"explain\":true", "\"explain\":true,\"capture\":\"most\"");
        assert!(State::decode(&forge(&bad)).unwrap_err().to_string().contains("unknown variant `most`"));
        let iso = json.replace("\"isolation\":\"off\"", "\"isolation\":\"stage\",\"capture\":\"off\"");
        assert!(State::decode(&forge(&iso)).unwrap_err().to_string().contains("isolation needs capture full"));
    }

    #[test]
    fn bad_links_say_what_is_wrong() {
        let msg = |h: &str| State::decode(h).unwrap_err().to_string();
        assert!(msg("#hello").contains("format"));
        assert!(msg("#s9.abc").contains("newer paritylab"));
        assert!(msg("#s1.!!!").contains("base64url"));
        assert!(msg("#s1.AAAA").contains("does not inflate"));
        // A deflate bomb: megabytes of spaces from a short link.
        let bomb = miniz_oxide::deflate::compress_to_vec(&vec![b' '; 4 << 20], 10);
        assert!(msg(&format!("s1.{}", URL_SAFE_NO_PAD.encode(&bomb))).contains("inflates to more than"));
        let forge = |json: &str| {
            format!("s1.{}", URL_SAFE_NO_PAD.encode(miniz_oxide::deflate::compress_to_vec(json.as_bytes(), 9)))
        };
        let good = serde_json::to_string(&State::source_issue()).unwrap();
        assert!(msg(&forge(&good.replace("\"v\":1", "\"v\":2"))).contains("newer paritylab"));
        assert!(msg(&forge(&good.replace("skainet-legacy", "skainet-lgacy"))).contains("unknown path preset"));
        assert!(msg(&forge(&good.replace("\"explain\"", "\"explian\""))).contains("unknown field"));
        assert!(msg(&forge("[1,2]")).contains("not valid"));
        let url_state =
            good.replace("{\"synth\":", "{\"url\":").replace("source-issue,arch", "javascript:alert(1)//arch");
        assert!(msg(&forge(&url_state)).contains("https://"), "{}", msg(&forge(&url_state)));
    }

    #[test]
    fn urls_must_be_https_or_local() {
        assert!(check_url("https://huggingface.co/x/model.gguf").is_ok());
        assert!(check_url("http://localhost:8080/m.gguf").is_ok());
        assert!(check_url("http://127.0.0.1/m.gguf").is_ok());
        for bad in [
            "http://example.com/m.gguf",
            "javascript:alert(1)",
            "file:///etc/passwd",
            "http://localhost.evil.com/x",
            "https://a b",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
