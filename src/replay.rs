//! `nfstitch replay`: captures and raw files through one shard, with the
//! capture timestamp as the clock.
//!
//! Clock: a frame's capture timestamp; for raw files (no timestamp) the
//! datagram's export time; clamped never to go backwards, continued across
//! files. Timers advance to a datagram's time before its records apply. End
//! of input flushes every remaining flow once (`shutdown`), sorted by first
//! then key.

use std::io;

use anyhow::{bail, Context, Result};

use crate::capture::{read_path, Frame, SkipCounters};
use crate::config::{Pipeline, Replay};
use crate::flow::{Flow, Shard};
use crate::ingest::{is_templated, Ingest};
use crate::output::{
    ConnRow, FlowRow, HeaderRow, Output, RecordRow, TemplatedHeaderRow, TemplatedRecordRow,
};
use crate::pair::{Conn, Pairer};
use crate::results::{finish_report, open_output, Existing};
use crate::stats::{DamagedCapture, Report, TemplateStateReport};
use crate::wire::template::MessageHeader;
use crate::wire::HEADER_LEN;

/// Export time of a raw datagram, for inputs without a capture timestamp
/// (v5, v9 and IPFIX).
fn export_ns(payload: &[u8]) -> Option<u64> {
    if is_templated(payload) {
        return MessageHeader::parse(payload).ok().map(|(h, _)| h.export_ns());
    }
    let h = payload.get(..HEADER_LEN)?;
    let secs = u32::from_be_bytes([h[8], h[9], h[10], h[11]]) as u64;
    let nsecs = u32::from_be_bytes([h[12], h[13], h[14], h[15]]) as u64;
    (h[0] == 0 && h[1] == 5).then_some(secs * 1_000_000_000 + nsecs)
}

fn write_flows(out: &mut Output, flows: &mut Vec<Flow>) -> io::Result<()> {
    for f in flows.drain(..) {
        out.write(&FlowRow(&f))?;
    }
    Ok(())
}

/// The flows the shard emitted, written as flows, or with `--pair` handed
/// to the pairing stage (its clock moved to `now`) and the connections it
/// completed written.
fn write_ended(
    out: &mut Output,
    shard: &Shard,
    pairer: Option<&mut Pairer>,
    now: u64,
    flows: &mut Vec<Flow>,
) -> io::Result<()> {
    let Some(p) = pairer else { return write_flows(out, flows) };
    let mut conns: Vec<Conn> = Vec::new();
    p.push(now, flows, |k| shard.contains(k), &mut conns);
    p.advance(now, |k| shard.contains(k), &mut conns);
    for c in &conns {
        out.write(&ConnRow(c))?;
    }
    Ok(())
}

/// Run a replay, writing flows (and the dump) to the configured output.
///
/// A damaged input (a file whose framing breaks part-way) does not stop the
/// replay: every flow read is written and the report printed, and then the
/// damage is the error, so the process exits non-zero.
pub fn run(cfg: &Replay) -> Result<Report> {
    let p = &cfg.pipeline;
    let mut out = open_output(p, Existing::Truncate)?;
    let report = replay_into(cfg, &mut out)?;
    out.close().context("writing output")?;
    out.flush().context("writing output")?;
    finish_report(p, &report)?;
    if let Some(damaged) = &report.damaged_captures {
        let list: Vec<String> = damaged.iter().map(|d| d.to_string()).collect();
        bail!(
            "damaged capture (the rest of the file skipped, counted in \
             frames_skipped.truncated_capture; every flow read before it was written): {}",
            list.join("; ")
        );
    }
    Ok(report)
}

/// The replay pipeline over frames from any source: one shard, the frame
/// timestamps as the clock.
#[derive(Debug)]
pub struct Replayer<'a> {
    p: &'a Pipeline,
    out: &'a mut Output,
    ingest: Ingest,
    shard: Shard,
    /// `--pair`: the pairing stage behind the shard.
    pairer: Option<Pairer>,
    flows: Vec<Flow>,
    now: u64,
    failed: Option<io::Error>,
    state: Option<TemplateStateReport>,
}

impl<'a> Replayer<'a> {
    pub fn new(p: &'a Pipeline, out: &'a mut Output) -> Self {
        let mut ingest =
            Ingest::new(p.lenient, p.scale_sampling).with_allow(p.allow.clone()).with_hold(p.hold);
        let state = p
            .state_dir
            .as_deref()
            .map(|dir| TemplateStateReport::load(dir, ingest.templated.decoder.cache_mut()));
        Replayer {
            p,
            out,
            state,
            ingest,
            shard: Shard::new(p.shard_config(1), 0),
            pairer: p.pair.then(|| Pairer::new(p.idle.as_nanos() as u64, p.max_flows)),
            flows: Vec::new(),
            now: 0,
            failed: None,
        }
    }

