//! `restage`: parse, run, map the error to an exit code in one place, print it once.

use clap::Parser;

fn main() {
    restage::secret::redact_panics();
    // A testing hook, inert unless set: a panic whose message is the variable's value, so
    // the tests can see what the hook prints (tests/redaction.rs).
    if let Ok(message) = std::env::var("RESTAGE_TEST_PANIC") {
        panic!("{message}");
    }
    let cli = match restage::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => std::process::exit(restage::cli::usage_error(e)),
    };
    restage::progress::init_logging(cli.verbosity());
    let json = cli.json;
    let code = match restage::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            restage::error::report(&err, json);
            err.exit_code()
        }
    };
    std::process::exit(code);
}
