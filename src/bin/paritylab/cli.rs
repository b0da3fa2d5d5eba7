//! Argument parsing and the subcommands. Exit codes: 0 success, 2 bad input (unreadable or invalid
//! file, bad arguments), 1 anything else.

use anyhow::Context;
use clap::{Parser, Subcommand};
use paritylab::diff::{CompareOptions, Report, Tolerances};
use paritylab::diff::{Side, SideRequest};
use paritylab::dump::DumpInfo;
use paritylab::forward::{forward, Runner};
use paritylab::forward::{Isolation, Prompt};
use paritylab::gguf::Gguf;
use paritylab::import::mapfile::MapFile;
use paritylab::import::naming::Naming;
use paritylab::import::{DumpFile, ImportOptions, ImportedDump, ModelShape, RawDump};
use paritylab::inspect;
use paritylab::logits::RunSummary;
use paritylab::model::Model;
use paritylab::path::PathSpec;
use paritylab::tokenizer::{EncodeOptions, Tokenizer};
use paritylab::trace::Capture;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "paritylab",
    version,
    about = "Two forward paths of one decoder LLM on identical GGUF weights: where and why they diverge"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Describe a GGUF file: version, alignment, metadata (long arrays summarised) and tensors.
    Inspect {
        /// The GGUF file.
        model: PathBuf,
        /// Print the description as JSON (the same object the web page receives).
        #[arg(long)]
        json: bool,
        /// Also decode every tensor and print value statistics (min, max, mean, std, NaN/Inf).
        #[arg(long)]
        stats: bool,
    },
    /// Run one forward path and print the top next tokens at every position; optionally dump every
    /// stage of every layer to a safetensors file.
    Run {
        /// The GGUF file.
        model: PathBuf,
        #[command(flatten)]
        input: PromptArgs,
        /// The path: a preset (hf, oracle-f64, skainet-dsl, skainet-legacy), its text form with
        /// overrides (hf,rope_pairing=interleaved), or a JSON file.
        #[arg(long, default_value = "hf")]
        path: String,
        /// Write every recorded stage to this safetensors file (see the README's dump format).
        #[arg(long)]
        dump: Option<PathBuf>,
        /// How many next-token candidates to print per position.
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run two paths on the same weights and tokens, compare them stage by stage against each
    /// path's own float noise, and say where (and, with --explain, why) they part. Exit code 0 when
    /// they agree, 1 when they diverge, 2 on bad input.
    Compare {
        /// The GGUF file.
        model: PathBuf,
        #[command(flatten)]
        input: PromptArgs,
        /// Path A, the reference (preset, text form or JSON file), or `dump:FILE` (a dump of
        /// another engine: safetensors, .npz, a folder of .npy, a llama.cpp eval-callback log).
        #[arg(long, default_value = "hf")]
        a: String,
        /// Path B, the one under test (the same forms as --a).
        #[arg(long)]
        b: String,
        #[command(flatten)]
        dump: DumpArgs,
        /// Also run B on A's activations at every layer input (layer) or every stage input (stage),
        /// separating each op's own error from error carried in.
        #[arg(long, value_parser = ["off", "layer", "stage"], default_value = "off")]
        isolate: String,
        /// Search the convention flips that explain the divergence.
        #[arg(long)]
        explain: bool,
        /// Most forward runs the explain search may spend.
        #[arg(long, default_value_t = paritylab::diff::explain::DEFAULT_BUDGET)]
        explain_budget: usize,
        #[command(flatten)]
        tolerance: ToleranceArgs,
        #[command(flatten)]
        output: OutputArgs,
        /// Candidates per position in the report's top-k table.
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// What the runs keep: every value (full), per-stage statistics and the logits (stats: for
        /// long prompts and big models), or the logits only (off).
        #[arg(long, value_parser = ["full", "stats", "off"], default_value = "full")]
        capture: String,
    },
    /// Compare two dumps stage by stage (of two engines, or of one engine before and after a
    /// change). Without --model, shapes are taken as they come and each dump is allowed
    /// --dump-noise of each stage's scale as float noise. Exit code 0 when they agree, 1 when they
    /// diverge, 2 on bad input.
    CompareDumps {
        /// Dump A, the reference.
        a: PathBuf,
        /// Dump B.
        b: PathBuf,
        /// The GGUF both dumps ran, to line up shapes (Llama Q/K order, heads).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Token ids the dumps ran, when they do not record them.
        #[arg(long, value_delimiter = ',')]
        tokens: Option<Vec<u32>>,
        #[command(flatten)]
        dump: DumpArgs,
        /// Which dump of a multi-dump file A is (e.g. f64.), overriding --prefix.
        #[arg(long)]
        prefix_a: Option<String>,
        /// Which dump of a multi-dump file B is (e.g. f32.), overriding --prefix.
        #[arg(long)]
        prefix_b: Option<String>,
        #[command(flatten)]
        tolerance: ToleranceArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Tokenize text with the model's own tokenizer (from its GGUF metadata) and print the ids and
    /// pieces.
    Tokenize {
        /// The GGUF file.
        model: PathBuf,
        /// The text.
        text: String,
        /// Print one JSON object {"ids": [...], "pieces": [...]}.
        #[arg(long)]
        json: bool,
        /// Read special-token text such as <|im_end|> as plain text.
        #[arg(long)]
        no_special: bool,
        /// Do not add the BOS/EOS tokens the vocabulary asks for.
        #[arg(long)]
        no_bos: bool,
    },
    /// Write a synthetic model: `source-issue[,field=value...]` (fields: arch, vocab, hidden, heads,
    /// kv_heads, head_dim, ffn, layers, rope_base, eps, tied, type, dist, seed) or a JSON spec. The
    /// same spec gives the same bytes on every machine.
    Synth {
        /// The spec, e.g. `source-issue` or `source-issue,arch=llama,type=q8_0,dist=normal:0.02,seed=7`.
        spec: String,
        /// Where to write the GGUF.
        #[arg(short, long)]
        output: PathBuf,
        /// Write only the header and extend the file to its declared size as a sparse file (the
        /// data reads as zeros): a model of any size, in no time and no disk space, for testing
        /// how tools handle files too large for them.
        #[arg(long)]
        sparse: bool,
    },
    /// Measure throughput (used by ./build.sh bench; prints JSON).
    #[command(subcommand)]
    Bench(Bench),
    /// Serve the web page (a static folder) with the headers it needs for threads.
    Serve {
        /// Folder to serve.
        #[arg(long, default_value = "www")]
        dir: PathBuf,
        /// Address to bind; loopback unless you ask otherwise.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Do not send the cross-origin isolation headers (COOP/COEP): the page then runs on one
        /// thread. For testing that fallback.
        #[arg(long)]
        no_isolation: bool,
        /// Also serve a folder under a URL prefix, e.g. `--mount models=.cache/models` serves
        /// /models/x.gguf (for tests and benchmarks that fetch files). Repeatable.
        #[arg(long, value_name = "PREFIX=DIR")]
        mount: Vec<String>,
    },
}

#[derive(Subcommand)]
enum Bench {
    /// Tokenize a text file several times with a model's tokenizer; report the median.
    Tokenize {
        /// The GGUF file (its vocabulary).
        model: PathBuf,
        /// The text file to tokenize.
        #[arg(long)]
        text: PathBuf,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// Time the projection kernels alone (SmolLM2-135M's FFN shape, f32 and 8-bit integer work)
    /// in GFLOP/s and GOP/s; with --threads 1 the numbers are per core.
    Matmul {
        /// Worker threads (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// Time per kernel, in milliseconds (at least 3 repetitions each).
        #[arg(long, default_value_t = 1000.0)]
        budget_ms: f64,
    },
    /// Time prompt processing (all prompt tokens in one batch) and greedy decoding on a model;
    /// report medians with min and max.
    Infer {
        /// The GGUF file.
        model: PathBuf,
        /// The prompt's token ids, comma-separated (used as given: no BOS is added).
        #[arg(long, value_delimiter = ',', required = true)]
        tokens: Vec<u32>,
        /// Tokens to decode after the prompt (greedy; end-of-text is not special).
        #[arg(long, default_value_t = 32)]
        decode: usize,
        /// The path: a preset or its text form with overrides.
        #[arg(long, default_value = "hf")]
        path: String,
        /// What the trace keeps: full, stats or off (logits only).
        #[arg(long, default_value = "off")]
        capture: String,
        /// Worker threads (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
}

/// When a stage counts as noise.
#[derive(clap::Args)]
struct ToleranceArgs {
    /// A stage is noise up to this multiple of the larger of the two sides' noise.
    #[arg(long, default_value_t = 3.0)]
    noise_multiple: f64,
    /// Absolute tolerance: a stage within allclose(atol, rtol) is not diverged.
    #[arg(long)]
    atol: Option<f64>,
    /// Relative tolerance (with --atol; numpy's allclose).
    #[arg(long)]
    rtol: Option<f64>,
    /// The float noise a dump (which cannot be rerun) is assumed to carry at least, relative to
    /// each stage's largest value.
    #[arg(long, default_value_t = 1e-6)]
    dump_noise: f64,
}

impl ToleranceArgs {
    fn tolerances(&self) -> anyhow::Result<Tolerances> {
        if self.atol.is_some() != self.rtol.is_some() {
            return Err(anyhow::Error::new(BadInput("give --atol and --rtol together".into())));
        }
        if !(self.dump_noise.is_finite() && self.dump_noise >= 0.0) {
            return Err(anyhow::Error::new(BadInput("--dump-noise must be a number >= 0".into())));
        }
        Ok(Tolerances {
            noise_multiple: self.noise_multiple,
            atol: self.atol,
            rtol: self.rtol,
            dump_noise_rel: self.dump_noise,
            ..Tolerances::default()
        })
    }
}

/// Where the reports go (the Markdown report is always printed).
#[derive(clap::Args)]
struct OutputArgs {
    /// Write the Markdown report here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// How dumps are read.
#[derive(clap::Args, Clone, Default)]
struct DumpArgs {
    /// A mapping file (JSON) from the dump's tensor names to stages, with layout changes
    /// (docs/dump-format.md).
    #[arg(long)]
    map: Option<PathBuf>,
    /// Which dump of a file holding several (the reference files' f32. / f64. / deq_q8_0.).
    #[arg(long)]
    prefix: Option<String>,
    /// The dump's naming, when detection guesses wrong.
    #[arg(long, value_parser = ["paritylab", "hf", "llamacpp"])]
    naming: Option<String>,
    /// The dump's Q/K values are in HF's row order (hf) or the GGUF's (gguf), overriding its
    /// metadata.
    #[arg(long, value_parser = ["hf", "gguf"])]
    qk_row_order: Option<String>,
}

impl DumpArgs {
    fn options(&self, prefix: Option<String>, tokens: Option<Vec<u32>>) -> anyhow::Result<ImportOptions> {
        let map = match &self.map {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| anyhow::Error::new(BadInput(format!("cannot read {}: {e}", p.display()))))?;
                Some(MapFile::parse(&text)?)
            }
            None => None,
        };
        Ok(ImportOptions {
            naming: self.naming.as_deref().and_then(Naming::from_name),
            prefix: prefix.or_else(|| self.prefix.clone()),
            map,
            tokens,
            hf_rows: self.qk_row_order.as_deref().map(|o| o == "hf"),
        })
    }
}

/// Read a dump: a file, or a folder of .npy files (and metadata.json).
fn read_dump(path: &std::path::Path) -> anyhow::Result<(String, RawDump)> {
    let bad = |e: std::io::Error| anyhow::Error::new(BadInput(format!("cannot read {}: {e}", path.display())));
    let label = path.file_name().map_or_else(|| path.display().to_string(), |f| f.to_string_lossy().into_owned());
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(bad)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| x == "npy") || p.file_name().is_some_and(|f| f == "metadata.json")
            })
            .collect();
        entries.sort();
        if entries.is_empty() {
            return Err(anyhow::Error::new(BadInput(format!("{} holds no .npy files", path.display()))));
        }
        for p in entries {
            let bytes = std::fs::read(&p).map_err(bad)?;
            files.push((p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(), bytes));
        }
    } else {
        files.push((label.clone(), std::fs::read(path).map_err(bad)?));
    }
    let refs: Vec<DumpFile<'_>> = files.iter().map(|(n, b)| DumpFile { name: n, bytes: b }).collect();
    Ok((label, paritylab::import::read(&refs)?))
}