    /// One frame: advance the clock and timers, then decode and apply.
    pub fn feed(&mut self, frame: Frame<'_>) {
        if self.failed.is_some() {
            return;
        }
        let p = self.p;
        let ts = frame.ts_ns.or_else(|| export_ns(frame.payload)).unwrap_or(self.now);
        self.now = self.now.max(ts);
        let now = self.now;
        let out = &mut *self.out;
        // Zeek's #open/#close say the capture clock: the same output every run.
        out.set_clock(now);
        let mut res = Ok(());
        if p.stitch {
            self.shard.advance(now, &mut self.flows);
            res = write_ended(out, &self.shard, self.pairer.as_mut(), now, &mut self.flows);
        }
        let shard = &mut self.shard;
        let flows = &mut self.flows;
        if is_templated(frame.payload) {
            let mut prev: Option<MessageHeader> = None;
            let mut index = 0u16;
            let _ = self.ingest.templated(frame.src, now, frame.payload, &mut |h, fr, stitch| {
                if p.dump && res.is_ok() {
                    if prev != Some(*h) {
                        prev = Some(*h);
                        index = 0;
                        let exporter = fr.exporter;
                        res = out.write(&TemplatedHeaderRow { ts: now, exporter, header: h });
                    }
                    if res.is_ok() {
                        res = out.write(&TemplatedRecordRow { ts: now, header: h, index, rec: fr });
                    }
                    index = index.wrapping_add(1);
                }
                if p.stitch && stitch {
                    shard.apply(now, fr, flows);
                }
            });
        } else {
            self.feed_v5(now, frame.src, frame.payload, res);
            return;
        }
        if res.is_ok() {
            res = write_flows(out, &mut self.flows);
        }
        if let Err(e) = res {
            self.failed = Some(e);
        }
    }

    /// A v5 datagram (or anything that is not v9/IPFIX): decode and apply.
    fn feed_v5(
        &mut self,
        now: u64,
        src: std::net::IpAddr,
        payload: &[u8],
        mut res: io::Result<()>,
    ) {
        let p = self.p;
        let out = &mut *self.out;
        let shard = &mut self.shard;
        let flows = &mut self.flows;
        let _ = self.ingest.datagram(src, payload, |h, i, r, fr| {
            let exporter = fr.exporter; // canonical (IPv4-mapped sources as IPv4)
            if p.dump && res.is_ok() {
                if i == 0 {
                    res = out.write(&HeaderRow { ts: now, exporter, header: h });
                }
                if res.is_ok() {
                    let rec = r.fields();
                    res =
                        out.write(&RecordRow { ts: now, exporter, header: h, index: i, rec: &rec });
                }
            }
            if p.stitch {
                shard.apply(now, fr, flows);
            }
        });
        if res.is_ok() {
            res = write_ended(out, &self.shard, self.pairer.as_mut(), now, &mut self.flows);
        }
        if let Err(e) = res {
            self.failed = Some(e);
        }
    }

    /// An output error seen so far.
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.failed.take()
    }

    /// End of input: flush every flow once, return the report.
    pub fn finish(mut self, skips: &SkipCounters) -> io::Result<Report> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        self.shard.flush(self.now, &mut self.flows);
        let mut pair = None;
        match self.pairer.as_mut() {
            None => write_flows(self.out, &mut self.flows)?,
            Some(p) => {
                // Everything left, sorted together as the shard's flush is (D8).
                let mut conns = Vec::new();
                p.finish(&mut self.flows, &mut conns);
                conns.sort_by_key(Conn::order);
                for c in &conns {
                    self.out.write(&ConnRow(c))?;
                }
                pair = Some(*p.stats());
            }
        }
        // Held datagrams whose template never came: expired, counted.
        self.ingest.expire_held(u64::MAX);
        if let Some(st) = &mut self.state {
            st.save(&[self.ingest.templated.decoder.cache()]);
        }
        for (which, n) in self.ingest.overflow_totals().into_iter().enumerate() {
            if let (true, Some(note)) = (n > 0, self.ingest.overflow_note(which)) {
                eprintln!(
                    "nfstitch: warning: {n} datagrams kept out of per-exporter state ({note})"
                );
            }
        }
        let mut report = Report::new(
            &self.ingest.counters,
            &self.ingest.exporter_counters(),
            &self.ingest.seq,
            &self.ingest.overflow,
            self.shard.stats(),
            self.shard.len() as u64,
        )
        .with_templated(
            &self.ingest.templated.counters,
            self.ingest.templated.hold.sets(),
            &self.ingest.exporter_templated(),
        )
        .with_skips(skips)
        .with_pair(pair.as_ref());
        report.template_state = self.state.take();
        Ok(report)
    }
}

/// The replay itself, into any [`Output`]. A damaged file is read up to the
/// damage and the replay goes on with the next; the report lists the damage.
pub fn replay_into(cfg: &Replay, out: &mut Output) -> Result<Report> {
    let mut r = Replayer::new(&cfg.pipeline, out);
    let mut skips = SkipCounters::default();
    let mut damaged = Vec::new();
    for path in &cfg.files {
        let damage = read_path(path, cfg.port, &mut skips, |frame| r.feed(frame))?;
        if let Some(e) = r.take_error() {
            return Err(e).context("writing output");
        }
        if let Some(d) = damage {
            let file = path.display().to_string();
            damaged.push(DamagedCapture { file, offset: d.offset, error: d.what });
        }
    }
    let mut report = r.finish(&skips).context("writing output")?;
    report.damaged_captures = (!damaged.is_empty()).then_some(damaged);
    Ok(report)
}
