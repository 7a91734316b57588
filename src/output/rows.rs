//! The row schemas. Field names and order here are the documented output
//! contract: add fields at the end, never rename.

use std::net::{IpAddr, Ipv4Addr};

use super::{Ty, Visitor};
use crate::flow::{exporter_end_reason_name, Flow, FlowRecord};
use crate::pair::{zeek_proto, Conn};
use crate::wire::template::{MessageHeader, Version};
use crate::wire::{Header, RecordFields, SamplingMode};

/// A kind of output row.
pub trait Row {
    /// The `type` value (JSON, CSV first column).
    const KIND: &'static str;
    /// The Zeek `#path`.
    const ZEEK_PATH: &'static str;
    fn visit<V: Visitor>(&self, v: &mut V);
    /// The fields of the Zeek log: [`Row::visit`]'s unless the kind has a
    /// Zeek layout of its own (flows append `ts`; connections follow conn.log).
    fn visit_zeek<V: Visitor>(&self, v: &mut V) {
        self.visit(v);
    }
}

fn v4(a: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn sampling<V: Visitor>(v: &mut V, raw: u16) {
    let h = Header {
        version: 5,
        count: 0,
        sys_uptime: 0,
        unix_secs: 0,
        unix_nsecs: 0,
        flow_sequence: 0,
        engine_type: 0,
        engine_id: 0,
        sampling: raw,
    };
    let mode: SamplingMode = h.sampling_mode();
    v.str("sampling_mode", mode.as_str());
    v.num("sampling_interval", Ty::Count, h.sampling_interval() as u64);
}

/// A restitched flow.
#[derive(Debug)]
pub struct FlowRow<'a>(pub &'a Flow);

impl Row for FlowRow<'_> {
    const KIND: &'static str = "flow";
    const ZEEK_PATH: &'static str = "nfstitch_flows";
    fn visit<V: Visitor>(&self, v: &mut V) {
        let f = self.0;
        let r = &f.rec;
        v.addr("exporter", r.exporter);
        v.num("engine_type", Ty::Count, r.engine_type as u64);
        v.num("engine_id", Ty::Count, r.engine_id as u64);
        v.addr("src_addr", r.src_addr);
        v.num("src_port", Ty::Port, r.src_port as u64);
        v.addr("dst_addr", r.dst_addr);
        v.num("dst_port", Ty::Port, r.dst_port as u64);
        v.num("proto", Ty::Count, r.proto as u64);
        v.num("records", Ty::Count, f.records);
        v.num("packets", Ty::Count, f.packets);
        v.num("octets", Ty::Count, f.octets);
        v.num("tcp_flags", Ty::Count, f.tcp_flags as u64);
        v.time("first", f.first_ns);
        v.time("last", f.last_ns);
        v.str("end_reason", f.end_reason.as_str());
        v.time("start", f.start_ns);
        v.time("end", f.end_ns);
        v.num("input", Ty::Count, r.input as u64);
        v.num("output", Ty::Count, r.output as u64);
        v.addr("nexthop", r.nexthop);
        v.num("tos", Ty::Count, r.tos as u64);
        v.num("src_as", Ty::Count, r.src_as as u64);
        v.num("dst_as", Ty::Count, r.dst_as as u64);
        v.num("src_mask", Ty::Count, r.src_mask as u64);
        v.num("dst_mask", Ty::Count, r.dst_mask as u64);
        sampling(v, r.sampling);
        v.str("exporter_end_reason", exporter_end_reason_name(f.exporter_end_reason));
    }

    /// Zeek tools index a log by `ts`: the flow's `first`, appended so
    /// that no column moves.
    fn visit_zeek<V: Visitor>(&self, v: &mut V) {
        self.visit(v);
        v.time("ts", self.0.first_ns);
    }
}

