//! GGUF files (versions 2 and 3): a reader that knows only the container format.
//!
//! Layout (all little-endian), from ggml's `docs/gguf.md`:
//! ```text
//! magic "GGUF" | version u32 | tensor_count u64 | kv_count u64
//! kv_count x  (key: string, value_type: u32, value)
//! tensor_count x (name: string, n_dims: u32, dims: n_dims x u64 (fastest first), type: u32, offset: u64)
//! padding to `general.alignment` (default 32) | tensor data (offsets relative to here)
//! ```
//! `string` is a u64 byte length followed by the bytes; an array value is an element type u32, a
//! count u64, then the elements (which may themselves be arrays).
//!
//! Nothing is copied: the parsed [`Gguf`] borrows keys, strings, arrays and tensor data from the
//! bytes. Every count, length, dimension product and offset is checked against the bytes that remain
//! before it is used, so a hostile file costs at most a few small allocations proportional to its
//! real size, and every failure is a distinct [`Error`] naming the field and its offset.

mod cursor;
mod value;
mod writer;

pub use value::{Array, ArrayIter, GStr, Value, ValueType, MAX_ARRAY_DEPTH};
pub use writer::{Writer, WriterValue};

use crate::ggml::GgmlType;
use crate::{Error, Result};
use cursor::Cursor;

/// The four bytes every GGUF file starts with.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of the data section when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Largest `general.alignment` accepted (ggml uses 32; anything bigger is suspicious but legal).
pub const MAX_ALIGNMENT: u32 = 1 << 16;
/// ggml tensors have at most this many dimensions.
pub const MAX_DIMS: u32 = 4;
/// Most tensors a file may hold (a dense 70B model has about 720, large mixtures of experts a few
/// thousand): more is a damaged or hostile file, refused before any bookkeeping is sized from it.
pub const MAX_TENSORS: u64 = 1 << 16;
/// Most metadata entries (real files have a few dozen; a tokenizer's arrays are one entry each).
pub const MAX_METADATA: u64 = 1 << 16;

/// One tensor: its info record and a view of its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor<'a> {
    pub name: &'a str,
    pub ggml_type: GgmlType,
    /// Dimensions as ggml lists them, fastest-varying first: a matrix stored row-major as
    /// [rows, cols] is listed as `[cols, rows]`.
    pub dims: Vec<u64>,
    /// Offset of the data relative to the start of the data section.
    pub offset: u64,
    /// Absolute offset of the data in the file.
    pub file_offset: u64,
    /// The tensor's bytes (empty when only the header was parsed, see [`Gguf::parse_header`]).
    pub data: &'a [u8],
    /// Size of the tensor's data in the file.
    pub size: u64,
    /// Where the tensor's info record starts in the file.
    pub info_offset: u64,
}

impl Tensor<'_> {
    /// Number of values.
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
    /// Length of a row (the first, fastest dimension).
    pub fn row_len(&self) -> u64 {
        self.dims.first().copied().unwrap_or(1)
    }
    /// Number of rows (product of the other dimensions).
    pub fn n_rows(&self) -> u64 {
        self.dims.iter().skip(1).product()
    }
    pub fn n_bytes(&self) -> u64 {
        self.size
    }
}

/// A parsed GGUF file borrowing from its bytes.
#[derive(Debug, Clone)]
pub struct Gguf<'a> {
    pub version: u32,
    pub alignment: u64,
    /// Absolute offset of the data section.
    pub data_offset: u64,
    /// Size of the whole file.
    pub file_len: u64,
    /// Metadata in file order.
    pub metadata: Vec<(&'a str, Value<'a>)>,
    /// Tensors in file order.
    pub tensors: Vec<Tensor<'a>>,
    /// False when only the header was parsed: the tensors' `data` are then empty.
    pub has_data: bool,
}

