//! A private PostgreSQL cluster started by a test: for what the shared server cannot show
//! without being reconfigured — password authentication (scram-sha-256) and TLS with a
//! certificate the test made.
//!
//! `initdb` refuses to run as root, so as root every server command runs as the `postgres`
//! user (`runuser -u postgres --`) in a temporary folder it owns. The cluster listens on
//! `localhost` at a free port and on a Unix socket in its folder (trust, for the test's own
//! setup). It is stopped when dropped, and also by a watchdog process when the test process
//! exits (so a cluster kept in a `static` does not outlive the tests).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What the cluster requires of TCP clients.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// The `postgres` user's password; TCP clients must give it (scram-sha-256). None: trust.
    pub password: Option<String>,
    /// Serve TLS with a certificate for `localhost` signed by a CA made for the test, and
    /// accept TCP clients only over TLS (`hostssl` lines only in pg_hba.conf).
    pub tls: bool,
}

pub struct Cluster {
    pub port: u16,
    pub dir: PathBuf,
    pub password: Option<String>,
    /// The CA that signed the server certificate (with `tls`).
    pub ca: Option<PathBuf>,
    /// Another CA, which did not sign it (with `tls`).
    pub other_ca: Option<PathBuf>,
    bin: PathBuf,
    stopped: bool,
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A command for a server binary, as the postgres user when we are root.
fn server_command(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// The newest PostgreSQL server binaries: `RESTAGE_TEST_PG_BIN` or `/usr/lib/postgresql/*/bin`.
fn find_bin() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("RESTAGE_TEST_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("no /usr/lib/postgresql ({e}); set RESTAGE_TEST_PG_BIN"))?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").is_file() && p.join("pg_ctl").is_file())
        .collect();
    dirs.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop()
        .ok_or_else(|| "no initdb found under /usr/lib/postgresql/*/bin".to_string())
}

fn run(mut cmd: Command, what: &str) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: cannot run: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{what} failed ({}): {text}", out.status))
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn chown_postgres(path: &Path) -> Result<(), String> {
    if is_root() {
        let mut c = Command::new("chown");
        c.arg("-R").arg("postgres:postgres").arg(path);
        run(c, "chown")?;
    }
    Ok(())
}

/// A CA and a server certificate for `localhost` it signed, plus an unrelated CA, with the
/// openssl command-line tool (EC P-256 keys: quick to make).
fn make_certificates(dir: &Path) -> Result<(), String> {
    let openssl = |args: &[&str]| {
        let mut c = Command::new("openssl");
        c.current_dir(dir).args(args);
        run(c, &format!("openssl {}", args.first().unwrap_or(&"")))
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for (name, cn) in [("ca", "restage test CA"), ("other-ca", "restage other CA")] {
        let key = format!("{name}.key");
        let crt = format!("{name}.crt");
        let subj = format!("/CN={cn}");
        let mut args = vec!["req", "-x509"];
        args.extend(ec);
        args.extend([
            "-keyout",
            &key,
            "-out",
            &crt,
            "-days",
            "2",
            "-subj",
            &subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&args)?;
    }
    let mut args = vec!["req"];
    args.extend(ec);
    args.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(&args)?;
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost\n",
    )
    .map_err(|e| format!("server.ext: {e}"))?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ])?;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .map_err(|e| format!("server.key: {e}"))?;
    Ok(())
}

impl Cluster {
    /// Starts a cluster, or says why it cannot (no binaries, initdb failed, …).
    pub fn start(options: ClusterOptions) -> Result<Cluster, String> {
        let bin = find_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("restage-cluster-")
            .tempdir_in("/tmp")
            .map_err(|e| format!("temp dir: {e}"))?
            .keep();
        let result = Cluster::start_in(&bin, &dir, &options);
        if result.is_err() {
            let mut c = server_command(&bin.join("pg_ctl"));
            c.arg("-D")
                .arg(dir.join("data"))
                .args(["-m", "immediate", "stop"]);
            let _ = run(c, "pg_ctl stop");
            let _ = std::fs::remove_dir_all(&dir);
        }
        result
    }