/// The attributes of a record (a connection's: its originator's first record).
fn attributes<V: Visitor>(v: &mut V, r: &FlowRecord) {
    v.num("input", Ty::Count, r.input as u64);
    v.num("output", Ty::Count, r.output as u64);
    v.addr("nexthop", r.nexthop);
    v.num("tos", Ty::Count, r.tos as u64);
    v.num("src_as", Ty::Count, r.src_as as u64);
    v.num("dst_as", Ty::Count, r.dst_as as u64);
    v.num("src_mask", Ty::Count, r.src_mask as u64);
    v.num("dst_mask", Ty::Count, r.dst_mask as u64);
    sampling(v, r.sampling);
}

/// A connection (`--pair`): both directions of a flow pair.
#[derive(Debug)]
pub struct ConnRow<'a>(pub &'a Conn);

impl Row for ConnRow<'_> {
    const KIND: &'static str = "conn";
    const ZEEK_PATH: &'static str = "conn";
    fn visit<V: Visitor>(&self, v: &mut V) {
        let c = self.0;
        let r = &c.orig.rec;
        let (oa, op, ra, rp) = c.endpoints();
        v.addr("exporter", r.exporter);
        v.addr("orig_addr", oa);
        v.num("orig_port", Ty::Port, op as u64);
        v.addr("resp_addr", ra);
        v.num("resp_port", Ty::Port, rp as u64);
        v.num("proto", Ty::Count, r.proto as u64);
        v.num("records", Ty::Count, c.records());
        v.num("orig_packets", Ty::Count, c.orig.packets);
        v.num("orig_octets", Ty::Count, c.orig.octets);
        v.num("resp_packets", Ty::Count, c.resp_packets());
        v.num("resp_octets", Ty::Count, c.resp_octets());
        v.num("orig_flags", Ty::Count, c.orig.tcp_flags as u64);
        v.num("resp_flags", Ty::Count, c.resp_flags() as u64);
        v.str("conn_state", c.state().as_str());
        v.str("history", c.history().as_str());
        v.time("first", c.first_ns());
        v.time("last", c.last_ns());
        v.str("end_reason", c.end_reason.as_str());
        attributes(v, r);
    }

    /// conn.log's own columns, names and types, in its order (what flows
    /// cannot tell is unset: `service`, `orig_bytes`/`resp_bytes` (NetFlow
    /// octets are IP bytes: `*_ip_bytes`), `local_*`, `missed_bytes`,
    /// `tunnel_parents`), then nfstitch's: `exporter`, `ip_proto`, and the
    /// rest of the `conn` row's fields. ICMP ports are type and code, as in
    /// Zeek.
    fn visit_zeek<V: Visitor>(&self, v: &mut V) {
        let c = self.0;
        let r = &c.orig.rec;
        let (oa, mut op, ra, mut rp) = c.endpoints();
        if r.proto == 1 || r.proto == 58 {
            (op, rp) = (rp >> 8, rp & 0xff);
        }
        let history = c.history();
        v.time("ts", c.first_ns());
        v.str("uid", c.uid().as_str());
        v.addr("id.orig_h", oa);
        v.num("id.orig_p", Ty::Port, op as u64);
        v.addr("id.resp_h", ra);
        v.num("id.resp_p", Ty::Port, rp as u64);
        v.opt_str("proto", Ty::Enum, Some(zeek_proto(r.proto)));
        v.opt_str("service", Ty::Str, None);
        v.interval("duration", c.last_ns().saturating_sub(c.first_ns()));
        v.unset("orig_bytes", Ty::Count);
        v.unset("resp_bytes", Ty::Count);
        v.str("conn_state", c.state().as_str());
        v.unset("local_orig", Ty::Bool);
        v.unset("local_resp", Ty::Bool);
        v.unset("missed_bytes", Ty::Count);
        v.opt_str("history", Ty::Str, Some(history.as_str()).filter(|h| !h.is_empty()));
        v.num("orig_pkts", Ty::Count, c.orig.packets);
        v.num("orig_ip_bytes", Ty::Count, c.orig.octets);
        v.num("resp_pkts", Ty::Count, c.resp_packets());
        v.num("resp_ip_bytes", Ty::Count, c.resp_octets());
        v.unset("tunnel_parents", Ty::SetStr);
        v.addr("exporter", r.exporter);
        v.num("ip_proto", Ty::Count, r.proto as u64);
        v.num("records", Ty::Count, c.records());
        v.num("orig_flags", Ty::Count, c.orig.tcp_flags as u64);
        v.num("resp_flags", Ty::Count, c.resp_flags() as u64);
        v.time("first", c.first_ns());
        v.time("last", c.last_ns());
        v.str("end_reason", c.end_reason.as_str());
        attributes(v, r);
    }
}

