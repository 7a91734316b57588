//! Spool files: batches the server has not taken yet, on disk, so that neither
//! a long outage nor a restart of the collector loses them.
//!
//! One file per batch, `batch-<seq>.rowbinary` (12-digit sequence number),
//! holding raw RowBinary rows of [`COLUMNS`](super::COLUMNS): any ClickHouse
//! client can load one by hand. A file is written under a `.tmp` name,
//! synced and renamed, so a crash never leaves a half file under the real
//! name. [`scan_spool`] finds the files an earlier run left; a file that is
//! not whole rows is moved aside as `*.bad` and counted, never sent.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::ROW_SIZE;

pub(super) fn spool_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("batch-{seq:012}.rowbinary"))
}

/// Write one batch as `batch-<seq>.rowbinary` (via a `.tmp` file and rename,
/// so a crash never leaves a half file under the real name).
pub(super) fn write_spool_file(dir: &Path, seq: u64, data: &[u8]) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = spool_path(dir, seq);
    let tmp = path.with_extension("rowbinary.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_data()?;
    drop(f);
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

#[derive(Debug)]
/// A spooled batch: its row count and file.
pub(super) struct SpoolEntry {
    pub(super) rows: usize,
    pub(super) path: PathBuf,
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
        let Some(seq) = name
            .strip_prefix("batch-")
            .and_then(|n| n.strip_suffix(".rowbinary"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let path = ent.path();
        let len = ent.metadata()?.len() as usize;
        if len == 0 {
            let _ = std::fs::remove_file(&path);
        } else if len % ROW_SIZE != 0 {
            let to = path.with_extension("rowbinary.bad");
            eprintln!(
                "nfstitch: clickhouse: spool file {} is not whole rows ({len} bytes); moved to {}",
                path.display(),
                to.display()
            );
            std::fs::rename(&path, &to)?;
            bad += 1;
        } else {
            found.insert(seq, SpoolEntry { rows: len / ROW_SIZE, path });
        }
    }
    Ok((found, bad))
}
