//! [`Histograms`]: one HdrHistogram per [`Metric`], and one per ([`Metric::TAGGED`] metric,
//! traffic class) for the run's fixed set of tags.
//!
//! Memory: one histogram of 1 ns ..= [`MAX_NS`] (1 h) at 3 significant digits holds 33,792
//! counters of 8 bytes, 264 KiB (at the former 60 s bound it was 216 KiB). A shard's
//! recorder ([`Histograms::with_tags`]) allocates every slot up front — 14 untagged
//! (3.7 MiB) plus 6 per tag (1.5 MiB per tag) — so that recording never allocates; the
//! per-second copies ([`Clone`]) and merges ([`Histograms::add`]) hold only the histograms
//! that have samples, so a second of a DM-only run costs 4–6 histograms, not 20.

use super::{MAX_NS, Metric};
use crate::tags::{TagId, TagSet};
use hdrhistogram::Histogram;
use std::sync::{Arc, OnceLock};

/// Untagged slots: one per metric, at the metric's index.
const UNTAGGED: usize = Metric::ALL.len();
/// Slots per tag: one per tagged metric.
const PER_TAG: usize = Metric::TAGGED.len();

/// One histogram per metric and per (tagged metric, tag). `add`, `reset` and `clone` work
/// across tags, so shards and seconds merge exactly.
#[derive(Debug)]
pub struct Histograms {
    /// The run's traffic classes; a [`TagId`] indexes this list.
    tags: Arc<[TagSet]>,
    /// `UNTAGGED` slots, then `PER_TAG` per tag. `None` is an empty histogram not
    /// allocated (a copy or a merge that never saw the metric).
    slots: Vec<Option<Histogram<u64>>>,
}

fn empty_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_NS, 3).expect("static histogram bounds")
}

/// The empty histogram handed out for slots never allocated.
fn empty() -> &'static Histogram<u64> {
    static EMPTY: OnceLock<Histogram<u64>> = OnceLock::new();
    EMPTY.get_or_init(empty_histogram)
}

impl Default for Histograms {
    fn default() -> Self {
        Self::new()
    }
}

/// A copy holds only the histograms that have samples (see the module's memory note).
impl Clone for Histograms {
    fn clone(&self) -> Self {
        Histograms {
            tags: self.tags.clone(),
            slots: self.slots.iter().map(|s| s.as_ref().filter(|h| !h.is_empty()).cloned()).collect(),
        }
    }
}

impl Histograms {
    /// Empty histograms without tags, allocated as samples or merges arrive: what a
    /// coordinator merges into. A recorder on the hot path is made by
    /// [`Histograms::with_tags`] (recording into a slot not yet allocated allocates once).
    pub fn new() -> Self {
        Histograms { tags: Arc::from([]), slots: vec![None; UNTAGGED] }
    }

    /// A recorder for the run's tags: every histogram allocated now (ns, 1 ns ..= 1 h, 3
    /// significant digits), so that recording never allocates. `TagId(i)` is `tags[i]`.
    ///
    /// # Panics
    /// With more than 65,536 tags (a plan has a handful).
    pub fn with_tags(tags: Arc<[TagSet]>) -> Self {
        assert!(tags.len() <= usize::from(u16::MAX) + 1, "{} tags: a TagId holds 65,536", tags.len());
        let n = UNTAGGED + PER_TAG * tags.len();
        Histograms { tags, slots: (0..n).map(|_| Some(empty_histogram())).collect() }
    }

    /// The run's tags, in [`TagId`] order.
    pub fn tags(&self) -> &Arc<[TagSet]> {
        &self.tags
    }

    /// The id of `tag` among this recorder's tags.
    pub fn tag_id(&self, tag: &TagSet) -> Option<TagId> {
        self.tags.iter().position(|t| t == tag).map(|i| TagId(i as u16))
    }

    #[inline]
    fn tagged_slot(&self, m: Metric, tag: TagId) -> Option<usize> {
        let k = m.tagged_index()?;
        let t = usize::from(tag.0);
        (t < self.tags.len()).then_some(UNTAGGED + t * PER_TAG + k)
    }