/// A datagram header as received (`--dump`).
#[derive(Debug)]
pub struct HeaderRow<'a> {
    /// Collector time the datagram arrived (ns).
    pub ts: u64,
    pub exporter: IpAddr,
    pub header: &'a Header,
}

impl Row for HeaderRow<'_> {
    const KIND: &'static str = "header";
    const ZEEK_PATH: &'static str = "nfstitch_headers";
    fn visit<V: Visitor>(&self, v: &mut V) {
        let h = self.header;
        v.time("ts", self.ts);
        v.addr("exporter", self.exporter);
        v.num("version", Ty::Count, h.version as u64);
        v.num("count", Ty::Count, h.count as u64);
        v.num("sys_uptime", Ty::Count, h.sys_uptime as u64);
        v.num("unix_secs", Ty::Count, h.unix_secs as u64);
        v.num("unix_nsecs", Ty::Count, h.unix_nsecs as u64);
        v.time("export", h.export_ns());
        v.num("flow_sequence", Ty::Count, h.flow_sequence as u64);
        v.num("engine_type", Ty::Count, h.engine_type as u64);
        v.num("engine_id", Ty::Count, h.engine_id as u64);
        sampling(v, h.sampling);
    }
}

/// A record as received (`--dump`), with its raw uptime times and their absolute values.
#[derive(Debug)]
pub struct RecordRow<'a> {
    pub ts: u64,
    pub exporter: IpAddr,
    pub header: &'a Header,
    /// Position in its datagram (0-based).
    pub index: u16,
    pub rec: &'a RecordFields,
}

impl Row for RecordRow<'_> {
    const KIND: &'static str = "record";
    const ZEEK_PATH: &'static str = "nfstitch_records";
    fn visit<V: Visitor>(&self, v: &mut V) {
        let h = self.header;
        let r = self.rec;
        v.time("ts", self.ts);
        v.addr("exporter", self.exporter);
        v.num("flow_sequence", Ty::Count, h.flow_sequence as u64);
        v.num("index", Ty::Count, self.index as u64);
        v.num("engine_type", Ty::Count, h.engine_type as u64);
        v.num("engine_id", Ty::Count, h.engine_id as u64);
        v.addr("src_addr", v4(r.src_addr));
        v.num("src_port", Ty::Port, r.src_port as u64);
        v.addr("dst_addr", v4(r.dst_addr));
        v.num("dst_port", Ty::Port, r.dst_port as u64);
        v.num("proto", Ty::Count, r.proto as u64);
        v.num("packets", Ty::Count, r.packets as u64);
        v.num("octets", Ty::Count, r.octets as u64);
        v.num("tcp_flags", Ty::Count, r.tcp_flags as u64);
        v.time("first", h.uptime_to_ns(r.first));
        v.time("last", h.uptime_to_ns(r.last));
        v.num("first_uptime", Ty::Count, r.first as u64);
        v.num("last_uptime", Ty::Count, r.last as u64);
        v.num("input", Ty::Count, r.input as u64);
        v.num("output", Ty::Count, r.output as u64);
        v.addr("nexthop", v4(r.nexthop));
        v.num("tos", Ty::Count, r.tos as u64);
        v.num("src_as", Ty::Count, r.src_as as u64);
        v.num("dst_as", Ty::Count, r.dst_as as u64);
        v.num("src_mask", Ty::Count, r.src_mask as u64);
        v.num("dst_mask", Ty::Count, r.dst_mask as u64);
    }
}

