//! Integration tests: they drive the real `nfstitch` binary.

mod collect;
mod reliability;
mod replay;
mod util;
