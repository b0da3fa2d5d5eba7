//! The paritylab command line: the same engine as the web page, for terminals and other projects' CI.

#[cfg(not(target_arch = "wasm32"))]
mod cli;
#[cfg(not(target_arch = "wasm32"))]
mod serve;
#[cfg(not(target_arch = "wasm32"))]
mod text;

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

// The crate's wasm builds only use the library; this keeps `cargo test --target wasm32-...` (which
// builds every target) compiling.
#[cfg(target_arch = "wasm32")]
fn main() {}
