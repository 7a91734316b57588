//! Integration tests: they drive the real `nfstitch` binary.

mod collect;
mod histograms;
mod reliability;
mod replay;
mod util;
