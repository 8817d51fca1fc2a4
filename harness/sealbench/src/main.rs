//! The `sealbench` binary: parse the command line, run the command, map the outcome to an
//! exit code (0 ok, 2 bad usage or input file, 99 thresholds failed, 1 anything else).

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = sealbench::cli::deprecated::rewrite(std::env::args_os().collect());
    let cli = sealbench::cli::Cli::parse_from(args);
    sealbench::app::run(cli)
}
