use super::*;

#[test]
fn times_have_fixed_formats() {
    let mut s = String::new();
    push_time(&mut s, 1_430_591_884_898_328_000, TimeFormat::Rfc3339);
    assert_eq!(s, "2015-05-02T18:38:04.898328000Z");
    s.clear();
    push_time(&mut s, 1_430_591_884_000_000_005, TimeFormat::Rfc3339);
    push_time(&mut s, 5, TimeFormat::Epoch);
    assert_eq!(s, "2015-05-02T18:38:04.000000005Z0.000000005");
    // Same second again (cached prefix), then another second.
    s.clear();
    push_time(&mut s, 1_430_591_884_100_000_000, TimeFormat::Rfc3339);
    s.push(' ');
    push_time(&mut s, 1_430_591_885_000_000_000, TimeFormat::Rfc3339);
    assert_eq!(s, "2015-05-02T18:38:04.100000000Z 2015-05-02T18:38:05.000000000Z");
}
