//! A serialisable description of a GGUF file (`paritylab inspect --json`, the page's metadata and
//! tensor browser) and per-tensor value statistics.
//!
//! Long arrays and strings are summarised: their length and the first items, so a 151,936-entry
//! vocabulary is a line, not megabytes.

use crate::ggml::GgmlType;
use crate::gguf::{Array, Gguf, Tensor, Value, ValueType};
use crate::quant;
use crate::Result;
use rayon::prelude::*;
use serde::Serialize;
use serde_json::{json, Value as Json};

/// Items of an array shown in a summary.
pub const ARRAY_PREVIEW: usize = 16;
/// Characters of a string shown in a summary.
pub const STRING_PREVIEW: usize = 2048;

#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub format: &'static str,
    pub version: u32,
    pub alignment: u64,
    pub file_size: u64,
    pub data_offset: u64,
    /// `general.architecture`, when present.
    pub architecture: Option<String>,
    /// `general.name`, when present.
    pub name: Option<String>,
    pub metadata: Vec<MetaEntry>,
    pub tensors: Vec<TensorEntry>,
    pub summary: Summary,
}

/// One metadata entry. `value` is a JSON rendering, summarised for long arrays and strings.
#[derive(Debug, Clone, Serialize)]
pub struct MetaEntry {
    pub key: String,
    #[serde(flatten)]
    pub value: ValueSummary,
}

#[derive(Debug, Clone, Serialize)]
pub struct ValueSummary {
    /// The GGUF value type (`u32`, `string`, `array`, ...).
    #[serde(rename = "type")]
    pub ty: ValueType,
    /// For arrays: the element type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elem_type: Option<ValueType>,
    /// For arrays: the number of elements; for strings: the length in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub len: Option<u64>,
    /// The value: a number, bool or string; for arrays a list of the first items (nested arrays
    /// appear as `ValueSummary` objects). Non-finite floats are the strings "NaN", "inf", "-inf".
    pub value: Json,
    /// True when `value` shows only part of an array or string.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct TensorEntry {
    pub name: String,
    /// ggml type name (`Q4_K`, `F32`, ...).
    #[serde(rename = "type")]
    pub ggml_type: &'static str,
    pub type_id: u32,
    /// Dimensions as ggml lists them, fastest first (a dimension beyond 2^53, possible only next
    /// to a zero, is written as a string so JavaScript cannot round it).
    #[serde(serialize_with = "js_safe_u64s")]
    pub dims: Vec<u64>,
    pub elements: u64,
    pub bytes: u64,
    /// Offset relative to the data section (as stored in the file).
    pub offset: u64,
    /// Absolute offset in the file.
    pub file_offset: u64,
    /// Whether paritylab can decode this type.
    pub decodable: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub metadata_count: usize,
    pub tensor_count: usize,
    pub tensor_bytes: u64,
    pub parameters: u64,
    /// Tensor count and bytes per ggml type, in type id order.
    pub types: Vec<TypeCount>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TypeCount {
    #[serde(rename = "type")]
    pub ggml_type: &'static str,
    pub tensors: usize,
    pub bytes: u64,
}

/// Describe a parsed file.
pub fn inspect(g: &Gguf<'_>) -> Inspection {
    let text = |key: &str| g.get(key).and_then(Value::as_gstr).map(|s| s.lossy().into_owned());
    let metadata = g.metadata.iter().map(|(k, v)| MetaEntry { key: (*k).to_string(), value: summarise(v) }).collect();
    let tensors: Vec<TensorEntry> = g
        .tensors
        .iter()
        .map(|t| TensorEntry {
            name: t.name.to_string(),
            ggml_type: t.ggml_type.name(),
            type_id: t.ggml_type.id(),
            dims: t.dims.clone(),
            elements: t.n_elements(),
            bytes: t.n_bytes(),
            offset: t.offset,
            file_offset: t.file_offset,
            decodable: quant::is_supported(t.ggml_type),
        })
        .collect();
    let mut types: Vec<TypeCount> = Vec::new();
    let mut by_type: Vec<GgmlType> = g.tensors.iter().map(|t| t.ggml_type).collect();
    by_type.sort();
    by_type.dedup();
    for ty in by_type {
        let of_type = g.tensors.iter().filter(|t| t.ggml_type == ty);
        types.push(TypeCount {
            ggml_type: ty.name(),
            tensors: of_type.clone().count(),
            bytes: of_type.map(|t| t.n_bytes()).sum(),
        });
    }
    Inspection {
        format: "gguf",
        version: g.version,
        alignment: g.alignment,
        file_size: g.file_len,
        data_offset: g.data_offset,
        architecture: text("general.architecture"),
        name: text("general.name"),
        summary: Summary {
            metadata_count: g.metadata.len(),
            tensor_count: g.tensors.len(),
            tensor_bytes: g.tensors.iter().map(|t| t.n_bytes()).sum(),
            parameters: g.tensors.iter().map(|t| t.n_elements()).sum(),
            types,
        },
        metadata,
        tensors,
    }
}

/// A JSON rendering of one value, arrays and long strings cut to a preview.
pub fn summarise(v: &Value<'_>) -> ValueSummary {
    let plain = |value: Json| ValueSummary { ty: v.value_type(), elem_type: None, len: None, value, truncated: false };
    match v {
        Value::String(s) => {
            let text = s.lossy();
            let truncated = text.chars().count() > STRING_PREVIEW;
            let shown: String = text.chars().take(STRING_PREVIEW).collect();
            ValueSummary {
                ty: ValueType::String,
                elem_type: None,
                len: Some(s.bytes().len() as u64),
                value: Json::String(shown),
                truncated,
            }
        }
        Value::Array(a) => summarise_array(a),
        other => plain(scalar_json(other)),
    }
}

fn summarise_array(a: &Array<'_>) -> ValueSummary {
    let items: Vec<Json> = a
        .iter()
        .take(ARRAY_PREVIEW)
        .map(|item| match &item {
            Value::Array(inner) => serde_json::to_value(summarise_array(inner)).unwrap_or(Json::Null),
            Value::String(s) => {
                let text = s.lossy();
                Json::String(text.chars().take(STRING_PREVIEW).collect())
            }
            other => scalar_json(other),
        })
        .collect();
    ValueSummary {
        ty: ValueType::Array,
        elem_type: Some(a.elem_type()),
        len: Some(a.len()),
        truncated: a.len() > ARRAY_PREVIEW as u64,
        value: Json::Array(items),
    }
}

fn js_safe_u64s<S: serde::Serializer>(v: &[u64], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(v.len()))?;
    for &x in v {
        seq.serialize_element(&int_json(x.into()))?;
    }
    seq.end()
}

