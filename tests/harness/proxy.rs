//! A TCP proxy for fault tests: forwards connections to a real server and can cut every
//! connection on demand, so a test can drop restage's connection mid-stream without touching
//! the shared server.
//!
//! The proxy runs on a runtime of its own, on its own thread, so it keeps forwarding while the
//! test blocks (waiting for a child process, say). Connections are numbered in the order they
//! were accepted, from 0: a test can cut only the ones opened after the first (the snapshot
//! leader, the maintenance connection that holds the lock) with [`Proxy::cut_from`].
//!
//! A cut is abortive on both sides (`SO_LINGER` 0, so a TCP reset): the client sees its
//! connection reset, the server sees its client gone and ends the session.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// A connection the proxy forwards, by its number.
struct Conn {
    index: usize,
    /// Sending (or dropping) it cuts the connection.
    cut: Option<oneshot::Sender<()>>,
    open: Arc<AtomicBool>,
}

#[derive(Default)]
struct Shared {
    conns: Mutex<Vec<Conn>>,
    refuse: AtomicBool,
    /// New connections still to reset before accepting again.
    refuse_next: AtomicUsize,
}

pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy on 127.0.0.1 (a free port) forwarding to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> Proxy {
        let upstream = upstream.to_string();
        let shared = Arc::new(Shared::default());
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::Builder::new()
            .name("test-proxy".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("proxy runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
                    addr_tx
                        .send(listener.local_addr().expect("proxy address"))
                        .expect("proxy address channel");
                    tokio::select! {
                        _ = accept_loop(listener, upstream, state) => {}
                        _ = stop_rx => {}
                    }
                });
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .expect("proxy thread");
        let addr = addr_rx.recv().expect("proxy started");
        Proxy {
            addr,
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// A proxy in front of the test PostgreSQL server.
    pub fn postgres() -> Proxy {
        Proxy::start(&super::admin_host_port())
    }

    /// A proxy in front of the test Redis.
    pub fn redis() -> Proxy {
        Proxy::start(&super::redis_host_port())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// How many connections were accepted so far (open or not).
    pub fn accepted(&self) -> usize {
        self.lock().len()
    }

    /// The numbers of the connections open now.
    pub fn open(&self) -> Vec<usize> {
        self.lock()
            .iter()
            .filter(|c| c.open.load(Ordering::SeqCst))
            .map(|c| c.index)
            .collect()
    }

    /// Cuts every connection open now.
    pub fn cut_all(&self) -> usize {
        self.cut_where(|_| true)
    }

    /// Cuts the open connections numbered `first` and later.
    pub fn cut_from(&self, first: usize) -> usize {
        self.cut_where(|i| i >= first)
    }

    /// Cuts one connection.
    pub fn cut(&self, index: usize) -> usize {
        self.cut_where(|i| i == index)
    }

    /// Cuts the open connections whose number satisfies `which`; returns how many.
    pub fn cut_where(&self, which: impl Fn(usize) -> bool) -> usize {
        let mut n = 0;
        for c in self.lock().iter_mut() {
            if which(c.index)
                && c.open.load(Ordering::SeqCst)
                && let Some(cut) = c.cut.take()
            {
                let _ = cut.send(());
                n += 1;
            }
        }
        n
    }

    /// While true, new connections are reset as soon as they are accepted (a server that is
    /// down); open ones are not touched.
    pub fn refuse(&self, refuse: bool) {
        self.shared.refuse.store(refuse, Ordering::SeqCst);
    }

    /// Resets the next `n` new connections as soon as they are accepted, then forwards again.
    pub fn refuse_next(&self, n: usize) {
        self.shared.refuse_next.store(n, Ordering::SeqCst);
    }

    /// Waits until at least `n` connections were accepted; false on timeout.
    pub fn wait_accepted(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.accepted() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Conn>> {
        self.shared
            .conns
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut_all();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(listener: TcpListener, upstream: String, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let refuse_one = shared
            .refuse_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if refuse_one || shared.refuse.load(Ordering::SeqCst) {
            let _ = client.set_zero_linger();
            drop(client);
            continue;
        }
        let (cut_tx, cut_rx) = oneshot::channel();
        let open = Arc::new(AtomicBool::new(true));
        {
            let mut conns = shared.conns.lock().unwrap_or_else(|p| p.into_inner());
            let index = conns.len();
            conns.push(Conn {
                index,
                cut: Some(cut_tx),
                open: open.clone(),
            });
        }
        let upstream = upstream.clone();
        tokio::spawn(async move {
            forward(client, &upstream, cut_rx).await;
            open.store(false, Ordering::SeqCst);
        });
    }
}

async fn forward(mut client: TcpStream, upstream: &str, cut: oneshot::Receiver<()>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        let _ = client.set_zero_linger();
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = cut => {
            let _ = client.set_zero_linger();
            let _ = server.set_zero_linger();
        }
    }
}
