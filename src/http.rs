//! A small HTTP/1.1 client for health probes, deploy gates and metrics scrapes (GET), and for
//! Pushgateway pushes and notification webhooks (PUT, POST), and the one judgement of a
//! response they share ([`judge_response`]).
//!
//! A foundation: it depends on no other restage module, so `deploy` gets its HTTP from here
//! and not from `health`.
//!
//! Why our own: restage only ever sends one request per connection and reads one response, so a
//! few hundred lines over tokio's `TcpStream` do it, where hyper or reqwest would add dozens of
//! crates to a tool that should build fast. `https` is supported through tokio-rustls (already
//! in the dependency tree via tokio-postgres-rustls, ring provider, webpki roots): certificates
//! are always verified, since a health check that accepts any certificate checks nothing.
//!
//! Every request says `Connection: close`, so a response ends at its `Content-Length`, at the
//! end of its chunks, or at EOF. The body is capped: a probe never reads an unbounded answer.

use std::fmt;
use std::sync::{Arc, OnceLock};

use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt,
};
use tokio::net::TcpStream;

/// Largest response head (status line and headers) we accept.
const MAX_HEAD: usize = 64 * 1024;

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
    S: AsyncRead + AsyncWrite + Unpin,
{
    let authority = url.authority();
    let mut stream = tokio::io::BufReader::new(stream);
    let host_header = match (url.scheme, url.port) {
        (Scheme::Http, 80) | (Scheme::Https, 443) => url.host.clone(),
        _ => authority.clone(),
    };
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: restage/{}\r\nAccept: */*\r\nConnection: close\r\n",
        request.method,
        url.target,
        env!("CARGO_PKG_VERSION")
    );
    if let Some(content_type) = request.content_type {
        head.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            request.body.len()
        ));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(request.body);
    stream
        .get_mut()
        .write_all(&bytes)
        .await
        .map_err(|e| format!("sending the request to {authority}: {e}"))?;
    stream
        .get_mut()
        .flush()
        .await
        .map_err(|e| format!("sending the request to {authority}: {e}"))?;
    read_response(&mut stream, max_body)
        .await
        .map_err(|e| format!("{authority}: {e}"))
}

/// Reads one response from `reader`. Public for the unit tests and the test servers.
pub async fn read_response<R>(reader: &mut R, max_body: usize) -> Result<Response, String>
where
    R: AsyncBufRead + Unpin,
{
    let mut head_bytes = 0usize;
    let mut line = Vec::new();
    let status = loop {
        line.clear();
        let n = read_line(reader, &mut line, &mut head_bytes).await?;
        if n == 0 {
            return Err("the server closed the connection without answering".to_string());
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        let mut parts = text.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        if !version.starts_with("HTTP/1.") {
            return Err(format!(
                "not an HTTP/1.x response: `{}`",
                truncate(text, 60)
            ));
        }
        let code: u16 = parts
            .next()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("malformed status line `{}`", truncate(text, 60)))?;
        let headers = read_headers(reader, &mut head_bytes).await?;
        // 1xx responses are interim: the real one follows.
        if (100..200).contains(&code) {
            continue;
        }
        break (code, headers);
    };
    let (status, headers) = status;
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if status == 204 || status == 304 {
        return Ok(response);
    }
    let chunked = response
        .header("transfer-encoding")
        .map(|v| v.to_ascii_lowercase().contains("chunked"))
        .unwrap_or(false);
    if chunked {
        response.body = read_chunked(reader, max_body).await?;
    } else if let Some(len) = response.header("content-length") {
        let len: usize = len
            .trim()
            .parse()
            .map_err(|_| format!("malformed Content-Length `{len}`"))?;
        if len > max_body {
            return Err(format!(
                "response body of {len} bytes is over the {max_body}-byte limit"
            ));
        }
        let mut body = vec![0; len];
        reader
            .read_exact(&mut body)
            .await
            .map_err(|e| format!("reading the body: {e}"))?;
        response.body = body;
    } else {
        let mut body = Vec::new();
        reader
            .take(max_body as u64 + 1)
            .read_to_end(&mut body)
            .await
            .map_err(|e| format!("reading the body: {e}"))?;
        if body.len() > max_body {
            return Err(format!("response body is over the {max_body}-byte limit"));
        }
        response.body = body;
    }
    Ok(response)
}

async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    head_bytes: &mut usize,
) -> Result<usize, String> {
    // One byte over the budget is enough to know the head is too long.
    let budget = MAX_HEAD.saturating_sub(*head_bytes) as u64 + 1;
    let n = (&mut *reader)
        .take(budget)
        .read_until(b'\n', line)
        .await
        .map_err(|e| format!("reading the response: {e}"))?;
    *head_bytes += n;
    if *head_bytes > MAX_HEAD {
        return Err(format!("response head is over {MAX_HEAD} bytes"));
    }
    Ok(n)
}

async fn read_headers<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    head_bytes: &mut usize,
) -> Result<Vec<(String, String)>, String> {
    let mut headers = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = read_line(reader, &mut line, head_bytes).await?;
        if n == 0 {
            return Err("the connection closed inside the response headers".to_string());
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            return Ok(headers);
        }
        let (name, value) = text
            .split_once(':')
            .ok_or_else(|| format!("malformed header line `{}`", truncate(text, 60)))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
}

async fn read_chunked<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    max_body: usize,
) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        // Each chunk-size line has its own budget; the body cap bounds the total.
        let mut head_bytes = 0usize;
        let n = read_line(reader, &mut line, &mut head_bytes).await?;
        if n == 0 {
            return Err("the connection closed inside a chunked body".to_string());
        }
        let text = String::from_utf8_lossy(&line);
        let size_text = text.trim().split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("malformed chunk size `{}`", truncate(size_text, 20)))?;
        if size == 0 {
            // Trailers, then the empty line.
            read_headers(reader, &mut head_bytes).await?;
            return Ok(body);
        }
        if body.len() + size > max_body {
            return Err(format!("response body is over the {max_body}-byte limit"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader
            .read_exact(&mut body[start..])
            .await
            .map_err(|e| format!("reading a chunk: {e}"))?;
        let mut crlf = [0u8; 2];
        reader
            .read_exact(&mut crlf)
            .await
            .map_err(|e| format!("reading a chunk: {e}"))?;
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max).collect();
        format!("{cut}…")
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

    async fn parse(raw: &[u8]) -> Result<Response, String> {
        let mut reader = tokio::io::BufReader::new(raw);
        read_response(&mut reader, 1024).await
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
    async fn refuses_garbage_and_oversized_bodies() {
        assert!(
            parse(b"SSH-2.0-OpenSSH\r\n")
                .await
                .unwrap_err()
                .contains("not an HTTP")
        );
        assert!(parse(b"").await.unwrap_err().contains("without answering"));
        let big = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n{}",
            "x".repeat(5000)
        );
        assert!(parse(big.as_bytes()).await.unwrap_err().contains("limit"));
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
