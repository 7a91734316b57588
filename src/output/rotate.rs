//! Rotating output files, like nfcapd's: one file per interval, named by the
//! interval's start (UTC) as `DIR/nfstitch-YYYYmmddHHMM.<ext>[.gz|.zst]`.
//!
//! A file is written under a hidden temporary name (`.nfstitch-….tmp`) and
//! renamed to its final name only when it is complete (compressor finished,
//! data synced), so readers of `DIR/nfstitch-*` never see a partial file.
//! Interval starts are multiples of the interval since the Unix epoch.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, UNIX_EPOCH};

use super::written::{Buffered, Counted, BUF_BYTES};
use super::OutWrite;

/// Compression of rotated files (`--compress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Zstd,
}

impl FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Compression::None),
            "gzip" | "gz" => Ok(Compression::Gzip),
            "zstd" | "zst" => Ok(Compression::Zstd),
            _ => Err(format!("unknown compression {s:?}; choose none, gzip or zstd")),
        }
    }
}

impl Compression {
    fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Zstd => ".zst",
        }
    }
}

/// Rotation settings.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub dir: PathBuf,
    pub every: Duration,
    pub compress: Compression,
    /// File extension of the format (`jsonl`, `csv`, `log`).
    pub ext: &'static str,
}

/// A compressor's file: buffered, over a [`Counted`] file (which refuses
/// every write after a failed one).
type Compressed = BufWriter<Counted<File>>;

impl OutWrite for flate2::write::GzEncoder<Compressed> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        let mut w = (*self).finish()?;
        w.flush()
    }
}

impl OutWrite for zstd::stream::write::Encoder<'static, Compressed> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        let mut w = (*self).finish()?;
        w.flush()
    }
}

/// `YYYYmmddHHMM` (UTC) of a time in seconds since the epoch.
pub fn stamp(secs: u64) -> String {
    let t = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string();
    // 2018-02-14T00:28:07Z -> 201802140028
    t.chars().filter(char::is_ascii_digit).take(12).collect()
}

/// The file being written: its temporary and final paths, and its interval.
#[derive(Debug)]
struct Current {
    tmp: PathBuf,
    /// The final file name.
    name: String,
    period: u64,
}

/// Opens, finishes and renames the interval files.
#[derive(Debug)]
pub struct Rotator {
    cfg: Rotation,
    current: Option<Current>,
    /// The file replaced by the latest [`Rotator::open`], until it is finished.
    previous: Option<Current>,
    /// Files completed and renamed.
    pub files_done: u64,
    opened: u64,
}

impl Rotator {
    pub fn new(cfg: Rotation) -> io::Result<Self> {
        assert!(cfg.every.as_secs() >= 1, "rotation interval below 1 s");
        fs::create_dir_all(&cfg.dir)?;
        Ok(Rotator { cfg, current: None, previous: None, files_done: 0, opened: 0 })
    }

    fn period_of(&self, now_ns: u64) -> u64 {
        let every = self.cfg.every.as_secs();
        now_ns / 1_000_000_000 / every * every
    }

    /// Whether `now` is past the current file's interval.
    pub fn due(&self, now_ns: u64) -> bool {
        self.current.as_ref().is_none_or(|c| self.period_of(now_ns) != c.period)
    }

    /// Open the file for the interval containing `now`.
    pub fn open(&mut self, now_ns: u64) -> io::Result<Box<dyn OutWrite>> {
        let period = self.period_of(now_ns);
        let name =
            format!("nfstitch-{}.{}{}", stamp(period), self.cfg.ext, self.cfg.compress.suffix());
        self.opened += 1;
        let tmp = self.cfg.dir.join(format!(".{name}.{}-{}.tmp", std::process::id(), self.opened));
        let file = File::create(&tmp)?;
        self.previous = self.current.replace(Current { tmp, name, period });
        let compressed = |f| BufWriter::with_capacity(BUF_BYTES, Counted::new(f));
        Ok(match self.cfg.compress {
            Compression::None => Box::new(Buffered::new(file)),
            Compression::Gzip => Box::new(flate2::write::GzEncoder::new(
                compressed(file),
                flate2::Compression::fast(),
            )),
            Compression::Zstd => Box::new(zstd::stream::write::Encoder::new(compressed(file), 3)?),
        })
    }

