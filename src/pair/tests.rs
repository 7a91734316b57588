//! Tests of the pairing stage and the connection's fields.
