//! Charts of traffic classes, drawn only when a run has the data: fan-out latency against
//! group size (from the `size=` tags of `fanout_first` / `fanout_last`), and the
//! distribution of offline-delivery latency (`offline_e2e`, per class when tagged).

use super::{Chart, FONT, colour, perr};
use crate::driver::Outcome;
use crate::driver::recorder::Histograms;
use crate::results::figure::{Metric, Stat};
use crate::results::summary::{ByTag, Summary, classes_of};
use crate::tags::Label;
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Writes the class charts the run has data for into `dir`.
///
/// # Errors
/// When a file cannot be written.
pub fn render_all(dir: &Path, outcome: &Outcome, summary: &Summary) -> Result<Vec<PathBuf>> {
    let title = format!("{} — {}", summary.scenario.name, summary.suite);
    let mut files = Vec::new();
    let fanout = FanoutBySize { lines: fanout_lines(&summary.latency_by_tag), title: &title };
    if !fanout.lines.is_empty() {
        files.extend(super::render(dir, &fanout)?);
    }
    if !outcome.total.get(Metric::OfflineE2e).is_empty() {
        files.extend(super::render(dir, &Offline { total: &outcome.total, title: &title })?);
    }
    Ok(files)
}

/// One line of the fan-out chart: (group size, latency in ms) points.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// `first p50 (client fan-out)`.
    pub name: String,
    /// Points by ascending group size.
    pub points: Vec<(f64, f64)>,
}

/// The fan-out chart's lines: first and last recipient, p50 and p99, one set per fan-out
/// strategy named by a `fanout=` tag (one set when the run has none). Only classes with a
/// `size` count.
pub fn fanout_lines(by_tag: &ByTag) -> Vec<Line> {
    let mut strategies: Vec<Option<String>> = [Metric::FanoutFirst, Metric::FanoutLast]
        .iter()
        .flat_map(|&m| classes_of(by_tag, m))
        .filter(|(t, _)| t.size().is_some())
        .map(|(t, _)| t.get(Label::Fanout).map(str::to_owned))
        .collect();
    strategies.sort();
    strategies.dedup();
    let mut lines = Vec::new();
    for strategy in &strategies {
        for (m, who) in [(Metric::FanoutFirst, "first"), (Metric::FanoutLast, "last")] {
            for stat in [Stat::P50, Stat::P99] {
                let mut points: Vec<(f64, f64)> = classes_of(by_tag, m)
                    .into_iter()
                    .filter(|(t, _)| t.get(Label::Fanout).map(str::to_owned) == *strategy)
                    .filter_map(|(t, l)| Some((f64::from(t.size()?), l.get(stat) / 1e3)))
                    .collect();
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                if points.is_empty() {
                    continue;
                }
                let name = match strategy {
                    Some(f) => format!("{who} recipient {} ({f} fan-out)", stat.label()),
                    None => format!("{who} recipient {}", stat.label()),
                };
                lines.push(Line { name, points });
            }
        }
    }
    lines
}

struct FanoutBySize<'a> {
    lines: Vec<Line>,
    title: &'a str,
}

impl Chart for FanoutBySize<'_> {
    fn stem(&self) -> &str {
        "fanout-by-size"
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let pts = self.lines.iter().flat_map(|l| &l.points);
        let (lo, hi) = pts.clone().fold((f64::MAX, 1.0f64), |(lo, hi), p| (lo.min(p.0), hi.max(p.0)));
        let (lo, hi) = ((lo * 0.8).max(1.0), hi * 1.25);
        let ymax = pts.map(|p| p.1).fold(0.001, f64::max) * 1.15;
        let mut chart = ChartBuilder::on(root)
            .caption(format!("Fan-out latency by group size — {}", self.title), (FONT, 22))
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d((lo..hi).log_scale(), 0.0..ymax)
            .map_err(perr)?;
        chart
            .configure_mesh()
            .x_desc("group size (members, log scale)")
            .y_desc("intended send → decrypted (ms)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .draw()
            .map_err(perr)?;
        for (i, line) in self.lines.iter().enumerate() {
            // p99 dashed-looking (thinner) beside its p50, same colour per strategy+recipient.
            let c = colour(i / 2);
            let width = if i % 2 == 0 { 3 } else { 1 };
            chart
                .draw_series(LineSeries::new(line.points.clone(), c.stroke_width(width)))
                .map_err(perr)?
                .label(line.name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(width)));
            chart.draw_series(line.points.iter().map(|&p| Circle::new(p, 4, c.filled()))).map_err(perr)?;
        }
        super::legend(&mut chart, SeriesLabelPosition::UpperLeft, 14)
    }
}

