//! NumPy `.npy` files (format versions 1.0, 2.0 and 3.0) holding one float array.
//!
//! Layout: the magic `\x93NUMPY`, a major and a minor version byte, the header length (u16 little
//! endian for version 1, u32 for versions 2 and 3), the header (a Python dict literal with the keys
//! `descr`, `fortran_order` and `shape`, padded with spaces and ended by a newline; Latin-1 for
//! versions 1 and 2, UTF-8 for version 3), then the raw data.

use super::raw::{check_budget, element_count, RawDtype, RawTensor};
use crate::{Error, Result};

const MAGIC: &[u8] = b"\x93NUMPY";

/// Largest header accepted: numpy's own headers are a few hundred bytes (numpy refuses more than
/// 10000 by default); this only keeps a hostile length from making us parse megabytes of text.
const MAX_HEADER: usize = 1 << 20;

/// Deepest nesting of tuples/lists accepted in the header (a real header nests at most 2 deep).
const MAX_DEPTH: usize = 16;

/// Reads one `.npy` file. `name` names the tensor (and the file in error messages).
///
/// Supported: `descr` `<f2`, `<f4`, `<f8` (also `=`, `|` and no byte-order mark, read as little
/// endian) and big-endian `>f2`, `>f4`, `>f8` (byte-swapped); C or Fortran order (converted to C
/// order); any rank, including 0-d arrays. Anything else is refused with an error that names it.
pub fn read_npy(name: &str, bytes: &[u8]) -> Result<RawTensor> {
    read_npy_budget(name, bytes, 0)
}

/// [`read_npy`] for an import that already holds `so_far` values (checked against
/// [`super::raw::MAX_VALUES`] before anything is allocated).
pub(crate) fn read_npy_budget(name: &str, bytes: &[u8], so_far: usize) -> Result<RawTensor> {
    let fail = |msg: String| Error::input(format!("npy {name:?}: {msg}"));
    let file_len = bytes.len();

    let magic = bytes.get(..MAGIC.len()).unwrap_or(bytes);
    if magic != MAGIC {
        return Err(fail(format!(
            "not a NumPy .npy file: it starts with {}, a .npy file starts with \\x93NUMPY",
            show_bytes(magic)
        )));
    }
    let (major, minor) = match (bytes.get(6), bytes.get(7)) {
        (Some(&a), Some(&b)) => (a, b),
        _ => {
            return Err(fail(format!(
                "truncated: the file is {file_len} bytes, the version bytes are at offsets 6 and 7"
            )))
        }
    };
    let (len_size, header_start) = match (major, minor) {
        (1, 0) => (2usize, 10usize),
        (2, 0) | (3, 0) => (4, 12),
        _ => {
            return Err(fail(format!(
                "format version {major}.{minor} is not supported (paritylab reads versions 1.0, 2.0 and 3.0)"
            )))
        }
    };
    let len_bytes = bytes.get(8..header_start).ok_or_else(|| {
        fail(format!(
            "truncated: the {len_size}-byte header length at offset 8 needs {header_start} bytes, the file has \
             {file_len}"
        ))
    })?;
    let header_len = len_bytes.iter().rev().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    let data_start = header_start.checked_add(header_len).filter(|&end| end <= file_len).ok_or_else(|| {
        fail(format!(
            "the header length at offset 8 says {header_len} bytes, but only {} bytes follow it (file size \
                 {file_len}): the file is truncated or damaged",
            file_len.saturating_sub(header_start)
        ))
    })?;
    if header_len > MAX_HEADER {
        return Err(fail(format!(
            "the header length at offset 8 says {header_len} bytes; a .npy header is at most {MAX_HEADER} bytes \
             (numpy writes a few hundred): the file is damaged"
        )));
    }
    let header_bytes = bytes.get(header_start..data_start).unwrap_or_default();
    let header: String = if major == 3 {
        std::str::from_utf8(header_bytes)
            .map_err(|e| {
                fail(format!(
                    "the version 3.0 header is not valid UTF-8 (at offset {})",
                    header_start + e.valid_up_to()
                ))
            })?
            .to_owned()
    } else {
        // Latin-1: every byte is the code point of the same value.
        header_bytes.iter().map(|&b| char::from(b)).collect()
    };

    let fields = parse_header(&header).map_err(|e| fail(format!("bad header at offset {header_start}: {e}")))?;
    let layout = decode_descr(&fields.descr).map_err(fail)?;
    let shape = fields.shape;

    let count = element_count(name, &shape)?;
    let need = count.checked_mul(layout.itemsize).ok_or_else(|| {
        fail(format!("shape {shape:?} of {:?} needs more bytes than this machine can address", fields.descr))
    })?;
    let data = bytes.get(data_start..).unwrap_or_default();
    if data.len() < need {
        return Err(fail(format!(
            "truncated: shape {shape:?} of {:?} needs {need} bytes of data after the header (offset {data_start}), \
             but only {} remain (file size {file_len})",
            fields.descr,
            data.len()
        )));
    }
    if data.len() > need {
        return Err(fail(format!(
            "shape {shape:?} of {:?} needs {need} bytes of data after the header (offset {data_start}), but the file \
             has {} bytes there ({} too many): the header and the data disagree",
            fields.descr,
            data.len(),
            data.len() - need
        )));
    }
    check_budget(&format!("npy {name:?}"), so_far, count)?;

    let mut values = Vec::with_capacity(count);
    for chunk in data.chunks_exact(layout.itemsize) {
        values.push(layout.decode(chunk));
    }
    if fields.fortran_order && shape.len() > 1 {
        values = fortran_to_c(&shape, &values).ok_or_else(|| fail("internal error converting Fortran order".into()))?;
    }
    RawTensor::dense(name, shape, layout.dtype, values)
}

