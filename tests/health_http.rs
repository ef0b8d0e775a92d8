//! The HTTP/1.1 of `health --serve` (hyper since issue 15), spoken to over raw sockets, so
//! what the tests send is exactly what a load balancer, a scanner or a broken client sends:
//! keep-alive and pipelining, HEAD, chunked request bodies, malformed requests (400, never a
//! hang), oversized heads (431), and slow or idle clients (closed by the server's bounds).
//!
//! Each wait here has an outer `timeout` that only keeps a broken server from hanging the
//! suite; what is asserted is what the server did (its answer, or its closing the socket).

use std::sync::Arc;
use std::time::Duration;

use restage::health::serve::{Limits, MAX_REQUEST_HEAD, serve_with};
use restage::health::status::{CheckStatus, StatusDocument};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Far above any bound of the server under test: reaching it means the server hung.
const HANG: Duration = Duration::from_secs(60);

fn document(healthy: bool) -> Arc<StatusDocument> {
    Arc::new(StatusDocument::new(vec![CheckStatus {
        name: "db".into(),
        healthy,
        critical: true,
        latency_ms: 1,
        detail: "x".into(),
    }]))
}

struct Running {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
    _tx: watch::Sender<Arc<StatusDocument>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start(limits: Limits) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = watch::channel(document(true));
    let task = tokio::spawn(serve_with(listener, rx, limits));
    Running {
        addr,
        task,
        _tx: tx,
    }
}

/// Short bounds, so the tests of slow and idle clients end quickly.
fn short() -> Limits {
    Limits {
        request_timeout: Duration::from_millis(300),
        connection_lifetime: Duration::from_secs(2),
        shutdown_grace: Duration::from_millis(500),
    }
}

/// One response read off `stream`: status, lower-cased head, body (by Content-Length).
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

async fn read_answer(stream: &mut TcpStream, buffered: &mut Vec<u8>, head_only: bool) -> Answer {
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buffered.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::time::timeout(HANG, stream.read(&mut buf))
            .await
            .expect("the server hung")
            .unwrap();
        assert!(n > 0, "the server closed before answering");
        buffered.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&buffered[..head_end]).to_ascii_lowercase();
    let status: u16 = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    buffered.drain(..head_end);
    let want = if head_only { 0 } else { length };
    while buffered.len() < want {
        let n = tokio::time::timeout(HANG, stream.read(&mut buf))
            .await
            .expect("the server hung")
            .unwrap();
        assert!(n > 0, "the server closed inside the body");
        buffered.extend_from_slice(&buf[..n]);
    }
    let body = buffered.drain(..want).collect();
    Answer { status, head, body }
}

