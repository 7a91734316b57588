//! The HTTP client of the sink: one POST to ClickHouse's HTTP interface per
//! call, `?query=<sql>` in the URL and the RowBinary rows as the body.
//!
//! Built on [`ureq`]: a small, blocking client with no async runtime, which
//! is all the sender needs (it is one plain thread doing one request at a
//! time). TLS is rustls (no system OpenSSL to build against or load) with
//! Mozilla's roots (`webpki-roots`), or, with `--clickhouse-ca FILE`, only the
//! CA certificates of that PEM file (a private CA for a private server should
//! not share trust with every public CA).
//!
//! What the client keeps from the hand-written one it replaces:
//! - timeouts: connect 2 s; each write of the request 10 s and each read of
//!   the answer 30 s (ureq's per-write and per-read timeouts restart on every
//!   transport write or read, as the socket timeouts did; the TLS handshake is
//!   covered by them too). No total deadline: a large batch on a slow link may
//!   take as long as it keeps moving.
//! - one connection per request (no pool): a restarted server never meets a
//!   stale pooled connection, and a failed request never leaves one behind.
//!   Batches are large, so the connect (and TLS handshake) is a small share.
//! - `user:password@` in the URL becomes HTTP basic auth (ureq does this from
//!   the URL's user info); a password from outside the URL is sent as basic
//!   auth by us (see [`super::url::Auth`]); the URL's parameters
//!   (`?database=db`) are sent on, `query=` appended after them. No proxy from
//!   the environment, no redirects.
//! - nothing it prints holds a password: the URL shows as `user:***@`, and
//!   every error text is scrubbed of the passwords it knows.
//! - errors say what failed: the transport error (connect, TLS, timeout) or
//!   the server's status and its answer (cut to 64 KiB), which for ClickHouse
//!   names the exception.

use std::fmt;
use std::io::{self, Read};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use ureq::http::Uri;
use ureq::tls::{PemItem, RootCerts, TlsConfig};

use super::url::{Auth, ClickHouseUrl, Password};

/// Connect timeout of one HTTP request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Timeout of each write of the request (headers and body).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout of each read of the answer (the server answers once the insert is done).
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Error answers are cut to this many bytes.
const MAX_ANSWER: u64 = 64 * 1024;

/// Why a POST failed.
#[derive(Debug)]
pub(super) enum PostError {
    /// No answer: the connection, TLS or a timeout failed (the request may or
    /// may not have reached the server).
    Transport(ureq::Error),
    /// The request could not be made (the text has no password in it).
    Request(String),
    /// The server answered with an error: status and answer text.
    Http(u16, String),
    /// The table has a column the sink cannot write (permanent).
    Table(String),
}

impl fmt::Display for PostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PostError::Transport(ureq::Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionRefused | io::ErrorKind::AddrNotAvailable
                ) =>
            {
                write!(f, "cannot connect: {e}")
            }
            PostError::Transport(ureq::Error::Timeout(t)) => write!(f, "timed out: {t}"),
            // TLS failures come as I/O errors: "invalid peer certificate: UnknownIssuer".
            PostError::Transport(ureq::Error::Io(e)) => write!(f, "connection failed: {e}"),
            PostError::Transport(e) => write!(f, "request failed: {e}"),
            PostError::Request(e) => write!(f, "request failed: {e}"),
            PostError::Http(code, msg) => write!(f, "HTTP {code}: {msg}"),
            PostError::Table(why) => write!(f, "{why}"),
        }
    }
}

