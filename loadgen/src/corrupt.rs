//! Malformed datagrams for `--corrupt-ratio`: one of every rejection kind a
//! strict v5 decoder has (`nfstitch::wire::DecodeError::REASONS`), built by
//! editing a valid datagram's bytes.
//!
//! Kinds: too short (0..=23 bytes); wrong version (v1/v7/0/0xffff: not 9 or
//! 10, which nfstitch reads as NetFlow v9 and IPFIX); bad count (0, 31,
//! 65535); length mismatch (a v5 datagram cut inside a record, or with
//! trailing bytes).

use crate::rng::Rng;
use nfstitch::wire::{HEADER_LEN, RECORD_LEN};

/// Reason indices, as in `nfstitch::wire::DecodeError::REASONS`.
pub const TOO_SHORT: usize = 0;
pub const BAD_VERSION: usize = 1;
pub const BAD_COUNT: usize = 2;
pub const LENGTH_MISMATCH: usize = 3;

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
    use nfstitch::wire::{encode, Datagram, DecodeError, HeaderFields, RecordFields};

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