fn float_json(x: f64) -> Json {
    if x.is_nan() {
        json!("NaN")
    } else if x.is_infinite() {
        json!(if x > 0.0 { "inf" } else { "-inf" })
    } else {
        json!(x)
    }
}

/// Integers beyond 2^53 would lose digits in JavaScript, so they are written as strings.
fn int_json(x: i128) -> Json {
    const SAFE: i128 = 1 << 53;
    if (-SAFE..=SAFE).contains(&x) {
        json!(x as i64)
    } else {
        json!(x.to_string())
    }
}

fn scalar_json(v: &Value<'_>) -> Json {
    match *v {
        Value::U8(x) => json!(x),
        Value::I8(x) => json!(x),
        Value::U16(x) => json!(x),
        Value::I16(x) => json!(x),
        Value::U32(x) => json!(x),
        Value::I32(x) => json!(x),
        Value::U64(x) => int_json(x.into()),
        Value::I64(x) => int_json(x.into()),
        // f32 -> f64 is exact; printing the f32 keeps its short form (1e-6, not 9.99999997e-7).
        Value::F32(x) if x.is_finite() => serde_json::from_str(&x.to_string()).unwrap_or(Json::Null),
        Value::F32(x) => float_json(x.into()),
        Value::F64(x) => float_json(x),
        Value::Bool(b) => json!(b),
        Value::String(s) => json!(s.lossy()),
        Value::Array(_) => Json::Null,
    }
}

/// Value statistics of one tensor, computed on the dequantised values in f64.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TensorStats {
    pub name: String,
    #[serde(rename = "type")]
    pub ggml_type: &'static str,
    pub elements: u64,
    /// Over finite values only.
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub std: f64,
    pub abs_max: f64,
    pub nan: u64,
    pub inf: u64,
    pub zeros: u64,
    /// `histogram.len()` equal-width bins from `min` to `max` (finite values).
    pub histogram: Vec<u64>,
    /// The first values of the first row.
    pub first: Vec<f32>,
}

