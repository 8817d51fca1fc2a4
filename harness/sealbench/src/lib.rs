//! sealbench: a load and performance harness for end-to-end-encrypted messaging.
//!
//! The protocol core (suites, handshakes, transport, frames) is the sans-IO `sealcore`
//! crate; this crate holds everything with I/O, clocks and threads.
//!
//! # Layout
//! - [`cli`] — the command line; [`app`] — dispatch and exit codes; [`commands`] — one
//!   module per subcommand.
//! - [`crypto`] — the single-core crypto sweep.
//! - [`relay`] — the reference relay.
//! - [`scenario`] — what a run is asked to do.
//! - [`driver`] — the load driver (shards of simulated clients); [`clock`] — its clock.
//! - [`results`] — result files of a run; [`verdict`] — thresholds, and results read
//!   back and compared.
//! - [`present`] — the console, the self-contained `report.html` and charts (PNG + SVG),
//!   consumers of finished results.
//! - [`provenance`], [`output`], [`timefmt`], [`logging`], [`error`] — shared plumbing.
#![warn(missing_docs)]

pub mod app;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod crypto;
pub mod driver;
pub mod error;
pub mod logging;
pub mod output;
pub mod present;
pub mod provenance;
pub mod relay;
pub mod results;
pub mod scenario;
pub mod signals;
pub mod timefmt;
pub mod verdict;
