//! Printing that a closed pipe does not break (issue 15): [`write_stdout`] and
//! [`write_stderr`], and the macros every module prints with, `output::out!`,
//! `output::outln!` and `output::errln!`. A foundation: it depends on no other module, so
//! every module may use it.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set once stdout cannot be written (the reader went away: `restage verify | head -1`).
static STDOUT_GONE: AtomicBool = AtomicBool::new(false);

/// Writes to stdout as `print!` does, but a closed pipe (or any write error) never panics:
/// the rest of the output is dropped and the command goes on to its own exit code, as
/// `grep` or `psql` behave on a closed pipe. Every result restage prints goes through
/// [`out!`](crate::out) / [`outln!`](crate::outln); tests/output.rs checks that nothing in
/// src/ uses `print!`/`println!`.
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|_| out.flush()) {
        STDOUT_GONE.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            write_stderr(format_args!(
                "restage: warning: cannot write to stdout ({e}); the rest of the output is dropped\n"
            ));
        }
    }
}

/// Writes to stderr as `eprint!` does, never panicking (`restage … 2>&1 | head -1`).
pub fn write_stderr(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|_| err.flush());
}

/// Whether stdout was closed by its reader (or failed) during this run.
pub fn stdout_gone() -> bool {
    STDOUT_GONE.load(Ordering::Relaxed)
}

/// `print!` that a closed pipe does not turn into a panic ([`write_stdout`]).
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::write_stdout(format_args!($($arg)*)) };
}

/// `println!` that a closed pipe does not turn into a panic ([`write_stdout`]).
macro_rules! outln {
    () => { $crate::output::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` that a closed pipe does not turn into a panic ([`write_stderr`]).
macro_rules! errln {
    () => { $crate::output::write_stderr(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::write_stderr(format_args!("{}\n", format_args!($($arg)*))) };
}

/// A plain-text table: columns padded to their widest cell and two spaces apart, the last
/// column aligned right (sizes), trailing spaces trimmed; the header first.
pub fn text_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; N]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i == N - 1 {
                text.push_str(&format!("{cell:>w$}"));
            } else {
                text.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header);
    for row in rows {
        line(row.each_ref().map(String::as_str));
    }
    out
}

// Path-scoped macros: `crate::output::outln!(…)` (main.rs, another crate, calls the functions).
pub(crate) use {errln, out, outln};
