//! Writing GGUF version 3 files: metadata plus tensors, laid out the way llama.cpp's writers do
//! (tensor data aligned to `general.alignment`, in the order the tensors were added).

use super::{align_up, Value, ValueType, DEFAULT_ALIGNMENT, MAGIC, MAX_ALIGNMENT, MAX_DIMS};
use crate::ggml::GgmlType;
use crate::{Error, Result};

/// An owned metadata value, for writing.
#[derive(Debug, Clone, PartialEq)]
pub enum WriterValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    /// Elements of one type (checked when written).
    Array(ValueType, Vec<WriterValue>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl WriterValue {
    pub fn value_type(&self) -> ValueType {
        match self {
            WriterValue::U8(_) => ValueType::U8,
            WriterValue::I8(_) => ValueType::I8,
            WriterValue::U16(_) => ValueType::U16,
            WriterValue::I16(_) => ValueType::I16,
            WriterValue::U32(_) => ValueType::U32,
            WriterValue::I32(_) => ValueType::I32,
            WriterValue::F32(_) => ValueType::F32,
            WriterValue::Bool(_) => ValueType::Bool,
            WriterValue::String(_) => ValueType::String,
            WriterValue::Array(..) => ValueType::Array,
            WriterValue::U64(_) => ValueType::U64,
            WriterValue::I64(_) => ValueType::I64,
            WriterValue::F64(_) => ValueType::F64,
        }
    }

    /// An array of strings.
    pub fn strings<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Self {
        WriterValue::Array(ValueType::String, items.into_iter().map(|s| WriterValue::String(s.into())).collect())
    }

    fn encode(&self, out: &mut Vec<u8>, key: &str) -> Result<()> {
        match self {
            WriterValue::U8(v) => out.push(*v),
            WriterValue::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
            WriterValue::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
            WriterValue::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
            WriterValue::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
            WriterValue::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
            WriterValue::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
            WriterValue::Bool(v) => out.push(u8::from(*v)),
            WriterValue::String(s) => put_string(out, s.as_bytes()),
            WriterValue::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
            WriterValue::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
            WriterValue::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
            WriterValue::Array(elem, items) => {
                out.extend_from_slice(&(*elem as u32).to_le_bytes());
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for item in items {
                    if item.value_type() != *elem {
                        return Err(Error::Write(format!(
                            "array {key:?} is declared as {elem} but holds a {}",
                            item.value_type()
                        )));
                    }
                    item.encode(out, key)?;
                }
            }
        }
        Ok(())
    }
}

impl From<&Value<'_>> for WriterValue {
    /// A copy of a parsed value (strings are decoded lossily only if they are not UTF-8).
    fn from(v: &Value<'_>) -> Self {
        match v {
            Value::U8(x) => WriterValue::U8(*x),
            Value::I8(x) => WriterValue::I8(*x),
            Value::U16(x) => WriterValue::U16(*x),
            Value::I16(x) => WriterValue::I16(*x),
            Value::U32(x) => WriterValue::U32(*x),
            Value::I32(x) => WriterValue::I32(*x),
            Value::F32(x) => WriterValue::F32(*x),
            Value::Bool(x) => WriterValue::Bool(*x),
            Value::String(s) => WriterValue::String(s.lossy().into_owned()),
            Value::U64(x) => WriterValue::U64(*x),
            Value::I64(x) => WriterValue::I64(*x),
            Value::F64(x) => WriterValue::F64(*x),
            Value::Array(a) => WriterValue::Array(a.elem_type(), a.iter().map(|x| WriterValue::from(&x)).collect()),
        }
    }
}

struct PendingTensor {
    name: String,
    ggml_type: GgmlType,
    dims: Vec<u64>,
    /// Bytes of its data.
    size: u64,
    /// The data, or `None` for a tensor declared with [`Writer::declare`] and filled in while the
    /// file is written.
    data: Option<Vec<u8>>,
}

/// Builds a GGUF file in memory. Tensors are added with their data, or declared and filled in
/// while the file is written ([`Writer::to_bytes_with`]), so a large file is built in one buffer of
/// its exact size, without a second copy of its tensors.
///
/// ```
/// use paritylab::gguf::{Gguf, Writer, WriterValue};
/// use paritylab::ggml::GgmlType;
/// let mut w = Writer::new();
/// w.metadata("general.architecture", WriterValue::String("llama".into()));
/// w.tensor("x", GgmlType::F32, &[2], 1.5f32.to_le_bytes().repeat(2)).unwrap();
/// let bytes = w.to_bytes().unwrap();
/// let g = Gguf::parse(&bytes).unwrap();
/// assert_eq!(g.tensor("x").unwrap().dims, vec![2]);
/// ```
pub struct Writer {
    alignment: u64,
    metadata: Vec<(String, WriterValue)>,
    tensors: Vec<PendingTensor>,
}

impl Default for Writer {
    fn default() -> Self {
        Self::new()
    }
}

impl Writer {
    pub fn new() -> Self {
        Writer { alignment: DEFAULT_ALIGNMENT, metadata: Vec::new(), tensors: Vec::new() }
    }

