//! v9/IPFIX templates saved across restarts (`--state-dir`): the file
//! format, the save, and a load that takes nothing on trust.
//!
//! One file, `DIR/templates.json`, written whole (to a temporary file, then
//! renamed: a crash mid-write leaves the previous file): every template of
//! every exporter as it came on the wire (exporter, domain, template id,
//! kind, v9 or IPFIX, scope count, field specifiers), compiled again when
//! loaded, exactly as a template from the wire is. What options *records*
//! taught (sampling intervals, systemInitTimeMilliseconds) is not saved: an
//! exporter resends those with its templates.
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
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::wire::template::{FieldSpec, Limits, Plan, TemplateCache, TemplateKind};

/// The file in the state directory.
pub const STATE_FILE: &str = "templates.json";
/// The largest state file read (65536 templates of 256 fields fit well below).
pub const MAX_STATE_BYTES: u64 = 64 << 20;
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

#[derive(Debug, Serialize, Deserialize)]
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
        for (exporter, domain, template_id, plan) in c.templates() {
            let (specs, scopes, v9) = plan.source();
            let fields = specs.iter().map(|f| (f.pen, f.id, f.len)).collect();
            let options = plan.kind() == TemplateKind::Options;
            let saved = Saved { exporter, domain, template_id, options, v9, scopes, fields };
            all.insert((exporter, domain, template_id), saved);
        }
    }
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
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &file)?;
    Ok(n)
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
