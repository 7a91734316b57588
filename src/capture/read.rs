//! Reading capture and raw files into [`Frame`]s.

use std::fs::File;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use anyhow::{bail, Context, Result};
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use pcap_parser::pcapng::Block;
use pcap_parser::{create_reader, Linktype, PcapBlockOwned, PcapError};

use crate::wire::{HEADER_LEN, RECORD_LEN};

/// One UDP payload (or raw datagram) with where and when it came from.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Capture timestamp (ns since the epoch); `None` for raw files and hex text.
    pub ts_ns: Option<u64>,
    /// IP source address: the exporter. `0.0.0.0` for raw files.
    pub src: IpAddr,
    pub payload: &'a [u8],
}

/// Why a frame yielded no payload.
pub const SKIP_REASONS: [&str; 5] =
    ["not_udp", "port_filtered", "ip_fragment", "malformed_frame", "unsupported_linktype"];

/// Frames skipped, by [`SKIP_REASONS`] index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SkipCounters {
    pub frames: u64,
    pub skipped: [u64; 5],
}

const NOT_UDP: usize = 0;
const PORT_FILTERED: usize = 1;
const FRAGMENT: usize = 2;
const MALFORMED: usize = 3;
const LINKTYPE: usize = 4;

const UNSPECIFIED: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// Read one file, calling `each` for every UDP payload (pcap/pcapng/hex) or
/// raw datagram (raw v5 files). `port` keeps only UDP packets to that
/// destination port. Unreadable files and corrupt capture framing are errors;
/// frames that are not UDP are counted in `skips`.
pub fn read_path(
    path: &Path,
    port: Option<u16>,
    skips: &mut SkipCounters,
    each: impl FnMut(Frame<'_>),
) -> Result<()> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .with_context(|| format!("cannot read {}", path.display()))?;
    read_bytes(&bytes, port, skips, each)
        .with_context(|| format!("bad capture file {}", path.display()))
}

