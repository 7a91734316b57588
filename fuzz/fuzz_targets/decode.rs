//! Decode arbitrary bytes as a NetFlow v5 datagram (strict and lenient).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    nfstitch::fuzz::decode(data);
});
