//! Integration tests: they drive the real `nfstitch` binary.

mod replay;
mod util;
