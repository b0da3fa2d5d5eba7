//! Reader tests on hand-built bytes (independent of the writer), and writer round trips.

use super::*;

/// Little-endian byte builder for hand-made files.
#[derive(Default)]
struct B(Vec<u8>);

impl B {
    fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    fn u16(mut self, v: u16) -> Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn str(self, s: &str) -> Self {
        let mut b = self.u64(s.len() as u64);
        b.0.extend(s.as_bytes());
        b
    }
    fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
    fn pad(mut self, align: usize) -> Self {
        while !self.0.len().is_multiple_of(align) {
            self.0.push(0);
        }
        self
    }
    fn header(version: u32, tensors: u64, kvs: u64) -> Self {
        B::default().bytes(b"GGUF").u32(version).u64(tensors).u64(kvs)
    }
}

/// A file with one metadata entry of every type (arrays of arrays included), custom alignment 64,
/// and two F32 tensors.
fn every_type_file(version: u32) -> Vec<u8> {
    let b = B::header(version, 2, 15)
        .str("k.u8")
        .u32(0)
        .u8(200)
        .str("k.i8")
        .u32(1)
        .u8((-5i8) as u8)
        .str("k.u16")
        .u32(2)
        .u16(60000)
        .str("k.i16")
        .u32(3)
        .u16((-300i16) as u16)
        .str("k.u32")
        .u32(4)
        .u32(4_000_000_000)
        .str("k.i32")
        .u32(5)
        .u32((-70000i32) as u32)
        .str("k.f32")
        .u32(6)
        .u32(1.5f32.to_bits())
        .str("k.bool")
        .u32(7)
        .u8(1)
        .str("k.string")
        .u32(8)
        .str("héllo")
        .str("k.u64")
        .u32(10)
        .u64(1 << 40)
        .str("k.i64")
        .u32(11)
        .u64((-(1i64 << 40)) as u64)
        .str("k.f64")
        .u32(12)
        .u64(0.25f64.to_bits())
        .str("k.arr_i32")
        .u32(9)
        .u32(5)
        .u64(3)
        .u32(1)
        .u32(2)
        .u32(3)
        // array of arrays: [["a"], ["b", "c"]]
        .str("k.arr_arr")
        .u32(9)
        .u32(9)
        .u64(2)
        .u32(8)
        .u64(1)
        .str("a")
        .u32(8)
        .u64(2)
        .str("b")
        .str("c")
        .str("general.alignment")
        .u32(4)
        .u32(64)
        // tensors: "a" F32 [2, 3] at 0, "b" F32 [4] at 64
        .str("a")
        .u32(2)
        .u64(2)
        .u64(3)
        .u32(0)
        .u64(0)
        .str("b")
        .u32(1)
        .u64(4)
        .u32(0)
        .u64(64)
        .pad(64);
    let mut data = vec![0u8; 64 + 16];
    for (i, chunk) in data[..24].chunks_exact_mut(4).enumerate() {
        chunk.copy_from_slice(&(i as f32).to_le_bytes());
    }
    b.bytes(&data).0
}

