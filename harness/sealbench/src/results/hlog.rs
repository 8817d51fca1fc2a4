//! `latency.hlog`: the standard HdrHistogram interval log (one interval per second, one
//! `Tag=` per metric and per (metric, traffic class), values in nanoseconds), readable by
//! HdrHistogram's own log readers (Java `HistogramLogReader`, HdrHistogram_py,
//! hdrhistogram-rust's `IntervalLogIterator`).
//!
//! A traffic class's interval is tagged `e2e{class=group;size=50}`: labels are joined with
//! ';' because every HdrHistogram reader ends a `Tag=` at the first ','.

use super::figure::{Metric, TagSet, split_series};
use crate::driver::Second;
use crate::tags::series_hlog;
use anyhow::{Result, anyhow};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use std::time::Duration;

/// Renders the interval log of `seconds`; `start_unix_s` is the run's start (Unix seconds).
///
/// # Errors
/// Only if a histogram cannot be serialised.
pub fn render(seconds: &[Second], start_unix_s: f64) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let date = crate::timefmt::rfc3339_now();
    out.extend_from_slice(
        format!(
            "#[sealbench {} latency interval log: values in nanoseconds, one interval per second]\n\
             #[Tags: {}]\n\
             #[StartTime: {start_unix_s:.3} (seconds since epoch), {date}]\n\
             #[BaseTime: {start_unix_s:.3} (seconds since epoch)]\n\
             \"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n",
            env!("CARGO_PKG_VERSION"),
            Metric::ALL.iter().map(|m| m.name()).collect::<Vec<_>>().join(","),
        )
        .as_bytes(),
    );
    let mut ser = V2DeflateSerializer::new();
    {
        let mut w = IntervalLogWriterBuilder::new()
            .with_max_value_divisor(1.0)
            .begin_log_with(&mut out, &mut ser)
            .map_err(|e| anyhow!("interval log: {e}"))?;
        for s in seconds {
            let start = Duration::from_secs(s.t.saturating_sub(1));
            for (m, class, h) in s.hist.series() {
                let name = series_hlog(m.name(), class);
                let tag = Tag::new(&name).ok_or_else(|| anyhow!("interval log: `{name}` cannot be a Tag="))?;
                w.write_histogram(h, start, Duration::from_secs(1), Some(tag))
                    .map_err(|e| anyhow!("interval log: {e:?}"))?;
            }
        }
    }
    Ok(out)
}

/// One interval of a log read back: its start (seconds from the log's base time), tag and
/// histogram.
#[derive(Debug, Clone)]
pub struct Interval {
    /// Start, seconds from the base time.
    pub start_s: f64,
    /// The series' canonical name: the metric (`e2e`), or the metric and its traffic class
    /// (`e2e{class=group,size=50}`, written `e2e{class=group;size=50}` in the log).
    pub tag: String,
    /// The metric's name (`e2e`), without the class.
    pub metric: String,
    /// The traffic class, if the interval is of one.
    pub class: Option<TagSet>,
    /// The interval's histogram (ns).
    pub hist: hdrhistogram::Histogram<u64>,
}

