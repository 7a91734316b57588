//! Malformed datagrams for `--corrupt-ratio`: one of every rejection kind a
//! strict v5 decoder has (`nfstitch::wire::DecodeError::REASONS`), built by
//! editing a valid datagram's bytes.
//!
//! Kinds: too short (0..=23 bytes); wrong version (v1/v7/0/0xffff: not 9 or
//! 10, which nfstitch reads as NetFlow v9 and IPFIX); bad count (0, 31, 65535); length mismatch (a
//! v5 datagram cut inside a record, or with trailing bytes).
//!
//! v9/IPFIX ([`make_templated`]): the datagram-level rejections of
//! `nfstitch::wire::template::DecodeError`, by the same names: too short
//! (below the header), wrong version (1, 7, 0, 0xffff), length mismatch
//! (IPFIX: the header's length off, or trailing bytes), a set shorter than
//! its 4-byte header (the first set's length 1 to 3), a set running past the
//! end (the datagram cut inside its last set; IPFIX: its length field says
//! so too).
//!
//! Reason indices are [`crate::truth::CorruptCounts::REASONS`]: v5's four
//! (as `nfstitch::wire::DecodeError::REASONS`), then `set_too_short` and
//! `set_overrun`.

use crate::rng::Rng;
use nfstitch::wire::{HEADER_LEN, RECORD_LEN};

/// Reason indices, as in `nfstitch::wire::DecodeError::REASONS`.
pub const TOO_SHORT: usize = 0;
pub const BAD_VERSION: usize = 1;
pub const BAD_COUNT: usize = 2;
pub const LENGTH_MISMATCH: usize = 3;
/// v9/IPFIX only.
pub const SET_TOO_SHORT: usize = 4;
pub const SET_OVERRUN: usize = 5;

/// [`make`] for a valid v9 or IPFIX datagram `valid` (as
/// `nfstitch::wire::template::encode` writes them: at least one set).
pub fn make_templated(rng: &mut Rng, valid: &[u8], out: &mut Vec<u8>) -> usize {
    out.clear();
    let ipfix = valid[1] == 10;
    let hl = if ipfix { 16 } else { 20 };
    let kinds: &[usize] = if ipfix {
        &[TOO_SHORT, BAD_VERSION, LENGTH_MISMATCH, SET_TOO_SHORT, SET_OVERRUN]
    } else {
        &[TOO_SHORT, BAD_VERSION, SET_TOO_SHORT, SET_OVERRUN]
    };
    let reason = kinds[rng.below(kinds.len() as u64) as usize];
    let set_ipfix_len = |out: &mut Vec<u8>| {
        if ipfix {
            let n = out.len() as u16;
            out[2..4].copy_from_slice(&n.to_be_bytes());
        }
    };
    match reason {
        TOO_SHORT => out.extend_from_slice(&valid[..rng.below(hl as u64) as usize]),
        BAD_VERSION => {
            out.extend_from_slice(valid);
            let v: u16 = [1, 7, 0, 0xffff][rng.below(4) as usize];
            out[0..2].copy_from_slice(&v.to_be_bytes());
        }
        LENGTH_MISMATCH => {
            out.extend_from_slice(valid);
            if rng.chance(0.5) {
                out.resize(out.len() + 1 + rng.below(16) as usize, 0);
            } else {
                let n = valid.len() as u16 - 1 - rng.below(8) as u16;
                out[2..4].copy_from_slice(&n.to_be_bytes());
            }
        }
        SET_TOO_SHORT => {
            out.extend_from_slice(valid);
            out[hl + 2..hl + 4].copy_from_slice(&(1 + rng.below(3) as u16).to_be_bytes());
        }
        _ => {
            // The last set: cut so that its header stays and a byte or more is gone.
            let mut at = hl;
            let mut last = hl;
            while at + 4 <= valid.len() {
                last = at;
                at += u16::from_be_bytes([valid[at + 2], valid[at + 3]]) as usize;
            }
            let set_len = valid.len() - last;
            let keep = 4 + rng.below(set_len as u64 - 4) as usize;
            out.extend_from_slice(&valid[..last + keep]);
            set_ipfix_len(out);
        }
    }
    reason
}

