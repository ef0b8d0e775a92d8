//! `restage health --serve ADDR`: the latest status document as `GET /health`, for a load
//! balancer or an orchestrator's probe, and as Prometheus metrics at `GET /metrics`
//! (always 200: a scrape reports the status, it is not judged by it).
//!
//! The checks run on their own schedule (`health.interval`); a request only reads the last
//! document, so a burst of probes never multiplies the load on the databases. HTTP status:
//! 200 when healthy or degraded (the service still works, a non-critical dependency does
//! not), 503 when unhealthy — what load balancers act on. Body: the document, as
//! `application/health+json`.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::health::status::{Status, StatusDocument};

/// How long a client may take to send its request head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head accepted.
const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// Accepts connections until the task is dropped, answering from `latest`.
pub async fn serve(listener: TcpListener, latest: watch::Receiver<Arc<StatusDocument>>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let latest = latest.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, latest).await {
                tracing::debug!(%peer, error = %e, "health request failed");
            }
        });
    }
}

async fn answer(
    stream: TcpStream,
    latest: watch::Receiver<Arc<StatusDocument>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let head = match tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut reader)).await {
        Ok(head) => head?,
        Err(_) => return Ok(()),
    };
    let Some(head) = head else {
        return Ok(());
    };
    let mut words = head.split_whitespace();
    let method = words.next().unwrap_or("");
    let target = words.next().unwrap_or("");
    let path = target.split('?').next().unwrap_or("");
    let (status_line, content_type, body, extra) = match (method, path) {
        ("GET" | "HEAD", "/health") => {
            let doc = latest.borrow().clone();
            let body = serde_json::to_vec(&*doc).unwrap_or_else(|_| b"{}".to_vec());
            let status_line = match doc.status {
                Status::Unhealthy => "503 Service Unavailable",
                Status::Healthy | Status::Degraded => "200 OK",
            };
            (
                status_line,
                "application/health+json",
                body,
                "Cache-Control: no-store\r\n",
            )
        }
        ("GET" | "HEAD", "/metrics") => {
            let doc = latest.borrow().clone();
            (
                "200 OK",
                crate::health::metrics::CONTENT_TYPE,
                crate::health::metrics::render(&doc).into_bytes(),
                "Cache-Control: no-store\r\n",
            )
        }
        (_, "/health" | "/metrics") => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            b"only GET and HEAD\n".to_vec(),
            "Allow: GET, HEAD\r\n",
        ),
        _ => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            b"not found: the status document is at /health, its metrics at /metrics\n".to_vec(),
            "",
        ),
    };
    let mut response = format!(
        "HTTP/1.1 {status_line}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        response.extend_from_slice(&body);
    }
    let stream = reader.get_mut();
    stream.write_all(&response).await?;
    stream.shutdown().await
}

/// Reads the request line and skips the headers; `None` when the client sent nothing.
async fn read_head(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<String>> {
    let mut first = String::new();
    let mut total = 0;
    let mut line = String::new();
    loop {
        line.clear();
        let n = (&mut *reader)
            .take((MAX_REQUEST_HEAD - total.min(MAX_REQUEST_HEAD)) as u64 + 1)
            .read_line(&mut line)
            .await?;
        total += n;
        if n == 0 || total > MAX_REQUEST_HEAD {
            return Ok(if first.is_empty() { None } else { Some(first) });
        }
        if first.is_empty() {
            first = line.trim_end().to_string();
            if first.is_empty() {
                // Tolerate a stray CRLF before the request line (RFC 9112 2.2).
                continue;
            }
        } else if line.trim_end().is_empty() {
            return Ok(Some(first));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::status::CheckStatus;
    use crate::http::{self, Url};

    #[tokio::test]
    async fn serves_the_latest_document() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let doc = |healthy| {
            Arc::new(StatusDocument::new(vec![CheckStatus {
                name: "db".into(),
                healthy,
                critical: true,
                latency_ms: 1,
                detail: "x".into(),
            }]))
        };
        let (tx, rx) = watch::channel(doc(true));
        let server = tokio::spawn(serve(listener, rx));
        let url = |path: &str| Url::parse(&format!("http://127.0.0.1:{port}{path}")).unwrap();
        let r = http::get(&url("/health"), 1 << 20).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/health+json"));
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["status"], "healthy");
        tx.send_replace(doc(false));
        let r = http::get(&url("/health?verbose=1"), 1 << 20).await.unwrap();
        assert_eq!(r.status, 503);
        let r = http::get(&url("/metrics"), 1 << 20).await.unwrap();
        assert_eq!(r.status, 200, "a scrape is not judged by the status");
        assert_eq!(
            r.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        assert!(
            r.body_text()
                .contains("restage_health_status{status=\"unhealthy\"} 1.0\n"),
            "{}",
            r.body_text()
        );
        assert_eq!(http::get(&url("/"), 1 << 20).await.unwrap().status, 404);
        server.abort();
    }
}
