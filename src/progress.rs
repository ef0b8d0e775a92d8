//! What the user sees while a command runs: logging setup, and per-table progress as indicatif
//! bars on a terminal or plain periodic lines otherwise (cron mail, CI logs, Kubernetes).
//! Everything here goes to stderr; stdout is for results (`--json` documents, reports).

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::units::human_bytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    Auto,
    Always,
    Never,
}

/// Output settings for one command.
#[derive(Debug, Clone)]
pub struct Ui {
    pub json: bool,
    pub verbosity: i8,
    pub progress: ProgressMode,
}

impl Ui {
    pub fn new(json: bool, verbosity: i8, progress: ProgressMode) -> Ui {
        Ui {
            json,
            verbosity,
            progress,
        }
    }

    /// For tests and library callers: no bars, normal verbosity.
    pub fn quiet() -> Ui {
        Ui::new(false, 0, ProgressMode::Never)
    }

    /// Bars when asked for, or on a terminal in auto mode.
    pub fn bars(&self) -> bool {
        match self.progress {
            ProgressMode::Always => true,
            ProgressMode::Never => false,
            ProgressMode::Auto => std::io::stderr().is_terminal() && self.verbosity >= 0,
        }
    }

    /// Plain periodic lines (when there are no bars and the user did not ask for quiet).
    pub fn lines(&self) -> bool {
        !self.bars() && self.verbosity >= 0 && self.progress != ProgressMode::Never
    }
}

/// Sets up `tracing` to stderr. `RESTAGE_LOG` (an env-filter directive) overrides the level.
pub fn init_logging(verbosity: i8) {
    let level = match verbosity {
        i8::MIN..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RESTAGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("restage={level},warn")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .try_init();
}

/// Live counters of one table's copy, shared between the pipeline and the display.
#[derive(Debug, Default)]
pub struct TableCounters {
    pub rows_read: AtomicU64,
    pub rows_written: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
}

/// Progress of the data stage: one bar per table in flight plus a total, or a line every
/// few seconds without a terminal.
pub struct DataProgress {
    multi: Option<MultiProgress>,
    total: Option<ProgressBar>,
    total_bytes_estimate: u64,
    bytes_done: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl DataProgress {
    pub fn new(ui: &Ui, tables: usize, total_bytes_estimate: u64) -> DataProgress {
        let bytes_done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        if ui.bars() {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8));
            let total = multi.add(ProgressBar::new(total_bytes_estimate.max(1)));
            total.set_style(
                ProgressStyle::with_template(&format!(
                    "{{prefix:<{LABEL_WIDTH}.bold}} [{{bar:30}}] {{bytes}}/{{total_bytes}} {{bytes_per_sec}} eta {{eta}} {{msg}}"
                ))
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            total.set_prefix("data");
            total.set_message(format!("{tables} tables"));
            return DataProgress {
                multi: Some(multi),
                total: Some(total),
                total_bytes_estimate,
                bytes_done,
                stop,
                ticker: None,
            };
        }
        let ticker = if ui.lines() {
            let bytes_done = bytes_done.clone();
            let stop = stop.clone();
            let started = Instant::now();
            Some(std::thread::spawn(move || {
                let mut last = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    if last.elapsed() >= Duration::from_secs(10) {
                        last = Instant::now();
                        let done = bytes_done.load(Ordering::Relaxed);
                        let secs = started.elapsed().as_secs_f64().max(0.001);
                        tracing::info!(
                            "data: {} of ~{} copied ({}/s)",
                            human_bytes(done),
                            human_bytes(total_bytes_estimate),
                            human_bytes((done as f64 / secs) as u64)
                        );
                    }
                }
            }))
        } else {
            None
        };
        DataProgress {
            multi: None,
            total: None,
            total_bytes_estimate,
            bytes_done,
            stop,
            ticker,
        }
    }

    /// A bar for one table (or range); call [`TableBar::finish`] when done.
    pub fn table(&self, label: &str, estimated_rows: u64) -> TableBar {
        let bar = self.multi.as_ref().map(|multi| {
            let bar = multi.insert_from_back(1, ProgressBar::new(estimated_rows.max(1)));
            bar.set_style(
                ProgressStyle::with_template(&format!(
                    "{{prefix:<{LABEL_WIDTH}}} [{{bar:30}}] {{human_pos}}/{{human_len}} rows {{per_sec:0}} eta {{eta}} {{msg}}"
                ))
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(truncate_label(label, LABEL_WIDTH));
            bar
        });
        TableBar {
            bar,
            total: self.total.clone(),
            bytes_done: self.bytes_done.clone(),
        }
    }

    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        if let Some(total) = &self.total {
            total.set_length(self.bytes_done.load(Ordering::Relaxed).max(1));
            total.finish_and_clear();
        }
        let _ = self.total_bytes_estimate;
    }

    /// Prints a line above the bars (or to stderr when there are none).
    pub fn println(&self, line: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(line);
            }
            None => crate::output::errln!("{line}"),
        }
    }
}

impl Drop for DataProgress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The width of every bar's and spinner's label (stages, the total, tables), so that all
/// bars start in one column (issue 15: a table label of 40 characters used to push its bar
/// past the others' 12); longer table names lose their head (`…ng_schema.table`).
pub const LABEL_WIDTH: usize = 28;

fn truncate_label(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        label.to_string()
    } else {
        let tail: String = label
            .chars()
            .rev()
            .take(max - 1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("…{tail}")
    }
}

/// One table's bar.
pub struct TableBar {
    bar: Option<ProgressBar>,
    total: Option<ProgressBar>,
    bytes_done: Arc<AtomicU64>,
}

impl TableBar {
    pub fn advance(&self, rows: u64, bytes: u64) {
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(rows);
            if bar.position() > bar.length().unwrap_or(0) {
                bar.set_length(bar.position());
            }
        }
        if let Some(total) = &self.total {
            total.inc(bytes);
            if total.position() > total.length().unwrap_or(0) {
                total.set_length(total.position());
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A spinner for a stage without a measurable size (schema, indexes, swap).
pub struct Stage {
    spinner: Option<ProgressBar>,
    name: String,
    started: Instant,
    quiet: bool,
}

impl Stage {
    pub fn start(ui: &Ui, name: &str) -> Stage {
        let spinner = ui.bars().then(|| {
            let s = ProgressBar::new_spinner();
            s.set_draw_target(ProgressDrawTarget::stderr_with_hz(8));
            s.set_style(
                ProgressStyle::with_template(&format!(
                    "{{prefix:<{LABEL_WIDTH}.bold}} {{spinner}} {{msg}} {{elapsed}}"
                ))
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            s.set_prefix(truncate_label(name, LABEL_WIDTH));
            s.enable_steady_tick(Duration::from_millis(120));
            s
        });
        if spinner.is_none() && ui.verbosity >= 0 && !ui.json {
            tracing::info!(stage = name, "started");
        }
        Stage {
            spinner,
            name: name.to_string(),
            started: Instant::now(),
            quiet: ui.verbosity < 0 || ui.json,
        }
    }

    pub fn message(&self, msg: &str) {
        if let Some(s) = &self.spinner {
            s.set_message(msg.to_string());
        }
    }

    pub fn done(self) -> Duration {
        let elapsed = self.started.elapsed();
        if let Some(s) = &self.spinner {
            s.finish_and_clear();
        }
        if !self.quiet {
            tracing::info!(stage = %self.name, seconds = format!("{:.2}", elapsed.as_secs_f64()), "done");
        }
        elapsed
    }
}
