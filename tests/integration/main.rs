//! Integration tests: they drive the real `nfstitch` binary.

mod collect;
mod replay;
mod util;
