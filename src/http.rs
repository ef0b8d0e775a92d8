//! The HTTP/1.1 client for health probes, deploy gates and metrics scrapes (GET), and for
//! Pushgateway pushes and notification webhooks (PUT, POST), and the one judgement of a
//! response they share ([`judge_response`]).
//!
//! A foundation: it depends on no other restage module, so `deploy` gets its HTTP from here
//! and not from `health`.
//!
//! The protocol is hyper's (issue 15): `hyper` 1 (`client`, `server`, `http1`) with
//! `hyper-util`'s tokio adapters and `http-body-util`'s `Limited` body; the server side is
//! `src/health/serve.rs`. What stays ours is small: the URL rules (no userinfo: a password in
//! a probe URL would end up in logs), the connection (tokio's `TcpStream`, and for `https`
//! tokio-rustls with the ring provider and webpki roots, as for PostgreSQL: no OpenSSL;
//! certificates are always verified, since a health check that accepts any certificate checks
//! nothing), and one-line errors naming the server. hyper's `client::conn::http1` is used
//! rather than reqwest or hyper-util's pooled client: restage sends one request per
//! connection (`Connection: close`), so a pool, a resolver service and a second TLS stack
//! would be weight without use.
//!
//! Chunked and EOF-delimited bodies, interim 1xx answers, and the framing checks are hyper's;
//! the head is capped at [`MAX_HEAD`] and the body at the caller's `max_body`, so a probe never
//! reads an unbounded answer. The caller bounds the time (`tokio::time::timeout`); the
//! connection is driven inside the request's future, so a timeout closes the socket.
//!
//! Cost, measured on this machine (2 cores shared with other builds, so ±20%): the crates
//! added are hyper 1.12.0, hyper-util 0.1.21, http 1.5.0, http-body 1.1.0, http-body-util
//! 0.1.5, httparse 1.10.1, httpdate 1.0.3, want 0.3.2, try-lock 0.2.5, atomic-waker 1.1.2
//! (and shell-words 1.1.1 for `config::split_command`): 198 → 209 crates in the normal
//! dependency graph, and `cargo tree -d` lists the same 6 duplicated crates before and after
//! (none of them new). A clean `cargo build --release` (thin LTO, debug = 1) took 373.7 s of
//! CPU (user + sys) before and 421.8 s after: +48 s, +13% (the wall clock, 30 min and 42 min,
//! measured only how busy the shared machine was). `target/release/restage`: 79,115,376 →
//! 81,457,240 bytes (+2.3 MB, +3.0%); stripped, 13,672,992 → 14,126,960 (+454 KB, +3.3%). The
//! hand-written HTTP this replaced was 206 lines here and 89 in the server (without comments
//! and blank lines), plus 54 of the shell-word splitter; the hyper glue is 127 lines here.

use std::fmt;
use std::sync::{Arc, OnceLock};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Largest response head (status line and headers) we accept (hyper's read buffer cap).
pub const MAX_HEAD: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// An `http://` or `https://` URL. Userinfo is refused: a password in a probe URL would end
/// up in logs and status documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub target: String,
}

impl Url {
    pub fn parse(raw: &str) -> Result<Url, String> {
        let raw = raw.trim();
        let (scheme, rest) = raw
            .split_once("://")
            .ok_or_else(|| format!("`{raw}` is not an http:// or https:// URL"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => {
                return Err(format!(
                    "unsupported URL scheme `{other}` (use http:// or https://)"
                ));
            }
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.contains('@') {
            return Err(
                "credentials in the URL are not supported (they would show in logs and status documents)"
                    .to_string(),
            );
        }
        let default_port = match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        let (host, port) = split_host_port(authority, default_port)?;
        let tail = tail.split('#').next().unwrap_or("");
        let target = if tail.is_empty() {
            "/".to_string()
        } else if tail.starts_with('?') {
            format!("/{tail}")
        } else {
            tail.to_string()
        };
        if target.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("the URL path must not contain spaces or control characters".to_string());
        }
        Ok(Url {
            scheme,
            host,
            port,
            target,
        })
    }

    /// [`Url::parse`] for a URL that is a secret (a webhook whose path is a token): an error
    /// never repeats it.
    pub fn parse_secret(raw: &str) -> Result<Url, String> {
        Url::parse(raw).map_err(|message| {
            let raw = raw.trim();
            if raw.is_empty() {
                message
            } else {
                message
                    .replace(&format!("`{raw}`"), "the URL")
                    .replace(raw, "the URL")
            }
        })
    }

    /// `http://host:port/path` for an instance given as `host:port`.
    pub fn for_instance(host: &str, port: u16, path: &str) -> Url {
        Url {
            scheme: Scheme::Http,
            host: host.to_string(),
            port,
            target: if path.starts_with('/') {
                path.to_string()
            } else {
                format!("/{path}")
            },
        }
    }

    /// `scheme://host:port/…`: the URL without its path, for messages about a URL whose path
    /// may carry a token (a Slack webhook's does).
    pub fn shown_origin(&self) -> String {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        format!("{scheme}://{}/…", self.authority())
    }

    /// `host:port`, with brackets around an IPv6 address.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        write!(f, "{scheme}://{}{}", self.authority(), self.target)
    }
}

