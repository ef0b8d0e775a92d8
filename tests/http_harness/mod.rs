//! Real HTTP servers for the health and deploy tests, bound to 127.0.0.1 on free ports.
//!
//! Their behaviour is driven by files in a state directory, which the `restage` commands
//! under test write without a shell: `ln -sfn {version} DIR/{instance_port}` is an "update",
//! `ln -sfn {color} DIR/live` a blue-green switch, `ln -sfn {percent} DIR/traffic` a canary
//! traffic step. A symlink's target is the value, read back with `read_link`, and replacing
//! one is a single rename, so a server never reads half a value.
//!
//! This client and server are written independently of restage's own HTTP code, so a bug
//! there cannot hide itself in the tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What a server answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub content_type: &'static str,
    pub delay: Duration,
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::status(200)
    }

    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            body: format!("{{\"status\": {status}}}\n"),
            content_type: "application/json",
            delay: Duration::ZERO,
        }
    }

    pub fn body(mut self, body: &str) -> Reply {
        self.body = body.to_string();
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// What a handler sees of a request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// 0 for the first request this server received, 1 for the next, …
    pub index: usize,
}

/// A running server; stopped when dropped.
pub struct Server {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Server {
    /// `127.0.0.1:PORT`, as an instance is written in a deploy config.
    pub fn instance(&self) -> String {
        self.addr.to_string()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a server that answers every request with `handler`.
pub async fn serve<F>(handler: F) -> Server
where
    F: Fn(&Request) -> Reply + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a test server");
    let addr = listener.local_addr().expect("test server address");
    let requests = Arc::new(AtomicUsize::new(0));
    let handler = Arc::new(handler);
    let counter = requests.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handler = handler.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let _ = answer(stream, handler.as_ref(), &counter).await;
            });
        }
    });
    Server {
        addr,
        requests,
        task,
    }
}

async fn answer<F>(stream: TcpStream, handler: &F, counter: &AtomicUsize) -> std::io::Result<()>
where
    F: Fn(&Request) -> Reply,
{
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    reader.read_line(&mut first).await?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 || line.trim().is_empty() {
            break;
        }
    }
    let mut words = first.split_whitespace();
    let request = Request {
        method: words.next().unwrap_or("").to_string(),
        path: words.next().unwrap_or("").to_string(),
        index: counter.fetch_add(1, Ordering::SeqCst),
    };
    let reply = handler(&request);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let text = format!(
        "HTTP/1.1 {} Test\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        reply.status,
        reply.content_type,
        reply.body.len(),
        reply.body
    );
    let stream = reader.get_mut();
    stream.write_all(text.as_bytes()).await?;
    stream.shutdown().await
}

/// A server whose n-th request gets `statuses[n]` (the last one once they run out).
pub async fn scripted(statuses: Vec<u16>) -> Server {
    serve(move |r| {
        let i = r.index.min(statuses.len().saturating_sub(1));
        Reply::status(statuses.get(i).copied().unwrap_or(200))
    })
    .await
}

/// A port where nothing listens (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a probe port");
    l.local_addr().expect("probe port").port()
}

// --- a recorder, for pushes and webhooks ----------------------------------------------------

/// A request as the recorder saw it, body included.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub content_type: Option<String>,
    pub body: String,
}

impl Recorded {
    /// The body parsed as JSON (panics with the body when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {}", self.body))
    }
}

/// The requests a recorder received, in order.
pub type Log = Arc<Mutex<Vec<Recorded>>>;

/// A server that records every request with its body (read to its Content-Length), then
/// answers `status` after `delay`: a Pushgateway or a webhook receiver.
pub async fn recorder(status: u16, delay: Duration) -> (Server, Log) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a recorder");
    let addr = listener.local_addr().expect("recorder address");
    let requests = Arc::new(AtomicUsize::new(0));
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let (counter, seen) = (requests.clone(), log.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (counter, seen) = (counter.clone(), seen.clone());
            tokio::spawn(async move {
                let _ = record(stream, status, delay, &counter, &seen).await;
            });
        }
    });
    (
        Server {
            addr,
            requests,
            task,
        },
        log,
    )
}