#[test]
fn reads_every_value_type_and_alignment() {
    for version in [2, 3] {
        let bytes = every_type_file(version);
        let g = Gguf::parse(&bytes).unwrap();
        assert_eq!(g.version, version);
        assert_eq!(g.alignment, 64);
        assert_eq!(g.data_offset % 64, 0);
        assert_eq!(g.get("k.u8"), Some(&Value::U8(200)));
        assert_eq!(g.get("k.i8"), Some(&Value::I8(-5)));
        assert_eq!(g.get("k.u16"), Some(&Value::U16(60000)));
        assert_eq!(g.get("k.i16"), Some(&Value::I16(-300)));
        assert_eq!(g.get("k.u32"), Some(&Value::U32(4_000_000_000)));
        assert_eq!(g.get("k.i32"), Some(&Value::I32(-70000)));
        assert_eq!(g.get("k.f32"), Some(&Value::F32(1.5)));
        assert_eq!(g.get("k.bool"), Some(&Value::Bool(true)));
        assert_eq!(g.get("k.string").and_then(Value::as_gstr).and_then(|s| s.as_str()), Some("héllo"));
        assert_eq!(g.get("k.u64"), Some(&Value::U64(1 << 40)));
        assert_eq!(g.get("k.i64"), Some(&Value::I64(-(1 << 40))));
        assert_eq!(g.get("k.f64"), Some(&Value::F64(0.25)));
        let ints: Vec<i64> =
            g.get("k.arr_i32").unwrap().as_array().unwrap().iter().filter_map(|v| v.as_i64()).collect();
        assert_eq!(ints, [1, 2, 3]);
        let outer = g.get("k.arr_arr").unwrap().as_array().unwrap();
        assert_eq!(outer.elem_type(), ValueType::Array);
        let inner: Vec<Vec<String>> = outer
            .iter()
            .map(|v| v.as_array().unwrap().strings().unwrap().map(|s| s.lossy().into_owned()).collect())
            .collect();
        assert_eq!(inner, [vec!["a".to_string()], vec!["b".into(), "c".into()]]);

        let a = g.tensor("a").unwrap();
        assert_eq!((a.dims.clone(), a.n_bytes(), a.n_rows(), a.row_len()), (vec![2, 3], 24, 3, 2));
        assert_eq!(a.file_offset, g.data_offset);
        assert_eq!(&a.data[4..8], &1f32.to_le_bytes());
        let b = g.tensor("b").unwrap();
        assert_eq!(b.file_offset, g.data_offset + 64);
    }
}

#[test]
fn writer_round_trip() {
    let original = every_type_file(3);
    let g = Gguf::parse(&original).unwrap();
    let mut w = Writer::new();
    for (k, v) in &g.metadata {
        w.metadata(*k, WriterValue::from(v));
    }
    for t in &g.tensors {
        w.tensor(t.name, t.ggml_type, &t.dims, t.data.to_vec()).unwrap();
    }
    let written = w.to_bytes().unwrap();
    let g2 = Gguf::parse(&written).unwrap();
    assert_eq!(g.metadata, g2.metadata);
    assert_eq!(g.tensors.len(), g2.tensors.len());
    for (a, b) in g.tensors.iter().zip(&g2.tensors) {
        assert_eq!((a.name, a.ggml_type, &a.dims, a.data), (b.name, b.ggml_type, &b.dims, b.data));
    }
    // Writing the re-read file again gives the same bytes.
    let mut w2 = Writer::new();
    for (k, v) in &g2.metadata {
        w2.metadata(*k, WriterValue::from(v));
    }
    for t in &g2.tensors {
        w2.tensor(t.name, t.ggml_type, &t.dims, t.data.to_vec()).unwrap();
    }
    assert_eq!(w2.to_bytes().unwrap(), written);
}

#[test]
fn writer_round_trips_quantised_tensors_and_default_alignment() {
    let mut w = Writer::new();
    w.metadata("general.architecture", WriterValue::String("llama".into()))
        .metadata("tokenizer.ggml.tokens", WriterValue::strings(["<s>", "a", "b"]))
        .metadata(
            "x.f32s",
            WriterValue::Array(ValueType::F32, vec![WriterValue::F32(f32::NAN), WriterValue::F32(-0.0)]),
        );
    w.tensor("q", GgmlType::Q4_0, &[64, 3], vec![7; 18 * 2 * 3]).unwrap();
    w.tensor("k", GgmlType::Q6_K, &[256], vec![9; 210]).unwrap();
    let bytes = w.to_bytes().unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.alignment, DEFAULT_ALIGNMENT);
    assert!(g.get("general.alignment").is_none());
    assert_eq!(g.tensor("q").unwrap().data, &[7; 108][..]);
    assert_eq!(g.tensor("k").unwrap().file_offset % 32, 0);
    let f: Vec<u32> = g
        .get("x.f32s")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| if let Value::F32(x) = v { x.to_bits() } else { 0 })
        .collect();
    assert_eq!(f, [f32::NAN.to_bits(), (-0.0f32).to_bits()]);
}