/// Write a malformed datagram derived from the valid datagram `valid` into
/// `out` (cleared first); returns its reason index.
pub fn make(rng: &mut Rng, valid: &[u8], out: &mut Vec<u8>) -> usize {
    debug_assert!(valid.len() >= HEADER_LEN + RECORD_LEN);
    out.clear();
    let reason = rng.below(4) as usize;
    match reason {
        TOO_SHORT => {
            let n = rng.below(HEADER_LEN as u64) as usize;
            out.extend_from_slice(&valid[..n]);
        }
        BAD_VERSION => {
            // Not 9 or 10: nfstitch reads NetFlow v9 and IPFIX (issue 18).
            out.extend_from_slice(valid);
            let v: u16 = [1, 7, 0, 0xffff][rng.below(4) as usize];
            out[0..2].copy_from_slice(&v.to_be_bytes());
        }
        BAD_COUNT => {
            let count: u16 = [0, 31, 65535][rng.below(3) as usize];
            match count {
                0 => out.extend_from_slice(&valid[..HEADER_LEN]),
                31 => {
                    // A length that would match 31 records, so only the count is wrong.
                    out.extend_from_slice(&valid[..HEADER_LEN]);
                    let rec = &valid[HEADER_LEN..HEADER_LEN + RECORD_LEN];
                    for _ in 0..31 {
                        out.extend_from_slice(rec);
                    }
                }
                _ => out.extend_from_slice(valid),
            }
            out[2..4].copy_from_slice(&count.to_be_bytes());
        }
        _ => {
            out.extend_from_slice(valid);
            if rng.chance(0.5) {
                // Cut inside the last record.
                let cut = 1 + rng.below(RECORD_LEN as u64 - 1) as usize;
                out.truncate(valid.len() - cut);
            } else {
                let extra = 1 + rng.below(16) as usize;
                out.resize(out.len() + extra, 0);
            }
        }
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::truth::CorruptCounts;
    use nfstitch::wire::template::encode::{Encoder, FlowRecord};
    use nfstitch::wire::template::{Decoder, Version};
    use nfstitch::wire::{encode, Datagram, DecodeError, HeaderFields, RecordFields};

    #[test]
    fn every_templated_kind_is_rejected_for_its_reason() {
        let mut rng = Rng::new(6, 0);
        let mut out = Vec::new();
        let from = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
        for v in [Version::V9, Version::Ipfix] {
            let mut seen = [0u32; 6];
            for n in 1..=20 {
                let mut enc = Encoder::new(v, 3, 0);
                let mut valid = Vec::new();
                let mut m = enc.message(&mut valid, 1_700_000_000_000, 5);
                if n % 2 == 0 {
                    m.templates();
                }
                for _ in 0..n {
                    m.record(&FlowRecord { packets: 1, octets: 40, ..FlowRecord::default() });
                }
                m.finish();
                let mut dec = Decoder::default();
                for _ in 0..200 {
                    let r = make_templated(&mut rng, &valid, &mut out);
                    let err =
                        dec.decode(from, &out, &mut |_| {}).expect_err("corrupt datagram accepted");
                    assert!(err.rejects_datagram());
                    assert_eq!(err.reason(), CorruptCounts::REASONS[r], "{err}");
                    seen[r] += 1;
                }
            }
            let kinds = if v == Version::V9 { 4 } else { 5 };
            assert_eq!(seen.iter().filter(|&&s| s > 300).count(), kinds, "{v:?}: {seen:?}");
            assert_eq!(seen[BAD_COUNT], 0, "v9/IPFIX have no such check");
        }
    }

    #[test]
    fn every_kind_is_rejected_for_its_reason() {
        let mut rng = Rng::new(5, 0);
        let mut seen = [0u32; 4];
        let mut out = Vec::new();
        for n in 1..=30usize {
            let recs = vec![RecordFields { packets: 1, octets: 40, ..Default::default() }; n];
            let mut valid = Vec::new();
            encode(&HeaderFields::default(), &recs, &mut valid);
            for _ in 0..200 {
                let r = make(&mut rng, &valid, &mut out);
                let err = Datagram::parse(&out).expect_err("corrupt datagram parsed");
                assert_eq!(err.index(), r, "{err} for reason {}", DecodeError::REASONS[r]);
                seen[r] += 1;
            }
        }
        assert!(seen.iter().all(|&s| s > 1000), "{seen:?}");
    }
}
