//! Reading capture and raw files into [`Frame`]s.

use std::fs::File;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use anyhow::{Context, Result};
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

/// Why a frame yielded no payload. `truncated_capture`: the rest of a file
/// whose framing broke (see [`Damage`]), counted as one frame.
pub const SKIP_REASONS: [&str; 6] = [
    "not_udp",
    "port_filtered",
    "ip_fragment",
    "malformed_frame",
    "unsupported_linktype",
    "truncated_capture",
];

/// Frames skipped, by [`SKIP_REASONS`] index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SkipCounters {
    pub frames: u64,
    pub skipped: [u64; 6],
}

/// Where a file's framing broke: a pcap record header whose length runs past
/// the end of the file (or past any buffer), a pcapng block whose lengths
/// disagree, a raw datagram cut short, a capture header that cannot be read.
/// Nothing after it can be framed, so the reader stops there: every frame
/// before it was handed on, and the rest of the file is counted as one
/// `truncated_capture` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Byte offset in the file of the record or block that could not be framed.
    pub offset: u64,
    /// What was wrong there.
    pub what: String,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.what)
    }
}

const NOT_UDP: usize = 0;
const PORT_FILTERED: usize = 1;
const FRAGMENT: usize = 2;
const MALFORMED: usize = 3;
const LINKTYPE: usize = 4;
const TRUNCATED: usize = 5;

const UNSPECIFIED: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// Read one file, calling `each` for every UDP payload (pcap/pcapng/hex) or
/// raw datagram (raw v5 files). `port` keeps only UDP packets to that
/// destination port. A file that cannot be read is an error; a file whose
/// framing breaks part-way is read up to the break and its [`Damage`]
/// returned; frames that are not UDP are counted in `skips`.
#[must_use = "a damaged file must be reported"]
pub fn read_path(
    path: &Path,
    port: Option<u16>,
    skips: &mut SkipCounters,
    each: impl FnMut(Frame<'_>),
) -> Result<Option<Damage>> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(read_bytes(&bytes, port, skips, each))
}

