//! Argument parsing and the subcommands. Exit codes: 0 success, 2 bad input (unreadable or invalid
//! file, bad arguments), 1 anything else.

use anyhow::Context;
use clap::{Parser, Subcommand};
use paritylab::diff::{CompareOptions, Report, Tolerances};
use paritylab::dump::DumpInfo;
use paritylab::forward::forward;
use paritylab::forward::{Isolation, Prompt};
use paritylab::gguf::Gguf;
use paritylab::inspect;
use paritylab::logits::RunSummary;
use paritylab::model::Model;
use paritylab::path::PathSpec;
use paritylab::tokenizer::{EncodeOptions, Tokenizer};
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
        /// Path A, the reference (preset, text form or JSON file).
        #[arg(long, default_value = "hf")]
        a: String,
        /// Path B, the one under test.
        #[arg(long)]
        b: String,
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
        /// A stage is noise up to this multiple of the larger of the two paths' measured noise.
        #[arg(long, default_value_t = 3.0)]
        noise_multiple: f64,
        /// Absolute tolerance: a stage within allclose(atol, rtol) is not diverged.
        #[arg(long)]
        atol: Option<f64>,
        /// Relative tolerance (with --atol; numpy's allclose).
        #[arg(long)]
        rtol: Option<f64>,
        /// Write the Markdown report here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Write the JSON report here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Candidates per position in the report's top-k table.
        #[arg(long, default_value_t = 5)]
        top: usize,
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
}

/// Token ids or text.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
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
        match (self.tokens, self.prompt) {
            (Some(ids), _) => Prompt::Ids(ids),
            (None, Some(text)) => Prompt::Text(text),
            (None, None) => Prompt::Ids(Vec::new()),
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
            isolate,
            explain,
            explain_budget,
            noise_multiple,
            atol,
            rtol,
            report,
            json,
            top,
        } => {
            let bytes = read_model(&model)?;
            let m = Model::from_bytes(&bytes).with_context(|| format!("cannot run {}", model.display()))?;
            let (spec_a, spec_b) = (parse_path(&a)?, parse_path(&b)?);
            if atol.is_some() != rtol.is_some() {
                return Err(anyhow::Error::new(BadInput("give --atol and --rtol together".into())));
            }
            let opts = CompareOptions {
                tolerances: Tolerances { noise_multiple, atol, rtol, ..Tolerances::default() },
                isolation: match isolate.as_str() {
                    "layer" => Isolation::Layer,
                    "stage" => Isolation::Stage,
                    _ => Isolation::Off,
                },
                explain,
                explain_budget,
                top_k: top,
            };
            let comparison = paritylab::diff::compare(&m, &spec_a, &spec_b, input.prompt(), &opts)?;
            let file = model.file_name().map(|f| f.to_string_lossy().into_owned());
            let r = Report::new(&m, file, paritylab::dump::sha256_hex(&bytes), &comparison, &opts);
            let markdown = r.markdown(None);
            print!("{markdown}");
            if let Some(path) = report {
                std::fs::write(&path, &markdown).with_context(|| format!("cannot write {}", path.display()))?;
            }
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&r)?)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            if r.agrees() {
                Ok(())
            } else {
                Err(anyhow::Error::new(Diverged))
            }
        }
        Command::Synth { spec, output } => {
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
