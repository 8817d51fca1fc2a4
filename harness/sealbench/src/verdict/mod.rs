//! Verdicts: finished result data ([`crate::results`]) judged against what was asked.
//!
//! # Layout
//! - [`threshold`] — threshold and SLO expressions (`e2e.p99 < 25ms`) and their verdicts.
//! - [`compare`] — two results read back, figure by figure, against `--fail-on` rules.
//! - [`capacity`] — the capacity search, a pure state machine (observations in, the next
//!   step or what it found out).

pub mod capacity;
pub mod compare;
pub mod threshold;
