//! sealbench: a load and performance harness for end-to-end-encrypted messaging.
//!
//! The protocol core (suites, handshakes, transport, frames) is the sans-IO `sealcore`
//! crate; this crate holds everything with I/O, clocks and threads.
//!
//! # Layout
//! Data flows one way: scenario → driver → results (data files) → verdicts →
//! presentation. No module imports one above it, and none imports [`commands`].
//! - [`cli`] — the command line; [`app`] — dispatch and exit codes; [`commands`] — one
//!   module per subcommand, which only parses its arguments and composes the rest.
//! - [`crypto`] — the single-core crypto sweep; [`calibrate`] — this machine's floors
//!   (a loopback hop, a timer wake-up), cached, that CPU per message is compared with.
//! - [`relay`] — the reference relay.
//! - [`scenario`] — what a run is asked to do.
//! - [`driver`] — the load driver (shards of simulated clients); [`clock`] — its clock.
//! - [`results`] — result data: a run's `summary.json`, `latency.hlog`, `timeseries.csv`,
//!   `matrix.json`, `capacity.json`, and the one vocabulary of figures and units.
//! - [`verdict`] — thresholds, the comparison of two results, the capacity search.
//! - [`present`] — consumers of finished data: the console, plots (PNG + SVG), Markdown
//!   tables and the self-contained `report.html`.
//! - [`tags`] — traffic classes, [`rng`] — the seedable generator, and [`words`] — seeded
//!   pseudo-words (scan lists and message text): the vocabulary scenario, relay, driver
//!   and results share (leaves: they import nothing of this crate); so is [`target`]: which
//!   wire protocol a run speaks to its target and the capability table the scenario's plan
//!   checks before anything connects (the codecs are [`driver::wire`]'s).
//! - [`procmetrics`] — the standard process metrics (CPU seconds, resident memory) both
//!   exporters serve beside their own (a leaf beside the clock); [`scrape`] — reading an
//!   external relay's CPU from its `/metrics` (a leaf).
//! - [`provenance`], [`output`], [`timefmt`], [`logging`], [`signals`], [`error`] — shared
//!   plumbing.
#![warn(missing_docs)]

pub mod app;
pub mod calibrate;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod crypto;
pub mod driver;
pub mod error;
pub mod logging;
pub mod output;
pub mod present;
pub mod procmetrics;
pub mod provenance;
pub mod relay;
pub mod results;
pub mod rng;
pub mod scenario;
pub mod scrape;
pub mod signals;
pub mod tags;
pub mod target;
pub mod timefmt;
pub mod verdict;
pub mod words;