/// Reads until the server closes; returns what came. Panics if it never closes.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(HANG, stream.read(&mut buf))
            .await
            .expect("the server never closed the connection")
        {
            Ok(0) | Err(_) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn keep_alive_and_pipelined_requests_share_one_connection() {
    let server = start(Limits::default()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let mut buffered = Vec::new();
    for path in ["/health", "/metrics", "/nope", "/health?x=1"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: lb\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let answer = read_answer(&mut stream, &mut buffered, false).await;
        let want = if path == "/nope" { 404 } else { 200 };
        assert_eq!(answer.status, want, "{path}: {}", answer.head);
        assert!(
            !answer.head.contains("connection: close"),
            "{}",
            answer.head
        );
    }
    // Three requests in one write: three answers, in order.
    stream
        .write_all(
            b"GET /health HTTP/1.1\r\nHost: a\r\n\r\nHEAD /metrics HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n",
        )
        .await
        .unwrap();
    let first = read_answer(&mut stream, &mut buffered, false).await;
    assert_eq!(first.status, 200);
    let doc: serde_json::Value = serde_json::from_slice(&first.body).unwrap();
    assert_eq!(doc["status"], "healthy");
    let head = read_answer(&mut stream, &mut buffered, true).await;
    assert_eq!(head.status, 200);
    assert!(head.head.contains("content-length: "), "{}", head.head);
    let third = read_answer(&mut stream, &mut buffered, false).await;
    assert_eq!(third.status, 404);
    // `Connection: close` is honoured: the answer, then the end.
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_answer(&mut stream, &mut buffered, false).await;
    assert_eq!(answer.status, 200);
    assert!(read_to_close(&mut stream).await.is_empty());
}

#[tokio::test]
async fn head_has_the_headers_and_no_body() {
    let server = start(Limits::default()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"HEAD /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let all = String::from_utf8(read_to_close(&mut stream).await).unwrap();
    let (head, body) = all.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("content-type: application/health+json"),
        "{head}"
    );
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap();
    assert!(length > 0);
    assert_eq!(body, "", "HEAD has no body");
}

#[tokio::test]
async fn other_methods_get_405_even_with_a_chunked_body() {
    let server = start(Limits::default()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let mut buffered = Vec::new();
    stream
        .write_all(
            b"POST /health HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3;ext=1\r\nefg\r\n0\r\n\r\n",
        )
        .await
        .unwrap();
    let answer = read_answer(&mut stream, &mut buffered, false).await;
    assert_eq!(answer.status, 405, "{}", answer.head);
    assert!(answer.head.contains("allow: get, head"), "{}", answer.head);
    // The chunked body was consumed, not taken for the next request.
    stream
        .write_all(b"DELETE /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz")
        .await
        .unwrap();
    let answer = read_answer(&mut stream, &mut buffered, false).await;
    assert_eq!(answer.status, 405, "{}", answer.head);
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        read_answer(&mut stream, &mut buffered, false).await.status,
        200
    );
}

#[tokio::test]
async fn malformed_requests_get_400_and_the_connection_closes() {
    let server = start(Limits::default()).await;
    let garbage: [&[u8]; 7] = [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET /health HTTP/9.9\r\n\r\n",
        b"GET /health HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ];
    for request in garbage {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let answer = String::from_utf8_lossy(&read_to_close(&mut stream).await).into_owned();
        let shown = String::from_utf8_lossy(request);
        // A bad chunk is found after the head was accepted: the answer may already be on the
        // wire; what matters is that it is not a hang and the connection ends.
        if shown.contains("zz") {
            continue;
        }
        assert!(answer.starts_with("HTTP/1.1 400 "), "{shown:?}: {answer:?}");
    }
    // The server still answers afterwards.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&read_to_close(&mut stream).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
}

#[tokio::test]
async fn oversized_heads_get_431_and_are_not_buffered_without_end() {
    let server = start(Limits::default()).await;
    // One huge header, and many small ones past the size.
    let huge = format!(
        "GET /health HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "a".repeat(MAX_REQUEST_HEAD + 1)
    );
    let many = format!(
        "GET /health HTTP/1.1\r\nHost: a\r\n{}\r\n",
        (0..2000)
            .map(|i| format!("X-{i}: v\r\n"))
            .collect::<String>()
    );
    let long_target = format!(
        "GET /health?{} HTTP/1.1\r\nHost: a\r\n\r\n",
        "q".repeat(MAX_REQUEST_HEAD * 2)
    );
    for request in [huge, many, long_target] {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        // The server may close before the whole head is written: a write error is fine.
        let _ = stream.write_all(request.as_bytes()).await;
        let answer = String::from_utf8_lossy(&read_to_close(&mut stream).await).into_owned();
        // The answer is 431 (or 400). It can be lost on the way: the server closes with the
        // rest of the head unread, and the kernel then resets the connection, which may
        // discard it. What may never happen is a 200 or a hang.
        assert!(
            answer.is_empty()
                || answer.starts_with("HTTP/1.1 431 ")
                || answer.starts_with("HTTP/1.1 400 "),
            "{}: {answer:?}",
            &request[..40]
        );
    }
    // A head that never ends is refused at the cap, not read forever.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nX-Endless: ")
        .await
        .unwrap();
    let chunk = vec![b'z'; 4096];
    let mut written = 0usize;
    while written < 64 * MAX_REQUEST_HEAD {
        if stream.write_all(&chunk).await.is_err() {
            break;
        }
        written += chunk.len();
    }
    let answer = String::from_utf8_lossy(&read_to_close(&mut stream).await).into_owned();
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431 "),
        "{answer:?}"
    );
}

#[tokio::test]
async fn slow_and_idle_clients_are_closed_by_the_server() {
    let server = start(short()).await;
    // Connects and sends nothing.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    // Sends half a head and stalls.
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    stalled
        .write_all(b"GET /health HTTP/1.1\r\nHo")
        .await
        .unwrap();
    // Sends a head a byte at a time, slower than the request timeout allows in total.
    let mut trickle = TcpStream::connect(server.addr).await.unwrap();
    let trickling = tokio::spawn(async move {
        for byte in b"GET /health HTTP/1.1\r\nHost: a\r\n".iter() {
            if trickle.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        read_to_close(&mut trickle).await
    });
    // Keeps a connection alive after one answer and goes quiet.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buffered = Vec::new();
    assert_eq!(
        read_answer(&mut idle, &mut buffered, false).await.status,
        200
    );
    // Sends a request with a body it never finishes.
    let mut body = TcpStream::connect(server.addr).await.unwrap();
    body.write_all(b"POST /health HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\nabc")
        .await
        .unwrap();

    let silent_got = read_to_close(&mut silent).await;
    assert!(silent_got.is_empty(), "{silent_got:?}");
    let stalled_got = read_to_close(&mut stalled).await;
    assert!(
        stalled_got.is_empty() || stalled_got.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&stalled_got)
    );
    let trickle_got = tokio::time::timeout(HANG, trickling)
        .await
        .unwrap()
        .unwrap();
    assert!(
        !trickle_got.starts_with(b"HTTP/1.1 200"),
        "a head that never completes is not answered"
    );
    assert!(read_to_close(&mut idle).await.is_empty());
    let body_got = String::from_utf8_lossy(&read_to_close(&mut body).await).into_owned();
    assert!(
        body_got.is_empty() || body_got.starts_with("HTTP/1.1 405 "),
        "{body_got}"
    );
}

#[tokio::test]
async fn many_connections_at_once_are_all_answered() {
    let server = start(Limits::default()).await;
    let clients: Vec<_> = (0..64)
        .map(|_| {
            let addr = server.addr;
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(addr).await.unwrap();
                stream
                    .write_all(b"GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                    .await
                    .unwrap();
                read_to_close(&mut stream).await
            })
        })
        .collect();
    for client in clients {
        let got = client.await.unwrap();
        assert!(got.starts_with(b"HTTP/1.1 200 "));
    }
}
