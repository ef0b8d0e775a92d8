//! `restage`: parse, run, map the error to an exit code in one place, print it once.

use clap::Parser;

fn main() {
    let cli = restage::cli::Cli::parse();
    restage::progress::init_logging(cli.verbosity());
    let code = match restage::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("restage: error: {err}");
            err.exit_code()
        }
    };
    std::process::exit(code);
}