/// Number of histogram bins in [`TensorStats`].
pub const HISTOGRAM_BINS: usize = 48;

#[derive(Clone, Copy)]
struct Partial {
    n: u64,
    sum: f64,
    sumsq: f64,
    min: f64,
    max: f64,
    nan: u64,
    inf: u64,
    zeros: u64,
}

impl Partial {
    const EMPTY: Partial =
        Partial { n: 0, sum: 0.0, sumsq: 0.0, min: f64::INFINITY, max: f64::NEG_INFINITY, nan: 0, inf: 0, zeros: 0 };
    fn add(mut self, x: f32) -> Self {
        if x.is_nan() {
            self.nan += 1;
        } else if x.is_infinite() {
            self.inf += 1;
        } else {
            let x = f64::from(x);
            self.n += 1;
            self.sum += x;
            self.sumsq += x * x;
            self.min = self.min.min(x);
            self.max = self.max.max(x);
            self.zeros += u64::from(x == 0.0);
        }
        self
    }
    fn merge(self, o: Partial) -> Self {
        Partial {
            n: self.n + o.n,
            sum: self.sum + o.sum,
            sumsq: self.sumsq + o.sumsq,
            min: self.min.min(o.min),
            max: self.max.max(o.max),
            nan: self.nan + o.nan,
            inf: self.inf + o.inf,
            zeros: self.zeros + o.zeros,
        }
    }
}

/// Statistics of a tensor's values. Rows are decoded in parallel; per-row results are combined in
/// row order, so the numbers do not depend on the thread count.
pub fn tensor_stats(t: &Tensor<'_>) -> Result<TensorStats> {
    if t.data.len() as u64 != t.n_bytes() {
        return Err(crate::Error::HeaderOnly { what: format!("the statistics of {:?}", t.name) });
    }
    if !quant::is_supported(t.ggml_type) {
        return Err(quant::unsupported(t.name, t.ggml_type));
    }
    let row_len = usize::try_from(t.row_len()).unwrap_or(usize::MAX);
    let n_rows = t.n_rows();
    let decode = |row: u64| -> Result<Vec<f32>> {
        let mut buf = quant::try_alloc_f32(row_len, t.name)?;
        quant::dequantize_tensor_row(t, row, &mut buf)?;
        Ok(buf)
    };
    let partials: Vec<Partial> = (0..n_rows)
        .into_par_iter()
        .map(|r| decode(r).map(|row| row.iter().fold(Partial::EMPTY, |p, &x| p.add(x))))
        .collect::<Result<_>>()?;
    let total = partials.iter().fold(Partial::EMPTY, |a, &b| a.merge(b));

    let (lo, hi) = (total.min, total.max);
    let mut histogram = vec![0u64; HISTOGRAM_BINS];
    if total.n > 0 {
        let width = (hi - lo) / HISTOGRAM_BINS as f64;
        let rows: Vec<Vec<u64>> = (0..n_rows)
            .into_par_iter()
            .map(|r| {
                let mut h = vec![0u64; HISTOGRAM_BINS];
                for x in decode(r)?.into_iter().filter(|x| x.is_finite()) {
                    let bin = if width > 0.0 { ((f64::from(x) - lo) / width) as usize } else { 0 };
                    h[bin.min(HISTOGRAM_BINS - 1)] += 1;
                }
                Ok(h)
            })
            .collect::<Result<_>>()?;
        for h in rows {
            for (a, b) in histogram.iter_mut().zip(h) {
                *a += b;
            }
        }
    }
    let first = if n_rows > 0 { decode(0)?.into_iter().take(16).collect() } else { Vec::new() };
    let n = total.n.max(1) as f64;
    let mean = total.sum / n;
    Ok(TensorStats {
        name: t.name.to_string(),
        ggml_type: t.ggml_type.name(),
        elements: t.n_elements(),
        min: if total.n > 0 { lo } else { 0.0 },
        max: if total.n > 0 { hi } else { 0.0 },
        mean,
        std: (total.sumsq / n - mean * mean).max(0.0).sqrt(),
        abs_max: if total.n > 0 { lo.abs().max(hi.abs()) } else { 0.0 },
        nan: total.nan,
        inf: total.inf,
        zeros: total.zeros,
        histogram,
        first,
    })
}