/// [`read_path`] over bytes already in memory (any bytes: never panics).
pub fn read_bytes(
    bytes: &[u8],
    port: Option<u16>,
    skips: &mut SkipCounters,
    mut each: impl FnMut(Frame<'_>),
) -> Result<()> {
    let magic = bytes.get(..4).map(|m| u32::from_le_bytes([m[0], m[1], m[2], m[3]]));
    match magic {
        Some(0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 | 0x0a0d_0d0a) => {
            read_capture(bytes, port, skips, &mut each)
        }
        _ => {
            if let Some(frame) = hex_frame(bytes) {
                skips.frames += 1;
                link_frame(Linktype::ETHERNET, &frame, None, port, skips, &mut each);
            } else {
                raw_datagrams(bytes, skips, &mut each);
            }
            Ok(())
        }
    }
}

/// Split a stream of concatenated raw v5 datagrams, framed by their counts.
/// A header that cannot frame (too short, bad count, other version) makes the
/// rest of the stream one datagram, which the decoder then rejects.
fn raw_datagrams(bytes: &[u8], skips: &mut SkipCounters, each: &mut impl FnMut(Frame<'_>)) {
    let mut rest = bytes;
    while !rest.is_empty() {
        skips.frames += 1;
        let framed = (rest.len() >= HEADER_LEN && rest[0] == 0 && rest[1] == 5)
            .then(|| u16::from_be_bytes([rest[2], rest[3]]) as usize)
            .filter(|&c| (1..=30).contains(&c))
            .map(|c| HEADER_LEN + RECORD_LEN * c)
            .filter(|&n| n <= rest.len());
        let n = framed.unwrap_or(rest.len());
        each(Frame { ts_ns: None, src: UNSPECIFIED, payload: &rest[..n] });
        rest = &rest[n..];
    }
}

/// Hex text of one frame (e.g. Wireshark's "copy as hex stream").
fn hex_frame(bytes: &[u8]) -> Option<Vec<u8>> {
    let text: Vec<u8> = bytes.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    if text.len() < 2 * 14 || text.len() % 2 != 0 || !text.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let nib = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
    Some(text.chunks_exact(2).map(|p| nib(p[0]) << 4 | nib(p[1])).collect())
}

/// The length of the leading run of structurally sound pcapng blocks: each
/// block's total length at least 12, a multiple of 4, inside the input, and
/// repeated at its end. pcap-parser trusts these lengths (a block shorter
/// than its header underflows an integer in it), so it only ever sees this
/// prefix; anything after it is counted as one malformed frame.
fn pcapng_sound_prefix(b: &[u8]) -> usize {
    let mut off = 0;
    let mut little = true;
    while off + 12 <= b.len() {
        let word = |at: usize, little: bool| {
            let w = [b[at], b[at + 1], b[at + 2], b[at + 3]];
            if little {
                u32::from_le_bytes(w)
            } else {
                u32::from_be_bytes(w)
            }
        };
        if word(off, true) == 0x0a0d_0d0a {
            // Section header: its byte-order magic sets the endianness.
            little = match word(off + 8, true) {
                0x1a2b_3c4d => true,
                0x4d3c_2b1a => false,
                _ => break,
            };
        }
        let len = word(off + 4, little) as usize;
        if len < 12
            || len % 4 != 0
            || len > b.len() - off
            || word(off + len - 4, little) as usize != len
        {
            break;
        }
        off += len;
    }
    off
}

fn read_capture(
    bytes: &[u8],
    port: Option<u16>,
    skips: &mut SkipCounters,
    each: &mut impl FnMut(Frame<'_>),
) -> Result<()> {
    let bytes = if bytes.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
        let sound = pcapng_sound_prefix(bytes);
        if sound < bytes.len() {
            skips.frames += 1;
            skips.skipped[MALFORMED] += 1;
        }
        if sound == 0 {
            bail!("not a readable pcapng file (broken section header)");
        }
        &bytes[..sound]
    } else {
        bytes
    };
    // The whole file is in memory: a buffer the size of the file (up to 1 MiB,
    // enough for any block) avoids zero-filling 1 MiB for small inputs.
    let capacity = (bytes.len() + 4096).min(1 << 20);
    let mut reader = create_reader(capacity, bytes).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut legacy: Option<(Linktype, u64)> = None; // linktype, ns per fraction unit
    let mut interfaces: Vec<(Linktype, u64, i64)> = Vec::new(); // linktype, units/s, offset s
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        let unit = if h.is_nanosecond_precision() { 1 } else { 1000 };
                        legacy = Some((h.network, unit));
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let (lt, unit) = legacy.unwrap_or((Linktype::ETHERNET, 1000));
                        let ts = b.ts_sec as u64 * 1_000_000_000 + b.ts_usec as u64 * unit;
                        skips.frames += 1;
                        link_frame(lt, b.data, Some(ts), port, skips, each);
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => interfaces.clear(),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        let res = idb.ts_resolution().unwrap_or(1_000_000);
                        interfaces.push((idb.linktype, res, idb.ts_offset()));
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        skips.frames += 1;
                        let Some(&(lt, res, off)) = interfaces.get(epb.if_id as usize) else {
                            skips.skipped[MALFORMED] += 1;
                            reader.consume(offset);
                            continue;
                        };
                        let units = (epb.ts_high as u64) << 32 | epb.ts_low as u64;
                        let ns = (units as u128 * 1_000_000_000 / res as u128) as i128
                            + off as i128 * 1_000_000_000;
                        let ts = ns.clamp(0, u64::MAX as i128) as u64;
                        link_frame(lt, epb.data, Some(ts), port, skips, each);
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        skips.frames += 1;
                        let lt = interfaces.first().map_or(Linktype::ETHERNET, |i| i.0);
                        link_frame(lt, spb.data, None, port, skips, each);
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                reader.consume(offset);
            }
            Err(PcapError::Eof) => return Ok(()),
            Err(PcapError::Incomplete(_)) => {
                if reader.refill().is_err() {
                    bail!("capture framing broken");
                }
            }
            // A capture cut short (a killed tcpdump): keep what was read, count the cut frame.
            Err(PcapError::UnexpectedEof) => {
                skips.frames += 1;
                skips.skipped[MALFORMED] += 1;
                return Ok(());
            }
            Err(e) => bail!("{e:?}"),
        }
    }
}