/// The three keys of a `.npy` header.
#[derive(Debug)]
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// A value of the Python literal subset a header uses.
#[derive(Debug)]
enum PyValue {
    Str(String),
    Bool(bool),
    None,
    Int(u64),
    NegInt(String),
    Tuple(Vec<PyValue>),
    /// A list (only its presence matters: a structured dtype's `descr`).
    List,
}

impl PyValue {
    fn kind(&self) -> &'static str {
        match self {
            PyValue::Str(_) => "a string",
            PyValue::Bool(_) => "a boolean",
            PyValue::None => "None",
            PyValue::Int(_) | PyValue::NegInt(_) => "an integer",
            PyValue::Tuple(_) => "a tuple",
            PyValue::List => "a list",
        }
    }
}

/// Parses the header dict; errors say at which character and what was expected.
fn parse_header(text: &str) -> std::result::Result<Header, String> {
    let mut p = Parser { chars: text.chars().collect(), pos: 0 };
    p.skip_ws();
    p.expect('{', "the header dict to start with '{'")?;
    let mut descr = None;
    let mut fortran = None;
    let mut shape = None;
    loop {
        p.skip_ws();
        if p.eat('}') {
            break;
        }
        let key_at = p.pos;
        let key = match p.value(0)? {
            PyValue::Str(s) => s,
            other => return Err(format!("character {key_at}: expected a string key, found {}", other.kind())),
        };
        p.skip_ws();
        p.expect(':', "':' after the key")?;
        p.skip_ws();
        let value_at = p.pos;
        let value = p.value(0)?;
        let slot_taken = match key.as_str() {
            "descr" => descr.replace((value, value_at)).is_some(),
            "fortran_order" => fortran.replace((value, value_at)).is_some(),
            "shape" => shape.replace((value, value_at)).is_some(),
            _ => {
                return Err(format!(
                    "character {key_at}: unexpected key {key:?} (a .npy header has exactly 'descr', 'fortran_order' \
                     and 'shape')"
                ))
            }
        };
        if slot_taken {
            return Err(format!("character {key_at}: key {key:?} appears twice"));
        }
        p.skip_ws();
        if p.eat(',') {
            continue;
        }
        p.skip_ws();
        p.expect('}', "',' or '}' after a value")?;
        break;
    }
    p.skip_ws();
    if let Some(c) = p.peek() {
        return Err(format!("character {}: unexpected {c:?} after the closing '}}'", p.pos));
    }

    let descr = match descr {
        Some((PyValue::Str(s), _)) => s,
        Some((PyValue::List, _)) => {
            return Err(
                "'descr' is a list: structured (record) arrays are not supported, save a plain float array".into()
            )
        }
        Some((other, at)) => return Err(format!("character {at}: 'descr' must be a string, found {}", other.kind())),
        None => return Err("the key 'descr' is missing".into()),
    };
    let fortran_order = match fortran {
        Some((PyValue::Bool(b), _)) => b,
        Some((other, at)) => {
            return Err(format!("character {at}: 'fortran_order' must be True or False, found {}", other.kind()))
        }
        None => return Err("the key 'fortran_order' is missing".into()),
    };
    let shape = match shape {
        Some((PyValue::Tuple(items), at)) => {
            let mut dims = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    PyValue::Int(d) => dims.push(usize::try_from(d).map_err(|_| {
                        format!("character {at}: shape dimension {d} is larger than this machine can address")
                    })?),
                    PyValue::NegInt(d) => return Err(format!("character {at}: shape dimension {d} is negative")),
                    other => return Err(format!("character {at}: 'shape' must hold integers, found {}", other.kind())),
                }
            }
            dims
        }
        Some((other, at)) => return Err(format!("character {at}: 'shape' must be a tuple, found {}", other.kind())),
        None => return Err("the key 'shape' is missing".into()),
    };
    Ok(Header { descr, fortran_order, shape })
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char, what: &str) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("character {}: expected {what}, found {}", self.pos, self.describe_here()))
        }
    }

    fn describe_here(&self) -> String {
        match self.peek() {
            Some(c) => format!("{c:?}"),
            None => "the end of the header".into(),
        }
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn value(&mut self, depth: usize) -> std::result::Result<PyValue, String> {
        if depth > MAX_DEPTH {
            return Err(format!("character {}: values nested more than {MAX_DEPTH} deep", self.pos));
        }
        let start = self.pos;
        match self.peek() {
            Some(q @ ('\'' | '"')) => {
                self.pos += 1;
                let mut s = String::new();
                loop {
                    match self.peek() {
                        None => return Err(format!("character {start}: string never closed")),
                        Some(c) if c == q => {
                            self.pos += 1;
                            return Ok(PyValue::Str(s));
                        }
                        Some('\\') => {
                            return Err(format!(
                                "character {}: escape sequences in strings are not supported in a .npy header",
                                self.pos
                            ))
                        }
                        Some(c) => {
                            s.push(c);
                            self.pos += 1;
                        }
                    }
                }
            }
            Some(open @ ('(' | '[')) => {
                self.pos += 1;
                let close = if open == '(' { ')' } else { ']' };
                let mut items = Vec::new();
                let mut had_comma = false;
                loop {
                    self.skip_ws();
                    if self.eat(close) {
                        break;
                    }
                    if !items.is_empty() && !had_comma {
                        return Err(format!(
                            "character {}: expected ',' or {close:?}, found {}",
                            self.pos,
                            self.describe_here()
                        ));
                    }
                    items.push(self.value(depth + 1)?);
                    self.skip_ws();
                    had_comma = self.eat(',');
                }
                // `(5)` is a parenthesised integer in Python, not a tuple.
                if open == '(' && items.len() == 1 && !had_comma {
                    return Ok(items.pop().unwrap_or(PyValue::None));
                }
                Ok(if open == '(' { PyValue::Tuple(items) } else { PyValue::List })
            }
            Some('{') => Err(format!("character {start}: a nested dict is not a valid header value")),
            Some(c) if c.is_ascii_digit() || c == '-' => {
                let negative = self.eat('-');
                let digits_start = self.pos;
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.pos += 1;
                }
                let digits: String = self.chars.get(digits_start..self.pos).unwrap_or_default().iter().collect();
                if digits.is_empty() {
                    return Err(format!("character {start}: '-' not followed by digits"));
                }
                // Python 2 wrote long integers with an `L` suffix: `(3L, 4L)`.
                let _ = self.eat('L') || self.eat('l');
                if negative {
                    return Ok(PyValue::NegInt(format!("-{digits}")));
                }
                digits
                    .parse::<u64>()
                    .map(PyValue::Int)
                    .map_err(|_| format!("character {start}: integer {digits} is too large"))
            }
            Some(c) if c.is_ascii_alphabetic() => {
                while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                    self.pos += 1;
                }
                let word: String = self.chars.get(start..self.pos).unwrap_or_default().iter().collect();
                match word.as_str() {
                    "True" => Ok(PyValue::Bool(true)),
                    "False" => Ok(PyValue::Bool(false)),
                    "None" => Ok(PyValue::None),
                    _ => Err(format!("character {start}: unexpected word {word:?} (expected True, False or None)")),
                }
            }
            _ => Err(format!("character {start}: expected a value, found {}", self.describe_here())),
        }
    }
}

