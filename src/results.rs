//! Where a run's results go, for both `collect` and `replay`: the flow
//! output (`-o PATH`, or stdout) opened at the start, and the final report
//! at the end (stderr unless `--quiet`, and the `--stats-json` file).
//!
//! Owns only opening and finishing; the row encodings are [`crate::output`],
//! the report's contents [`crate::stats`]. Rotated output (`--rotate`) is
//! opened by [`crate::output::rotate`] instead.

use std::fs::File;
use std::io::{self, BufWriter};

use anyhow::{Context, Result};

use crate::config::Pipeline;
use crate::output::{OutWrite, Output};
use crate::stats::Report;

/// Open the output (`-o` or stdout).
pub fn open_output(p: &Pipeline) -> Result<Output> {
    let w: Box<dyn OutWrite> = match &p.output {
        Some(path) => Box::new(BufWriter::with_capacity(
            1 << 16,
            File::create(path).with_context(|| format!("-o: cannot create {}", path.display()))?,
        )),
        None => Box::new(BufWriter::with_capacity(1 << 16, io::stdout())),
    };
    Ok(Output::new(p.format, p.time_format, w))
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
