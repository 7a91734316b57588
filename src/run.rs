//! Runs a parsed command line: the third of three places, after
//! [`crate::cli`] (flags) and [`crate::config`] (validated options). Each
//! subcommand's flags become its validated options, which go to the mode
//! that does the work: [`crate::collect`], [`crate::replay`], or `plot`.
//! [`parse_args`] reads the process arguments, `--config FILE` expanded.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, Result};

use crate::cli::{Cli, CollectArgs, Command};
use crate::config::{Collect, Replay};

/// Run what the command line asks for. Returns the exit code.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        None => collect(&cli.collect),
        Some(Command::Collect(a)) => collect(&a),
        Some(Command::Plot(a)) => {
            plot(&a.files, &a.output, &a.title)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Replay(a)) => {
            crate::replay::run(&Replay::from_args(&a)?)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `collect`, or with `--dry-run` only print the validated options.
fn collect(a: &CollectArgs) -> Result<ExitCode> {
    let cfg = Collect::from_args(a)?;
    if a.dry_run {
        println!("{cfg:#?}");
        return Ok(ExitCode::SUCCESS);
    }
    crate::collect::run(&cfg)?;
    Ok(ExitCode::SUCCESS)
}

/// `plot`: one series per .hgrm file, named after the file, into one SVG.
fn plot(files: &[PathBuf], output: &Path, title: &str) -> Result<()> {
    let mut series = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(f).map_err(|e| anyhow!("cannot read {}: {e}", f.display()))?;
        let d = crate::hist::parse_hgrm(&text)
            .map_err(|e| anyhow!("{} is not an .hgrm file: {e}", f.display()))?;
        let name = f
            .file_stem()
            .map_or_else(|| f.display().to_string(), |s| s.to_string_lossy().into_owned());
        series.push((name, d));
    }
    std::fs::write(output, crate::hist::svg_plot(title, &series))
        .map_err(|e| anyhow!("-o: cannot write {}: {e}", output.display()))?;
    Ok(())
}

/// The process arguments, with `--config FILE` expanded into flags
/// ([`crate::config_file`]), parsed. Exits with clap's usage message on a
/// flag it rejects.
pub fn parse_args() -> Result<Cli> {
    let args = crate::config_file::expand(std::env::args_os().collect())?;
    Ok(<Cli as clap::Parser>::parse_from(args))
}