#[test]
fn writer_rejects_wrong_sizes_and_mixed_arrays() {
    let mut w = Writer::new();
    assert!(matches!(w.tensor("q", GgmlType::Q4_0, &[64], vec![0; 35]), Err(Error::DataLength { .. })));
    assert!(w.tensor("q", GgmlType::Q4_0, &[33], vec![0; 18]).is_err());
    w.metadata("bad", WriterValue::Array(ValueType::U32, vec![WriterValue::U8(1)]));
    assert!(w.to_bytes().is_err());
}

// ---- hostile inputs ---------------------------------------------------------------------------

fn small_valid() -> Vec<u8> {
    every_type_file(3)
}

#[test]
fn truncation_at_every_offset_is_an_error() {
    let bytes = small_valid();
    for cut in 0..bytes.len() {
        // The last bytes of the file are tensor "b" and padding; cutting inside the padding after
        // "b"'s data is harmless, everything before must fail.
        let result = Gguf::parse(&bytes[..cut]);
        let b_end = {
            let g = Gguf::parse(&bytes).unwrap();
            let b = g.tensor("b").unwrap();
            (b.file_offset + b.n_bytes()) as usize
        };
        if cut < b_end {
            assert!(result.is_err(), "cut at {cut} parsed");
        } else {
            assert!(result.is_ok(), "cut at {cut}: {result:?}");
        }
    }
}

#[test]
fn wrong_magic_and_versions() {
    let mut bytes = small_valid();
    bytes[0] = b'X';
    let msg = Gguf::parse(&bytes).unwrap_err().to_string();
    assert!(msg.contains("not a GGUF file") && msg.contains("58 47 55 46"), "{msg}");
    assert!(matches!(Gguf::parse(&[]), Err(Error::BadMagic { .. })));
    assert!(matches!(Gguf::parse(b"PK\x03\x04rest of a zip"), Err(Error::BadMagic { .. })));

    let v1 = B::header(1, 0, 0).0;
    assert_eq!(Gguf::parse(&v1).unwrap_err(), Error::UnsupportedVersion { version: 1 });
    let big = B::default().bytes(b"GGUF").u32(3u32.swap_bytes()).u64(0).u64(0).0;
    assert!(matches!(Gguf::parse(&big), Err(Error::BigEndian { .. })));
}

#[test]
fn lying_counts_are_rejected_before_allocating() {
    // Over paritylab's limits whatever the file's size...
    let huge_tensors = B::header(3, u64::MAX, 0).0;
    let err = Gguf::parse(&huge_tensors).unwrap_err();
    assert!(matches!(err, Error::TooMany { offset: 8, max: MAX_TENSORS, .. }), "{err}");
    assert!(err.to_string().contains("declares 18446744073709551615 tensors"), "{err}");
    let huge_kv = B::header(3, 0, 1 << 60).0;
    assert!(matches!(Gguf::parse(&huge_kv), Err(Error::TooMany { offset: 16, max: MAX_METADATA, .. })));
    // ...and within them, more than the bytes that remain can hold.
    let many_tensors = B::header(3, 1000, 0).0;
    assert!(matches!(Gguf::parse(&many_tensors), Err(Error::CountTooLarge { offset: 8, .. })));
    let many_kv = B::header(3, 0, 1000).0;
    assert!(matches!(Gguf::parse(&many_kv), Err(Error::CountTooLarge { offset: 16, .. })));
    let huge_string = B::header(3, 0, 1).u64(u64::MAX).bytes(&[0; 16]).0;
    let err = Gguf::parse(&huge_string).unwrap_err();
    assert!(matches!(err, Error::Truncated { offset: 32, need: u64::MAX, .. }), "{err}");
    let huge_array = B::header(3, 0, 1).str("arr").u32(9).u32(4).u64(1 << 62).0;
    let err = Gguf::parse(&huge_array).unwrap_err();
    assert!(err.to_string().contains("the length of array \"arr\""), "{err}");
}

