//! Hostile GGUF files: every one is an error, never a panic, and parsing never allocates more than a
//! small multiple of the bytes actually present, whatever the file claims.

mod common;
#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::SERIAL;
use paritylab::gguf::Gguf;

/// Parse `bytes`, returning (ok, total bytes allocated, largest single allocation).
fn measured_parse(bytes: &[u8]) -> (Result<(), String>, usize, usize) {
    let (result, used) = counting_alloc::measure(|| Gguf::parse(bytes).map(|_| ()).map_err(|e| e.to_string()));
    (result, used.total, used.largest)
}

/// Allocations allowed for a parse of `len` bytes: bookkeeping proportional to the real size (a
/// tensor record takes about 100 bytes in memory for at least 32 in the file), never to what the
/// file claims.
fn budget(len: usize) -> usize {
    8 * len + 16 * 1024
}

fn le(v: u64) -> [u8; 8] {
    v.to_le_bytes()
}

#[test]
fn truncations_of_a_real_file_fail_cleanly_within_budget() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bytes = common::read_reference("gguf/qwen3_tiny_tied.q8_0.gguf");
    let full = Gguf::parse(&bytes).unwrap();
    let data_end = full.tensors.iter().map(|t| t.file_offset + t.n_bytes()).max().unwrap() as usize;
    for cut in 0..data_end {
        let (result, total, _) = measured_parse(&bytes[..cut]);
        assert!(result.is_err(), "truncated at {cut} of {} parsed", bytes.len());
        assert!(total <= budget(cut), "cut {cut}: allocated {total}");
    }
}

#[test]
fn lying_sizes_fail_within_budget() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let head = |tensors: u64, kvs: u64| [b"GGUF".as_slice(), &3u32.to_le_bytes(), &le(tensors), &le(kvs)].concat();
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("huge tensor count", head(u64::MAX, 0)),
        ("huge metadata count", [head(0, 1 << 40), vec![0; 64]].concat()),
        ("huge key length", [head(0, 1), le(u64::MAX / 2).to_vec(), vec![0; 64]].concat()),
        (
            "huge string value",
            [head(0, 1), le(1).to_vec(), b"k".to_vec(), 8u32.to_le_bytes().to_vec(), le(1 << 50).to_vec(), vec![0; 64]]
                .concat(),
        ),
        (
            "huge array",
            [
                head(0, 1),
                le(1).to_vec(),
                b"k".to_vec(),
                9u32.to_le_bytes().to_vec(),
                8u32.to_le_bytes().to_vec(),
                le(1 << 61).to_vec(),
            ]
            .concat(),
        ),
        (
            "huge dims",
            [
                head(1, 0),
                le(1).to_vec(),
                b"t".to_vec(),
                4u32.to_le_bytes().to_vec(),
                le(1 << 20).repeat(4),
                0u32.to_le_bytes().to_vec(),
                le(0).to_vec(),
            ]
            .concat(),
        ),
        (
            "offset past the end",
            [
                head(1, 0),
                le(1).to_vec(),
                b"t".to_vec(),
                1u32.to_le_bytes().to_vec(),
                le(8).to_vec(),
                0u32.to_le_bytes().to_vec(),
                le(1 << 40).to_vec(),
                vec![0; 64],
            ]
            .concat(),
        ),
        (
            "unknown tensor type",
            [
                head(1, 0),
                le(1).to_vec(),
                b"t".to_vec(),
                1u32.to_le_bytes().to_vec(),
                le(8).to_vec(),
                77u32.to_le_bytes().to_vec(),
                le(0).to_vec(),
                vec![0; 64],
            ]
            .concat(),
        ),
    ];
    // Deeply nested arrays.
    let mut deep = [head(0, 1), le(4).to_vec(), b"deep".to_vec(), 9u32.to_le_bytes().to_vec()].concat();
    for _ in 0..10_000 {
        deep.extend(9u32.to_le_bytes());
        deep.extend(le(1));
    }
    cases.push(("deep arrays", deep));
    // Many tiny tensors claiming to overlap.
    let mut many = head(1000, 0);
    for i in 0..1000u32 {
        let name = format!("t{i}");
        many.extend(le(name.len() as u64));
        many.extend(name.as_bytes());
        many.extend(1u32.to_le_bytes());
        many.extend(le(8));
        many.extend(0u32.to_le_bytes());
        many.extend(le(0));
    }
    many.extend(vec![0; 64]);
    cases.push(("overlapping tensors", many));

    for (what, bytes) in &cases {
        let (result, total, largest) = measured_parse(bytes);
        let err = result.expect_err(what);
        assert!(!err.is_empty());
        assert!(total <= budget(bytes.len()), "{what}: allocated {total} for {} bytes", bytes.len());
        assert!(largest <= 4 * bytes.len() + 4096, "{what}: one allocation of {largest}");
        eprintln!("{what}: {err}");
    }
}

#[test]
fn every_reference_file_parses_within_budget() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = common::reference_dir().join("gguf");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let (result, total, _) = measured_parse(&bytes);
        assert!(result.is_ok(), "{}: {result:?}", path.display());
        assert!(total <= budget(bytes.len()), "{}: {total}", path.display());
    }
}
