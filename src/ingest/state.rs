//! v9/IPFIX templates saved across restarts (`--state-dir`): the file
//! format, the save, and a load that takes nothing on trust.
//!
//! One file, `DIR/templates.json`, written whole (to a temporary file,
//! flushed to disk, then renamed over the old one and the directory
//! flushed: a crash at any point leaves the previous file or the new one,
//! never a mix): every template of
//! every exporter as it came on the wire (exporter, domain, template id,
//! kind, v9 or IPFIX, scope count, field specifiers), compiled again when
//! loaded, exactly as a template from the wire is. What options *records*
//! taught (sampling intervals, systemInitTimeMilliseconds) is not saved: an
//! exporter resends those with its templates.
//!
//! **Saved while running, not only at a clean stop** ([`Board`]): a
//! collector killed without a chance to save (SIGKILL, OOM, power) must not
//! lose the templates it learnt. Each worker publishes its templates on the
//! board when its cache changed ([`TemplateCache::generation`]), at most
//! once per [`SAVE_EVERY`], from its housekeeping (never per record); a
//! saver thread writes the board's union to the file when it changed, at
//! most once per [`SAVE_EVERY`]. A template learnt is on disk within about
//! two [`SAVE_EVERY`]; an exporter's periodic resend of the same template
//! changes nothing and writes nothing.
//!
//! Loading is hostile-input safe: a file over [`MAX_STATE_BYTES`] is refused
//! unread (`too_large`), a file that is not the JSON this module writes
//! (`malformed`) or of another format version (`bad_version`) is refused
//! whole, and each template the wire decoder would refuse (reserved id, no
//! fields, too many, a bad scope count, zero-length records) or that the
//! caps leave no room for is refused alone (`bad_template`, `cache_full`).
//! Every refusal is counted in [`LoadReport`] and logged by the caller;
//! nothing panics, and what is loaded is bounded by the decoder's caps.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::wire::template::{FieldSpec, Limits, Plan, TemplateCache, TemplateKind};

/// The file in the state directory.
pub const STATE_FILE: &str = "templates.json";
/// The largest state file read (65536 templates of 256 fields fit well below).
pub const MAX_STATE_BYTES: u64 = 64 << 20;
/// Longest a worker's template change waits to be published, and shortest
/// time between two saves while running.
pub const SAVE_EVERY: Duration = Duration::from_secs(1);
const FORMAT: &str = "nfstitch-templates";
const VERSION: u32 = 1;

/// Reasons a state file or a template in it is refused.
pub const STATE_REJECT_REASONS: [&str; 6] =
    ["unreadable", "too_large", "malformed", "bad_version", "bad_template", "cache_full"];

#[derive(Debug, Serialize, Deserialize)]
struct File {
    format: String,
    version: u32,
    templates: Vec<Saved>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Saved {
    exporter: IpAddr,
    domain: u32,
    template_id: u16,
    options: bool,
    v9: bool,
    scopes: usize,
    /// (enterprise number, element id, length) per field.
    fields: Vec<(u32, u16, u16)>,
}

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Templates taken into the cache.
    pub loaded: u64,
    /// Refusals by [`STATE_REJECT_REASONS`] name.
    pub rejected: BTreeMap<&'static str, u64>,
    /// The first refusal, for the log.
    pub first_error: Option<String>,
}

