//! Exit codes and the failure type the binary's edge prints (`anyhow`, shown with `{:#}`).

use std::process::ExitCode;

/// Success.
pub const EXIT_OK: u8 = 0;
/// Any failure not covered below.
pub const EXIT_FAILURE: u8 = 1;
/// Bad usage or a bad input file (as clap does for bad arguments).
pub const EXIT_USAGE: u8 = 2;
/// The run completed but a threshold failed (as k6 does).
pub const EXIT_THRESHOLDS: u8 = 99;

/// An error with the exit code it should end the process with.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong, with context.
    pub error: anyhow::Error,
    /// Exit code.
    pub code: u8,
}

impl Failure {
    /// A usage / input error (exit 2).
    pub fn usage(error: anyhow::Error) -> Self {
        Failure { error, code: EXIT_USAGE }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure { error, code: EXIT_FAILURE }
    }
}

/// A command's result: an exit code, or a failure.
pub type Outcome = Result<ExitCode, Failure>;
