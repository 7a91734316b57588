//! The `nfstitch` binary: parse flags, run, map errors to an exit code.

use std::process::ExitCode;

// mimalloc: the writer formats many short-lived strings and flow tables grow
// in large steps; mimalloc is faster than glibc malloc at both and gives
// memory back to the OS promptly.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match nfstitch::run::parse_args().and_then(nfstitch::run::run) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("nfstitch: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