/// ClickHouse exception codes that repeat on every retry until a person
/// changes something: credentials and grants, a missing database or table,
/// a table whose columns are not ours, a read-only user.
const PERMANENT_CODES: [u32; 20] = [
    16,  // NO_SUCH_COLUMN_IN_TABLE
    27,  // CANNOT_PARSE_INPUT_ASSERTION_FAILED
    33,  // CANNOT_READ_ALL_DATA (rows shorter than the table's columns)
    36,  // BAD_ARGUMENTS
    44,  // ILLEGAL_COLUMN
    47,  // UNKNOWN_IDENTIFIER
    53,  // TYPE_MISMATCH
    60,  // UNKNOWN_TABLE
    62,  // SYNTAX_ERROR
    73,  // UNKNOWN_FORMAT
    81,  // UNKNOWN_DATABASE
    115, // UNKNOWN_SETTING
    164, // READONLY
    192, // UNKNOWN_USER
    193, // WRONG_PASSWORD
    194, // REQUIRED_PASSWORD
    195, // IP_ADDRESS_NOT_ALLOWED
    291, // DATABASE_ACCESS_DENIED
    497, // ACCESS_DENIED
    516, // AUTHENTICATION_FAILED
];

/// ClickHouse exception codes that pass by themselves (load, limits, a
/// replica catching up), whatever the HTTP status says.
const TRANSIENT_CODES: [u32; 10] = [
    159, // TIMEOUT_EXCEEDED
    202, // TOO_MANY_SIMULTANEOUS_QUERIES
    209, // SOCKET_TIMEOUT
    210, // NETWORK_ERROR
    241, // MEMORY_LIMIT_EXCEEDED
    242, // TABLE_IS_READ_ONLY (a replica without ZooKeeper, for now)
    252, // TOO_MANY_PARTS
    285, // TOO_FEW_LIVE_REPLICAS
    319, // UNKNOWN_STATUS_OF_INSERT
    999, // KEEPER_EXCEPTION
];

impl PostError {
    /// The ClickHouse exception code in the answer (`Code: 193, ...` or
    /// `Code: 516. DB::Exception: ...`).
    pub(super) fn clickhouse_code(&self) -> Option<u32> {
        let PostError::Http(_, msg) = self else { return None };
        let rest = &msg[msg.find("Code: ")? + 6..];
        let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        rest[..end].parse().ok()
    }

    /// An error that repeats until a person fixes something (wrong
    /// password, no grant, unknown database, a table that is not ours), as
    /// opposed to one that passes (server down or restarting, overloaded,
    /// timeouts). By the ClickHouse code when it is one we know, else by the
    /// HTTP status: 4xx permanent (but 408 and 429), 5xx and no answer
    /// transient.
    pub(super) fn is_permanent(&self) -> bool {
        let status = match self {
            PostError::Http(status, _) => status,
            PostError::Table(_) => return true,
            _ => return false,
        };
        match self.clickhouse_code() {
            Some(c) if PERMANENT_CODES.contains(&c) => true,
            Some(c) if TRANSIENT_CODES.contains(&c) => false,
            _ => (400..500).contains(status) && !matches!(status, 408 | 429),
        }
    }
}

/// A client for one ClickHouse URL.
pub(super) struct Client {
    agent: ureq::Agent,
    /// The URL to request (credentials included: ureq takes them from here)
    /// and the `Authorization` header for a password from outside the URL.
    auth: Auth,
    /// The URL without its password, for messages.
    shown: String,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No credentials in debug output.
        f.write_str(&self.shown)
    }
}