struct Offline<'a> {
    total: &'a Histograms,
    title: &'a str,
}

impl Chart for Offline<'_> {
    fn stem(&self) -> &str {
        "offline-latency"
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let root = root.titled(&format!("Offline delivery latency — {}", self.title), (FONT, 24)).map_err(perr)?;
        let total = self.total;
        let mut names = vec!["offline_e2e (all classes)".to_owned()];
        let mut hists = vec![total.get(Metric::OfflineE2e)];
        let mut tags: Vec<_> = total.tags().iter().collect();
        tags.sort();
        for t in tags {
            if let Some(h) = total.get_tagged(Metric::OfflineE2e, t).filter(|h| !h.is_empty()) {
                names.push(format!("{{{t}}}"));
                hists.push(h);
            }
        }
        let series: Vec<(&str, &hdrhistogram::Histogram<u64>)> =
            names.iter().map(String::as_str).zip(hists.iter().copied()).collect();
        super::run::panel(&root, "intended send → decrypted after the recipient reconnected", &series)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::summary::Latency;

    fn lat(p50: f64, p99: f64) -> Latency {
        Latency {
            count: 10,
            min_us: p50,
            mean_us: p50,
            p50_us: p50,
            p90_us: p99,
            p95_us: p99,
            p99_us: p99,
            p999_us: p99,
            max_us: p99,
        }
    }

    #[test]
    fn fanout_lines_follow_group_size_per_strategy() {
        let mut by_tag = ByTag::new();
        for (m, tag, p50) in [
            ("fanout_first", "class=group,fanout=relay,size=50", 2_000.0),
            ("fanout_first", "class=group,fanout=relay,size=5", 1_000.0),
            ("fanout_last", "class=group,fanout=relay,size=5", 1_500.0),
            ("fanout_first", "class=group,fanout=client,size=5", 1_200.0),
            ("fanout_first", "class=dm", 9_000.0),
        ] {
            by_tag.entry(m.into()).or_default().insert(tag.into(), lat(p50, p50 * 2.0));
        }
        let lines = fanout_lines(&by_tag);
        let names: Vec<&str> = lines.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "first recipient p50 (client fan-out)",
                "first recipient p99 (client fan-out)",
                "first recipient p50 (relay fan-out)",
                "first recipient p99 (relay fan-out)",
                "last recipient p50 (relay fan-out)",
                "last recipient p99 (relay fan-out)",
            ]
        );
        assert_eq!(lines[2].points, [(5.0, 1.0), (50.0, 2.0)], "by size, in ms; the DM class has no size");
    }

    #[test]
    fn both_class_charts_draw_as_png_and_svg() -> anyhow::Result<()> {
        use crate::tags::{TagId, TagSet};
        let dir = tempfile::tempdir()?;
        let mut by_tag = ByTag::new();
        for (m, tag) in [("fanout_first", "class=group,size=5"), ("fanout_last", "class=group,size=500")] {
            by_tag.entry(m.into()).or_default().insert(tag.into(), lat(1_000.0, 3_000.0));
        }
        let mut files = super::super::render(dir.path(), &FanoutBySize { lines: fanout_lines(&by_tag), title: "t" })?;
        let mut total = Histograms::with_tags(vec![TagSet::parse("class=dm")?].into());
        for v in 1..1000u64 {
            total.record_tagged(Metric::OfflineE2e, &[TagId(0)], v * 50_000_000);
        }
        files.extend(super::super::render(dir.path(), &Offline { total: &total, title: "t" })?);
        for f in files {
            assert!(std::fs::metadata(&f)?.len() > 1000, "{} drawn", f.display());
        }
        assert!(std::fs::read_to_string(dir.path().join("offline-latency.svg"))?.contains("class=dm"));
        Ok(())
    }
}