/// Splits `host:port`, `[v6]:port`, or a bare host (then `default_port`).
pub fn split_host_port(authority: &str, default_port: u16) -> Result<(String, u16), String> {
    let bad_port = |p: &str| format!("`{p}` is not a port number in `{authority}`");
    if authority.is_empty() {
        return Err("the host is empty".to_string());
    }
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("unclosed `[` in `{authority}`"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad_port(p))?,
            None if after.is_empty() => default_port,
            None => return Err(format!("unexpected `{after}` after `]` in `{authority}`")),
        };
        return Ok((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => {
            if host.is_empty() {
                return Err(format!("the host is empty in `{authority}`"));
            }
            Ok((host.to_string(), port.parse().map_err(|_| bad_port(port))?))
        }
        Some(_) => Err(format!(
            "`{authority}`: write an IPv6 address in brackets, like [::1]:8080"
        )),
        None => Ok((authority.to_string(), default_port)),
    }
}

/// A response: status, headers (names lower-cased), body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Whether a response passes: the status (the expected one, any 2xx by default), then the
/// body when a regular expression is given. The health checks and the deploy gates judge alike.
pub fn judge_response(
    response: &Response,
    expect: Option<u16>,
    body: Option<&regex::Regex>,
) -> Result<String, String> {
    let status = response.status;
    let ok = match expect {
        Some(code) => status == code,
        None => (200..300).contains(&status),
    };
    if !ok {
        return Err(match expect {
            Some(code) => format!("HTTP {status} (expected {code})"),
            None => format!("HTTP {status}"),
        });
    }
    if let Some(re) = body
        && !re.is_match(&response.body_text())
    {
        return Err(format!(
            "HTTP {status} but the body does not match /{}/",
            re.as_str()
        ));
    }
    Ok(format!("HTTP {status}"))
}

/// Sends `GET url` and reads the response, with at most `max_body` bytes of body. The caller
/// bounds the time (`tokio::time::timeout`). Errors are one line naming the server.
pub async fn get(url: &Url, max_body: usize) -> Result<Response, String> {
    send(url, &Request::get(), max_body).await
}

/// What [`send`] sends: a method, and a body with its type for `POST` and `PUT` (the
/// Pushgateway, webhooks).
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub method: &'static str,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

impl<'a> Request<'a> {
    pub fn get() -> Request<'static> {
        Request {
            method: "GET",
            content_type: None,
            body: b"",
        }
    }

    /// `method` (POST, PUT) with `body` of `content_type`.
    pub fn with_body(method: &'static str, content_type: &'a str, body: &'a [u8]) -> Request<'a> {
        Request {
            method,
            content_type: Some(content_type),
            body,
        }
    }
}

/// Sends `request` to `url` and reads the response, with at most `max_body` bytes of body.
/// The caller bounds the time. Errors are one line naming the server.
pub async fn send(url: &Url, request: &Request<'_>, max_body: usize) -> Result<Response, String> {
    let stream = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| describe_connect_error(&e, &url.authority()))?;
    let _ = stream.set_nodelay(true);
    match url.scheme {
        Scheme::Http => exchange(stream, url, request, max_body).await,
        Scheme::Https => {
            let name = rustls::pki_types::ServerName::try_from(url.host.clone())
                .map_err(|_| format!("`{}` is not a valid TLS server name", url.host))?;
            let tls = tls_connector()?
                .connect(name, stream)
                .await
                .map_err(|e| format!("TLS handshake with {} failed: {e}", url.authority()))?;
            exchange(tls, url, request, max_body).await
        }
    }
}

/// One line for a failed connection: "connection refused to 127.0.0.1:8080".
pub fn describe_connect_error(e: &std::io::Error, authority: &str) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => format!("connection refused to {authority}"),
        ErrorKind::TimedOut => format!("connection to {authority} timed out"),
        ErrorKind::ConnectionReset => format!("connection reset by {authority}"),
        _ => format!("cannot connect to {authority}: {e}"),
    }
}

fn tls_connector() -> Result<tokio_rustls::TlsConnector, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
            .map_err(|e| format!("TLS setup: {e}"))
    });
    config.clone().map(tokio_rustls::TlsConnector::from)
}

