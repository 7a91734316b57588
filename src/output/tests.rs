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

#[test]
fn calendar_matches_humantime_everywhere_in_range() {
    use std::time::{Duration, UNIX_EPOCH};
    // Every day boundary of the first 40 years, then a spread up to the end
    // of the u64-nanosecond range (year 2554), and leap days.
    let mut secs: Vec<u64> = (0..40 * 366).map(|d| d * 86_400 + (d * 7919) % 86_400).collect();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        secs.push(x % (u64::MAX / 1_000_000_000));
    }
    secs.extend([951_782_400, 951_868_799, 4_107_542_400, u64::MAX / 1_000_000_000]);
    for s in secs {
        let mut ours = String::new();
        super::push_civil(&mut ours, s);
        let want =
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(s)).to_string();
        assert_eq!(format!("{ours}Z"), want, "secs {s}");
    }
}

#[test]
fn addresses_format_like_display() {
    for a in ["0.0.0.0", "255.255.255.255", "10.0.20.3", "192.168.1.100", "::1", "2001:db8::7"] {
        let ip: std::net::IpAddr = a.parse().unwrap();
        let mut s = String::new();
        super::push_addr(&mut s, ip);
        assert_eq!(s, ip.to_string());
    }
}
