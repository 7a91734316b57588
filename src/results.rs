//! Where a run's results go, for both `collect` and `replay`: the flow
//! output (`-o PATH`, or stdout) opened at the start, and the final report
//! at the end (stderr unless `--quiet`, and the `--stats-json` file).
//!
//! Owns only opening and finishing; the row encodings are [`crate::output`],
//! the report's contents [`crate::stats`]. Rotated output (`--rotate`) is
//! opened by [`crate::output::rotate`] instead.

use std::fs::OpenOptions;
use std::io;

use anyhow::{Context, Result};

use crate::config::Pipeline;
use crate::output::{Buffered, OutWrite, Output};
use crate::stats::Report;

/// Open the output (`-o` or stdout).
///
/// [`Existing::Append`] (the collector): rows go after what an earlier run
/// wrote, so a restart (systemd's `Restart=on-failure`, an upgrade) never
/// erases data; CSV and Zeek start a fresh header block, as after SIGHUP.
/// [`Existing::Truncate`] (a replay, which computes the whole file again).
pub fn open_output(p: &Pipeline, existing: Existing) -> Result<Output> {
    let w: Box<dyn OutWrite> = match &p.output {
        Some(path) => {
            let mut o = OpenOptions::new();
            match existing {
                Existing::Append => o.append(true),
                Existing::Truncate => o.write(true).truncate(true),
            };
            let f = o
                .create(true)
                .open(path)
                .with_context(|| format!("-o: cannot open {}", path.display()))?;
            Box::new(Buffered::new(f))
        }
        None => Box::new(Buffered::new(io::stdout())),
    };
    Ok(Output::new(p.format, p.time_format, w))
}

/// What [`open_output`] does with a file that is already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    Append,
    Truncate,
}

/// Print the report (unless quiet) and write `--stats-json`.
pub fn finish_report(p: &Pipeline, report: &Report) -> Result<()> {
    if p.report {
        report.print(&mut io::stderr().lock())?;
    }
    if let Some(path) = &p.stats_json {
        report
            .write_json(path)
            .with_context(|| format!("--stats-json: cannot write {}", path.display()))?;
    }
    Ok(())
}