impl<'a> Gguf<'a> {
    /// Parse a whole GGUF file. Every tensor's data must lie inside `bytes`.
    ///
    /// # Errors
    /// Any malformed or truncated part of the file, see [`Error`].
    pub fn parse(bytes: &'a [u8]) -> Result<Gguf<'a>> {
        Gguf::parse_with(bytes, bytes.len() as u64, true)
    }

    /// Parse only the header (metadata and tensor records) from the first bytes of a file of
    /// `file_len` bytes: every tensor must lie inside `file_len`, but none of its data is read
    /// (`data` is empty, `has_data` false). For sizing a run before the whole file is read.
    ///
    /// # Errors
    /// As [`Gguf::parse`]; [`Error::Truncated`] when `prefix` ends inside the header.
    pub fn parse_header(prefix: &'a [u8], file_len: u64) -> Result<Gguf<'a>> {
        let prefix = &prefix[..prefix.len().min(usize::try_from(file_len).unwrap_or(usize::MAX))];
        let partial = (prefix.len() as u64) < file_len;
        Gguf::parse_with(prefix, file_len, false).map_err(|e| match e {
            // Ran out of the prefix, not of the file: the caller reads more and tries again.
            Error::Truncated { .. } | Error::CountTooLarge { .. } if partial => {
                Error::HeaderBeyondPrefix { read: prefix.len() as u64 }
            }
            e => e,
        })
    }

    fn parse_with(bytes: &'a [u8], file_len: u64, with_data: bool) -> Result<Gguf<'a>> {
        let mut c = Cursor::new(bytes);

        // ---- header
        let magic: [u8; 4] = match c.take(4, || "the magic number".into()) {
            Ok(m) => [m[0], m[1], m[2], m[3]],
            Err(_) => return Err(Error::BadMagic { found: describe_magic(bytes) }),
        };
        if magic != MAGIC {
            return Err(Error::BadMagic { found: describe_magic(bytes) });
        }
        let version = c.u32(|| "the version".into())?;
        match version {
            2 | 3 => {}
            v if v.swap_bytes() == 2 || v.swap_bytes() == 3 => return Err(Error::BigEndian { raw: v }),
            v => return Err(Error::UnsupportedVersion { version: v }),
        }
        let tensor_count_offset = c.pos();
        let tensor_count = c.u64(|| "the tensor count".into())?;
        let kv_count_offset = c.pos();
        let kv_count = c.u64(|| "the metadata count".into())?;

        // ---- metadata: each entry takes at least a key length, a type and one byte of value.
        check_limit("metadata entries", kv_count_offset, kv_count, MAX_METADATA)?;
        check_count(&c, "the metadata count", kv_count_offset, kv_count, 8 + 4 + 1)?;
        let mut metadata: Vec<(&'a str, Value<'a>)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for i in 0..kv_count {
            let key_offset = c.pos();
            let key = c.utf8(|| format!("metadata key #{i}"))?;
            let type_offset = c.pos();
            let type_id = c.u32(|| format!("the value type of metadata key {key:?}"))?;
            let ty = ValueType::from_id(type_id).ok_or_else(|| Error::UnknownValueType {
                key: key.to_string(),
                offset: type_offset,
                type_id,
            })?;
            let value = value::read_value(&mut c, ty, key, 0)?;
            if !seen.insert(key) {
                return Err(Error::DuplicateKey { key: key.to_string(), offset: key_offset });
            }
            metadata.push((key, value));
        }

        let alignment = match metadata.iter().find(|(k, _)| *k == "general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some((_, Value::U32(a))) if a.is_power_of_two() && *a <= MAX_ALIGNMENT => u64::from(*a),
            Some((_, v)) => return Err(Error::BadAlignment { found: format!("{v:?}"), max: MAX_ALIGNMENT }),
        };

        // ---- tensor infos: each takes at least a name length, n_dims, a type and an offset.
        check_limit("tensors", tensor_count_offset, tensor_count, MAX_TENSORS)?;
        check_count(&c, "the tensor count", tensor_count_offset, tensor_count, 8 + 4 + 4 + 8)?;
        let mut infos = Vec::new();
        for i in 0..tensor_count {
            infos.push(read_tensor_info(&mut c, i, alignment)?);
        }

        // ---- data section
        let data_offset = align_up(c.pos(), alignment).ok_or_else(|| Error::input("data offset overflows"))?;
        let mut tensors = Vec::with_capacity(infos.len());
        for info in infos {
            let out_of_bounds = || Error::TensorOutOfBounds {
                name: info.name.to_string(),
                start: data_offset.saturating_add(info.offset),
                end: data_offset.saturating_add(info.offset).saturating_add(info.n_bytes),
                file_len,
            };
            let start = data_offset.checked_add(info.offset).ok_or_else(out_of_bounds)?;
            let end = start.checked_add(info.n_bytes).ok_or_else(out_of_bounds)?;
            if end > file_len {
                return Err(out_of_bounds());
            }
            tensors.push(Tensor {
                name: info.name,
                ggml_type: info.ggml_type,
                dims: info.dims,
                offset: info.offset,
                file_offset: start,
                // With data, start <= end <= file_len = bytes.len(), so both fit in usize.
                data: if with_data { &bytes[start as usize..end as usize] } else { &[] },
                size: info.n_bytes,
                info_offset: info.info_offset,
            });
        }
        check_overlaps(&tensors)?;

        Ok(Gguf { version, alignment, data_offset, file_len, metadata, tensors, has_data: with_data })
    }

    /// The metadata value stored under `key`.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.metadata.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The tensor named `name`.
    pub fn tensor(&self, name: &str) -> Option<&Tensor<'a>> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The tensor named `name`, or an error naming it.
    pub fn require_tensor(&self, name: &str) -> Result<&Tensor<'a>> {
        self.tensor(name).ok_or_else(|| Error::NoSuchTensor { name: name.to_string() })
    }

    /// `general.architecture`, when present and a string.
    pub fn architecture(&self) -> Option<std::borrow::Cow<'a, str>> {
        self.get("general.architecture").and_then(Value::as_gstr).map(|s| s.lossy())
    }
}

/// A tensor info record before its data is located.
struct TensorInfo<'a> {
    name: &'a str,
    ggml_type: GgmlType,
    dims: Vec<u64>,
    offset: u64,
    n_bytes: u64,
    info_offset: u64,
}