impl Client {
    /// Check `url` ([`check_url`]) and, with `ca`, load its PEM
    /// certificates as the only trust roots. Messages name the flag to change.
    pub(super) fn new(
        given: &ClickHouseUrl,
        password: Option<&Password>,
        ca: Option<&Path>,
    ) -> anyhow::Result<Client> {
        check_url(given, ca.is_some())?;
        let mut tls = TlsConfig::builder();
        if let Some(ca) = ca {
            tls = tls.root_certs(load_ca(ca)?);
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_per_write(Some(WRITE_TIMEOUT))
            .timeout_per_read(Some(READ_TIMEOUT))
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .max_redirects(0)
            .proxy(None)
            .user_agent("nfstitch")
            .tls_config(tls.build())
            .build();
        let auth = Auth::new(given, password);
        Ok(Client { agent: config.into(), auth, shown: given.redacted() })
    }

    /// `text` without any password this client knows.
    pub(super) fn scrub(&self, text: &str) -> String {
        self.auth.scrub(text)
    }

    /// POST `body` with `query` added to the URL's parameters; `Ok` on HTTP 200.
    pub(super) fn post(&self, query: &str, body: &[u8]) -> Result<(), PostError> {
        self.request(query, body, 0).map(drop)
    }

    /// Run a DDL statement: an answer that refuses it is added to
    /// `refused` (the caller goes on: the table may exist, the user may not
    /// be allowed DDL); `Err` only when no answer came.
    pub(super) fn ddl(&self, sql: &str, refused: &mut Vec<String>) -> Result<(), PostError> {
        match self.post(sql, b"") {
            Err(PostError::Http(c, m)) => refused.push(format!("HTTP {c}: {m}")),
            other => other?,
        }
        Ok(())
    }

    /// Run `query` (no body); on HTTP 200 its answer (cut to 64 KiB).
    pub(super) fn query(&self, query: &str) -> Result<String, PostError> {
        self.request(query, b"", MAX_ANSWER)
    }

    /// POST `body` with `query`; on HTTP 200 up to `keep` bytes of the answer.
    fn request(&self, query: &str, body: &[u8], keep: u64) -> Result<String, PostError> {
        let mut req = self
            .agent
            .post(&self.auth.url)
            .query("query", query)
            .content_type("application/octet-stream");
        if let Some(h) = &self.auth.header {
            req = req.header("Authorization", h);
        }
        let mut resp = req.send(body).map_err(|e| match e {
            e @ (ureq::Error::Io(_) | ureq::Error::Timeout(_)) => PostError::Transport(e),
            // Other errors may quote the request: no password in them.
            e => PostError::Request(self.scrub(&e.to_string())),
        })?;
        let code = resp.status().as_u16();
        let mut text = Vec::new();
        if code == 200 {
            if keep > 0 {
                resp.body_mut()
                    .as_reader()
                    .take(keep)
                    .read_to_end(&mut text)
                    .map_err(|e| PostError::Transport(ureq::Error::Io(e)))?;
            }
            return Ok(String::from_utf8_lossy(&text).into_owned());
        }
        // The status is what matters; a cut or unreadable error text is still an error.
        let _ = resp.body_mut().as_reader().take(MAX_ANSWER).read_to_end(&mut text);
        Err(PostError::Http(code, self.scrub(String::from_utf8_lossy(&text).trim())))
    }
}

/// Check `given` (`http://` or `https://`, a host, a valid port; with a
/// CA file (`ca`), `https://`). Messages name the flag to change and show
/// the URL without its password.
pub(super) fn check_url(given: &ClickHouseUrl, ca: bool) -> anyhow::Result<()> {
    let url = given.redacted();
    let uri: Uri =
        given.expose().parse().with_context(|| format!("--clickhouse {url}: bad URL"))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => bail!("--clickhouse {url}: not an http:// or https:// URL"),
    };
    let Some(authority) = uri.authority() else { bail!("--clickhouse {url}: no host") };
    if authority.host().is_empty() {
        bail!("--clickhouse {url}: no host");
    }
    let hostport = authority.as_str().rsplit_once('@').map_or(authority.as_str(), |(_, h)| h);
    let port = hostport.strip_prefix(authority.host()).unwrap_or("");
    if !(port.is_empty() || port[1..].parse::<u16>().is_ok_and(|p| p > 0)) {
        bail!("--clickhouse {url}: bad port {:?}", &port[1..]);
    }
    if ca && !https {
        bail!("--clickhouse-ca is for https:// URLs; --clickhouse is {url}");
    }
    Ok(())
}

/// The certificates of a PEM file, as the only trust roots.
fn load_ca(path: &Path) -> anyhow::Result<RootCerts> {
    let pem = std::fs::read(path)
        .with_context(|| format!("--clickhouse-ca {}: cannot read", path.display()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => bail!("--clickhouse-ca {}: bad PEM: {e}", path.display()),
        }
    }
    if certs.is_empty() {
        bail!("--clickhouse-ca {}: no certificate in the file (PEM expected)", path.display());
    }
    Ok(RootCerts::new_with_certs(&certs))
}
