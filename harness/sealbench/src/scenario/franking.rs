//! Message franking as a scenario asks for it (`crypto.franking`, `traffic.report_share`),
//! checked: what it needs (Noise, on sealbench's wire) and the share of
//! messages reported.

use super::Scenario;
use crate::target::Wire;
use anyhow::{Result, bail};

/// Franking, as the driver needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrankingPlan {
    /// The share of franked messages their recipient reports.
    pub report_share: f64,
    /// The run's seed: franking keys, and which messages are reported.
    pub seed: u64,
}

/// `crypto.franking` and `traffic.report_share`, checked against the rest of the scenario.
///
/// # Errors
/// A share outside 0..=1, franking with another protocol than
/// `noise`, or on another wire than sealbench's.
pub(super) fn plan(s: &Scenario) -> Result<Option<FrankingPlan>> {
    let share = s.traffic.report_share;
    if !(share.is_finite() && (0.0..=1.0).contains(&share)) {
        bail!("traffic.report_share: must be between 0 and 1 (the share of messages reported), got {share}");
    }
    if !s.crypto.franking {
        // Nothing to report: the share waits for a franked run (one scenario serves every
        // stance of the trade-off matrix).
        return Ok(None);
    }
    if s.crypto.protocol != sealproto::Protocol::Noise {
        bail!(
            "crypto.franking: only with crypto.protocol = \"noise\" (the commitment rides on its transport \
             messages), not \"{}\"",
            s.crypto.protocol
        );
    }
    if s.relay.wire != Wire::Sealbench {
        bail!("crypto.franking: only on sealbench's wire (relay.wire = \"sealbench\": its relay stamps and verifies)");
    }
    Ok(Some(FrankingPlan { report_share: share, seed: s.seed }))
}