async fn exchange<S>(
    stream: S,
    url: &Url,
    request: &Request<'_>,
    max_body: usize,
) -> Result<Response, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let authority = url.authority();
    exchange_io(stream, url, request, max_body)
        .await
        .map_err(|e| format!("{authority}: {e}"))
}

/// One request and its response over `stream`, through hyper's HTTP/1.1 client connection.
/// Errors are without the server's name; [`exchange`] adds it.
async fn exchange_io<S>(
    stream: S,
    url: &Url,
    request: &Request<'_>,
    max_body: usize,
) -> Result<Response, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    use http_body_util::BodyExt;

    let host_header = match (url.scheme, url.port) {
        (Scheme::Http, 80) | (Scheme::Https, 443) => url.host.clone(),
        _ => url.authority(),
    };
    let mut builder = hyper::Request::builder()
        .method(request.method)
        .uri(url.target.as_str())
        .header(hyper::header::HOST, host_header)
        .header(
            hyper::header::USER_AGENT,
            concat!("restage/", env!("CARGO_PKG_VERSION")),
        )
        .header(hyper::header::ACCEPT, "*/*")
        .header(hyper::header::CONNECTION, "close");
    if let Some(content_type) = request.content_type {
        builder = builder.header(hyper::header::CONTENT_TYPE, content_type);
    }
    let body = http_body_util::Full::new(bytes::Bytes::copy_from_slice(request.body));
    let hyper_request = builder
        .body(body)
        .map_err(|e| format!("cannot build the request: {e}"))?;

    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(MAX_HEAD)
        .max_header_size(MAX_HEAD)
        .handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| describe_hyper_error(&e))?;
    let work = async move {
        let response = sender
            .send_request(hyper_request)
            .await
            .map_err(|e| describe_hyper_error(&e))?;
        let (parts, body) = response.into_parts();
        if let Some(len) = parts
            .headers
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            && len > max_body as u64
        {
            return Err(format!(
                "response body of {len} bytes is over the {max_body}-byte limit"
            ));
        }
        let body = http_body_util::Limited::new(body, max_body)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    format!("response body is over the {max_body}-byte limit")
                } else if let Some(e) = e.downcast_ref::<hyper::Error>() {
                    format!("reading the body: {}", describe_hyper_error(e))
                } else {
                    format!("reading the body: {e}")
                }
            })?
            .to_bytes();
        let headers = parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).trim().to_string(),
                )
            })
            .collect();
        Ok(Response {
            status: parts.status.as_u16(),
            headers,
            body: body.to_vec(),
        })
    };
    // The connection is driven here, beside the request, not in a spawned task: when the
    // caller's timeout drops this future, the socket closes with it.
    let mut work = Box::pin(work);
    let mut connection = Box::pin(connection);
    tokio::select! {
        result = &mut work => result,
        done = &mut connection => {
            drop(connection);
            // What was read before the connection ended is still in the response channel.
            match (work.await, done) {
                (Ok(response), _) => Ok(response),
                (Err(_), Err(e)) => Err(describe_hyper_error(&e)),
                (Err(e), Ok(())) => Err(e),
            }
        }
    }
}

