//! Unit tests of the v9/IPFIX decoder.