fn read_tensor_info<'a>(c: &mut Cursor<'a>, i: u64, alignment: u64) -> Result<TensorInfo<'a>> {
    let info_offset = c.pos();
    let name = c.utf8(|| format!("the name of tensor #{i}"))?;
    let n_dims = c.u32(|| format!("the dimension count of tensor {name:?}"))?;
    if n_dims == 0 || n_dims > MAX_DIMS {
        return Err(Error::BadDimCount { name: name.to_string(), offset: info_offset, n_dims, max: MAX_DIMS });
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for d in 0..n_dims {
        dims.push(c.u64(|| format!("dimension {d} of tensor {name:?}"))?);
    }
    let type_id = c.u32(|| format!("the type of tensor {name:?}"))?;
    let offset = c.u64(|| format!("the data offset of tensor {name:?}"))?;

    let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| Error::UnknownTensorType {
        name: name.to_string(),
        type_id,
        known: GgmlType::known_list(),
    })?;
    let bad_dims = |why: String| Error::BadDims { name: name.to_string(), dims: dims.clone(), why };
    let n_elements = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= i64::MAX as u64)
        .ok_or_else(|| bad_dims("the element count overflows".into()))?;
    let row_bytes = ggml_type.row_bytes(dims[0]).ok_or_else(|| {
        bad_dims(format!(
            "{} stores values in blocks of {}, but a row has {} values",
            ggml_type,
            ggml_type.block_size(),
            dims[0]
        ))
    })?;
    let n_rows = n_elements.checked_div(dims[0]).unwrap_or(0);
    let n_bytes = row_bytes.checked_mul(n_rows).ok_or_else(|| bad_dims("the byte size overflows".into()))?;
    if offset % alignment != 0 {
        return Err(Error::MisalignedTensor { name: name.to_string(), offset, alignment });
    }
    Ok(TensorInfo { name, ggml_type, dims, offset, n_bytes, info_offset })
}

/// Reject a count over what paritylab accepts from any file.
fn check_limit(what: &str, offset: u64, count: u64, max: u64) -> Result<()> {
    if count > max {
        return Err(Error::TooMany { what: what.into(), offset, count, max });
    }
    Ok(())
}

/// Reject a count that cannot possibly fit in what remains of the file.
fn check_count(c: &Cursor<'_>, field: &str, offset: u64, count: u64, min_each: u64) -> Result<()> {
    let max = c.remaining() / min_each;
    if count > max {
        return Err(Error::CountTooLarge { field: field.into(), offset, value: count, max, available: c.remaining() });
    }
    Ok(())
}

/// Tensors must not share bytes (zero-sized tensors share nothing). Names must be unique.
fn check_overlaps(tensors: &[Tensor<'_>]) -> Result<()> {
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by_key(|&i| (tensors[i].file_offset, tensors[i].n_bytes()));
    let mut prev: Option<&Tensor<'_>> = None;
    for &i in &order {
        let t = &tensors[i];
        if t.n_bytes() == 0 {
            continue;
        }
        if let Some(p) = prev {
            let p_end = p.file_offset + p.n_bytes();
            if t.file_offset < p_end {
                return Err(Error::TensorsOverlap {
                    first: p.name.to_string(),
                    first_start: p.file_offset,
                    first_end: p_end,
                    second: t.name.to_string(),
                    second_start: t.file_offset,
                    second_end: t.file_offset + t.n_bytes(),
                });
            }
        }
        prev = Some(t);
    }
    let mut names: Vec<(&str, u64)> = tensors.iter().map(|t| (t.name, t.info_offset)).collect();
    names.sort();
    for w in names.windows(2) {
        if w[0].0 == w[1].0 {
            return Err(Error::DuplicateTensor { name: w[1].0.to_string(), offset: w[1].1 });
        }
    }
    Ok(())
}

/// `v` rounded up to a multiple of `align` (a power of two).
pub(crate) fn align_up(v: u64, align: u64) -> Option<u64> {
    Some(v.checked_add(align - 1)? / align * align)
}

fn describe_magic(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(4)];
    if head.is_empty() {
        return "nothing (the file is empty)".into();
    }
    let hex: Vec<String> = head.iter().map(|b| format!("{b:02x}")).collect();
    let text: String = head.iter().map(|&b| if b.is_ascii_graphic() { b as char } else { '.' }).collect();
    format!("the bytes {} ({text:?})", hex.join(" "))
}

#[cfg(test)]
mod tests;
