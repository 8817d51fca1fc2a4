//! Verdicts: finished result data ([`crate::results`]) judged against what was asked.
//!
//! # Layout
//! - [`threshold`] — threshold and SLO expressions (`e2e.p99 < 25ms`) and their verdicts.
//! - [`saturation`] — whether the load generator kept its own schedule.
//! - [`compare`] — two results read back, figure by figure, against `--fail-on` rules.
//! - [`matrix`] — a matrix's verdict per dimension: the cheapest choice per message and
//!   whether that is beyond the repeats' spread.
//! - [`capacity`] — the capacity search, a pure state machine (observations in, the next
//!   step or what it found out).

pub mod capacity;
pub mod compare;
pub mod matrix;
pub mod saturation;
pub mod threshold;

use crate::results::summary::Summary;
use threshold::Threshold;

/// Judges a freshly built run summary: whether its generator saturated, then its
/// thresholds; records both in it.
pub fn judge_run(summary: &mut Summary, seconds: &[crate::driver::Second], thresholds: &[Threshold]) {
    saturation::judge(summary, seconds);
    threshold::judge(summary, thresholds);
}