/// Strip the link layer and hand the UDP payload on.
fn link_frame(
    lt: Linktype,
    data: &[u8],
    ts_ns: Option<u64>,
    port: Option<u16>,
    skips: &mut SkipCounters,
    each: &mut impl FnMut(Frame<'_>),
) {
    let sliced = match lt {
        Linktype::ETHERNET => SlicedPacket::from_ethernet(data),
        Linktype::LINUX_SLL => SlicedPacket::from_linux_sll(data),
        Linktype::RAW | Linktype::IPV4 | Linktype::IPV6 | Linktype(12) | Linktype(14) => {
            SlicedPacket::from_ip(data)
        }
        Linktype::LINUX_SLL2 => match data.get(20..) {
            Some(ip) => SlicedPacket::from_ip(ip),
            None => {
                skips.skipped[MALFORMED] += 1;
                return;
            }
        },
        // BSD loopback: a 4-byte address family, then IP.
        Linktype::NULL | Linktype::LOOP => match data.get(4..) {
            Some(ip) => SlicedPacket::from_ip(ip),
            None => {
                skips.skipped[MALFORMED] += 1;
                return;
            }
        },
        _ => {
            skips.skipped[LINKTYPE] += 1;
            return;
        }
    };
    let Ok(p) = sliced else {
        skips.skipped[MALFORMED] += 1;
        return;
    };
    let (src, fragmenting) = match &p.net {
        Some(NetSlice::Ipv4(ip)) => {
            (IpAddr::V4(ip.header().source_addr()), ip.payload().fragmented)
        }
        Some(NetSlice::Ipv6(ip)) => {
            (IpAddr::V6(ip.header().source_addr()), ip.payload().fragmented)
        }
        _ => {
            skips.skipped[NOT_UDP] += 1;
            return;
        }
    };
    if fragmenting {
        skips.skipped[FRAGMENT] += 1;
        return;
    }
    match &p.transport {
        Some(TransportSlice::Udp(udp)) => {
            if port.is_some_and(|want| udp.destination_port() != want) {
                skips.skipped[PORT_FILTERED] += 1;
                return;
            }
            each(Frame { ts_ns, src, payload: udp.payload() });
        }
        _ => skips.skipped[NOT_UDP] += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(kind: u32, body: &[u8]) -> Vec<u8> {
        let len = (12 + body.len()).div_ceil(4) * 4;
        let mut b = Vec::new();
        b.extend_from_slice(&kind.to_le_bytes());
        b.extend_from_slice(&(len as u32).to_le_bytes());
        b.extend_from_slice(body);
        b.resize(len - 4, 0);
        b.extend_from_slice(&(len as u32).to_le_bytes());
        b
    }

    /// SHB + IDB (nanosecond resolution) + one EPB holding a UDP datagram.
    fn pcapng(payload: &[u8], ts_ns: u64) -> Vec<u8> {
        let mut shb = Vec::new();
        shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        let mut idb = Vec::new();
        idb.extend_from_slice(&1u16.to_le_bytes()); // Ethernet
        idb.extend_from_slice(&0u16.to_le_bytes());
        idb.extend_from_slice(&65535u32.to_le_bytes());
        idb.extend_from_slice(&[9, 0, 1, 0, 9, 0, 0, 0]); // if_tsresol = 9 (ns)
        idb.extend_from_slice(&[0, 0, 0, 0]); // opt_endofopt
        let mut frame = Vec::new();
        etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([192, 0, 2, 9], [192, 0, 2, 1], 64)
            .udp(5000, 2055)
            .write(&mut frame, payload)
            .unwrap();
        let mut epb = Vec::new();
        epb.extend_from_slice(&0u32.to_le_bytes());
        epb.extend_from_slice(&((ts_ns >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(ts_ns as u32).to_le_bytes());
        epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        epb.extend_from_slice(&frame);
        epb.resize(epb.len().div_ceil(4) * 4, 0);
        [block(0x0a0d_0d0a, &shb), block(1, &idb), block(6, &epb)].concat()
    }

    #[test]
    fn pcapng_frames_with_nanosecond_timestamps() {
        let ts = 1_700_000_000_123_456_789;
        let bytes = pcapng(b"hello v5", ts);
        let mut skips = SkipCounters::default();
        let mut got = Vec::new();
        read_bytes(&bytes, Some(2055), &mut skips, |f| {
            got.push((f.ts_ns, f.src, f.payload.to_vec()))
        })
        .unwrap();
        assert_eq!(got, [(Some(ts), "192.0.2.9".parse().unwrap(), b"hello v5".to_vec())]);
        assert_eq!(skips.frames, 1);
        // A cut-off trailing block is one malformed frame; what came before is kept.
        let mut cut = bytes.clone();
        cut.extend_from_slice(&bytes[bytes.len() - 40..bytes.len() - 8]);
        let mut skips = SkipCounters::default();
        let mut n = 0;
        read_bytes(&cut, None, &mut skips, |_| n += 1).unwrap();
        assert_eq!((n, skips.skipped[MALFORMED]), (1, 1));
    }

    #[test]
    fn pcapng_block_shorter_than_its_header_is_rejected_not_a_panic() {
        // Found by cargo fuzz (replay): a section header whose trailing length
        // disagrees, then a block claiming 8 bytes; pcap-parser 0.17 underflows on it.
        let crash = [
            0x0a, 0x0d, 0x0d, 0x0a, 0x1c, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 0, 0, 0x20, 0x2b, 0, 0,
            1, 0, 0, 0, 0xff, 0xff, 0xc0, 0x47, 2, 1, 1, 0, 0, 0x80, 0x0a, 0, 0, 0, 0x2e, 0, 0xdf,
            0x13, 0, 0, 0, 0,
        ];
        let mut skips = SkipCounters::default();
        assert!(read_bytes(&crash, None, &mut skips, |_| {}).is_err());
        let mut short = pcapng(b"x", 1);
        short.extend_from_slice(&block(0x8000_0001, &[])[..8]); // claims 12, holds 8
        short.extend_from_slice(&[8, 0, 0, 0]);
        let mut n = 0;
        read_bytes(&short, None, &mut skips, |_| n += 1).unwrap();
        assert_eq!(n, 1);
    }
}
