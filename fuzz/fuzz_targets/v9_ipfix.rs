//! Decode arbitrary bytes as a sequence of length-prefixed NetFlow v9/IPFIX
//! datagrams through one template cache, three times (see `nfstitch::fuzz::v9_ipfix`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = nfstitch::fuzz::v9_ipfix(data);
});
