//! What the fuzzers (`./build.sh fuzz`) run, replayed by `cargo test`: every input under
//! `tests/fuzz/<target>/` (inputs that once crashed, hung or over-allocated, kept after the fix)
//! and the seed corpora, which are built here from the reference files. Every input must finish
//! without a panic, within a memory budget proportional to its size.
//!
//! `PARITYLAB_FUZZ_SEEDS=DIR cargo test --test fuzz_regressions` also writes the seed corpora to
//! `DIR/<target>/` (what `./build.sh fuzz` starts from).

mod common;

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::SERIAL;
use paritylab::forward::Runner;
use paritylab::fuzzing::{self, budget, Fixtures, TARGETS};
use paritylab::gguf::Gguf;
use paritylab::model::Model;
use paritylab::path::PathSpec;
use paritylab::share::State;
use paritylab::trace::Capture;
use std::path::PathBuf;
use std::sync::OnceLock;

fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| Fixtures::build(common::read_reference).unwrap())
}

/// Run one target on one input; returns the bytes it allocated.
fn run(target: &str, data: &[u8]) -> usize {
    let f = fixtures();
    let ((), used) = counting_alloc::measure(|| match target {
        "gguf_file" => fuzzing::gguf_file(data),
        "gguf_header" => fuzzing::gguf_header(data),
        "tokenizer" => fuzzing::tokenizer(&f.tokenizers, data),
        "share_state" => fuzzing::share_state(data),
        "dump_files" => fuzzing::dump_files(&f.shape, data),
        "path_spec" => fuzzing::path_spec(data),
        other => panic!("unknown fuzz target {other}"),
    });
    used.total
}

fn regression_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz")
}

#[test]
fn every_kept_fuzz_input_runs_cleanly() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut n = 0;
    for target in TARGETS {
        let dir = regression_dir().join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "md") {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            let used = run(target, &data);
            assert!(
                used <= budget(target, data.len()),
                "{}: allocated {used} for {} bytes",
                path.display(),
                data.len()
            );
            n += 1;
        }
    }
    eprintln!("{n} kept fuzz inputs replayed");
}

