//! `loadgen`: thin binary over the library. Exit codes: 0 success, 1 a run
//! error (reported with its cause), 2 bad flags (clap).

use std::process::ExitCode;

// mimalloc, as in the nfstitch binary: the sending threads and the truth's
// per-connection tables allocate from several threads at once, and the
// system allocator's shared arenas would make that contend; mimalloc's
// thread-local heaps keep the (already allocation-free) hot path unaffected.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match loadgen::cli::run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loadgen: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
