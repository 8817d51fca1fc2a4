//! Verdicts: results judged against what was asked.
//!
//! # Layout
//! - [`threshold`] — threshold expressions and their verdicts.
//! - [`compare`] — two results compared figure by figure.

pub mod compare;
pub mod threshold;
