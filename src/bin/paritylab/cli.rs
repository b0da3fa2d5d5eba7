//! Argument parsing and the subcommands. Exit codes: 0 success, 2 bad input (unreadable or invalid
//! file, bad arguments), 1 anything else.

use anyhow::Context;
use clap::{Parser, Subcommand};
use paritylab::gguf::Gguf;
use paritylab::inspect;
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
    },
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

pub fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            let bad_input = e.chain().any(|c| c.is::<BadInput>() || c.is::<paritylab::Error>());
            ExitCode::from(if bad_input { 2 } else { 1 })
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
        Command::Serve { dir, host, port, no_isolation } => {
            crate::serve::serve(&dir, &host, port, !no_isolation).map_err(|e| anyhow::Error::new(BadInput(e)))
        }
    }
}

fn read_model(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow::Error::new(BadInput(format!("cannot read {}: {e}", path.display()))))
}
