//! Replay arbitrary bytes as a capture or raw file through the whole pipeline.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    nfstitch::fuzz::replay(data);
});
