//! Inputs for replay: pcap and pcapng captures of exports, raw v5 datagram
//! files (one or many concatenated datagrams), and hex text of one frame.
//!
//! Owns: file format detection, link layers (Ethernet with 802.1Q/802.1ad
//! tags, Linux cooked v1/v2, raw IPv4/IPv6, BSD loopback), IP/UDP extraction,
//! and the count of every frame that did not yield a UDP payload, by reason.
//! A file whose framing breaks part-way is read up to the break, which is
//! returned as a [`Damage`] (offset and cause) for the caller to report.
//! Frames are handed to a callback with the capture timestamp; nothing here
//! decodes NetFlow.

mod read;
mod write;

pub use read::{read_bytes, read_path, Damage, Frame, SkipCounters, SKIP_REASONS};
pub use write::PcapWriter;