/// Seed inputs for every target, from the reference files and the fixtures of the tests.
fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out: Vec<(&'static str, String, Vec<u8>)> = Vec::new();
    let reference = common::reference_dir();
    let mut ggufs: Vec<PathBuf> =
        std::fs::read_dir(reference.join("gguf")).unwrap().map(|e| e.unwrap().path()).collect();
    ggufs.sort();
    for path in &ggufs {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(path).unwrap();
        let g = Gguf::parse(&bytes).unwrap();
        let header = [&(bytes.len() as u64).to_le_bytes()[..], &bytes[..g.data_offset as usize]].concat();
        out.push(("gguf_header", name.clone(), header));
        if bytes.len() < 128 << 10 {
            out.push(("gguf_file", name, bytes));
        }
    }

    let mut texts: Vec<String> = Vec::new();
    let strings = common::read_json("tokenizer/qwen3_strings.json");
    let toy = common::read_json("tokenizers/toy_cases.json");
    for case in strings["cases"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(toy["cases"].as_object().unwrap().values().flat_map(|v| v.as_array().unwrap()))
    {
        if let Some(t) = case["text"].as_str() {
            texts.push(t.to_string());
        }
    }
    texts.sort();
    texts.dedup();
    for (i, text) in texts.iter().enumerate().step_by(7) {
        // Alternate tokenizers and options across the seeds; one decode seed per few.
        let pick = (i % 3) as u8 | if i % 2 == 0 { 8 } else { 0 } | if i % 5 == 0 { 16 } else { 0 };
        out.push(("tokenizer", format!("text-{i}"), [&[pick][..], text.as_bytes()].concat()));
    }
    for t in 0..3u8 {
        let ids: Vec<u8> = [0u32, 1, 5, 60, 63, 127, 151_643, 151_935, 200_000, u32::MAX]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        out.push(("tokenizer", format!("ids-{t}"), [&[t | 4][..], &ids].concat()));
    }

    let mut state = State::source_issue();
    out.push(("share_state", "source-issue".into(), state.encode().unwrap().into_bytes()));
    state.prompt = paritylab::forward::Prompt::Text("Héllo <|im_end|> 世界".into());
    state.capture = Capture::Stats;
    out.push(("share_state", "text-prompt".into(), format!("#{}", state.encode().unwrap()).into_bytes()));
    state.model =
        paritylab::share::ModelSource::File { sha256: "ab".repeat(32), name: "m.gguf".into(), size: 93 << 20 };
    state.view = paritylab::share::View { position: Some(1), stage: Some("blk.0.attn_norm".into()) };
    state.tolerances.atol = Some(1e-4);
    out.push(("share_state", "file-view".into(), state.encode().unwrap().into_bytes()));
    state.model = paritylab::share::ModelSource::Url("https://example.org/m.gguf".into());
    out.push(("share_state", "url".into(), state.encode().unwrap().into_bytes()));

    let names = ["hf", "oracle-f64", "llama.cpp", "skainet-dsl"];
    for n in names {
        out.push(("path_spec", n.into(), n.as_bytes().to_vec()));
        let spec = PathSpec::preset(n).unwrap();
        out.push(("path_spec", format!("{n}.json"), serde_json::to_vec(&spec).unwrap()));
    }
    out.push(("path_spec", "overrides".into(), b"hf,rope_pairing=adjacent,precision=f64,eps=1e-5".to_vec()));

    // Dumps: one file or several, split as the target splits them (a first byte picks the name).
    const SEP: &[u8] = b"\0\0|\0\0";
    let named = |kind: u8, bytes: &[u8]| [&[kind][..], bytes].concat();
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    for (file, kind) in [
        ("small.npy", 1u8),
        ("half.npy", 1),
        ("fortran.npy", 1),
        ("v2.npy", 1),
        ("pair.npz", 4),
        ("pair_compressed.npz", 4),
    ] {
        out.push(("dump_files", file.into(), named(kind, &std::fs::read(data.join("import").join(file)).unwrap())));
    }
    let pair = [
        named(1, &std::fs::read(data.join("import/small.npy")).unwrap()),
        SEP.to_vec(),
        named(2, &std::fs::read(data.join("import/v2.npy")).unwrap()),
        SEP.to_vec(),
        named(3, br#"{"format":"paritylab.dump","token_ids":"[1, 2]"}"#),
    ]
    .concat();
    out.push(("dump_files", "npy-folder".into(), pair));
    let log = std::fs::read(data.join("llamacpp/qwen3_tiny_untied.eval-callback.txt")).unwrap();
    out.push(("dump_files", "eval-callback".into(), named(5, &log)));
    let st = common::read_reference("llamacpp/qwen3_tiny_tied.f32.f32kv.safetensors");
    out.push(("dump_files", "llamacpp-safetensors".into(), named(0, &st)));
    let bytes = common::read_reference("gguf/qwen3_tiny_tied.q8_0.gguf");
    let model = Model::from_bytes(&bytes).unwrap();
    let mut runner = Runner::new(&model, &PathSpec::hf(), Capture::Full).unwrap();
    runner.feed(&[1, 2, 3]).unwrap();
    let info = paritylab::dump::DumpInfo { path: &PathSpec::hf(), model_sha256: "00", architecture: "qwen3" };
    out.push((
        "dump_files",
        "paritylab-dump".into(),
        named(0, &paritylab::dump::write(runner.trace(), &info).unwrap()),
    ));
    out
}

#[test]
fn seed_corpora_run_cleanly() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let seeds = seeds();
    let write_to = std::env::var_os("PARITYLAB_FUZZ_SEEDS").map(PathBuf::from);
    for target in TARGETS {
        let n = seeds.iter().filter(|s| s.0 == target).count();
        assert!(n >= 3, "{target}: only {n} seeds");
    }
    for (target, name, data) in &seeds {
        let used = run(target, data);
        assert!(used <= budget(target, data.len()), "{target}/{name}: allocated {used} for {} bytes", data.len());
        if let Some(dir) = &write_to {
            let dir = dir.join(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), data).unwrap();
        }
    }
}

/// Offsets to cut or corrupt an input of `len` bytes at: every one for small inputs, evenly
/// spread up to `most` otherwise (plus the first and last 64, where headers and ends are).
fn offsets(len: usize, most: usize) -> Vec<usize> {
    let step = len.div_ceil(most).max(1);
    let mut v: Vec<usize> = (0..len).step_by(step).chain(0..len.min(64)).chain(len.saturating_sub(64)..len).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The hostile-input set built from every seed of every target (GGUF files and headers, share
/// links, dumps, texts and token ids, path specs): truncated at every offset, and with bytes
/// overwritten (lying counts, dims, offsets and lengths, unknown type ids, broken UTF-8, damaged
/// compressed streams). Each must finish without a panic within the allocation budget.
#[test]
fn truncated_and_corrupted_seeds_run_cleanly() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut n = 0;
    for (target, name, data) in seeds() {
        // A whole GGUF also runs a tiny forward pass: fewer cuts (hostile_inputs.rs cuts one at
        // every offset through the parser alone).
        let most = if target == "gguf_file" { 96 } else { 1024 };
        for cut in offsets(data.len(), most) {
            let used = run(target, &data[..cut]);
            assert!(used <= budget(target, cut), "{target}/{name} cut at {cut}: allocated {used}");
            n += 1;
        }
        for at in offsets(data.len(), most / 2) {
            for byte in [0xff, 0x00, 0x7f, 0x80] {
                let mut bad = data.clone();
                if bad[at] == byte {
                    continue;
                }
                bad[at] = byte;
                let used = run(target, &bad);
                assert!(used <= budget(target, bad.len()), "{target}/{name} byte {at} = {byte:#x}: allocated {used}");
                n += 1;
            }
        }
    }
    eprintln!("{n} hostile inputs run");
    assert!(n > 10_000, "only {n} hostile inputs");
}
