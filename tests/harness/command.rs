//! Running the `restage` binary: one builder that every test uses, whether it waits for the
//! run (`run`, `run_async`), watches it (`spawn` → [`Running`]), or drives the raw child
//! itself (`tokio_command`).
//!
//! Everything a test sets is on the child's own command line and environment, never on the
//! test process: the tests share one process, so `std::env::set_var` would leak into every
//! other test running at the same time.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Running;

/// How long a run may take before the test kills it and fails: a hung child fails its test
/// instead of hanging the suite. Generous, because the machine may be busy.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// The `restage` binary built for these tests.
pub fn restage_bin() -> &'static str {
    env!("CARGO_BIN_EXE_restage")
}

/// `restage -c CONFIG --progress never ARGS…` with extra environment, stdin and a timeout.
#[derive(Debug, Clone)]
pub struct Restage {
    config: Option<OsString>,
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
    progress_never: bool,
}

/// A finished run. `code` is the exit code, or minus the signal that killed the child.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// stdout parsed as JSON (panics with both streams when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// (exit code, stdout, stderr), the form most tests destructure.
    pub fn into_parts(self) -> (i32, String, String) {
        (self.code, self.stdout, self.stderr)
    }
}

/// A builder for one run of the binary.
pub fn restage() -> Restage {
    Restage {
        config: None,
        args: Vec::new(),
        env: Vec::new(),
        stdin: None,
        timeout: DEFAULT_TIMEOUT,
        progress_never: true,
    }
}

/// `restage demo --generate-only --scale SCALE` into the database `source` (the staging
/// database it names, `<source>_stg`, is not made); fails the test unless it exits 0.
pub fn generate_demo(source: &str, scale: &str) {
    let out = restage()
        .args([
            "demo",
            "--generate-only",
            "--scale",
            scale,
            "--source-db",
            source,
            "--target-db",
            &format!("{source}_stg"),
        ])
        .run();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
}

impl Restage {
    /// `-c PATH`.
    pub fn config(mut self, path: impl AsRef<Path>) -> Restage {
        self.config = Some(path.as_ref().as_os_str().to_owned());
        self
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Restage {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Restage
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// An environment variable for the child only.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Restage {
        self.env.push((key.into(), Some(value.into())));
        self
    }

    pub fn envs(mut self, vars: &[(&str, &str)]) -> Restage {
        for (k, v) in vars {
            self.env.push(((*k).into(), Some((*v).into())));
        }
        self
    }

    /// Removes a variable the test process may have (`RESTAGE_LOG`) from the child's
    /// environment.
    pub fn env_remove(mut self, key: impl Into<OsString>) -> Restage {
        self.env.push((key.into(), None));
        self
    }

    /// What the child reads on stdin (without this it reads nothing: stdin is /dev/null).
    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Restage {
        self.stdin = Some(input.into());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Restage {
        self.timeout = timeout;
        self
    }

    /// Leaves `--progress` at its default (plain periodic lines when stderr is not a
    /// terminal), as an operator's script would run it. Without this the builder passes
    /// `--progress never`.
    pub fn default_progress(mut self) -> Restage {
        self.progress_never = false;
        self
    }

    /// The assembled arguments: `-c CONFIG`, `--progress never`, then the test's.
    fn argv(&self) -> Vec<OsString> {
        let mut argv = Vec::new();
        if let Some(config) = &self.config {
            argv.push("-c".into());
            argv.push(config.clone());
        }
        if self.progress_never {
            argv.push("--progress".into());
            argv.push("never".into());
        }
        argv.extend(self.args.iter().cloned());
        argv
    }

    /// The command, stdin /dev/null (or piped when the builder has input), stdout and
    /// stderr piped.
    pub fn command(&self) -> Command {
        let mut command = Command::new(restage_bin());
        command.args(self.argv());
        for (key, value) in &self.env {
            match value {
                Some(v) => command.env(key, v),
                None => command.env_remove(key),
            };
        }
        command
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// The same command for tokio (killed when dropped), for tests that read the child's
    /// output as it comes or signal it themselves.
    pub fn tokio_command(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::from(self.command());
        command.kill_on_drop(true);
        command
    }

    /// Runs to the end and captures everything; panics (with what the child printed) when
    /// it outlives the timeout.
    pub fn run(&self) -> Output {
        let mut child = self.command().spawn().expect("run restage");
        self.feed_stdin(&mut child);
        let stdout = reader(child.stdout.take());
        let stderr = reader(child.stderr.take());
        let deadline = Instant::now() + self.timeout;
        let mut pause = Duration::from_millis(1);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "restage {:?} did not finish within {:?}; stdout:\n{}\nstderr:\n{}",
                        self.args,
                        self.timeout,
                        joined(stdout),
                        joined(stderr)
                    );
                }
                Err(e) => panic!("waiting for restage: {e}"),
            }
        };
        Output {
            code: exit_code(status),
            stdout: joined(stdout),
            stderr: joined(stderr),
        }
    }

    /// `run` for async tests: waits without blocking the runtime's thread.
    pub async fn run_async(&self) -> Output {
        let mut child = self.tokio_command().spawn().expect("run restage");
        if let Some(input) = &self.stdin
            && let Some(mut pipe) = child.stdin.take()
        {
            use tokio::io::AsyncWriteExt;
            pipe.write_all(input)
                .await
                .expect("writing restage's stdin");
        }
        let output = tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "restage {:?} did not finish within {:?}",
                    self.args, self.timeout
                )
            })
            .expect("running restage");
        Output {
            code: exit_code(output.status),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Starts the child and returns at once; its stderr is collected as it comes.
    pub fn spawn(&self) -> Running {
        let mut child = self.command().spawn().expect("start restage");
        self.feed_stdin(&mut child);
        Running::new(child)
    }

    fn feed_stdin(&self, child: &mut Child) {
        if let (Some(input), Some(mut pipe)) = (self.stdin.clone(), child.stdin.take()) {
            // A thread, so a child that does not read cannot block the test.
            std::thread::spawn(move || {
                let _ = pipe.write_all(&input);
            });
        }
    }
}

fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn joined(handle: std::thread::JoinHandle<String>) -> String {
    handle.join().unwrap_or_default()
}

pub(super) fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| -s))
        .unwrap_or(-1000)
}
