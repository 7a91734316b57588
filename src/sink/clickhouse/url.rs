//! The `--clickhouse` URL and the ClickHouse password: where the password
//! comes from, and that neither is ever printed with it.
//!
//! [`ClickHouseUrl`] holds the URL as given; its `Debug` and `Display` (and
//! so `--dry-run`, every error and log line) show it with the password of
//! `user:password@` and of a `password=` parameter replaced by `***`.
//! [`Password`] is a password given outside the URL (`--clickhouse-password-file`
//! or `NFSTITCH_CLICKHOUSE_PASSWORD`); it prints as `***` and where it came from.
//! [`Auth`] is what the client sends: the URL to request and, with an outside
//! password, the `Authorization` header (HTTP basic auth, which every
//! ClickHouse version takes).

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;

/// What replaces a password in anything printed.
const HIDDEN: &str = "***";

/// The `--clickhouse` URL, credentials included; prints without the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ClickHouseUrl(String);

impl ClickHouseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        ClickHouseUrl(url.into())
    }

    /// The URL with its password: only for the HTTP client, never for printing.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL as it may be shown: `user:***@`, `password=***`.
    pub fn redacted(&self) -> String {
        redact(&self.0)
    }

    /// The URL carries a password (`user:password@` or `password=`).
    pub fn has_password(&self) -> bool {
        let p = parts(&self.0);
        p.userinfo.is_some_and(|u| u.contains(':'))
            || p.query.is_some_and(|q| q.split('&').any(|kv| param_name(kv) == "password"))
    }
}

impl FromStr for ClickHouseUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(ClickHouseUrl::new(s))
    }
}

impl fmt::Display for ClickHouseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for ClickHouseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.redacted(), f)
    }
}

/// A ClickHouse password given outside the URL, and where it came from
/// (for messages). Prints as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password {
    value: String,
    /// `--clickhouse-password-file /path` or `NFSTITCH_CLICKHOUSE_PASSWORD`.
    pub source: String,
}

impl Password {
    pub fn new(value: impl Into<String>, source: impl Into<String>) -> Self {
        Password { value: value.into(), source: source.into() }
    }

    /// The password: only for the HTTP client, never for printing.
    pub fn expose(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{HIDDEN} (from {})\"", self.source)
    }
}

/// What the client sends: the URL to request and, with a password from
/// outside the URL, the `Authorization` header value.
pub(super) struct Auth {
    pub(super) url: String,
    pub(super) header: Option<String>,
    /// Strings to hide in any message (the passwords), longest first.
    pub(super) secrets: Vec<String>,
}

impl Auth {
    /// With `password`, the user is the URL's (`user@`, else `?user=`, else
    /// `default`), and both leave the URL: the header carries them (newer
    /// servers refuse a header and parameters together).
    pub(super) fn new(url: &ClickHouseUrl, password: Option<&Password>) -> Auth {
        let raw = url.expose();
        let p = parts(raw);
        let mut secrets: Vec<String> = Vec::new();
        if let Some((_, pw)) = p.userinfo.and_then(|u| u.split_once(':')) {
            secrets.push(pw.to_string());
        }
        for kv in p.query.into_iter().flat_map(|q| q.split('&')) {
            if param_name(kv) == "password" {
                secrets.push(kv.split_once('=').map_or("", |(_, v)| v).to_string());
            }
        }
        let Some(password) = password else {
            return Auth { url: raw.to_string(), header: None, secrets: clean(secrets) };
        };
        secrets.push(password.expose().to_string());
        let param = |name: &str| {
            p.query.into_iter().flat_map(|q| q.split('&')).find(|kv| param_name(kv) == name)
        };
        let user = match (p.userinfo, param("user")) {
            (Some(u), _) => percent_decode(u.split_once(':').map_or(u, |(u, _)| u)),
            (None, Some(kv)) => percent_decode(kv.split_once('=').map_or("", |(_, v)| v)),
            (None, None) => "default".to_string(),
        };
        let query: Vec<&str> = p
            .query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|kv| !matches!(param_name(kv).as_str(), "user" | "password"))
            .collect();
        let mut url = format!("{}{}{}", p.scheme, p.host, p.path);
        if !query.is_empty() {
            url = url + "?" + &query.join("&");
        }
        url += p.fragment;
        let creds = base64::engine::general_purpose::STANDARD
            .encode(format!("{user}:{}", password.expose()));
        Auth { url, header: Some(format!("Basic {creds}")), secrets: clean(secrets) }
    }

    /// `text` with every password replaced by `***`.
    pub(super) fn scrub(&self, text: &str) -> String {
        let mut t = text.to_string();
        for s in &self.secrets {
            t = t.replace(s.as_str(), HIDDEN);
        }
        t
    }
}

/// Non-empty, longest first (so a password that contains another is hidden whole).
fn clean(mut v: Vec<String>) -> Vec<String> {
    v.retain(|s| !s.is_empty());
    v.sort_by_key(|s| std::cmp::Reverse(s.len()));
    v
}

/// A URL cut into its parts (no validation: that is the client's).
struct Parts<'a> {
    /// Up to and including `://` (empty when there is none).
    scheme: &'a str,
    userinfo: Option<&'a str>,
    /// Host and port.
    host: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    /// `#...` or empty.
    fragment: &'a str,
}

fn parts(url: &str) -> Parts<'_> {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let (rest, fragment) = rest.find('#').map_or((rest, ""), |i| rest.split_at(i));
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let (userinfo, host) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    Parts { scheme, userinfo, host, path, query, fragment }
}