#[test]
fn bad_value_types_keys_and_nesting() {
    let unknown = B::header(3, 0, 1).str("k").u32(13).u32(0).0;
    assert!(matches!(Gguf::parse(&unknown), Err(Error::UnknownValueType { type_id: 13, .. })));
    let bad_elem = B::header(3, 0, 1).str("k").u32(9).u32(99).u64(0).0;
    assert!(matches!(Gguf::parse(&bad_elem), Err(Error::UnknownValueType { type_id: 99, .. })));
    let dup = B::header(3, 0, 2).str("k").u32(4).u32(1).str("k").u32(4).u32(2).0;
    assert!(matches!(Gguf::parse(&dup), Err(Error::DuplicateKey { .. })));
    let bad_utf8 = B::header(3, 0, 1).u64(2).bytes(&[0xff, 0xfe]).u32(4).u32(1).0;
    assert!(matches!(Gguf::parse(&bad_utf8), Err(Error::InvalidUtf8 { offset: 24, .. })));

    let mut deep = B::header(3, 0, 1).str("deep").u32(9);
    for _ in 0..64 {
        deep = deep.u32(9).u64(1);
    }
    let deep = deep.u32(4).u64(0).0;
    assert!(matches!(Gguf::parse(&deep), Err(Error::ArrayTooDeep { .. })));

    for bad in [0u32, 3, 1 << 20] {
        let file = B::header(3, 0, 1).str("general.alignment").u32(4).u32(bad).0;
        assert!(matches!(Gguf::parse(&file), Err(Error::BadAlignment { .. })), "alignment {bad}");
    }
    let wrong_type = B::header(3, 0, 1).str("general.alignment").u32(10).u64(32).0;
    assert!(matches!(Gguf::parse(&wrong_type), Err(Error::BadAlignment { .. })));
}

fn one_tensor(n_dims: u32, dims: &[u64], type_id: u32, offset: u64, data_len: usize) -> Vec<u8> {
    let mut b = B::header(3, 1, 0).str("t").u32(n_dims);
    for &d in dims {
        b = b.u64(d);
    }
    b.u32(type_id).u64(offset).pad(32).bytes(&vec![0; data_len]).0
}

#[test]
fn bad_tensor_infos() {
    assert!(Gguf::parse(&one_tensor(1, &[8], 0, 0, 32)).is_ok());
    assert!(matches!(Gguf::parse(&one_tensor(0, &[], 0, 0, 32)), Err(Error::BadDimCount { .. })));
    assert!(matches!(Gguf::parse(&one_tensor(5, &[1; 5], 0, 0, 32)), Err(Error::BadDimCount { .. })));
    let err = Gguf::parse(&one_tensor(2, &[1 << 40, 1 << 40], 0, 0, 32)).unwrap_err();
    assert!(matches!(err, Error::BadDims { .. }), "{err}");
    let err = Gguf::parse(&one_tensor(1, &[33], 2, 0, 64)).unwrap_err();
    assert!(err.to_string().contains("blocks of 32"), "{err}");
    let err = Gguf::parse(&one_tensor(1, &[8], 4, 0, 32)).unwrap_err();
    assert!(matches!(err, Error::UnknownTensorType { type_id: 4, ref name, .. } if name == "t"), "{err}");
    assert!(err.to_string().contains("\"t\"") && err.to_string().contains("id 4"));
    assert!(matches!(Gguf::parse(&one_tensor(1, &[8], 0, 1, 64)), Err(Error::MisalignedTensor { .. })));
    let err = Gguf::parse(&one_tensor(1, &[8], 0, 1 << 40, 32)).unwrap_err();
    assert!(matches!(err, Error::TensorOutOfBounds { .. }), "{err}");
    let err = Gguf::parse(&one_tensor(1, &[8], 0, u64::MAX - 31, 32)).unwrap_err();
    assert!(matches!(err, Error::TensorOutOfBounds { .. }), "{err}");
    // data shorter than the tensor
    assert!(matches!(Gguf::parse(&one_tensor(1, &[8], 0, 0, 31)), Err(Error::TensorOutOfBounds { .. })));
    // A known type we cannot decode still parses.
    let g_bytes = one_tensor(1, &[256], 16, 0, 66);
    let g = Gguf::parse(&g_bytes).unwrap();
    assert_eq!(g.tensors[0].ggml_type, GgmlType::IQ2_XXS);
}