    /// Add (or replace) a metadata entry. Order of first insertion is kept. Setting
    /// `general.alignment` (a u32) sets the alignment the data is written with.
    pub fn metadata(&mut self, key: impl Into<String>, value: WriterValue) -> &mut Self {
        let key = key.into();
        if key == "general.alignment" {
            // An invalid alignment is refused by `to_bytes`.
            self.alignment = match value {
                WriterValue::U32(a) if a.is_power_of_two() && a <= MAX_ALIGNMENT => u64::from(a),
                _ => 0,
            };
        }
        match self.metadata.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.metadata.push((key, value)),
        }
        self
    }

    /// Add a tensor. `dims` are ggml's (fastest first); `data` must be exactly the bytes the type
    /// and dims call for.
    pub fn tensor(
        &mut self,
        name: impl Into<String>,
        ggml_type: GgmlType,
        dims: &[u64],
        data: Vec<u8>,
    ) -> Result<&mut Self> {
        let name = name.into();
        let expected = tensor_bytes(&name, ggml_type, dims)?;
        if expected != data.len() as u64 {
            return Err(Error::DataLength {
                what: format!("tensor {name:?} with dims {dims:?}"),
                type_name: ggml_type.name(),
                expected,
                got: data.len() as u64,
            });
        }
        self.push(name, ggml_type, dims, expected, Some(data))
    }

    /// Declare a tensor whose data [`Writer::to_bytes_with`] asks for while it writes the file.
    /// Returns the bytes its data takes.
    pub fn declare(&mut self, name: impl Into<String>, ggml_type: GgmlType, dims: &[u64]) -> Result<u64> {
        let name = name.into();
        let size = tensor_bytes(&name, ggml_type, dims)?;
        self.push(name, ggml_type, dims, size, None)?;
        Ok(size)
    }

    fn push(
        &mut self,
        name: String,
        ggml_type: GgmlType,
        dims: &[u64],
        size: u64,
        data: Option<Vec<u8>>,
    ) -> Result<&mut Self> {
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(Error::Write(format!("tensor {name:?} added twice")));
        }
        self.tensors.push(PendingTensor { name, ggml_type, dims: dims.to_vec(), size, data });
        Ok(self)
    }

    /// The whole file (every tensor must have been added with its data).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.to_bytes_with(|i, _| {
            Err(Error::Write(format!("tensor {:?} was declared but given no data", self.tensors[i].name)))
        })
    }

    /// The header (metadata, tensor records, padding to the data section) and the size of the
    /// whole file it describes, without any tensor data: what a sparse file starts with.
    ///
    /// # Errors
    /// An invalid alignment or sizes that overflow.
    pub fn header(&self) -> Result<(Vec<u8>, u64)> {
        if self.alignment == 0 {
            return Err(Error::Write(format!("general.alignment must be a u32 power of two up to {MAX_ALIGNMENT}")));
        }
        let mut header = Vec::new();
        header.extend_from_slice(&MAGIC);
        header.extend_from_slice(&3u32.to_le_bytes());
        header.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        header.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            put_string(&mut header, key.as_bytes());
            header.extend_from_slice(&(value.value_type() as u32).to_le_bytes());
            value.encode(&mut header, key)?;
        }
        // Offsets relative to the data section, each aligned.
        let too_large = || Error::Write("tensor data too large".into());
        let mut offset = 0u64;
        let mut offsets = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            offsets.push(offset);
            offset = t.size.checked_add(offset).and_then(|end| align_up(end, self.alignment)).ok_or_else(too_large)?;
        }
        for (t, &off) in self.tensors.iter().zip(&offsets) {
            put_string(&mut header, t.name.as_bytes());
            header.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                header.extend_from_slice(&d.to_le_bytes());
            }
            header.extend_from_slice(&t.ggml_type.id().to_le_bytes());
            header.extend_from_slice(&off.to_le_bytes());
        }
        pad_to(&mut header, self.alignment);
        let total = (header.len() as u64).checked_add(offset).ok_or_else(too_large)?;
        Ok((header, total))
    }

    /// The whole file, in one buffer of its exact size: `fill(i, dst)` writes the data of the
    /// `i`-th tensor (in the order added) that was declared without data into `dst`, which has
    /// exactly its size.
    ///
    /// # Errors
    /// An invalid alignment, a file too large for memory, or `fill`'s error.
    pub fn to_bytes_with(&self, mut fill: impl FnMut(usize, &mut [u8]) -> Result<()>) -> Result<Vec<u8>> {
        let (header, total) = self.header()?;
        let too_large = || Error::Write("tensor data too large".into());
        let total = usize::try_from(total).map_err(|_| too_large())?;
        let mut out = Vec::new();
        out.try_reserve_exact(total)
            .map_err(|_| Error::Write(format!("not enough memory for a file of {} MiB", total >> 20)))?;
        out.extend_from_slice(&header);
        drop(header);
        for (i, t) in self.tensors.iter().enumerate() {
            let start = out.len();
            match &t.data {
                Some(data) => out.extend_from_slice(data),
                None => {
                    out.resize(start + t.size as usize, 0);
                    fill(i, &mut out[start..])?;
                }
            }
            pad_to(&mut out, self.alignment);
        }
        debug_assert_eq!(out.len(), total);
        Ok(out)
    }
}

/// The bytes of a tensor's data, after checking its dims.
fn tensor_bytes(name: &str, ggml_type: GgmlType, dims: &[u64]) -> Result<u64> {
    if dims.is_empty() || dims.len() > MAX_DIMS as usize {
        return Err(Error::Write(format!("tensor {name:?} must have 1 to {MAX_DIMS} dimensions, has {}", dims.len())));
    }
    ggml_type
        .row_bytes(dims[0])
        .and_then(|row| dims[1..].iter().try_fold(row, |acc, &d| acc.checked_mul(d)))
        .ok_or_else(|| Error::Write(format!("tensor {name:?}: dims {dims:?} do not fit type {ggml_type}")))
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s);
}

fn pad_to(out: &mut Vec<u8>, alignment: u64) {
    let len = out.len() as u64;
    let target = align_up(len, alignment).unwrap_or(len);
    out.resize(target as usize, 0);
}