/// Reads an interval log back (as HdrHistogram's own tools would).
///
/// # Errors
/// A line that is not a valid interval, or a histogram that does not decode.
pub fn read(bytes: &[u8]) -> Result<Vec<Interval>> {
    use base64::Engine as _;
    use hdrhistogram::serialization::Deserializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    let mut de = Deserializer::new();
    let mut out = Vec::new();
    for entry in IntervalLogIterator::new(bytes) {
        let LogEntry::Interval(i) = entry.map_err(|e| anyhow!("interval log: {e:?}"))? else { continue };
        let written = i.tag().map(|t| t.as_str()).unwrap_or_default();
        let (metric, class) = split_series(written)
            .map_err(|e| anyhow!("interval log: Tag={written} at {}: {e}", i.start_timestamp().as_secs_f64()))?;
        let metric = metric.to_owned();
        let tag = super::figure::series_name(&metric, class.as_ref());
        let raw = base64::engine::general_purpose::STANDARD
            .decode(i.encoded_histogram())
            .map_err(|e| anyhow!("interval log: {tag} at {}: {e}", i.start_timestamp().as_secs_f64()))?;
        let hist = de.deserialize(&mut &raw[..]).map_err(|e| anyhow!("interval log: {tag}: {e:?}"))?;
        out.push(Interval { start_s: i.start_timestamp().as_secs_f64(), tag, metric, class, hist });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::recorder::{Counters, Histograms};
    use crate::driver::{Phase, Second};
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

    #[test]
    fn the_log_reads_back_with_tags_and_values() {
        let mut h = Histograms::new();
        h.record(Metric::E2e, 1_500_000);
        h.record(Metric::E2e, 2_500_000);
        h.record(Metric::Handshake, 400_000);
        let secs = vec![Second {
            t: 1,
            phase: Phase::Steady,
            hist: h,
            delta: Counters::new(),
            connected: 2,
            busy: 0.0,
            stage: Some(0),
            at_s: 1.0,
        }];
        let bytes = render(&secs, 1_700_000_000.0).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("#[StartTime: 1700000000.000"));
        assert!(text.contains("\"StartTimestamp\",\"Interval_Length\""));
        let mut tags = Vec::new();
        for e in IntervalLogIterator::new(&bytes) {
            if let Ok(LogEntry::Interval(i)) = e {
                tags.push(i.tag().unwrap().as_str().to_owned());
                if i.tag().unwrap().as_str() == "e2e" {
                    assert!((i.max() - 2_500_000.0).abs() / 2_500_000.0 < 0.01, "max {}", i.max());
                }
            }
        }
        assert_eq!(tags, vec!["handshake", "e2e"]);
        let back = read(&bytes).unwrap();
        assert_eq!(back.len(), 2);
        let e2e = &back[1];
        assert_eq!((e2e.tag.as_str(), e2e.hist.len()), ("e2e", 2));
        assert!(e2e.hist.equivalent(e2e.hist.max(), 2_500_000), "max {}", e2e.hist.max());
    }

    #[test]
    fn tagged_intervals_write_semicolons_and_read_back_exactly() -> Result<()> {
        use crate::tags::TagId;
        let tags: Vec<TagSet> = vec![TagSet::parse("class=dm")?, TagSet::parse("class=group,fanout=client,size=50")?];
        let mut h = Histograms::with_tags(tags.clone().into());
        for v in [1_000, 2_000, 3_000_000] {
            h.record_tagged(Metric::E2e, &[TagId(0)], v);
        }
        h.record_tagged(Metric::E2e, &[TagId(1)], 7_000);
        h.record_tagged(Metric::FanoutLast, &[TagId(1)], 90_000_000_000); // 90 s: beyond the old 60 s bound
        let secs = vec![Second {
            t: 1,
            phase: Phase::Steady,
            hist: h.clone(),
            delta: Counters::new(),
            connected: 2,
            busy: 0.0,
            stage: None,
            at_s: 1.0,
        }];
        let bytes = render(&secs, 1_700_000_000.0)?;
        let text = String::from_utf8(bytes.clone())?;
        assert!(text.contains("Tag=e2e{class=group;fanout=client;size=50},"), "{text}");
        assert!(text.contains("Tag=e2e{class=dm},"));
        let back = read(&bytes)?;
        let names: Vec<&str> = back.iter().map(|i| i.tag.as_str()).collect();
        assert_eq!(
            names,
            [
                "e2e",
                "e2e{class=dm}",
                "e2e{class=group,fanout=client,size=50}",
                "fanout_last",
                "fanout_last{class=group,fanout=client,size=50}"
            ]
        );
        for i in &back {
            let want = match &i.class {
                Some(c) => h.get_tagged(crate::results::figure::metric(&i.metric).unwrap(), c).unwrap(),
                None => h.get(crate::results::figure::metric(&i.metric).unwrap()),
            };
            assert_eq!(&i.hist, want, "{} reads back exactly", i.tag);
        }
        Ok(())
    }
}