    #[inline]
    fn record_slot(&mut self, i: usize, ns: u64) {
        let h = self.slots[i].get_or_insert_with(empty_histogram);
        let _ = h.record(ns.clamp(1, MAX_NS));
    }

    /// Records `ns` for `m`, all classes together (clamped into range).
    #[inline]
    pub fn record(&mut self, m: Metric, ns: u64) {
        self.record_slot(m as usize, ns);
    }

    /// Records `ns` for `m` once untagged (all classes) and once under each of `tags` (the
    /// conversation's classes, precomputed). A tag id out of range, or a metric that is
    /// not in [`Metric::TAGGED`], records untagged only (and trips a debug assertion).
    #[inline]
    pub fn record_tagged(&mut self, m: Metric, tags: &[TagId], ns: u64) {
        self.record_slot(m as usize, ns);
        for &t in tags {
            match self.tagged_slot(m, t) {
                Some(i) => self.record_slot(i, ns),
                None => debug_assert!(false, "{} under tag {} of {}", m.name(), t.0, self.tags.len()),
            }
        }
    }

    /// Adds every histogram of `other`, matching tags by their labels (tags `self` has not
    /// seen are added to its list: merging needs no agreement on tag ids).
    pub fn add(&mut self, other: &Histograms) {
        for i in 0..UNTAGGED {
            self.add_slot(i, &other.slots[i]);
        }
        for (t, tag) in other.tags.iter().enumerate() {
            let mine = self.adopt(tag);
            for k in 0..PER_TAG {
                self.add_slot(UNTAGGED + mine * PER_TAG + k, &other.slots[UNTAGGED + t * PER_TAG + k]);
            }
        }
    }

    /// Adds one histogram of `m` (all classes, or under `tag`): what reading an interval
    /// log back adds, series by series. A tag on a metric not recorded per tag is ignored
    /// and reported as false.
    pub fn add_series(&mut self, m: Metric, tag: Option<&TagSet>, h: &Histogram<u64>) -> bool {
        let i = match tag {
            None => m as usize,
            Some(t) => {
                let Some(k) = m.tagged_index() else { return false };
                UNTAGGED + self.adopt(t) * PER_TAG + k
            }
        };
        self.add_slot(i, &Some(h.clone()));
        true
    }

    /// The index of `tag` here, appended (with empty slots) when new.
    fn adopt(&mut self, tag: &TagSet) -> usize {
        if let Some(i) = self.tags.iter().position(|t| t == tag) {
            return i;
        }
        let mut tags = self.tags.to_vec();
        tags.push(tag.clone());
        self.tags = tags.into();
        self.slots.resize(UNTAGGED + PER_TAG * self.tags.len(), None);
        self.tags.len() - 1
    }

    fn add_slot(&mut self, i: usize, src: &Option<Histogram<u64>>) {
        if let Some(h) = src.as_ref().filter(|h| !h.is_empty()) {
            // Same bounds everywhere: an addition cannot run out of range.
            let _ = self.slots[i].get_or_insert_with(empty_histogram).add(h);
        }
    }

    /// Empties every histogram (keeps the memory and the tags).
    pub fn reset(&mut self) {
        for h in self.slots.iter_mut().flatten() {
            h.reset();
        }
    }

    /// The histogram of `m`, all classes together.
    pub fn get(&self, m: Metric) -> &Histogram<u64> {
        self.slots[m as usize].as_ref().unwrap_or_else(|| empty())
    }

    /// The histogram of `m` under `tag`: None when `m` is not recorded per tag or `tag` is
    /// not one of this run's; an empty histogram when it is but had no samples.
    pub fn get_tagged(&self, m: Metric, tag: &TagSet) -> Option<&Histogram<u64>> {
        let i = self.tagged_slot(m, self.tag_id(tag)?)?;
        Some(self.slots[i].as_ref().unwrap_or_else(|| empty()))
    }