#[test]
#[rustfmt::skip]
fn overlapping_and_duplicate_tensors() {
    let two = |off_b: u64, name_b: &str| {
        B::header(3, 2, 0)
            .str("a")
            .u32(1)
            .u64(16)
            .u32(0)
            .u64(0)
            .str(name_b)
            .u32(1)
            .u64(8)
            .u32(0)
            .u64(off_b)
            .pad(32)
            .bytes(&[0; 128])
            .0
    };
    assert!(Gguf::parse(&two(64, "b")).is_ok());
    let err = Gguf::parse(&two(32, "b")).unwrap_err();
    assert!(matches!(err, Error::TensorsOverlap { .. }), "{err}");
    assert!(err.to_string().contains("\"a\"") && err.to_string().contains("\"b\""));
    assert!(matches!(
        Gguf::parse(&two(64, "a")),
        Err(Error::DuplicateTensor { .. })
    ));
}

#[test]
fn a_header_parses_from_the_first_bytes_and_the_declared_size() {
    // Two tensors: 8 f32 values at 0 and 4 at 32, so the file ends 48 bytes into the data.
    let header = B::default()
        .bytes(b"GGUF")
        .u32(3)
        .u64(2)
        .u64(1)
        .str("general.architecture")
        .u32(8)
        .str("llama")
        .str("a")
        .u32(1)
        .u64(8)
        .u32(0)
        .u64(0)
        .str("b")
        .u32(1)
        .u64(4)
        .u32(0)
        .u64(32)
        .pad(32);
    let data_offset = header.0.len() as u64;
    let file = header.bytes(&[0u8; 48]).0;
    let full = Gguf::parse(&file).unwrap();
    assert!(full.has_data);

    let head = Gguf::parse_header(&file[..data_offset as usize], file.len() as u64).unwrap();
    assert!(!head.has_data);
    assert_eq!((head.data_offset, head.file_len), (full.data_offset, full.file_len));
    assert_eq!(head.metadata, full.metadata);
    for (h, f) in head.tensors.iter().zip(&full.tensors) {
        assert_eq!((h.name, &h.dims, h.file_offset, h.n_bytes()), (f.name, &f.dims, f.file_offset, f.n_bytes()));
        assert!(h.data.is_empty());
    }
    // A whole file works too (its data is not read).
    assert!(Gguf::parse_header(&file, file.len() as u64).unwrap().tensors.iter().all(|t| t.data.is_empty()));
    // Nothing that needs the data accepts a header.
    assert!(matches!(crate::inspect::tensor_stats(&head.tensors[0]), Err(Error::HeaderOnly { .. })));
    assert!(matches!(crate::model::Model::from_gguf(head).map_err(|e| e.1), Err(Error::HeaderOnly { .. })));

    // Cut inside the header: read more, unless the file itself ends there.
    for cut in [0, 3, 30, 60, 134] {
        let prefix = &file[..cut.min(file.len())];
        let e = Gguf::parse_header(prefix, file.len() as u64).unwrap_err();
        if cut < 4 {
            assert!(matches!(e, Error::BadMagic { .. }), "{cut}: {e}");
        } else {
            assert!(matches!(e, Error::HeaderBeyondPrefix { read } if read == cut as u64), "{cut}: {e}");
        }
        assert!(Gguf::parse_header(prefix, cut as u64).is_err());
    }
    // A declared size shorter than the tensors: out of bounds, as for a whole file.
    let e = Gguf::parse_header(&file, file.len() as u64 - 1).unwrap_err();
    assert!(matches!(e, Error::TensorOutOfBounds { .. }), "{e}");
    // A 3 GiB file's header needs only its first bytes.
    let big = B::default().bytes(b"GGUF").u32(3).u64(1).u64(0).str("w").u32(2).u64(3 << 14).u64(1 << 14).u32(0).u64(0);
    let big = big.pad(32);
    let head = Gguf::parse_header(&big.0, big.0.len() as u64 + (3 << 30)).unwrap();
    assert_eq!(head.tensors[0].n_bytes(), 3 << 30);
}