/// Token ids or text.
#[derive(clap::Args)]
#[group(required = false, multiple = false)]
struct PromptArgs {
    /// Token ids, comma-separated (e.g. 1,5,3).
    #[arg(long, value_delimiter = ',')]
    tokens: Option<Vec<u32>>,
    /// Text, tokenized with the model's tokenizer (each path adds BOS as its `bos` says).
    #[arg(long)]
    prompt: Option<String>,
}

impl PromptArgs {
    fn prompt(self) -> Prompt {
        self.given().unwrap_or(Prompt::Ids(Vec::new()))
    }
    fn given(self) -> Option<Prompt> {
        match (self.tokens, self.prompt) {
            (Some(ids), _) => Some(Prompt::Ids(ids)),
            (None, Some(text)) => Some(Prompt::Text(text)),
            (None, None) => None,
        }
    }
}

/// An error that is the user's input's fault (exit code 2).
#[derive(Debug)]
struct BadInput(String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for BadInput {}

/// The comparison's outcome, for the exit code.
#[derive(Debug)]
struct Diverged;

impl std::fmt::Display for Diverged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the paths diverge")
    }
}
impl std::error::Error for Diverged {}

pub fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let is_compare = matches!(args.command, Command::Compare { .. });
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<Diverged>() => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            // Input errors, and for `compare` any failure, exit 2 so callers can tell them from a
            // divergence (1).
            let bad_input = e.chain().any(|c| c.is::<BadInput>() || c.is::<paritylab::Error>());
            ExitCode::from(if bad_input || is_compare { 2 } else { 1 })
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Inspect { model, json, stats } => {
            let bytes = read_model(&model)?;
            let g = Gguf::parse(&bytes).with_context(|| format!("{} is not a usable GGUF file", model.display()))?;
            let info = inspect::inspect(&g);
            let stats = if stats {
                Some(g.tensors.iter().map(|t| (t.name, inspect::tensor_stats(t))).collect::<Vec<_>>())
            } else {
                None
            };
            if json {
                let mut value = serde_json::to_value(&info)?;
                if let Some(stats) = &stats {
                    let list: Vec<serde_json::Value> = stats
                        .iter()
                        .map(|(name, s)| match s {
                            Ok(s) => serde_json::to_value(s).unwrap_or_default(),
                            Err(e) => serde_json::json!({ "name": name, "error": e.to_string() }),
                        })
                        .collect();
                    value["stats"] = serde_json::Value::Array(list);
                }
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                print!("{}", crate::text::inspection(&info));
                if let Some(stats) = &stats {
                    print!("{}", crate::text::stats_table(stats));
                }
            }
            Ok(())
        }
        Command::Run { model, input, path, dump, top, json } => {
            let bytes = read_model(&model)?;
            let m = Model::from_bytes(&bytes).with_context(|| format!("cannot run {}", model.display()))?;
            let spec = parse_path(&path)?;
            let trace = forward(&m, &spec, input.prompt(), None)?;
            if let Some(out) = dump {
                let sha = paritylab::dump::sha256_hex(&bytes);
                let info = DumpInfo { path: &spec, model_sha256: &sha, architecture: m.config.arch.name() };
                std::fs::write(&out, paritylab::dump::write(&trace, &info)?)
                    .with_context(|| format!("cannot write {}", out.display()))?;
                eprintln!("wrote {} stages x {} positions to {}", trace.ids().len(), trace.positions(), out.display());
            }
            let summary = RunSummary::new(&spec, &trace, top, m.display_tokenizer());
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print!("{}", crate::text::run(&m.config, &summary));
            }
            Ok(())
        }
        Command::Compare {
            model,
            input,
            a,
            b,
            dump,
            isolate,
            explain,
            explain_budget,
            tolerance,
            output,
            top,
            capture,
        } => {
            let bytes = read_model(&model)?;
            let m = Model::from_bytes(&bytes).with_context(|| format!("cannot run {}", model.display()))?;
            let opts = CompareOptions {
                tolerances: tolerance.tolerances()?,
                isolation: match isolate.as_str() {
                    "layer" => Isolation::Layer,
                    "stage" => Isolation::Stage,
                    _ => Isolation::Off,
                },
                explain,
                explain_budget,
                top_k: top,
                capture: Capture::from_name(&capture).unwrap_or_default(),
            };
            let sha = paritylab::dump::sha256_hex(&bytes);
            let given = input.given();
            let (side_a, side_b, prompt) = sides(&m, &sha, &a, &b, given, &dump)?;
            for side in [&side_a, &side_b] {
                if let Some(d) = side.dump() {
                    eprintln!("{}", d.info.summary());
                }
            }
            let comparison = paritylab::diff::compare_sides(Some(&m), &side_a, &side_b, &prompt, &opts, &mut |_| {})?;
            let file = model.file_name().map(|f| f.to_string_lossy().into_owned());
            let r = Report::new(&m, file, sha, &comparison, &opts);
            finish(&r, output)
        }
        Command::CompareDumps { a, b, model, tokens, dump, prefix_a, prefix_b, tolerance, output } => {
            let tolerances = tolerance.tolerances()?;
            let bytes = model.as_ref().map(read_model).transpose()?;
            let m = match (&bytes, &model) {
                (Some(b), Some(p)) => {
                    Some(Model::from_bytes(b).with_context(|| format!("cannot use {}", p.display()))?)
                }
                _ => None,
            };
            let shape = m.as_ref().map(ModelShape::of);
            let sha = bytes.as_ref().map(|b| paritylab::dump::sha256_hex(b));
            let load = |path: &PathBuf, prefix: Option<String>| -> anyhow::Result<Side> {
                let (label, raw) = read_dump(path)?;
                let opts = dump.options(prefix, tokens.clone())?;
                let d = paritylab::import::import(&label, &raw, shape.as_ref(), sha.as_deref(), &opts)?;
                eprintln!("{}", d.info.summary());
                Ok(Side::Dump(std::sync::Arc::new(d)))
            };
            let (side_a, side_b) = (load(&a, prefix_a)?, load(&b, prefix_b)?);
            let opts = CompareOptions { tolerances, ..CompareOptions::default() };
            let prompt = Prompt::Ids(side_a.dump().map(|d| d.info.tokens.clone()).unwrap_or_default());
            let comparison = paritylab::diff::compare_sides(m.as_ref(), &side_a, &side_b, &prompt, &opts, &mut |_| {})?;
            let info = match (&m, sha) {
                (Some(m), Some(sha)) => Some(paritylab::diff::report::ModelInfo {
                    file: model.as_ref().and_then(|p| p.file_name()).map(|f| f.to_string_lossy().into_owned()),
                    sha256: sha,
                    config: m.config.clone(),
                }),
                _ => None,
            };
            let r = Report::build(info, &comparison, &opts);
            finish(&r, output)
        }
        Command::Synth { spec, output, sparse: true } => {
            let spec = paritylab::synth::SynthSpec::parse_unbounded(&spec)?;
            let (header, size) = paritylab::synth::header_only(&spec)?;
            let write = || -> std::io::Result<()> {
                let file = std::fs::File::create(&output)?;
                std::io::Write::write_all(&mut &file, &header)?;
                file.set_len(size)
            };
            write().with_context(|| format!("cannot write {}", output.display()))?;
            println!("{size} bytes (sparse)  {}", output.display());
            eprintln!("spec {}", spec.to_text());
            Ok(())
        }
        Command::Synth { spec, output, sparse: false } => {
            let spec = paritylab::synth::SynthSpec::parse(&spec)?;
            let bytes = paritylab::synth::generate(&spec)?;
            std::fs::write(&output, &bytes).with_context(|| format!("cannot write {}", output.display()))?;
            println!("{}  {} bytes  {}", paritylab::dump::sha256_hex(&bytes), bytes.len(), output.display());
            eprintln!("spec {}", spec.to_text());
            Ok(())
        }
        Command::Tokenize { model, text, json, no_special, no_bos } => {
            let bytes = read_model(&model)?;
            let g = Gguf::parse(&bytes).with_context(|| format!("{} is not a usable GGUF file", model.display()))?;
            let tok = Tokenizer::from_gguf(&g)?.ok_or_else(|| {
                anyhow::Error::new(BadInput(format!("{} has no vocabulary (tokenizer.ggml.model)", model.display())))
            })?;
            let opts = EncodeOptions { parse_special: !no_special, add_special: !no_bos };
            let ids = tok.encode(&text, opts)?;
            let pieces: Vec<String> = ids.iter().map(|&id| tok.display_piece(id)).collect();
            if json {
                println!("{}", serde_json::json!({ "ids": ids, "pieces": pieces }));
            } else {
                print!("{}", crate::text::tokens(&ids, &pieces));
            }
            Ok(())
        }
        Command::Bench(Bench::Tokenize { model, text, rounds }) => {
            let bytes = read_model(&model)?;
            let g = Gguf::parse(&bytes)?;
            let started = std::time::Instant::now();
            let tok = Tokenizer::from_gguf(&g)?
                .ok_or_else(|| anyhow::Error::new(BadInput(format!("{} has no vocabulary", model.display()))))?;
            let build_s = started.elapsed().as_secs_f64();
            let text = std::fs::read_to_string(&text).with_context(|| format!("cannot read {}", text.display()))?;
            let mut times = Vec::new();
            let mut n_tokens = 0;
            for _ in 0..rounds.max(1) {
                let t = std::time::Instant::now();
                n_tokens = tok.encode(&text, EncodeOptions::default())?.len();
                times.push(t.elapsed().as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            let median = times[times.len() / 2];
            println!(
                "{}",
                serde_json::json!({
                    "bytes": text.len(), "tokens": n_tokens, "rounds": times.len(), "build_s": build_s,
                    "median_s": median, "min_s": times[0], "max_s": times[times.len() - 1],
                    "tokens_per_s": n_tokens as f64 / median, "mb_per_s": text.len() as f64 / median / 1e6,
                })
            );
            Ok(())
        }
        Command::Bench(Bench::Matmul { threads, budget_ms }) => {
            if let Some(n) = threads {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n.max(1))
                    .build_global()
                    .context("cannot start the threads")?;
            }
            let started = std::time::Instant::now();
            let now = || started.elapsed().as_secs_f64() * 1e3;
            let kernels = paritylab::ops::microbench::run(&now, budget_ms)?;
            println!("{}", serde_json::json!({ "threads": rayon::current_num_threads(), "kernels": kernels }));
            Ok(())
        }
        Command::Bench(Bench::Infer { model, tokens, decode, path, capture, threads, rounds }) => {
            if let Some(n) = threads {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n.max(1))
                    .build_global()
                    .context("cannot start the threads")?;
            }
            let capture = Capture::from_name(&capture).ok_or_else(|| {
                anyhow::Error::new(BadInput(format!("--capture {capture:?}: use full, stats or off")))
            })?;
            let bytes = read_model(&model)?;
            let m = Model::from_bytes(&bytes).with_context(|| format!("cannot run {}", model.display()))?;
            let spec = parse_path(&path)?;
            let prompt = tokens;
            let (mut pp, mut tg) = (Vec::new(), Vec::new());
            for _ in 0..rounds.max(1) {
                let mut runner = Runner::new(&m, &spec, capture)?;
                runner.last_logits_only(); // as llama-bench: a prompt's last logits only
                let t = std::time::Instant::now();
                runner.feed(&prompt)?;
                pp.push(t.elapsed().as_secs_f64());
                let t = std::time::Instant::now();
                runner.decode_greedy(decode)?;
                tg.push(t.elapsed().as_secs_f64());
            }
            let summary = |mut times: Vec<f64>, n: usize| {
                times.sort_by(f64::total_cmp);
                let median = times[times.len() / 2];
                serde_json::json!({
                    "tokens": n, "median_s": median, "min_s": times[0], "max_s": times[times.len() - 1],
                    "tokens_per_s": n as f64 / median,
                    "min_tokens_per_s": n as f64 / times[times.len() - 1], "max_tokens_per_s": n as f64 / times[0],
                })
            };
            println!(
                "{}",
                serde_json::json!({
                    "path": path, "capture": capture.name(), "threads": rayon::current_num_threads(),
                    "rounds": pp.len(), "pp": summary(pp, prompt.len()), "tg": summary(tg, decode),
                })
            );
            Ok(())
        }
        Command::Serve { dir, host, port, no_isolation, mount } => {
            let mounts = mount
                .iter()
                .map(|m| match m.split_once('=') {
                    Some((prefix, dir)) if !prefix.is_empty() && !prefix.contains('/') => {
                        Ok((prefix.to_string(), PathBuf::from(dir)))
                    }
                    _ => Err(anyhow::Error::new(BadInput(format!(
                        "--mount {m:?}: use PREFIX=DIR, e.g. models=.cache/models"
                    )))),
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            crate::serve::serve(&dir, &mounts, &host, port, !no_isolation).map_err(|e| anyhow::Error::new(BadInput(e)))
        }
    }
}

