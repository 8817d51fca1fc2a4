//! Dispatch of parsed commands and the mapping of outcomes to exit codes.

use crate::cli::{Cli, Command};
use std::process::ExitCode;

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    crate::logging::init();
    let (before, now) = crate::relay::config::raise_open_file_limit();
    if now != before {
        tracing::debug!(before, now, "raised the open-file soft limit to the hard limit");
    }
    let outcome = match cli.command {
        Command::Compare(args) => crate::commands::compare::run(&args),
        Command::Merge(args) => crate::commands::merge::run(&args),
        Command::Matrix(args) => crate::commands::matrix::run(&args),
        Command::Capacity(args) => crate::commands::capacity::run(&args),
        Command::Run(args) => crate::commands::run::run(&args),
        Command::Crypto(args) => crate::commands::crypto::run(&args),
        Command::Calibrate(args) => crate::commands::calibrate::run(&args),
        Command::Relay(args) => crate::commands::relay::run(&args),
    };
    match outcome {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("error: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}