/// How the elements are stored.
struct Layout {
    dtype: RawDtype,
    itemsize: usize,
    big_endian: bool,
}

impl Layout {
    /// Decodes one element; `chunk` is exactly `itemsize` bytes.
    fn decode(&self, chunk: &[u8]) -> f64 {
        let mut buf = [0u8; 8];
        for (dst, src) in buf.iter_mut().zip(chunk) {
            *dst = *src;
        }
        let n = self.itemsize.min(8);
        if self.big_endian {
            if let Some(head) = buf.get_mut(..n) {
                head.reverse();
            }
        }
        match self.dtype {
            RawDtype::F16 => f64::from(half::f16::from_le_bytes([buf[0], buf[1]])),
            RawDtype::BF16 => f64::from(half::bf16::from_le_bytes([buf[0], buf[1]])),
            RawDtype::F32 => f64::from(f32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]])),
            RawDtype::F64 => f64::from_le_bytes(buf),
        }
    }
}

/// Maps a numpy type string to how its elements are stored, or says why it is refused.
fn decode_descr(descr: &str) -> std::result::Result<Layout, String> {
    let (order, rest) = match descr.chars().next() {
        Some(c @ ('<' | '>' | '=' | '|')) => (c, descr.get(1..).unwrap_or_default()),
        _ => ('=', descr),
    };
    let dtype = match rest {
        "f2" | "e" => Some(RawDtype::F16),
        "f4" | "f" => Some(RawDtype::F32),
        "f8" | "d" => Some(RawDtype::F64),
        _ => None,
    };
    match dtype {
        Some(dtype) => {
            let itemsize = match dtype {
                RawDtype::F16 | RawDtype::BF16 => 2,
                RawDtype::F32 => 4,
                RawDtype::F64 => 8,
            };
            Ok(Layout { dtype, itemsize, big_endian: order == '>' })
        }
        None => {
            let what = match rest.chars().next() {
                Some('V') if rest == "V2" => " (2-byte raw void: how ml_dtypes/PyTorch bfloat16 arrays are saved)",
                Some('V') => " (raw void / structured data)",
                Some('i') => " (signed integers)",
                Some('u') => " (unsigned integers)",
                Some('b') => " (booleans)",
                Some('c') => " (complex numbers)",
                Some('f') => " (a float width other than 2, 4 or 8 bytes)",
                Some('O') => " (Python objects)",
                Some('U' | 'S' | 'a') => " (strings)",
                Some('M' | 'm') => " (dates/times)",
                _ => "",
            };
            Err(format!(
                "descr {descr:?}{what} is not supported: paritylab reads float arrays ('<f2', '<f4', '<f8', or \
                 big-endian '>f2', '>f4', '>f8'); save with arr.astype(np.float32)"
            ))
        }
    }
}