/// Print the Markdown report, write the files asked for, and turn the verdict into the exit code.
fn finish(r: &Report, output: OutputArgs) -> anyhow::Result<()> {
    let markdown = r.markdown(None);
    print!("{markdown}");
    if let Some(path) = output.report {
        std::fs::write(&path, &markdown).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = output.json {
        std::fs::write(&path, serde_json::to_string_pretty(r)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if r.agrees() {
        Ok(())
    } else {
        Err(anyhow::Error::new(Diverged))
    }
}

/// The two sides of `compare` (paths, or `dump:FILE`), and the prompt the paths run.
fn sides(
    m: &Model<'_>,
    sha: &str,
    a: &str,
    b: &str,
    given: Option<Prompt>,
    args: &DumpArgs,
) -> anyhow::Result<(Side, Side, Prompt)> {
    let request = |t: &str| -> anyhow::Result<SideRequest> {
        match t.strip_prefix("dump:") {
            Some(_) => Ok(SideRequest::parse(t)?),
            None => Ok(SideRequest::Path(parse_path(t)?)),
        }
    };
    let (ra, rb) = (request(a)?, request(b)?);
    let shape = ModelShape::of(m);
    let mut failure: Option<anyhow::Error> = None;
    let mut import = |file: &str, tokens: Option<Vec<u32>>| -> paritylab::Result<ImportedDump> {
        // `dump:FILE#PREFIX` picks one dump of a file holding several (when FILE itself is absent).
        let (file, prefix) = match paritylab::import::split_prefix(file) {
            (f, Some(p)) if !std::path::Path::new(file).exists() => (f, Some(p.to_string())),
            _ => (file, None),
        };
        let loaded = read_dump(std::path::Path::new(file))
            .and_then(|(label, raw)| Ok((label, raw, args.options(prefix.clone(), tokens)?)));
        match loaded {
            Ok((label, raw, opts)) => paritylab::import::import(&label, &raw, Some(&shape), Some(sha), &opts),
            Err(e) => {
                let msg = format!("{e:#}");
                failure = Some(e);
                Err(paritylab::Error::input(msg))
            }
        }
    };
    let resolved = paritylab::diff::resolve_sides(m, ra, rb, given, &mut import);
    match (resolved, failure) {
        (Err(_), Some(e)) => Err(e),
        (r, _) => Ok(r?),
    }
}

/// A path given on the command line: a JSON file, or the text form.
fn parse_path(text: &str) -> anyhow::Result<PathSpec> {
    let file = std::path::Path::new(text);
    if text.ends_with(".json") && file.is_file() {
        let json = std::fs::read_to_string(file).with_context(|| format!("cannot read {text}"))?;
        return Ok(PathSpec::parse(&json)?);
    }
    Ok(PathSpec::parse(text)?)
}

fn read_model(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow::Error::new(BadInput(format!("cannot read {}: {e}", path.display()))))
}
