//! `restage health --serve ADDR`: the latest status document as `GET /health`, for a load
//! balancer or an orchestrator's probe, and as Prometheus metrics at `GET /metrics`
//! (always 200: a scrape reports the status, it is not judged by it).
//!
//! The checks run on their own schedule (`health.interval`); a request only reads the last
//! document, so a burst of probes never multiplies the load on the databases. HTTP status:
//! 200 when healthy or degraded (the service still works, a non-critical dependency does
//! not), 503 when unhealthy — what load balancers act on. Body: the document, as
//! `application/health+json`.
//!
//! The HTTP/1.1 is hyper's (issue 15: a server on the network is not the place for a
//! home-made parser): keep-alive and pipelining, chunked request bodies, `400 Bad Request` for
//! a malformed request, `431` for a head over [`MAX_REQUEST_HEAD`], and every wait bounded
//! ([`Limits`]): the head's arrival, the connection's life, the last response at shutdown,
//! and at most 256 connections at once. The crates and their cost are in `src/http.rs`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::health::status::{Status, StatusDocument};

/// Largest request head accepted: over it, `431 Request Header Fields Too Large`.
pub const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// Largest request body read (and ignored) to keep a connection alive after it.
const MAX_REQUEST_BODY: usize = 64 * 1024;
/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 256;

/// The bounds on every wait of a connection. [`Limits::default`] is what `health --serve`
/// uses; the tests shorten them.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long a client may take to send a request head, from its first byte (hyper's
    /// `header_read_timeout`; over it the connection is closed).
    pub request_timeout: Duration,
    /// How long one connection may stay open, kept alive, idle or slow: then it is closed
    /// after the response in flight (a probe reconnects).
    pub connection_lifetime: Duration,
    /// How long the response in flight may take once a connection is being closed.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            request_timeout: Duration::from_secs(5),
            connection_lifetime: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Accepts connections until the task is dropped, answering from `latest`.
pub async fn serve(listener: TcpListener, latest: watch::Receiver<Arc<StatusDocument>>) {
    serve_with(listener, latest, Limits::default()).await
}

/// [`serve`] with other bounds.
pub async fn serve_with(
    listener: TcpListener,
    latest: watch::Receiver<Arc<StatusDocument>>,
    limits: Limits,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.request_timeout)
        .max_buf_size(MAX_REQUEST_HEAD)
        .max_header_size(MAX_REQUEST_HEAD)
        .keep_alive(true);
    let http = Arc::new(http);
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let latest = latest.clone();
        let http = http.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let latest = latest.clone();
                async move {
                    let (parts, body) = request.into_parts();
                    // A request body is read (and dropped) up to a small cap, so the
                    // connection can be kept alive after a POST; a bigger or slower one is
                    // left, and hyper closes the connection after the answer.
                    let _ = tokio::time::timeout(
                        limits.request_timeout,
                        Limited::new(body, MAX_REQUEST_BODY).collect(),
                    )
                    .await;
                    Ok::<_, Infallible>(respond(&parts.method, parts.uri.path(), &latest))
                }
            });
            let connection = http.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = tokio::time::sleep(limits.connection_lifetime) => {
                    connection.as_mut().graceful_shutdown();
                    match tokio::time::timeout(limits.shutdown_grace, connection.as_mut()).await {
                        Ok(result) => result,
                        Err(_) => Ok(()),
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "health connection ended with an error");
            }
        });
    }
}

/// The answer to `method path` (the query is ignored).
fn respond(
    method: &Method,
    path: &str,
    latest: &watch::Receiver<Arc<StatusDocument>>,
) -> hyper::Response<Full<Bytes>> {
    let readable = method == Method::GET || method == Method::HEAD;
    let (status, content_type, body) = match (readable, path) {
        (true, "/health") => {
            let doc = latest.borrow().clone();
            let body = serde_json::to_vec(&*doc).unwrap_or_else(|_| b"{}".to_vec());
            let status = match doc.status {
                Status::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
                Status::Healthy | Status::Degraded => StatusCode::OK,
            };
            (status, "application/health+json", body)
        }
        (true, "/metrics") => {
            let doc = latest.borrow().clone();
            (
                StatusCode::OK,
                crate::health::metrics::CONTENT_TYPE,
                crate::health::metrics::render(&doc).into_bytes(),
            )
        }
        (false, "/health" | "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            b"only GET and HEAD\n".to_vec(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            b"not found: the status document is at /health, its metrics at /metrics\n".to_vec(),
        ),
    };
    let length = body.len();
    // hyper leaves the body out of a HEAD answer and keeps its headers.
    let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    match status {
        StatusCode::NOT_FOUND => {}
        StatusCode::METHOD_NOT_ALLOWED => {
            headers.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        _ => {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
    }
    response
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