/// [`read_path`] over bytes already in memory (any bytes: never panics).
#[must_use = "a damaged file must be reported"]
pub fn read_bytes(
    bytes: &[u8],
    port: Option<u16>,
    skips: &mut SkipCounters,
    mut each: impl FnMut(Frame<'_>),
) -> Option<Damage> {
    let magic = bytes.get(..4).map(|m| u32::from_le_bytes([m[0], m[1], m[2], m[3]]));
    let damage = match magic {
        Some(0x0a0d_0d0a) => read_pcapng(bytes, port, skips, &mut each),
        Some(m @ (0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1)) => {
            let little = matches!(m, 0xa1b2_c3d4 | 0xa1b2_3c4d);
            read_capture(bytes, port, skips, &mut each).map(|(offset, what)| Damage {
                offset: offset as u64,
                what: pcap_record_damage(bytes, offset, little).unwrap_or(what),
            })
        }
        _ => {
            if let Some(frame) = hex_frame(bytes) {
                skips.frames += 1;
                link_frame(Linktype::ETHERNET, &frame, None, port, skips, &mut each);
                None
            } else {
                raw_datagrams(bytes, skips, &mut each)
            }
        }
    };
    if damage.is_some() {
        skips.frames += 1;
        skips.skipped[TRUNCATED] += 1;
    }
    damage
}

/// Split a stream of concatenated raw datagrams: v5 framed by their counts,
/// IPFIX by its header's length field (v9 has no length: a v9 datagram is the
/// rest of the file). A header that cannot frame (too short, bad count, an
/// IPFIX length below its 16-byte header, other version) makes the rest of
/// the stream one datagram, which the decoder then rejects. A header whose
/// count or length runs past the end of the file is a datagram cut short:
/// [`Damage`], not handed on.
fn raw_datagrams(
    bytes: &[u8],
    skips: &mut SkipCounters,
    each: &mut impl FnMut(Frame<'_>),
) -> Option<Damage> {
    let mut rest = bytes;
    while !rest.is_empty() {
        let count = (rest.len() >= HEADER_LEN && rest[0] == 0 && rest[1] == 5)
            .then(|| u16::from_be_bytes([rest[2], rest[3]]) as usize)
            .filter(|&c| (1..=30).contains(&c));
        // (length, v5 record count; None for an IPFIX message): the words
        // of the damage message are made only on the damage path.
        let framed = count.map(|c| (HEADER_LEN + RECORD_LEN * c, Some(c)));
        let framed = framed.or_else(|| ipfix_len(rest).map(|n| (n, None)));
        let n = match framed {
            Some((n, v5)) if n > rest.len() => {
                let what = match v5 {
                    Some(c) => format!("v5 datagram of {c} records"),
                    None => "IPFIX message".to_string(),
                };
                return Some(Damage {
                    offset: (bytes.len() - rest.len()) as u64,
                    what: format!(
                        "{what} ({n} bytes) cut short: {} bytes left in the file",
                        rest.len()
                    ),
                });
            }
            Some((n, _)) => n,
            None => rest.len(),
        };
        skips.frames += 1;
        each(Frame { ts_ns: None, src: UNSPECIFIED, payload: &rest[..n] });
        rest = &rest[n..];
    }
    None
}

/// The length of the IPFIX message at the start of `rest`: version 10 and a
/// length field of at least its 16-byte header.
fn ipfix_len(rest: &[u8]) -> Option<usize> {
    let h = rest.get(..4).filter(|h| h[0] == 0 && h[1] == 10)?;
    Some(u16::from_be_bytes([h[2], h[3]]) as usize).filter(|&n| n >= 16)
}

/// What is wrong with the pcap record header at `offset` (16 bytes: seconds,
/// fraction, caplen, origlen, in the file's byte order), when it is the
/// header itself that cannot frame.
fn pcap_record_damage(bytes: &[u8], offset: usize, little: bool) -> Option<String> {
    let left = bytes.len().saturating_sub(offset);
    let Some(h) = bytes.get(offset..offset + 16) else {
        return Some(format!("pcap record header cut short: {left} bytes left in the file"));
    };
    let w = [h[8], h[9], h[10], h[11]];
    let caplen = if little { u32::from_le_bytes(w) } else { u32::from_be_bytes(w) } as usize;
    (caplen > left - 16).then(|| {
        format!("pcap record header claims caplen {caplen} bytes, {} left in the file", left - 16)
    })
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

/// A pcapng file: its sound prefix through [`read_capture`]; a break after it
/// is [`Damage`] at the first unsound block.
fn read_pcapng(
    bytes: &[u8],
    port: Option<u16>,
    skips: &mut SkipCounters,
    each: &mut impl FnMut(Frame<'_>),
) -> Option<Damage> {
    let sound = pcapng_sound_prefix(bytes);
    if sound == 0 {
        let what = "not a readable pcapng file (broken section header)".to_string();
        return Some(Damage { offset: 0, what });
    }
    let damage = read_capture(&bytes[..sound], port, skips, each);
    let damage = damage.or_else(|| {
        (sound < bytes.len()).then(|| {
            let what = format!(
                "pcapng block lengths disagree or run past the end of the file ({} bytes left)",
                bytes.len() - sound
            );
            (sound, what)
        })
    });
    damage.map(|(offset, what)| Damage { offset: offset as u64, what })
}

/// Read a pcap or pcapng capture held in memory. Returns where its framing
/// broke (the offset of the record or block that could not be read, and the
/// reader's error), having handed on every frame before it.
fn read_capture(
    bytes: &[u8],
    port: Option<u16>,
    skips: &mut SkipCounters,
    each: &mut impl FnMut(Frame<'_>),
) -> Option<(usize, String)> {
    // The whole file is in memory: a buffer the size of the file (up to 1 MiB,
    // enough for any block) avoids zero-filling 1 MiB for small inputs.
    let capacity = (bytes.len() + 4096).min(1 << 20);
    let mut reader = match create_reader(capacity, bytes) {
        Ok(r) => r,
        Err(e) => return Some((0, format!("capture header unreadable: {e:?}"))),
    };
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
            Err(PcapError::Eof) => return None,
            Err(PcapError::Incomplete(_)) => {
                if reader.refill().is_err() {
                    return Some((reader.consumed(), "capture unreadable".to_string()));
                }
            }
            // A capture cut short (a killed tcpdump), a length past the end of
            // the file or of any buffer, an unparsable block: nothing after it
            // can be framed. Keep what was read.
            Err(e) => {
                let what = match e {
                    PcapError::UnexpectedEof => "capture cut short".to_string(),
                    PcapError::BufferTooSmall => "record longer than 1 MiB".to_string(),
                    e => format!("{e:?}"),
                };
                return Some((reader.consumed(), what));
            }
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
        let damage = read_bytes(&bytes, Some(2055), &mut skips, |f| {
            got.push((f.ts_ns, f.src, f.payload.to_vec()))
        });
        assert_eq!(damage, None);
        assert_eq!(got, [(Some(ts), "192.0.2.9".parse().unwrap(), b"hello v5".to_vec())]);
        assert_eq!(skips.frames, 1);
        // A cut-off trailing block is damage at its offset, counted as one
        // truncated_capture frame; what came before is kept.
        let mut cut = bytes.clone();
        cut.extend_from_slice(&bytes[bytes.len() - 40..bytes.len() - 8]);
        let mut skips = SkipCounters::default();
        let mut n = 0;
        let damage = read_bytes(&cut, None, &mut skips, |_| n += 1).expect("damage");
        assert_eq!(damage.offset, bytes.len() as u64, "{damage}");
        assert_eq!((n, skips.frames, skips.skipped[TRUNCATED]), (1, 2, 1));
        assert_eq!(skips.skipped[MALFORMED], 0);
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
        let damage = read_bytes(&crash, None, &mut skips, |_| {}).expect("damage");
        assert_eq!(damage.offset, 0);
        let mut short = pcapng(b"x", 1);
        let at = short.len() as u64;
        short.extend_from_slice(&block(0x8000_0001, &[])[..8]); // claims 12, holds 8
        short.extend_from_slice(&[8, 0, 0, 0]);
        let mut n = 0;
        let damage = read_bytes(&short, None, &mut skips, |_| n += 1).expect("damage");
        assert_eq!((n, damage.offset), (1, at));
    }

    /// A pcap of `n` UDP datagrams, each payload `payload`, one per record.
    fn pcap(n: usize, payload: &[u8]) -> Vec<u8> {
        let mut w = crate::capture::PcapWriter::new(Vec::new()).unwrap();
        let (a, b) = (Ipv4Addr::new(192, 0, 2, 9), Ipv4Addr::new(192, 0, 2, 1));
        for i in 0..n {
            w.write_udp(i as u64 * 1_000_000, (a, 5000), (b, 2055), payload).unwrap();
        }
        w.into_inner().unwrap()
    }

    #[test]
    fn pcap_record_header_past_the_end_keeps_what_came_before() {
        let payload = [7u8; 100];
        let rec = 16 + 42 + payload.len(); // record header, Ethernet + IPv4 + UDP, payload
                                           // Past the end of a small file (the reader has it all), past the 1 MiB
                                           // buffer of a large one, and inside a large file but longer than any buffer.
        for (caplen, total) in [(u32::MAX, 5), (u32::MAX, 20_000), (2_000_000, 20_000)] {
            let mut bytes = pcap(total, &payload);
            // Damage the fourth record's caplen; three frames come before it.
            let at = 24 + 3 * rec;
            bytes[at + 8..at + 12].copy_from_slice(&caplen.to_le_bytes());
            let mut skips = SkipCounters::default();
            let mut n = 0;
            let damage = read_bytes(&bytes, None, &mut skips, |_| n += 1).expect("damage");
            assert_eq!(damage.offset, at as u64, "{caplen}/{total}: {damage}");
            assert_eq!((n, skips.frames, skips.skipped[TRUNCATED]), (3, 4, 1), "{caplen}");
        }
        // A capture cut inside a record header, then inside a record.
        let whole = pcap(5, &payload);
        for cut in [24 + 4 * rec + 10, 24 + 4 * rec + 30] {
            let mut skips = SkipCounters::default();
            let mut n = 0;
            let damage = read_bytes(&whole[..cut], None, &mut skips, |_| n += 1).expect("damage");
            assert_eq!((n, damage.offset), (4, 24 + 4 * rec as u64), "{damage}");
            assert_eq!(skips.skipped[TRUNCATED], 1);
        }
        let mut skips = SkipCounters::default();
        assert_eq!(read_bytes(&whole, None, &mut skips, |_| {}), None);
        assert_eq!((skips.frames, skips.skipped[TRUNCATED]), (5, 0));
    }

    #[test]
    fn raw_datagram_cut_short_is_damage_not_a_rejection() {
        let mut dg = vec![0, 5, 0, 2];
        dg.resize(HEADER_LEN + 2 * RECORD_LEN, 0);
        let mut bytes = [dg.clone(), dg.clone(), dg[..dg.len() - 1].to_vec()].concat();
        let mut skips = SkipCounters::default();
        let mut got = Vec::new();
        let damage = read_bytes(&bytes, None, &mut skips, |f| got.push(f.payload.len()));
        assert_eq!(damage.map(|d| d.offset), Some(2 * dg.len() as u64));
        assert_eq!(got, [dg.len(), dg.len()]);
        assert_eq!((skips.frames, skips.skipped[TRUNCATED]), (3, 1));
        // A header that cannot frame is still one datagram for the decoder to reject.
        bytes.truncate(2 * dg.len());
        bytes.extend_from_slice(&[0, 5, 0, 31, 1, 2]);
        let mut skips = SkipCounters::default();
        got.clear();
        assert_eq!(read_bytes(&bytes, None, &mut skips, |f| got.push(f.payload.len())), None);
        assert_eq!(got, [dg.len(), dg.len(), 6]);
    }

    #[test]
    fn raw_ipfix_messages_are_framed_by_their_length() {
        let msg = |len: u16| {
            let mut m = vec![0, 10];
            m.extend_from_slice(&len.to_be_bytes());
            m.resize(len as usize, 7);
            m
        };
        let (a, b) = (msg(16), msg(40));
        let bytes = [a.clone(), b.clone(), a.clone()].concat();
        let mut skips = SkipCounters::default();
        let mut got = Vec::new();
        assert_eq!(read_bytes(&bytes, None, &mut skips, |f| got.push(f.payload.to_vec())), None);
        assert_eq!(got, [a.clone(), b.clone(), a.clone()]);
        // A message cut short is damage; a length below the header frames nothing.
        let cut = [a.clone(), b[..30].to_vec()].concat();
        let mut skips = SkipCounters::default();
        let damage = read_bytes(&cut, None, &mut skips, |_| {}).expect("damage");
        assert_eq!(damage.offset, 16, "{damage}");
        let odd = [a.clone(), vec![0, 10, 0, 3, 1, 2, 3, 4]].concat();
        got.clear();
        assert_eq!(read_bytes(&odd, None, &mut skips, |f| got.push(f.payload.to_vec())), None);
        assert_eq!(got, [a, vec![0, 10, 0, 3, 1, 2, 3, 4]]);
    }
}