/// A v9 or IPFIX message header as received (`--dump`): the `header` row's
/// fields, filled as far as the format has them. `version` 9 or 10; `count`
/// the v9 header's (IPFIX: 0); `sys_uptime` v9's (IPFIX: 0); `unix_secs`
/// the export time (`unix_nsecs` 0); `flow_sequence` the sequence number
/// (v9: export packets, IPFIX: data records); `engine_type`/`engine_id`
/// bits 15-8 and 7-0 of the source id / observation domain; sampling none.
#[derive(Debug)]
pub struct TemplatedHeaderRow<'a> {
    pub ts: u64,
    pub exporter: IpAddr,
    pub header: &'a MessageHeader,
}

impl Row for TemplatedHeaderRow<'_> {
    const KIND: &'static str = "header";
    const ZEEK_PATH: &'static str = "nfstitch_headers";
    fn visit<V: Visitor>(&self, v: &mut V) {
        let h = self.header;
        v.time("ts", self.ts);
        v.addr("exporter", self.exporter);
        let version = if h.version == Version::V9 { 9 } else { 10 };
        v.num("version", Ty::Count, version);
        v.num("count", Ty::Count, h.count.unwrap_or(0) as u64);
        v.num("sys_uptime", Ty::Count, h.sys_uptime.unwrap_or(0) as u64);
        v.num("unix_secs", Ty::Count, h.export_secs as u64);
        v.num("unix_nsecs", Ty::Count, 0);
        v.time("export", h.export_ns());
        v.num("flow_sequence", Ty::Count, h.sequence as u64);
        v.num("engine_type", Ty::Count, (h.domain >> 8) as u8 as u64);
        v.num("engine_id", Ty::Count, h.domain as u8 as u64);
        sampling(v, 0);
    }
}

/// A v9 or IPFIX record as decoded (`--dump`): the `record` row's fields,
/// from the [`FlowRecord`] (addresses of either family); `first_uptime` and
/// `last_uptime` are 0 (templated times are absolute once decoded).
#[derive(Debug)]
pub struct TemplatedRecordRow<'a> {
    pub ts: u64,
    pub header: &'a MessageHeader,
    /// Position among the records its datagram handed on (0-based).
    pub index: u16,
    pub rec: &'a FlowRecord,
}

impl Row for TemplatedRecordRow<'_> {
    const KIND: &'static str = "record";
    const ZEEK_PATH: &'static str = "nfstitch_records";
    fn visit<V: Visitor>(&self, v: &mut V) {
        let r = self.rec;
        v.time("ts", self.ts);
        v.addr("exporter", r.exporter);
        v.num("flow_sequence", Ty::Count, self.header.sequence as u64);
        v.num("index", Ty::Count, self.index as u64);
        v.num("engine_type", Ty::Count, r.engine_type as u64);
        v.num("engine_id", Ty::Count, r.engine_id as u64);
        v.addr("src_addr", r.src_addr);
        v.num("src_port", Ty::Port, r.src_port as u64);
        v.addr("dst_addr", r.dst_addr);
        v.num("dst_port", Ty::Port, r.dst_port as u64);
        v.num("proto", Ty::Count, r.proto as u64);
        v.num("packets", Ty::Count, r.packets);
        v.num("octets", Ty::Count, r.octets);
        v.num("tcp_flags", Ty::Count, r.tcp_flags as u64);
        v.time("first", r.first_ns);
        v.time("last", r.last_ns);
        v.num("first_uptime", Ty::Count, 0);
        v.num("last_uptime", Ty::Count, 0);
        v.num("input", Ty::Count, r.input as u64);
        v.num("output", Ty::Count, r.output as u64);
        v.addr("nexthop", r.nexthop);
        v.num("tos", Ty::Count, r.tos as u64);
        v.num("src_as", Ty::Count, r.src_as as u64);
        v.num("dst_as", Ty::Count, r.dst_as as u64);
        v.num("src_mask", Ty::Count, r.src_mask as u64);
        v.num("dst_mask", Ty::Count, r.dst_mask as u64);
    }
}
