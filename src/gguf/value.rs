//! GGUF metadata values, borrowed from the file's bytes.
//!
//! Scalars are decoded at parse time; strings and arrays stay views into the bytes. Arrays were fully
//! validated when the file was parsed, so iterating them re-reads bytes known to be well formed.

use super::cursor::Cursor;
use crate::{Error, Result};

/// The value type ids of GGUF metadata (`gguf_type` in the spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    pub fn from_id(id: u32) -> Option<ValueType> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// Size in bytes of a fixed-size value; `None` for strings and arrays.
    pub fn fixed_size(self) -> Option<u64> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }

    /// The smallest number of bytes one value of this type can take in a file (a string is at
    /// least its 8-byte length, an array at least its 4-byte type and 8-byte count). Used to reject
    /// lying counts before anything is allocated.
    pub fn min_size(self) -> u64 {
        match self {
            ValueType::String => 8,
            ValueType::Array => 12,
            t => t.fixed_size().unwrap_or(1),
        }
    }

    pub fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            String => "string",
            Array => "array",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }
}

impl std::fmt::Display for ValueType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A GGUF string: length-prefixed bytes, meant to be UTF-8 (not every file keeps that promise, so
/// the bytes are kept as they are and decoded on request).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct GStr<'a>(pub &'a [u8]);

impl<'a> GStr<'a> {
    pub fn bytes(&self) -> &'a [u8] {
        self.0
    }
    /// The text, if it is valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.0).ok()
    }
    /// The text with invalid sequences replaced by U+FFFD.
    pub fn lossy(&self) -> std::borrow::Cow<'a, str> {
        String::from_utf8_lossy(self.0)
    }
}

impl std::fmt::Debug for GStr<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.lossy())
    }
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(GStr<'a>),
    Array(Array<'a>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl<'a> Value<'a> {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// Any integer value that is non-negative and fits in a u64.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any integer value that fits in an i64.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::I8(v) => Some(v.into()),
            Value::I16(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::I64(v) => Some(v),
            _ => self.as_u64().and_then(|v| i64::try_from(v).ok()),
        }
    }

    /// A float value (f32 or f64) as f64; integers are not floats.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_gstr(&self) -> Option<GStr<'a>> {
        match *self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Array<'a>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// An array value: `len` elements of `elem` type stored in `raw` (which holds exactly the elements'
/// bytes, nothing more). Two arrays are equal when their elements are, wherever they are stored.
#[derive(Debug, Clone)]
pub struct Array<'a> {
    pub(crate) elem: ValueType,
    pub(crate) len: u64,
    pub(crate) raw: &'a [u8],
}

impl PartialEq for Array<'_> {
    fn eq(&self, other: &Self) -> bool {
        (self.elem, self.len, self.raw) == (other.elem, other.len, other.raw)
    }
}

impl<'a> Array<'a> {
    pub fn elem_type(&self) -> ValueType {
        self.elem
    }
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The elements' raw bytes.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Iterate the elements as values.
    pub fn iter(&self) -> ArrayIter<'a> {
        ArrayIter { elem: self.elem, remaining: self.len, cursor: Cursor::new(self.raw) }
    }

    /// Iterate a string array's elements, or `None` when the elements are not strings.
    pub fn strings(&self) -> Option<impl Iterator<Item = GStr<'a>> + 'a> {
        (self.elem == ValueType::String).then(|| self.iter().filter_map(|v| v.as_gstr()))
    }
}

/// Iterator over the values of an [`Array`].
pub struct ArrayIter<'a> {
    elem: ValueType,
    remaining: u64,
    cursor: Cursor<'a>,
}

impl<'a> Iterator for ArrayIter<'a> {
    type Item = Value<'a>;
    fn next(&mut self) -> Option<Value<'a>> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        // The array was validated at parse time; a failure here cannot happen, and stopping is the
        // safe reaction if it somehow did.
        read_value(&mut self.cursor, self.elem, "", 0).ok()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        (0, Some(n))
    }
}

/// Deepest array nesting accepted (real files use at most 2 levels).
pub const MAX_ARRAY_DEPTH: usize = 8;

/// Read one value of type `ty` at the cursor. `key` and `depth` are for error messages and the
/// nesting limit.
pub(crate) fn read_value<'a>(c: &mut Cursor<'a>, ty: ValueType, key: &str, depth: usize) -> Result<Value<'a>> {
    let what = || format!("the value of metadata key {key:?}");
    Ok(match ty {
        ValueType::U8 => Value::U8(c.u8(what)?),
        ValueType::I8 => Value::I8(c.u8(what)? as i8),
        ValueType::U16 => Value::U16(c.u16(what)?),
        ValueType::I16 => Value::I16(c.u16(what)? as i16),
        ValueType::U32 => Value::U32(c.u32(what)?),
        ValueType::I32 => Value::I32(c.u32(what)? as i32),
        ValueType::F32 => Value::F32(f32::from_bits(c.u32(what)?)),
        ValueType::Bool => Value::Bool(c.u8(what)? != 0),
        ValueType::String => Value::String(GStr(c.string(what)?)),
        ValueType::U64 => Value::U64(c.u64(what)?),
        ValueType::I64 => Value::I64(c.u64(what)? as i64),
        ValueType::F64 => Value::F64(f64::from_bits(c.u64(what)?)),
        ValueType::Array => Value::Array(read_array(c, key, depth + 1)?),
    })
}

/// Read an array header and walk its elements to find where it ends, validating every element.
fn read_array<'a>(c: &mut Cursor<'a>, key: &str, depth: usize) -> Result<Array<'a>> {
    let type_offset = c.pos();
    if depth > MAX_ARRAY_DEPTH {
        return Err(Error::ArrayTooDeep { key: key.to_string(), offset: type_offset, max: MAX_ARRAY_DEPTH });
    }
    let type_id = c.u32(|| format!("the element type of array {key:?}"))?;
    let elem = ValueType::from_id(type_id).ok_or_else(|| Error::UnknownValueType {
        key: key.to_string(),
        offset: type_offset,
        type_id,
    })?;
    let count_offset = c.pos();
    let len = c.u64(|| format!("the length of array {key:?}"))?;
    // A lying count is rejected before the elements are walked: each element needs at least
    // `min_size` bytes.
    let max = c.remaining() / elem.min_size();
    if len > max {
        return Err(Error::CountTooLarge {
            field: format!("the length of array {key:?}"),
            offset: count_offset,
            value: len,
            max,
            available: c.remaining(),
        });
    }
    let start = c.pos();
    match elem.fixed_size() {
        Some(size) => {
            // len <= remaining / size, so this cannot overflow.
            c.take(len * size, || format!("the elements of array {key:?}"))?;
        }
        None => {
            for _ in 0..len {
                read_value(c, elem, key, depth)?;
            }
        }
    }
    let raw = c.slice_from(start);
    Ok(Array { elem, len, raw })
}