    fn start_in(bin: &Path, dir: &Path, options: &ClusterOptions) -> Result<Cluster, String> {
        if options.tls {
            make_certificates(dir)?;
        }
        chown_postgres(dir)?;
        let data = dir.join("data");
        let mut initdb = server_command(&bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .env("LC_ALL", "C");
        run(initdb, "initdb")?;

        let port = free_port();
        let mut conf = format!(
            "\nlisten_addresses = 'localhost'\nport = {port}\nunix_socket_directories = '{}'\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 60\nshared_buffers = 32MB\n",
            dir.display()
        );
        if options.tls {
            conf.push_str(&format!(
                "ssl = on\nssl_cert_file = '{0}/server.crt'\nssl_key_file = '{0}/server.key'\n",
                dir.display()
            ));
        }
        append(&data.join("postgresql.conf"), &conf)?;
        let method = if options.password.is_some() {
            "scram-sha-256"
        } else {
            "trust"
        };
        let host = if options.tls { "hostssl" } else { "host" };
        std::fs::write(
            data.join("pg_hba.conf"),
            format!(
                "local all all trust\n{host} all all 127.0.0.1/32 {method}\n{host} all all ::1/128 {method}\n"
            ),
        )
        .map_err(|e| format!("pg_hba.conf: {e}"))?;
        chown_postgres(dir)?;

        let mut start = server_command(&bin.join("pg_ctl"));
        start
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("server.log"))
            .args(["-w", "-t", "60", "start"]);
        if let Err(e) = run(start, "pg_ctl start") {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            return Err(format!("{e}\nserver log:\n{log}"));
        }
        // The watchdog: stops the server and removes its folder once this process is gone.
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            stop = if is_root() {
                format!("runuser -u postgres -- '{}'", bin.join("pg_ctl").display())
            } else {
                format!("'{}'", bin.join("pg_ctl").display())
            },
            data = data.display(),
            dir = dir.display(),
        );
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("watchdog: {e}"))?;

        let cluster = Cluster {
            port,
            dir: dir.to_path_buf(),
            password: options.password.clone(),
            ca: options.tls.then(|| dir.join("ca.crt")),
            other_ca: options.tls.then(|| dir.join("other-ca.crt")),
            bin: bin.to_path_buf(),
            stopped: false,
        };
        if let Some(pw) = &options.password {
            cluster.psql(
                "postgres",
                &format!("ALTER USER postgres PASSWORD '{}'", pw.replace('\'', "''")),
            )?;
        }
        Ok(cluster)
    }

    /// Runs SQL as postgres over the Unix socket (trust), with psql.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let mut c = server_command(&self.bin.join("psql"));
        c.arg("-h")
            .arg(&self.dir)
            .arg("-p")
            .arg(self.port.to_string())
            .args([
                "-U",
                "postgres",
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                db,
                "-c",
                sql,
            ]);
        run(c, "psql").map(|s| s.trim().to_string())
    }

    /// A `postgres://` URL for `db` over TCP to `host` (`localhost`, `127.0.0.1`), with the
    /// password when the cluster has one, and `query` appended (`sslmode=require`, …).
    pub fn url(&self, host: &str, db: &str, query: &str) -> String {
        let auth = match &self.password {
            Some(pw) => format!("postgres:{pw}@"),
            None => "postgres@".to_string(),
        };
        let q = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        format!("postgres://{auth}{host}:{}/{db}{q}", self.port)
    }

    /// Every database whose name starts with `prefix`.
    pub fn databases_like(&self, prefix: &str) -> Vec<String> {
        let out = self
            .psql(
                "postgres",
                &format!(
                    "SELECT datname FROM pg_database WHERE datname LIKE '{}%' ORDER BY 1",
                    prefix.replace('_', "\\_")
                ),
            )
            .expect("list databases");
        out.lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    }

    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let mut c = server_command(&self.bin.join("pg_ctl"));
        c.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "stop"]);
        let _ = run(c, "pg_ctl stop");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn append(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("{}: {e}", path.display()))
}
