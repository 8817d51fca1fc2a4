//! The traffic classes a run records its tagged metrics under, decided from the scenario
//! once per run (histograms, thresholds and the summary all need the same list before the
//! first message).
//!
//! Today every conversation is a 1:1 pair, so the one class is `class=dm`. The workload
//! engineer extends [`Plan::tags`] with groups (`class=group`, per size bucket, per fan-out
//! strategy) and hands each conversation the ids of its classes.

use super::Plan;
use crate::driver::recorder::tags::{TagId, TagSet};
use std::sync::Arc;

impl Plan {
    /// The run's traffic classes, in [`TagId`] order.
    pub fn tags(&self) -> Arc<[TagSet]> {
        let dm = TagSet::class("dm").expect("a valid static tag");
        Arc::from([dm])
    }

    /// The ids of the classes a 1:1 conversation's messages are recorded under.
    pub fn dm_tags(&self) -> Vec<TagId> {
        let tags = self.tags();
        tags.iter()
            .position(|t| t.get(crate::driver::recorder::tags::Label::Class) == Some("dm") && t.labels().count() == 1)
            .map(|i| vec![TagId(i as u16)])
            .unwrap_or_default()
    }
}
