//! The one rule for a test that cannot run here (a tool, a server, the
//! shared captures or IPv6 missing): [`skip`] says why and the test returns,
//! unless `$NFSTITCH_REQUIRE_ALL` is set, when it fails instead. `.ci/run`
//! sets it: CI installs everything the tests use, so a skip there hides a
//! broken setup. Used by every skip site in `tests/integration/` and by
//! `benches/clickhouse.rs` (which includes this file by path).

/// Whether every test must run: `$NFSTITCH_REQUIRE_ALL` set to anything but
/// empty, `0` or `false`.
pub fn required() -> bool {
    std::env::var("NFSTITCH_REQUIRE_ALL").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
}

/// Print `SKIP: reason` on stderr; under `$NFSTITCH_REQUIRE_ALL`, panic with
/// the reason instead.
pub fn skip(reason: &str) {
    assert!(
        !required(),
        "NFSTITCH_REQUIRE_ALL is set, so this may not skip: {reason} \
         (CI installs every tool, server and capture the tests use: .ci/run)"
    );
    eprintln!("SKIP: {reason}");
}