    /// Every histogram that has samples: per metric in [`Metric::ALL`] order, untagged
    /// first, then under each tag in the run's tag order.
    pub fn series(&self) -> impl Iterator<Item = (Metric, Option<&TagSet>, &Histogram<u64>)> {
        Metric::ALL.into_iter().flat_map(move |m| {
            let untagged = std::iter::once((m, None, self.get(m)));
            let tagged = self
                .tags
                .iter()
                .filter(move |_| m.tagged_index().is_some())
                .filter_map(move |t| Some((m, Some(t), self.get_tagged(m, t)?)));
            untagged.chain(tagged).filter(|(_, _, h)| !h.is_empty())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tags::TagError;

    fn tags(list: &[&str]) -> Result<Arc<[TagSet]>, TagError> {
        list.iter().map(|t| TagSet::parse(t)).collect::<Result<Vec<_>, _>>().map(Into::into)
    }

    #[test]
    fn a_tagged_sample_counts_untagged_and_under_each_listed_tag() -> Result<(), TagError> {
        let mut h = Histograms::with_tags(tags(&["class=dm", "class=group", "class=group,size=50"])?);
        h.record_tagged(Metric::E2e, &[TagId(0)], 1_000);
        h.record_tagged(Metric::E2e, &[TagId(1), TagId(2)], 2_000);
        h.record(Metric::E2e, 3_000);
        assert_eq!(h.get(Metric::E2e).len(), 3);
        let get = |t: &str| h.get_tagged(Metric::E2e, &TagSet::parse(t).unwrap()).map(|h| h.len());
        assert_eq!((get("class=dm"), get("class=group"), get("class=group,size=50")), (Some(1), Some(1), Some(1)));
        assert_eq!(get("class=group,size=5"), None, "not a tag of this run");
        assert_eq!(h.get_tagged(Metric::Seal, &TagSet::parse("class=dm")?), None, "seal is not tagged");
        assert_eq!(h.get_tagged(Metric::FanoutLast, &TagSet::parse("class=dm")?).map(|h| h.len()), Some(0));
        Ok(())
    }

    #[test]
    fn merges_match_tags_by_labels_and_reset_empties_every_tag() -> Result<(), TagError> {
        let mut a = Histograms::with_tags(tags(&["class=dm", "class=group"])?);
        let mut b = Histograms::with_tags(tags(&["class=group", "class=dm"])?);
        a.record_tagged(Metric::E2e, &[TagId(0)], 10_000);
        b.record_tagged(Metric::E2e, &[TagId(0)], 20_000);
        b.record_tagged(Metric::FanoutLast, &[TagId(0)], 30_000);
        let mut total = Histograms::new();
        total.add(&a.clone());
        total.add(&b.clone());
        let dm = TagSet::parse("class=dm")?;
        let group = TagSet::parse("class=group")?;
        assert_eq!(total.get(Metric::E2e).len(), 2);
        assert!(total.get_tagged(Metric::E2e, &dm).is_some_and(|h| h.len() == 1 && h.equivalent(h.max(), 10_000)));
        assert!(total.get_tagged(Metric::E2e, &group).is_some_and(|h| h.equivalent(h.max(), 20_000)));
        assert_eq!(total.get_tagged(Metric::FanoutLast, &group).map(|h| h.len()), Some(1));
        let names: Vec<String> = total.series().map(|(m, t, _)| format!("{}{t:?}", m.name())).collect();
        assert_eq!(names.len(), 5, "e2e and fanout_last, each untagged and per class: {names:?}");
        total.reset();
        assert_eq!(total.series().count(), 0);
        assert_eq!(total.tags().len(), 2, "reset keeps the tags");
        Ok(())
    }

    #[test]
    fn copies_hold_only_histograms_with_samples() -> Result<(), TagError> {
        let mut h = Histograms::with_tags(tags(&["class=dm"])?);
        h.record_tagged(Metric::E2e, &[TagId(0)], 5);
        let c = h.clone();
        assert_eq!(c.slots.iter().flatten().count(), 2);
        assert_eq!(c.get(Metric::Seal).len(), 0);
        Ok(())
    }

    #[test]
    fn one_histogram_of_an_hour_holds_33792_counters() {
        // The figure the module's memory note rests on.
        assert_eq!(empty_histogram().distinct_values(), 33_792);
        assert_eq!(empty_histogram().high(), MAX_NS);
    }
}