/// One line for what hyper reports, in the words the probes used before hyper.
fn describe_hyper_error(e: &hyper::Error) -> String {
    use std::error::Error as _;
    if e.is_incomplete_message() {
        return "the server closed the connection without answering in full".to_string();
    }
    if e.is_parse_too_large() {
        return format!("response head is over {MAX_HEAD} bytes");
    }
    if e.is_parse() {
        return format!("not an HTTP/1.x response ({e})");
    }
    match e.source() {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_url_is_not_repeated_in_its_error() {
        let err = Url::parse_secret(" hooks.example/T0/token ").unwrap_err();
        assert_eq!(err, "the URL is not an http:// or https:// URL");
        assert!(Url::parse_secret("http://h/a b").is_err());
    }

    #[test]
    fn parses_urls() {
        let u = Url::parse("http://127.0.0.1:3000/health?x=1#frag").unwrap();
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.port, 3000);
        assert_eq!(u.target, "/health?x=1");
        assert_eq!(u.to_string(), "http://127.0.0.1:3000/health?x=1");
        let u = Url::parse("https://example.com").unwrap();
        assert_eq!((u.port, u.target.as_str()), (443, "/"));
        let u = Url::parse("http://[::1]:8080/h").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 8080));
        assert_eq!(u.authority(), "[::1]:8080");
        assert!(
            Url::parse("ftp://x/")
                .unwrap_err()
                .contains("unsupported URL scheme")
        );
        let err = Url::parse("http://bob:hunter2@h/").unwrap_err();
        assert!(
            err.contains("credentials") && !err.contains("hunter2"),
            "{err}"
        );
        assert!(Url::parse("http://h:notaport/").is_err());
    }

    /// Answers one request with `raw` over an in-memory stream, then closes; returns what the
    /// client made of it and the request head it sent.
    async fn exchange_with(raw: &[u8], max_body: usize) -> (Result<Response, String>, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (client, mut server) = tokio::io::duplex(256 * 1024);
        let raw = raw.to_vec();
        let answer = tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match server.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = server.write_all(&raw).await;
            let _ = server.shutdown().await;
            String::from_utf8_lossy(&seen).into_owned()
        });
        let url = Url::parse("http://example.test:8080/health?x=1").unwrap();
        let result = exchange_io(client, &url, &Request::get(), max_body).await;
        (result, answer.await.unwrap_or_default())
    }

    async fn parse(raw: &[u8]) -> Result<Response, String> {
        exchange_with(raw, 1024).await.0
    }

    #[tokio::test]
    async fn sends_one_request_that_closes_the_connection() {
        let (r, head) = exchange_with(b"HTTP/1.1 204 No Content\r\n\r\n", 1024).await;
        assert_eq!(r.unwrap().status, 204);
        let lower = head.to_ascii_lowercase();
        assert!(lower.starts_with("get /health?x=1 http/1.1\r\n"), "{head}");
        assert!(lower.contains("\r\nhost: example.test:8080\r\n"), "{head}");
        assert!(lower.contains("\r\nconnection: close\r\n"), "{head}");
        assert!(lower.contains("\r\nuser-agent: restage/"), "{head}");
    }

    #[tokio::test]
    async fn reads_content_length_chunked_and_eof_bodies() {
        let r = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA")
            .await
            .unwrap();
        assert_eq!((r.status, r.body_text().as_str()), (200, "ok"));
        let r = parse(
            b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: 1\r\n\r\n",
        )
        .await
        .unwrap();
        assert_eq!((r.status, r.body_text().as_str()), (503, "abcde"));
        let r = parse(b"HTTP/1.0 200 OK\r\nX: y\r\n\r\nto the end")
            .await
            .unwrap();
        assert_eq!(r.body_text(), "to the end");
        assert_eq!(r.header("X"), Some("y"));
        let r = parse(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(r.status, 204);
    }

    #[tokio::test]
    async fn refuses_garbage_truncation_and_oversized_answers() {
        let err = parse(b"SSH-2.0-OpenSSH\r\n").await.unwrap_err();
        assert!(err.contains("not an HTTP"), "{err}");
        let err = parse(b"").await.unwrap_err();
        assert!(err.contains("without answering"), "{err}");
        // Cut inside the headers, inside a Content-Length body, inside a chunk.
        for cut in [
            &b"HTTP/1.1 200 OK\r\nContent-Le"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        ] {
            assert!(
                parse(cut).await.is_err(),
                "{}",
                String::from_utf8_lossy(cut)
            );
        }
        let err =
            parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n")
                .await
                .unwrap_err();
        assert!(err.contains("reading the body"), "{err}");
        // A body over the cap, announced, chunked, or up to EOF.
        let big = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n{}",
            "x".repeat(5000)
        );
        assert!(parse(big.as_bytes()).await.unwrap_err().contains("limit"));
        let chunk = format!("100\r\n{}\r\n", "y".repeat(256));
        let many = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{}0\r\n\r\n",
            chunk.repeat(8)
        );
        assert!(parse(many.as_bytes()).await.unwrap_err().contains("limit"));
        let eof = format!("HTTP/1.0 200 OK\r\n\r\n{}", "z".repeat(5000));
        assert!(parse(eof.as_bytes()).await.unwrap_err().contains("limit"));
        // A response head over the cap.
        let head = format!(
            "HTTP/1.1 200 OK\r\nX-Big: {}\r\n\r\n",
            "h".repeat(MAX_HEAD + 10)
        );
        let err = parse(head.as_bytes()).await.unwrap_err();
        assert!(err.contains("response head"), "{err}");
    }

    #[test]
    fn judges_status_and_body() {
        let r = |status, body: &str| Response {
            status,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        };
        assert!(judge_response(&r(204, ""), None, None).is_ok());
        assert_eq!(
            judge_response(&r(503, ""), None, None).unwrap_err(),
            "HTTP 503"
        );
        assert_eq!(
            judge_response(&r(200, ""), Some(204), None).unwrap_err(),
            "HTTP 200 (expected 204)"
        );
        let re = regex::Regex::new("\"status\":\\s*\"ok\"").unwrap();
        assert!(judge_response(&r(200, "{\"status\": \"ok\"}"), None, Some(&re)).is_ok());
        assert!(
            judge_response(&r(200, "{\"status\": \"down\"}"), None, Some(&re))
                .unwrap_err()
                .contains("does not match")
        );
    }
}