impl LoadReport {
    fn refuse(&mut self, reason: &'static str, why: String) {
        *self.rejected.entry(reason).or_default() += 1;
        self.first_error.get_or_insert(why);
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// The state file of `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(STATE_FILE)
}

/// Save every template of `caches` (later caches' copies replace earlier
/// ones of the same key) to `dir`, creating it. Returns how many were saved.
/// Nothing is written when there is nothing to save and no file yet.
pub fn save(dir: &Path, caches: &[&TemplateCache]) -> io::Result<usize> {
    let mut all: BTreeMap<(IpAddr, u32, u16), Saved> = BTreeMap::new();
    for c in caches {
        all.extend(entries(c).into_iter().map(|t| ((t.exporter, t.domain, t.template_id), t)));
    }
    write(dir, all)
}

/// Every template of `cache` as saved.
fn entries(cache: &TemplateCache) -> Vec<Saved> {
    let mut v = Vec::with_capacity(cache.len());
    for (exporter, domain, template_id, plan) in cache.templates() {
        let (specs, scopes, v9) = plan.source();
        let fields = specs.iter().map(|f| (f.pen, f.id, f.len)).collect();
        let options = plan.kind() == TemplateKind::Options;
        v.push(Saved { exporter, domain, template_id, options, v9, scopes, fields });
    }
    v
}

/// Write `all` as the state file of `dir`, durably and atomically.
fn write(dir: &Path, all: BTreeMap<(IpAddr, u32, u16), Saved>) -> io::Result<usize> {
    let file = path(dir);
    if all.is_empty() && !file.exists() {
        return Ok(0);
    }
    std::fs::create_dir_all(dir)?;
    let n = all.len();
    let body =
        File { format: FORMAT.into(), version: VERSION, templates: all.into_values().collect() };
    let text = serde_json::to_string(&body).map_err(io::Error::other)?;
    let tmp = dir.join(format!("{STATE_FILE}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?; // the bytes are on disk before the name points at them
    drop(f);
    std::fs::rename(&tmp, &file)?;
    // The rename itself is on disk once the directory is flushed (where
    // the platform lets a directory be opened for it).
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(n)
}

/// Where the workers of a running collector publish their templates for
/// the saver (see the module doc): one slot per worker, and whether any
/// changed since the last save.
#[derive(Debug)]
pub struct Board {
    slots: Mutex<Vec<Vec<Saved>>>,
    changed: AtomicBool,
    /// Files written while running, and failed attempts.
    saves: AtomicU64,
    failures: AtomicU64,
}

impl Board {
    pub fn new(workers: usize) -> Self {
        Board {
            slots: Mutex::new(vec![Vec::new(); workers]),
            changed: AtomicBool::new(false),
            saves: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    /// Worker `slot`'s templates are now those of `cache`.
    pub fn publish(&self, slot: usize, cache: &TemplateCache) {
        let fresh = entries(cache);
        if let Ok(mut slots) = self.slots.lock() {
            if let Some(s) = slots.get_mut(slot) {
                *s = fresh;
                self.changed.store(true, Ordering::Release);
            }
        }
    }

    /// Write the union of the slots to `dir` if any changed since the last
    /// write (a failure is retried at the next call, and counted). `None`
    /// when nothing changed.
    pub fn save_if_changed(&self, dir: &Path) -> Option<io::Result<usize>> {
        if !self.changed.swap(false, Ordering::AcqRel) {
            return None;
        }
        let mut all = BTreeMap::new();
        if let Ok(slots) = self.slots.lock() {
            for t in slots.iter().flatten() {
                all.insert((t.exporter, t.domain, t.template_id), t.clone());
            }
        }
        let res = write(dir, all);
        match &res {
            Ok(_) => self.saves.fetch_add(1, Ordering::Relaxed),
            Err(_) => {
                self.changed.store(true, Ordering::Release);
                self.failures.fetch_add(1, Ordering::Relaxed)
            }
        };
        Some(res)
    }

    /// (files written while running, failed attempts).
    pub fn saves(&self) -> (u64, u64) {
        (self.saves.load(Ordering::Relaxed), self.failures.load(Ordering::Relaxed))
    }
}

/// A worker's side of the [`Board`]: publishes its cache when it changed,
/// at most once per [`SAVE_EVERY`].
#[derive(Debug)]
pub struct Publisher {
    board: std::sync::Arc<Board>,
    slot: usize,
    /// The cache generation last published, and when (ns).
    generation: u64,
    at: Option<u64>,
}

impl Publisher {
    pub fn new(board: std::sync::Arc<Board>, slot: usize) -> Self {
        Publisher { board, slot, generation: 0, at: None }
    }

    /// Housekeeping at `now` (ns): publish `cache` if it changed and the
    /// last publication is [`SAVE_EVERY`] old. Cheap when nothing changed.
    #[inline]
    pub fn tick(&mut self, now: u64, cache: &TemplateCache) {
        if cache.generation() == self.generation {
            return;
        }
        let every = SAVE_EVERY.as_nanos() as u64;
        if self.at.is_some_and(|t| now.saturating_sub(t) < every) {
            return;
        }
        self.board.publish(self.slot, cache);
        self.generation = cache.generation();
        self.at = Some(now);
    }
}

/// Load `dir`'s state file into `cache`. A missing file is no error (a
/// first start). Never panics; every refusal is in the report.
pub fn load(dir: &Path, cache: &mut TemplateCache) -> LoadReport {
    let mut r = LoadReport::default();
    let file = path(dir);
    let text = match std::fs::metadata(&file) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return r,
        Err(e) => {
            r.refuse("unreadable", format!("{}: {e}", file.display()));
            return r;
        }
        Ok(m) if m.len() > MAX_STATE_BYTES => {
            let why = format!("{}: {} bytes, above {MAX_STATE_BYTES}", file.display(), m.len());
            r.refuse("too_large", why);
            return r;
        }
        Ok(_) => match std::fs::read(&file) {
            Ok(t) => t,
            Err(e) => {
                r.refuse("unreadable", format!("{}: {e}", file.display()));
                return r;
            }
        },
    };
    load_bytes(&text, cache, &mut r);
    r
}

/// [`load`] from the file's bytes.
pub fn load_bytes(text: &[u8], cache: &mut TemplateCache, r: &mut LoadReport) {
    let f: File = match serde_json::from_slice(text) {
        Ok(f) => f,
        Err(e) => return r.refuse("malformed", format!("not a template state file: {e}")),
    };
    if f.format != FORMAT || f.version != VERSION {
        let why =
            format!("format {:?} version {}, expected {FORMAT:?} {VERSION}", f.format, f.version);
        return r.refuse("bad_version", why);
    }
    let limits: Limits = *cache.limits();
    for t in f.templates {
        let n = t.fields.len();
        let kind = if t.options { TemplateKind::Options } else { TemplateKind::Data };
        let bad = t.template_id < 256
            || n == 0
            || n > limits.max_fields
            || (t.options && (t.scopes == 0 || t.scopes > n))
            || (!t.options && t.scopes != 0);
        if bad {
            let why = format!("template {} of {}: not a valid template", t.template_id, t.exporter);
            r.refuse("bad_template", why);
            continue;
        }
        let specs: Vec<FieldSpec> =
            t.fields.iter().map(|&(pen, id, len)| FieldSpec { pen, id, len }).collect();
        let plan = Plan::compile(kind, &specs, t.scopes, t.v9);
        if plan.min_len() == 0 {
            r.refuse("bad_template", format!("template {}: zero-length records", t.template_id));
            continue;
        }
        match cache.restore(t.exporter.to_canonical(), t.domain, t.template_id, plan) {
            Ok(()) => r.loaded += 1,
            Err(e) => r.refuse("cache_full", format!("template {}: {e}", t.template_id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::template::Decoder;

    fn v9_template() -> Vec<u8> {
        // v9 header (source id 1), one template 256: IPv4 src (8/4), packets (2/4).
        let mut b = vec![0, 9, 0, 1, 0, 0, 0, 1, 0x55, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1];
        b.extend_from_slice(&[0, 0, 0, 16, 1, 0, 0, 2, 0, 8, 0, 4, 0, 2, 0, 4]);
        b
    }

    /// A resend of a held template changes nothing (no save); a new one or a
    /// change does; the board saves the union of its workers, only when changed.
    #[test]
    fn the_board_saves_what_changed_and_only_then() {
        let dir = std::env::temp_dir().join(format!("nfstitch-board-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ex: IpAddr = "192.0.2.1".parse().unwrap();
        let mut d = Decoder::default();
        let g0 = d.cache().generation();
        d.decode(ex, &v9_template(), &mut |_| {}).unwrap();
        let g1 = d.cache().generation();
        assert!(g1 > g0);
        d.decode(ex, &v9_template(), &mut |_| {}).unwrap();
        assert_eq!(d.cache().generation(), g1, "a resend is no change");
        let board = std::sync::Arc::new(Board::new(2));
        let mut p0 = Publisher::new(std::sync::Arc::clone(&board), 0);
        let mut p1 = Publisher::new(std::sync::Arc::clone(&board), 1);
        assert!(board.save_if_changed(&dir).is_none(), "nothing published yet");
        p0.tick(1, d.cache());
        let mut other = Decoder::default();
        let mut t = v9_template();
        t[20 + 4..20 + 6].copy_from_slice(&300u16.to_be_bytes()); // template 300
        other.decode(ex, &t, &mut |_| {}).unwrap();
        p1.tick(1, other.cache());
        assert_eq!(board.save_if_changed(&dir).unwrap().unwrap(), 2);
        assert!(board.save_if_changed(&dir).is_none(), "saved: nothing changed since");
        p0.tick(2, d.cache());
        assert!(board.save_if_changed(&dir).is_none(), "same generation: not published");
        let mut fresh = Decoder::default();
        assert_eq!(load(&dir, fresh.cache_mut()).loaded, 2);
        assert!(fresh.cache().get(ex, 1, 300).is_some());
        // Debounced: a change within SAVE_EVERY of the last publication waits.
        d.decode(ex, &t, &mut |_| {}).unwrap();
        p0.tick(3, d.cache());
        assert!(board.save_if_changed(&dir).is_none());
        p0.tick(3 + SAVE_EVERY.as_nanos() as u64, d.cache());
        assert_eq!(board.save_if_changed(&dir).unwrap().unwrap(), 2);
        assert_eq!(board.saves(), (2, 0));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn saved_templates_come_back_and_hostile_files_are_refused() {
        let dir = std::env::temp_dir().join(format!("nfstitch-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ex: IpAddr = "192.0.2.1".parse().unwrap();
        let mut d = Decoder::default();
        assert_eq!(save(&dir, &[d.cache()]).unwrap(), 0);
        assert!(!dir.exists(), "nothing to save: nothing written");
        d.decode(ex, &v9_template(), &mut |_| {}).unwrap();
        assert_eq!(save(&dir, &[d.cache()]).unwrap(), 1);
        let mut fresh = Decoder::default();
        let r = load(&dir, fresh.cache_mut());
        assert_eq!((r.loaded, r.rejected_total()), (1, 0));
        assert_eq!(fresh.cache().get(ex, 1, 256), d.cache().get(ex, 1, 256));

        let hostile: Vec<(&[u8], &str)> = vec![
            (b"", "malformed"),
            (b"\xff\xfe garbage", "malformed"),
            (b"{\"format\":\"nfstitch-templates\",\"version\":99,\"templates\":[]}", "bad_version"),
            (b"[1,2,3]", "malformed"),
        ];
        for (bytes, reason) in hostile {
            let mut r = LoadReport::default();
            load_bytes(bytes, Decoder::default().cache_mut(), &mut r);
            assert_eq!(r.rejected.get(reason), Some(&1), "{reason}: {r:?}");
        }
        let bad = br#"{"format":"nfstitch-templates","version":1,"templates":[
            {"exporter":"192.0.2.1","domain":0,"template_id":7,"options":false,"v9":true,"scopes":0,"fields":[[0,1,4]]},
            {"exporter":"192.0.2.1","domain":0,"template_id":300,"options":false,"v9":true,"scopes":0,"fields":[]},
            {"exporter":"192.0.2.1","domain":0,"template_id":301,"options":true,"v9":true,"scopes":5,"fields":[[0,1,4]]},
            {"exporter":"192.0.2.1","domain":0,"template_id":302,"options":false,"v9":true,"scopes":0,"fields":[[0,1,0]]},
            {"exporter":"192.0.2.1","domain":0,"template_id":303,"options":false,"v9":true,"scopes":0,"fields":[[0,1,4]]}]}"#;
        let mut r = LoadReport::default();
        let mut c = Decoder::default();
        load_bytes(bad, c.cache_mut(), &mut r);
        assert_eq!((r.loaded, r.rejected.get("bad_template")), (1, Some(&4)), "{r:?}");
        // Random bytes never panic.
        let mut x = 0x9e37_79b9_u32;
        for n in 0..300 {
            let bytes: Vec<u8> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            load_bytes(&bytes, Decoder::default().cache_mut(), &mut LoadReport::default());
        }
        let big = std::fs::File::create(path(&dir)).unwrap();
        big.set_len(MAX_STATE_BYTES + 1).unwrap(); // sparse: nothing written
        drop(big);
        let r = load(&dir, Decoder::default().cache_mut());
        assert_eq!(r.rejected.get("too_large"), Some(&1));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