    /// Finish `w` (the file replaced by the latest `open`, or else the
    /// current one) and give it its final name. An existing
    /// file of the same name (a restart within one interval) is never
    /// overwritten: `-1`, `-2`, … is appended.
    pub fn finish(&mut self, w: Box<dyn OutWrite>) -> io::Result<()> {
        w.finish()?;
        // Forgotten only once renamed: a failure on the way leaves it for `abandon`.
        let slot = if self.previous.is_some() { &mut self.previous } else { &mut self.current };
        let Some(cur) = slot else { return Ok(()) };
        // On disk before it gets its final name.
        File::open(&cur.tmp)?.sync_all()?;
        let base = &cur.name;
        let mut dest = self.cfg.dir.join(base);
        let mut n = 1;
        while dest.exists() {
            let (stem, rest) = base.split_once('.').unwrap_or((base, ""));
            dest = self.cfg.dir.join(format!("{stem}-{n}.{rest}"));
            n += 1;
        }
        fs::rename(&cur.tmp, &dest)?;
        *slot = None;
        self.files_done += 1;
        Ok(())
    }

    /// After the writer failed (its output or a sink): drop `w` and leave
    /// every file not yet renamed under its hidden temporary name, so that no
    /// incomplete file ever gets a final name (dropping may still write what
    /// `w` buffered, e.g. a compressor's trailer). Returns those files' paths.
    pub fn abandon(&mut self, w: Box<dyn OutWrite>) -> Vec<PathBuf> {
        drop(w);
        self.previous.take().into_iter().chain(self.current.take()).map(|c| c.tmp).collect()
    }
}

/// Read a rotated file back, decompressing by its suffix (for tests and tools).
pub fn read_file(path: &Path) -> io::Result<Vec<u8>> {
    let raw = fs::read(path)?;
    let name = path.to_string_lossy();
    let mut out = Vec::new();
    if name.ends_with(".gz") {
        flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(&mut out)?;
    } else if name.ends_with(".zst") {
        zstd::stream::read::Decoder::new(&raw[..])?.read_to_end(&mut out)?;
    } else {
        out = raw;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_and_periods() {
        assert_eq!(stamp(0), "197001010000");
        assert_eq!(stamp(1_430_591_884), "201505021838");
        let dir = tempfile::tempdir().unwrap();
        let r = Rotator::new(Rotation {
            dir: dir.path().into(),
            every: Duration::from_secs(300),
            compress: Compression::None,
            ext: "jsonl",
        })
        .unwrap();
        assert_eq!(r.period_of(1_430_591_884 * 1_000_000_000), 1_430_591_700);
        assert!(r.due(0));
    }

    #[test]
    fn files_are_renamed_complete_and_never_overwritten() {
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let dir = tempfile::tempdir().unwrap();
            let mut r = Rotator::new(Rotation {
                dir: dir.path().into(),
                every: Duration::from_secs(60),
                compress: c,
                ext: "csv",
            })
            .unwrap();
            let t = 1_700_000_000 * 1_000_000_000;
            let mut w = r.open(t).unwrap();
            writeln!(w, "file 0").unwrap();
            // Rotate as the writer does: open the next, then finish the previous.
            let mut next = r.open(t).unwrap();
            r.finish(w).unwrap();
            writeln!(next, "file 1").unwrap();
            r.finish(next).unwrap();
            assert_eq!(r.files_done, 2);
            let mut names: Vec<_> = fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            let sfx = c.suffix();
            assert_eq!(
                names,
                [
                    format!("nfstitch-202311142213-1.csv{sfx}"),
                    format!("nfstitch-202311142213.csv{sfx}")
                ]
            );
            let first = read_file(&dir.path().join(&names[1])).unwrap();
            assert_eq!(first, b"file 0\n");
        }
    }

    #[test]
    fn an_abandoned_file_never_gets_a_final_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Rotator::new(Rotation {
            dir: dir.path().into(),
            every: Duration::from_secs(60),
            compress: Compression::Gzip,
            ext: "jsonl",
        })
        .unwrap();
        let mut w = r.open(1_700_000_000 * 1_000_000_000).unwrap();
        writeln!(w, "half a row").unwrap();
        let left = r.abandon(w);
        assert_eq!(left.len(), 1);
        assert!(left[0].exists());
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 1);
        assert!(names[0].starts_with(".nfstitch-") && names[0].ends_with(".tmp"), "{names:?}");
        assert_eq!(r.files_done, 0);
    }
}