/// Reorders Fortran-order values (first index fastest) into C order (last index fastest).
fn fortran_to_c(shape: &[usize], values: &[f64]) -> Option<Vec<f64>> {
    let rank = shape.len();
    // Fortran strides in elements: stride[0] = 1, stride[k] = stride[k-1] * shape[k-1].
    let mut stride = Vec::with_capacity(rank);
    let mut s = 1usize;
    for &d in shape {
        stride.push(s);
        s = s.checked_mul(d)?;
    }
    let mut out = Vec::with_capacity(values.len());
    if values.is_empty() {
        return Some(out);
    }
    let mut idx = vec![0usize; rank];
    let mut offset = 0usize;
    for _ in 0..values.len() {
        out.push(*values.get(offset)?);
        // Odometer over the C-order multi-index, last dimension fastest.
        for k in (0..rank).rev() {
            let i = idx.get_mut(k)?;
            let st = *stride.get(k)?;
            *i += 1;
            offset = offset.checked_add(st)?;
            if *i < *shape.get(k)? {
                break;
            }
            offset = offset.checked_sub(st.checked_mul(*i)?)?;
            *i = 0;
        }
    }
    Some(out)
}

/// First bytes of a file, printable.
fn show_bytes(b: &[u8]) -> String {
    let mut s = String::from("\"");
    for &c in b.iter().take(8) {
        s.extend(std::ascii::escape_default(c).map(char::from));
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dense(t: &RawTensor) -> &[f64] {
        t.values.dense().expect("dense values")
    }

    /// A version 1.0 file with the given header text (padded like numpy) and data.
    fn npy_v1(header: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header.as_bytes().to_vec();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(b' ');
        }
        h.push(b'\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn err(r: Result<RawTensor>) -> String {
        match r {
            Ok(t) => panic!("expected an error, got {t:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn fixture_small_f32() {
        let t = read_npy("small", include_bytes!("../../tests/data/import/small.npy")).unwrap();
        assert_eq!(t.name, "small");
        assert_eq!(t.shape, vec![3, 4]);
        assert_eq!(t.dtype, RawDtype::F32);
        let want: Vec<f64> = (0..12).map(|i| (i as f64 - 5.5) / 4.0).collect();
        assert_eq!(dense(&t), &want[..]);
    }

    #[test]
    fn fixture_fortran_order_is_converted_to_c_order() {
        let t = read_npy("fortran", include_bytes!("../../tests/data/import/fortran.npy")).unwrap();
        assert_eq!(t.shape, vec![2, 3, 4]);
        assert_eq!(t.dtype, RawDtype::F64);
        let want: Vec<f64> = (0..24).map(|i| i as f64 * 0.25 - 1.0).collect();
        assert_eq!(dense(&t), &want[..]);
    }

    #[test]
    fn fixture_half() {
        let t = read_npy("half", include_bytes!("../../tests/data/import/half.npy")).unwrap();
        assert_eq!(t.shape, vec![7]);
        assert_eq!(t.dtype, RawDtype::F16);
        let want = [0.0, 1.0, -2.5, 0.333251953125, 65504.0, 2f64.powi(-24), f64::NEG_INFINITY];
        assert_eq!(dense(&t), &want[..]);
    }

    #[test]
    fn fixture_version_2() {
        let bytes = include_bytes!("../../tests/data/import/v2.npy");
        assert_eq!(bytes[6], 2, "the fixture must be format version 2.0");
        let t = read_npy("v2", bytes).unwrap();
        assert_eq!(t.shape, vec![2, 3]);
        let want: Vec<f64> = (0..6).map(|i| i as f64 * 1.5).collect();
        assert_eq!(dense(&t), &want[..]);
    }

    #[test]
    fn version_3_utf8_header_and_key_order_and_spacing() {
        let header = "{ 'shape' : (2,) ,'fortran_order':False,'descr':'<f4',  }";
        let mut h = header.as_bytes().to_vec();
        h.push(b'\n');
        let mut file = b"\x93NUMPY\x03\x00".to_vec();
        file.extend_from_slice(&(h.len() as u32).to_le_bytes());
        file.extend_from_slice(&h);
        file.extend_from_slice(&f32_bytes(&[1.0, -2.0]));
        let t = read_npy("x", &file).unwrap();
        assert_eq!(dense(&t), &[1.0, -2.0]);
    }

    #[test]
    fn scalar_and_empty_shapes() {
        let t =
            read_npy("s", &npy_v1("{'descr': '<f8', 'fortran_order': False, 'shape': (), }", &2.5f64.to_le_bytes()))
                .unwrap();
        assert_eq!(t.shape, Vec::<usize>::new());
        assert_eq!(dense(&t), &[2.5]);
        let t = read_npy("e", &npy_v1("{'descr': '<f4', 'fortran_order': True, 'shape': (0, 5), }", &[])).unwrap();
        assert_eq!(t.shape, vec![0, 5]);
        assert!(dense(&t).is_empty());
        // Python 2 long integers.
        let t = read_npy(
            "l",
            &npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (1L, 2L), }", &f32_bytes(&[3.0, 4.0])),
        )
        .unwrap();
        assert_eq!(t.shape, vec![1, 2]);
    }

    #[test]
    fn big_endian_and_native_orders() {
        let data: Vec<u8> = [1.5f32, -3.0].iter().flat_map(|x| x.to_be_bytes()).collect();
        let t = read_npy("be", &npy_v1("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", &data)).unwrap();
        assert_eq!(dense(&t), &[1.5, -3.0]);
        let data: Vec<u8> = [0.25f64].iter().flat_map(|x| x.to_be_bytes()).collect();
        let t = read_npy("be8", &npy_v1("{'descr': '>f8', 'fortran_order': False, 'shape': (1,), }", &data)).unwrap();
        assert_eq!(dense(&t), &[0.25]);
        let data = half::f16::from_f32(0.5).to_be_bytes();
        let t = read_npy("be2", &npy_v1("{'descr': '>f2', 'fortran_order': False, 'shape': (1,), }", &data)).unwrap();
        assert_eq!(dense(&t), &[0.5]);
        let t = read_npy("n", &npy_v1("{'descr': '=f4', 'fortran_order': False, 'shape': (1,), }", &f32_bytes(&[7.0])))
            .unwrap();
        assert_eq!(dense(&t), &[7.0]);
    }

    #[test]
    fn fortran_order_rank_2_and_4() {
        // Shape (2, 3) in Fortran order: memory holds column-major a[0,0], a[1,0], a[0,1], ...
        let f = f32_bytes(&[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        let t = read_npy("f", &npy_v1("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", &f)).unwrap();
        assert_eq!(dense(&t), &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        // Rank 4, shape (2, 1, 3, 2): C value = flat C index. Build the Fortran memory by hand.
        let mut mem = vec![0f32; 12];
        for a in 0..2 {
            for c in 0..3 {
                for d in 0..2 {
                    let c_flat = (a * 3 + c) * 2 + d;
                    let f_flat = a + 2 * (c + 3 * d);
                    mem[f_flat] = c_flat as f32;
                }
            }
        }
        let t = read_npy(
            "f4",
            &npy_v1("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 1, 3, 2), }", &f32_bytes(&mem)),
        )
        .unwrap();
        let want: Vec<f64> = (0..12).map(f64::from).collect();
        assert_eq!(dense(&t), &want[..]);
    }

    #[test]
    fn unsupported_descr_is_named() {
        for (descr, hint) in [
            ("<i4", "signed integers"),
            ("|u1", "unsigned"),
            ("<c8", "complex"),
            ("|O", "objects"),
            ("|V2", "bfloat16"),
            ("<f16", "float width"),
            ("|b1", "booleans"),
        ] {
            let e = err(read_npy(
                "x",
                &npy_v1(&format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (1,), }}"), &[0; 16]),
            ));
            assert!(e.contains(descr) && e.contains(hint), "{descr}: {e}");
        }
        let e =
            err(read_npy("x", &npy_v1("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", &[0; 4])));
        assert!(e.contains("structured"), "{e}");
    }

    #[test]
    fn bad_headers() {
        let cases = [
            ("{'descr': '<f4', 'shape': (1,), }", "'fortran_order' is missing"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}", "unexpected key"),
            ("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", "twice"),
            ("{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}", "True or False"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", "negative"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': [1]}", "must be a tuple"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (1 2)}", "expected ','"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,)}", "too large"),
            ("{'descr': '<f4 , 'fortran_order': False, 'shape': (1,)}", "expected ',' or '}'"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x", "after the closing"),
            ("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,)}", "Maybe"),
            ("'descr'", "start with '{'"),
        ];
        for (header, want) in cases {
            let e = err(read_npy("x", &npy_v1(header, &[0; 4])));
            assert!(e.contains(want) && e.contains("\"x\""), "{header}: {e}");
        }
        let deep =
            format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {}1{}}}", "(".repeat(100), ")".repeat(100));
        assert!(err(read_npy("x", &npy_v1(&deep, &[0; 4]))).contains("nested"));
    }

    #[test]
    fn lying_headers() {
        // Huge shape: refused before any allocation, whatever the data length.
        let e = err(read_npy(
            "x",
            &npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }", &[0; 8]),
        ));
        assert!(e.contains("truncated") && e.contains("4000000000000"), "{e}");
        let e = err(read_npy(
            "x",
            &npy_v1("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }", &[]),
        ));
        assert!(e.contains("address"), "{e}");
        // Too much data.
        let e = err(read_npy("x", &npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", &[0; 8])));
        assert!(e.contains("4 too many"), "{e}");
        // Header length past the end.
        let mut f = npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", &[0; 4]);
        f[8] = 0xff;
        f[9] = 0xff;
        let e = err(read_npy("x", &f));
        assert!(e.contains("65535") && e.contains("offset 8"), "{e}");
        // Version 2 header length of 4 GiB.
        let mut f = b"\x93NUMPY\x02\x00\xff\xff\xff\xff{}".to_vec();
        f.extend_from_slice(&[b' '; 4]);
        assert!(err(read_npy("x", &f)).contains("4294967295"));
        // Bad magic, unknown version, tiny files.
        assert!(err(read_npy("x", b"PK\x03\x04rest")).contains("not a NumPy"));
        assert!(err(read_npy("x", b"\x93NUMPY\x04\x00\x00\x00")).contains("version 4.0"));
        assert!(err(read_npy("x", b"\x93NUMPY\x01")).contains("truncated"));
        assert!(err(read_npy("x", b"\x93NUMPY\x01\x00\x05")).contains("truncated"));
        assert!(err(read_npy("x", b"")).contains("not a NumPy"));
    }

    #[test]
    fn no_panic_on_any_truncation_or_byte_flip() {
        for file in [
            &include_bytes!("../../tests/data/import/small.npy")[..],
            &include_bytes!("../../tests/data/import/fortran.npy")[..],
            &include_bytes!("../../tests/data/import/half.npy")[..],
            &include_bytes!("../../tests/data/import/v2.npy")[..],
        ] {
            for len in 0..file.len() {
                assert!(read_npy("t", &file[..len]).is_err(), "truncation at {len} accepted");
            }
            let mut m = file.to_vec();
            for i in 0..m.len() {
                for flip in [0x01u8, 0x80, 0xff] {
                    m[i] ^= flip;
                    let _ = read_npy("t", &m);
                    m[i] ^= flip;
                }
                for set in [b'(', b')', b'{', b'\'', b',', b'-', b'9', 0] {
                    let old = m[i];
                    m[i] = set;
                    let _ = read_npy("t", &m);
                    m[i] = old;
                }
            }
        }
    }
}
