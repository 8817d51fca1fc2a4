//! `sealbench crypto`: a single-core sweep of the crypto core.
//!
//! # Layout
//! - [`measure`] — calibrated timing loops (median and spread of repeated samples).
//! - [`sweep`] — what is measured: AEAD seal/open per size, handshakes, X25519, modes.
//! - [`protocols`] — the protocol section: Noise, Olm, Megolm, MLS per operation against
//!   group size.
//! - [`committing`] — the key-committing mode over the AEADs, beside the AEADs alone.
//! - [`franking`] — message franking per message: sender, relay stamp, report verification.
//! - [`report`] — `crypto.json` and the console table.
//!
//! Plots of a report are drawn by [`crate::present::plot::crypto`].

pub mod committing;
pub mod franking;
pub mod measure;
pub mod protocols;
pub mod report;
pub mod sweep;

pub use report::CryptoReport;
pub use sweep::SweepPlan;
