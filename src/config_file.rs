//! `--config FILE`: a TOML file of flags, expanded into the argument list
//! before clap parses it, so a file and the command line take the same path
//! through [`crate::cli`] and [`crate::config`]. Owns only the file's reading
//! and its translation into flags; keys are checked against the flags clap
//! defines, values are checked where the flags are.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::CommandFactory;

use crate::cli::Cli;

/// `--config FILE`: a TOML file whose keys are long flag names (`-` or `_`)
/// of the subcommand. Its flags are inserted right after the subcommand, so
/// flags given on the command line come after them (and win for single-value
/// flags; repeatable flags such as `listen` add up).
pub fn expand(mut args: Vec<OsString>) -> Result<Vec<OsString>> {
    let pos =
        args.iter().position(|a| a == "--config" || a.to_string_lossy().starts_with("--config="));
    let Some(pos) = pos else { return Ok(args) };
    let path = match args[pos].to_string_lossy().strip_prefix("--config=") {
        Some(p) => {
            let p = PathBuf::from(p);
            args.remove(pos);
            p
        }
        None => {
            if pos + 1 >= args.len() {
                bail!("--config needs a file");
            }
            let p = PathBuf::from(args.remove(pos + 1));
            args.remove(pos);
            p
        }
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("--config: cannot read {}: {e}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("--config {}: {e}", path.display()))?;
    let sub = args.get(1).map(|a| a.to_string_lossy().into_owned());
    let (insert_at, subname) = match sub.as_deref() {
        Some(name @ ("collect" | "replay")) => (2, name.to_string()),
        _ => (1, "collect".to_string()),
    };
    let cmd = Cli::command();
    let known: Vec<String> = cmd
        .find_subcommand(&subname)
        .map(|c| c.get_arguments().filter_map(|a| a.get_long().map(str::to_string)).collect())
        .unwrap_or_default();
    let mut extra: Vec<OsString> = Vec::new();
    for (key, value) in &table {
        let flag = key.replace('_', "-");
        if flag == "config" || !known.contains(&flag) {
            bail!(
                "--config {}: unknown key {key:?} (keys are the long flags of `nfstitch {subname}`, e.g. listen, workers, linger)",
                path.display()
            );
        }
        let scalar = |v: &toml::Value| -> Result<String> {
            Ok(match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                other => {
                    bail!("--config {}: key {key:?}: unsupported value {other}", path.display())
                }
            })
        };
        match value {
            toml::Value::Boolean(true) => extra.push(format!("--{flag}").into()),
            toml::Value::Boolean(false) => {}
            toml::Value::Array(items) => {
                for v in items {
                    extra.push(format!("--{flag}").into());
                    extra.push(scalar(v)?.into());
                }
            }
            v => {
                extra.push(format!("--{flag}").into());
                extra.push(scalar(v)?.into());
            }
        }
    }
    let insert_at = insert_at.min(args.len());
    args.splice(insert_at..insert_at, extra);
    Ok(args)
}