/// A query parameter's name, percent-decoded and lowercased.
fn param_name(kv: &str) -> String {
    percent_decode(kv.split_once('=').map_or(kv, |(k, _)| k)).to_ascii_lowercase()
}

/// `%XX` → byte; anything else as it is.
pub(super) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `url` with its host replaced by `host` (an IP address or a name; an IPv6
/// address gets brackets), keeping scheme, credentials, port, path and
/// parameters: how the sink reaches the other replicas of a cluster.
pub(super) fn with_host(url: &ClickHouseUrl, host: &str) -> ClickHouseUrl {
    let p = parts(url.expose());
    let port = match p.host.rfind(']') {
        Some(i) => &p.host[i + 1..],
        None => p.host.rfind(':').map_or("", |i| &p.host[i..]),
    };
    let host = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
    let user = p.userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    let query = p.query.map(|q| format!("?{q}")).unwrap_or_default();
    ClickHouseUrl::new(format!("{}{user}{host}{port}{}{query}{}", p.scheme, p.path, p.fragment))
}

/// `url` with the password of `user:password@` and of `password=` replaced by `***`.
pub fn redact(url: &str) -> String {
    let p = parts(url);
    let mut out = String::with_capacity(url.len());
    out.push_str(p.scheme);
    if let Some(u) = p.userinfo {
        match u.split_once(':') {
            Some((user, _)) => out.push_str(&format!("{user}:{HIDDEN}@")),
            None => out.push_str(&format!("{u}@")),
        }
    }
    out.push_str(p.host);
    out.push_str(p.path);
    if let Some(q) = p.query {
        let q: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if param_name(kv) == "password" => format!("{k}={HIDDEN}"),
                _ => kv.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&q.join("&"));
    }
    out.push_str(p.fragment);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_print() {
        for (url, shown) in [
            ("http://127.0.0.1:8123/", "http://127.0.0.1:8123/"),
            ("http://u:s3cret@h:8123/", "http://u:***@h:8123/"),
            ("http://u@h/", "http://u@h/"),
            ("https://u:p%40ss:w@[::1]:9/x?database=db", "https://u:***@[::1]:9/x?database=db"),
            ("http://h/?user=a&password=s3cret&x=1", "http://h/?user=a&password=***&x=1"),
            ("http://h/?PassWord=s3cret#f", "http://h/?PassWord=***#f"),
            ("http://a:b@c@h/?password", "http://a:***@h/?password"),
            ("u:s3cret@h:8123", "u:***@h:8123"),
        ] {
            let u = ClickHouseUrl::new(url);
            assert_eq!(u.to_string(), shown, "{url}");
            assert_eq!(format!("{u:?}"), format!("{shown:?}"));
            assert_eq!(format!("{u:#?}"), format!("{shown:?}"));
            assert!(!format!("{u:?}").contains("s3cret"));
        }
        assert!(ClickHouseUrl::new("http://u:p@h/").has_password());
        assert!(ClickHouseUrl::new("http://h/?password=").has_password());
        assert!(!ClickHouseUrl::new("http://u@h/?user=u").has_password());
        let p = Password::new("s3cret", "NFSTITCH_CLICKHOUSE_PASSWORD");
        assert_eq!(format!("{:?}", Some(&p)), "Some(\"*** (from NFSTITCH_CLICKHOUSE_PASSWORD)\")");
    }

    #[test]
    fn another_host_keeps_everything_else() {
        let u = |s: &str| ClickHouseUrl::new(s);
        for (url, host, want) in [
            ("http://127.0.0.1:8123/", "10.1.2.3", "http://10.1.2.3:8123/"),
            ("https://u:p@ch:8443/x?database=d#f", "::1", "https://u:p@[::1]:8443/x?database=d#f"),
            ("http://[::1]:9/", "h2", "http://h2:9/"),
            ("http://ch/?user=a", "h2", "http://h2/?user=a"),
        ] {
            assert_eq!(with_host(&u(url), host).expose(), want, "{url}");
        }
    }

    #[test]
    fn an_outside_password_goes_in_the_header_with_the_urls_user() {
        let pw = Password::new("p@ss:w/rd", "test");
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let a = Auth::new(&ClickHouseUrl::new("http://h:1/?database=db"), Some(&pw));
        assert_eq!(a.url, "http://h:1/?database=db");
        assert_eq!(a.header.unwrap(), format!("Basic {}", b64("default:p@ss:w/rd")));
        let a = Auth::new(&ClickHouseUrl::new("http://bob@h:1/x"), Some(&pw));
        assert_eq!(
            (a.url.as_str(), a.header.unwrap()),
            ("http://h:1/x", format!("Basic {}", b64("bob:p@ss:w/rd")))
        );
        let a = Auth::new(&ClickHouseUrl::new("http://h/?user=al%69ce&database=d"), Some(&pw));
        let alice = format!("Basic {}", b64("alice:p@ss:w/rd"));
        assert_eq!((a.url.as_str(), a.header.as_deref()), ("http://h/?database=d", Some(&*alice)));
        assert_eq!(a.scrub("x p@ss:w/rd y"), "x *** y");
        let a = Auth::new(&ClickHouseUrl::new("http://u:in-url@h/?password=q"), None);
        assert_eq!((a.url.as_str(), a.header.as_deref()), ("http://u:in-url@h/?password=q", None));
        assert_eq!(a.scrub("u:in-url@h password=q"), "u:***@h password=***");
    }
}
