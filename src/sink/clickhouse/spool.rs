//! Spool files: batches the server has not taken yet, on disk, so that neither
//! a long outage nor a restart of the collector loses them.
//!
//! One file per batch, `batch-<seq>.<tag>.rowbinary` (12-digit sequence
//! number), holding raw RowBinary rows of one [`Format`]: `legacy2` or
//! `native2` (the schemas of this release), or, left by releases before
//! IPv6, `native` or untagged (legacy). The name says the format, so a
//! batch is never read with another's row layout; files of every format
//! are read and delivered. Any ClickHouse client can load one by hand
//! (`INSERT INTO t (<the format's columns>) FORMAT RowBinary`). A file is written under a `.tmp` name,
//! synced and renamed, so a crash never leaves a half file under the real
//! name. [`scan_spool`] finds the files an earlier run left; a file that is
//! not whole rows is moved aside as `*.bad` and counted, never sent.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::schema::Format;

pub(super) fn spool_path(dir: &Path, seq: u64, format: Format) -> PathBuf {
    match format.tag() {
        None => dir.join(format!("batch-{seq:012}.rowbinary")),
        Some(tag) => dir.join(format!("batch-{seq:012}.{tag}.rowbinary")),
    }
}

/// The sequence number and format of a spool file's name; `None` for
/// other names (and for tags this release does not know).
pub(super) fn parse_name(name: &str) -> Option<(u64, Format)> {
    let stem = name.strip_prefix("batch-")?.strip_suffix(".rowbinary")?;
    let (seq, tag) = match stem.split_once('.') {
        None => (stem, None),
        Some((seq, tag)) => (seq, Some(tag)),
    };
    let format = Format::ALL.into_iter().find(|f| f.tag() == tag)?;
    Some((seq.parse().ok()?, format))
}

/// Write one batch of `format` rows as `batch-<seq>.<tag>.rowbinary` (via
/// a `.tmp` file and rename, so a crash never leaves a half file under the
/// real name).
pub(super) fn write_spool_file(
    dir: &Path,
    seq: u64,
    format: Format,
    data: &[u8],
) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = spool_path(dir, seq, format);
    let tmp = path.with_extension("rowbinary.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_data()?;
    drop(f);
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

#[derive(Debug)]
/// A spooled batch: its row count, file and the format of its rows.
pub(super) struct SpoolEntry {
    pub(super) rows: usize,
    pub(super) path: PathBuf,
    pub(super) format: Format,
}

/// The spool files in `dir` by sequence number. Files whose length is not a
/// whole number of rows are renamed `*.bad` (and counted), empty ones removed.
pub(super) fn scan_spool(dir: &Path) -> io::Result<(BTreeMap<u64, SpoolEntry>, u64)> {
    let mut found = BTreeMap::new();
    let mut bad = 0;
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((found, 0)),
        Err(e) => return Err(e),
    };
    for ent in rd {
        let ent = ent?;
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("batch-") && name.ends_with(".rowbinary.tmp") {
            // A write that a crash cut short (never renamed into place): its
            // batch was not counted spooled, and it holds room outside
            // --spool-max-bytes; remove it.
            let _ = std::fs::remove_file(ent.path());
            continue;
        }
        let Some((seq, format)) = parse_name(name) else {
            continue;
        };
        let row_size = format.row_size();
        let path = ent.path();
        let len = ent.metadata()?.len() as usize;
        if len == 0 {
            let _ = std::fs::remove_file(&path);
        } else if len % row_size != 0 {
            let to = path.with_extension("rowbinary.bad");
            eprintln!(
                "nfstitch: clickhouse: spool file {} is not whole rows ({len} bytes); moved to {}",
                path.display(),
                to.display()
            );
            std::fs::rename(&path, &to)?;
            bad += 1;
        } else {
            found.insert(seq, SpoolEntry { rows: len / row_size, path, format });
        }
    }
    Ok((found, bad))
}
