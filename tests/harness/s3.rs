//! A real local S3 server for a test: `moto_server` (PyPI `moto[server]`) on a free port,
//! killed when the guard is dropped. Each test makes its own bucket ([`Moto::bucket`]).
//!
//! moto is installed by `.ci/run` when `moto_server` is missing; a test that needs it skips
//! with a loud message only when it is absent and `RESTAGE_REQUIRE_TOOLS` is unset (CI sets
//! it, so CI never skips).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;

/// The test credentials: moto accepts any; the secret is checked never to be printed.
pub const ACCESS_KEY: &str = "AKIARESTAGETEST00001";
pub const SECRET_KEY: &str = "restage-test-secret-Zq8wX3vN7mK2pL9";

/// A running moto server; killed (its process group) when dropped.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    /// Starts moto on a free port and waits (at most 60 s) until it answers. None when
    /// moto_server is not installed and the tools are not required.
    pub fn start() -> Option<Moto> {
        if Command::new("moto_server")
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| !s.success())
            .unwrap_or(true)
        {
            if std::env::var_os("RESTAGE_REQUIRE_TOOLS").is_some() {
                panic!(
                    "moto_server is required (RESTAGE_REQUIRE_TOOLS is set): pip install 'moto[server]'"
                );
            }
            eprintln!(
                "\n!!!!!!!! SKIPPED: moto_server is not installed (pip install 'moto[server]'); this S3 test did not run !!!!!!!!\n"
            );
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        use std::os::unix::process::CommandExt;
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            // Small multipart pieces (the tests upload parts in pieces of a few KiB).
            .env("S3_UPLOAD_PART_MIN_SIZE", "256")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start moto_server");
        let moto = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if moto
                .request("GET", "/", b"")
                .is_some_and(|r| r.starts_with("HTTP/1.1 200"))
            {
                return Some(moto);
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer on 127.0.0.1:{port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment a restage child needs to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
            // Never the developer's own profile.
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".to_string()),
            ("AWS_CONFIG_FILE", "/nonexistent".to_string()),
        ]
    }

    /// One plain HTTP/1.1 request (moto does not check signatures); the response text.
    fn request(&self, method: &str, path: &str, body: &[u8]) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        );
        stream.write_all(head.as_bytes()).ok()?;
        stream.write_all(body).ok()?;
        let mut out = Vec::new();
        stream.read_to_end(&mut out).ok()?;
        Some(String::from_utf8_lossy(&out).into_owned())
    }

    /// Creates a bucket of a unique name; returns its name.
    pub fn bucket(&self, prefix: &str) -> String {
        let name = super::unique_name(prefix)
            .to_ascii_lowercase()
            .replace('_', "-");
        let response = self
            .request("PUT", &format!("/{name}"), b"")
            .expect("create bucket");
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "creating {name}: {response}"
        );
        name
    }

    /// A client of `bucket` for the test's own checks.
    pub fn client(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        Arc::new(
            AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_region("us-east-1")
                .with_endpoint(self.endpoint())
                .with_allow_http(true)
                .with_access_key_id(ACCESS_KEY)
                .with_secret_access_key(SECRET_KEY)
                .build()
                .expect("an S3 client"),
        )
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // SAFETY: kill(2) of the process group we made for our own child.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
