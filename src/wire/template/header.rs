//! The v9 and IPFIX message headers, and the set ids that differ between them.
//!
//! v9 (RFC 3954 section 5.1), 20 bytes: version 9, count (records of every
//! kind), sysUptime (ms), unix_secs, package sequence (one per export packet
//! of this source id), source id. IPFIX (RFC 7011 section 3.1), 16 bytes:
//! version 10, length (whole message), export time (s), sequence (data
//! records sent in this observation domain before this message), observation
//! domain id.

use super::DecodeError;
use crate::wire::{be16, be32};

/// Bytes in a v9 header.
pub const V9_HEADER_LEN: usize = 20;
/// Bytes in an IPFIX message header.
pub const IPFIX_HEADER_LEN: usize = 16;

/// Which of the two templated formats a datagram is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// NetFlow v9, version word 9.
    V9,
    /// IPFIX, version word 10.
    Ipfix,
}

impl Version {
    /// The set id of template sets (v9 flowset 0, IPFIX set 2).
    pub(super) fn template_set(self) -> u16 {
        match self {
            Version::V9 => 0,
            Version::Ipfix => 2,
        }
    }

    /// The set id of options-template sets (v9 flowset 1, IPFIX set 3).
    pub(super) fn options_set(self) -> u16 {
        self.template_set() + 1
    }
}

/// A decoded v9 or IPFIX header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageHeader {
    pub version: Version,
    /// v9: the header's record count (not trusted to stop the walk). IPFIX: `None`.
    pub count: Option<u16>,
    /// v9: milliseconds since the exporter booted. IPFIX: `None` (it has no uptime;
    /// uptime-relative times need systemInitTimeMilliseconds).
    pub sys_uptime: Option<u32>,
    /// Export time, seconds since the Unix epoch (v9 unix_secs, IPFIX export time).
    pub export_secs: u32,
    /// v9: export packets of this source id; IPFIX: data records of this domain
    /// sent before this message. Exposed for loss accounting by the caller.
    pub sequence: u32,
    /// v9 source id or IPFIX observation domain id.
    pub domain: u32,
}

impl MessageHeader {
    /// Parse and check a header. Returns it and the length of the header;
    /// sets run from there to the end of `bytes` (IPFIX: its length field,
    /// which must equal the datagram's).
    pub fn parse(bytes: &[u8]) -> Result<(MessageHeader, usize), DecodeError> {
        if bytes.len() < 2 {
            return Err(DecodeError::TooShort { len: bytes.len() });
        }
        let version = be16(bytes, 0);
        let need = match version {
            9 => V9_HEADER_LEN,
            10 => IPFIX_HEADER_LEN,
            _ => return Err(DecodeError::BadVersion { version }),
        };
        if bytes.len() < need {
            return Err(DecodeError::TooShort { len: bytes.len() });
        }
        let h = if version == 9 {
            MessageHeader {
                version: Version::V9,
                count: Some(be16(bytes, 2)),
                sys_uptime: Some(be32(bytes, 4)),
                export_secs: be32(bytes, 8),
                sequence: be32(bytes, 12),
                domain: be32(bytes, 16),
            }
        } else {
            let header_len = be16(bytes, 2);
            if header_len as usize != bytes.len() {
                return Err(DecodeError::LengthMismatch { len: bytes.len(), header_len });
            }
            MessageHeader {
                version: Version::Ipfix,
                count: None,
                sys_uptime: None,
                export_secs: be32(bytes, 4),
                sequence: be32(bytes, 8),
                domain: be32(bytes, 12),
            }
        };
        Ok((h, need))
    }

    /// Export time in nanoseconds since the Unix epoch.
    #[inline]
    pub fn export_ns(&self) -> u64 {
        self.export_secs as u64 * 1_000_000_000
    }
}
