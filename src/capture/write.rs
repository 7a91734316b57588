//! Writing classic pcap files of v5 exports (Ethernet/IPv4/UDP): the inverse
//! of the reader, for tests and `loadgen --pcap-out`.

use std::io::{self, Write};
use std::net::Ipv4Addr;

use etherparse::PacketBuilder;

/// A pcap writer with nanosecond timestamps (magic `0xa1b23c4d`), LINKTYPE_ETHERNET.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    w: W,
    frame: Vec<u8>,
}

impl<W: Write> PcapWriter<W> {
    pub fn new(mut w: W) -> io::Result<Self> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&0xa1b2_3c4du32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&65535u32.to_le_bytes());
        h.extend_from_slice(&1u32.to_le_bytes());
        w.write_all(&h)?;
        Ok(PcapWriter { w, frame: Vec::with_capacity(1600) })
    }

    /// Append one UDP datagram `src:sport -> dst:dport` captured at `ts_ns`.
    pub fn write_udp(
        &mut self,
        ts_ns: u64,
        src: (Ipv4Addr, u16),
        dst: (Ipv4Addr, u16),
        payload: &[u8],
    ) -> io::Result<()> {
        self.frame.clear();
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(src.0.octets(), dst.0.octets(), 64)
            .udp(src.1, dst.1);
        b.write(&mut self.frame, payload).map_err(io::Error::other)?;
        let len = self.frame.len() as u32;
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&((ts_ns / 1_000_000_000) as u32).to_le_bytes());
        rec[4..8].copy_from_slice(&((ts_ns % 1_000_000_000) as u32).to_le_bytes());
        rec[8..12].copy_from_slice(&len.to_le_bytes());
        rec[12..16].copy_from_slice(&len.to_le_bytes());
        self.w.write_all(&rec)?;
        self.w.write_all(&self.frame)
    }

    pub fn into_inner(mut self) -> io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}