async fn record(
    stream: TcpStream,
    status: u16,
    delay: Duration,
    counter: &AtomicUsize,
    log: &Log,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    reader.read_line(&mut first).await?;
    let mut length = 0usize;
    let mut content_type = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_string());
            if name == "content-length" {
                length = value.parse().unwrap_or(0);
            } else if name == "content-type" {
                content_type = Some(value);
            }
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).await?;
    let mut words = first.split_whitespace();
    let request = Recorded {
        method: words.next().unwrap_or("").to_string(),
        path: words.next().unwrap_or("").to_string(),
        content_type,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    counter.fetch_add(1, Ordering::SeqCst);
    if let Ok(mut log) = log.lock() {
        log.push(request);
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let text = format!("HTTP/1.1 {status} Test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let stream = reader.get_mut();
    stream.write_all(text.as_bytes()).await?;
    stream.shutdown().await
}

/// What a recorder has received so far.
pub fn received(log: &Log) -> Vec<Recorded> {
    log.lock().map(|l| l.clone()).unwrap_or_default()
}

// --- state files ---------------------------------------------------------------------------

/// Reads a value written as a symlink (`ln -sfn VALUE DIR/NAME`).
pub fn read_value(dir: &Path, name: &str) -> Option<String> {
    std::fs::read_link(dir.join(name))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Writes a value the way the commands under test do.
pub fn write_value(dir: &Path, name: &str, value: &str) {
    let link = dir.join(name);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(value, &link).expect("writing a state symlink");
}

/// The version an instance runs.
pub fn version_of(dir: &Path, server: &Server) -> Option<String> {
    read_value(dir, &server.port().to_string())
}

/// How a fake instance behaves, given its state.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// 200 on /health, whatever the version.
    Healthy,
    /// 503 once it runs this version (it "turns unhealthy after the update").
    UnhealthyOn(String),
    /// Answers after `delay` once it runs this version.
    SlowOn(String, Duration),
    /// 503 once `DIR/live` points at this colour (fails only when it takes traffic).
    UnhealthyWhenLive(String),
}

/// An instance of the service under deployment.
pub async fn instance(dir: &Path, behaviour: Behaviour) -> Server {
    let dir: PathBuf = dir.to_path_buf();
    // The port is known only after binding, so the handler learns it from a shared slot.
    let port = Arc::new(Mutex::new(0u16));
    let slot = port.clone();
    let server = serve(move |r| {
        if r.path != "/health" {
            return Reply::status(404);
        }
        let port = slot.lock().map(|p| *p).unwrap_or(0);
        let version = read_value(&dir, &port.to_string());
        match &behaviour {
            Behaviour::Healthy => Reply::ok(),
            Behaviour::UnhealthyOn(v) if version.as_deref() == Some(v) => Reply::status(503),
            Behaviour::SlowOn(v, delay) if version.as_deref() == Some(v) => {
                Reply::ok().delayed(*delay)
            }
            Behaviour::UnhealthyWhenLive(color)
                if read_value(&dir, "live").as_deref() == Some(color) =>
            {
                Reply::status(503)
            }
            _ => Reply::ok(),
        }
    })
    .await;
    if let Ok(mut p) = port.lock() {
        *p = server.port();
    }
    server
}

/// Bucket bounds of the fake latency histogram, in seconds.
const BUCKETS: [f64; 6] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

#[derive(Default)]
struct Counters {
    ok: u64,
    errors: u64,
    /// Cumulative counts per bound of BUCKETS, then +Inf.
    buckets: [u64; 7],
    sum: f64,
}

/// A Prometheus text-format endpoint at `/metrics`. Each scrape first "serves" 100 requests
/// at the current traffic percent (`DIR/traffic`, 0 when absent): `profile(percent)` gives
/// the share that fails and their latency in seconds. So the error rate and latency seen by
/// the canary analysis follow the traffic steps.
pub async fn metrics<F>(dir: &Path, profile: F) -> Server
where
    F: Fn(u32) -> (f64, f64) + Send + Sync + 'static,
{
    let dir = dir.to_path_buf();
    let counters = Arc::new(Mutex::new(Counters::default()));
    serve(move |r| {
        if r.path != "/metrics" {
            return Reply::status(404);
        }
        let percent: u32 = read_value(&dir, "traffic")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let (error_share, latency) = profile(percent);
        let Ok(mut c) = counters.lock() else {
            return Reply::status(500);
        };
        let errors = (100.0 * error_share).round() as u64;
        c.errors += errors;
        c.ok += 100 - errors;
        c.sum += latency * 100.0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if latency <= *bound {
                c.buckets[i] += 100;
            }
        }
        c.buckets[6] += 100;
        let mut text = String::from(
            "# HELP http_requests_total Requests served.\n# TYPE http_requests_total counter\n",
        );
        text.push_str(&format!(
            "http_requests_total{{code=\"200\",method=\"GET\"}} {}\n",
            c.ok
        ));
        text.push_str(&format!(
            "http_requests_total{{code=\"503\",method=\"GET\"}} {}\n",
            c.errors
        ));
        text.push_str("# TYPE http_request_duration_seconds histogram\n");
        for (i, bound) in BUCKETS.iter().enumerate() {
            text.push_str(&format!(
                "http_request_duration_seconds_bucket{{le=\"{bound}\"}} {}\n",
                c.buckets[i]
            ));
        }
        text.push_str(&format!(
            "http_request_duration_seconds_bucket{{le=\"+Inf\"}} {}\n",
            c.buckets[6]
        ));
        text.push_str(&format!("http_request_duration_seconds_sum {}\n", c.sum));
        text.push_str(&format!(
            "http_request_duration_seconds_count {}\n",
            c.buckets[6]
        ));
        Reply {
            status: 200,
            body: text,
            content_type: "text/plain; version=0.0.4",
            delay: Duration::ZERO,
        }
    })
    .await
}

// --- a client, for --serve ------------------------------------------------------------------

/// A response as the test client reads it.
#[derive(Debug)]
pub struct Got {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Got {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `GET http://addr/path` with `Connection: close`, read to EOF.
pub async fn get(addr: &str, path: &str) -> std::io::Result<Got> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Got {
        status,
        headers,
        body: body.to_string(),
    })
}

// --- running restage --------------------------------------------------------------------------

/// Runs `restage -c CONFIG ARGS…` with `RESTAGE_ACTOR=tester`, bounded to 60 s, progress
/// left at its default as an operator's script would run it.
pub async fn restage(config: &Path, args: &[&str]) -> crate::harness::Output {
    crate::harness::restage()
        .config(config)
        .args(args)
        .env("RESTAGE_ACTOR", "tester")
        .env_remove("RESTAGE_LOG")
        .default_progress()
        .timeout(Duration::from_secs(60))
        .run_async()
        .await
}

/// Writes `restage.yaml` into `dir` and returns its path.
pub fn write_config(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("restage.yaml");
    std::fs::write(&path, yaml).expect("writing restage.yaml");
    path
}
