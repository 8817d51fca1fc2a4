//! Charts of `sealbench run`: latency percentile distributions, the timeline, and the
//! end-to-end latency histogram.

use super::{Chart, FONT, colour, perr};
use crate::driver::Outcome;
use crate::results::figure::Metric;
use crate::results::stages::StageFigures;
use crate::results::summary::Summary;
use crate::tags::Label;
use anyhow::Result;
use hdrhistogram::Histogram;
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Writes every run chart into `dir`.
///
/// # Errors
/// When a file cannot be written.
pub fn render_all(dir: &Path, outcome: &Outcome, summary: &Summary) -> Result<Vec<PathBuf>> {
    let title = format!("{} — {}", summary.scenario.name, summary.suite);
    let mut files = super::render(dir, &Percentiles { outcome, title: &title })?;
    files.extend(super::render(dir, &Timeline { outcome, title: &title, stages: &summary.stages })?);
    files.extend(super::render(dir, &LatencyHistogram { outcome, title: &title })?);
    Ok(files)
}

/// (x = 1/(1−p), latency in ms) points of a percentile distribution, up to the largest
/// percentile the sample count supports.
pub fn percentile_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let mut pts = Vec::new();
    if h.is_empty() {
        return pts;
    }
    let n = h.len() as f64;
    let mut k = 0.0f64;
    // Ten points per decade of 1/(1-p).
    while 10f64.powf(k) <= n.max(10.0) && k <= 7.0 {
        let x = 10f64.powf(k);
        let p = 1.0 - 1.0 / x;
        pts.push((x, h.value_at_quantile(p) as f64 / 1e6));
        k += 0.1;
    }
    pts.push((n.max(pts.last().map_or(1.0, |l| l.0) * 1.01), h.max() as f64 / 1e6));
    pts
}

/// `0.3`, `1.25`, `20` — no float noise in axis labels.
fn trim_float(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn pct_label(x: f64) -> String {
    // Label only the natural ticks: 0 %, 50 %, 90 %, 99 %, 99.9 %, …
    let decade = x.log10();
    if (decade - decade.round()).abs() > 0.01 && (x - 2.0).abs() > 0.01 {
        return String::new();
    }
    let p = 100.0 * (1.0 - 1.0 / x);
    if p < 0.5 {
        "0%".into()
    } else if (p - p.round()).abs() < 1e-6 {
        format!("{p:.0}%")
    } else {
        let s = format!("{p:.5}");
        format!("{}%", s.trim_end_matches('0').trim_end_matches('.'))
    }
}

struct Percentiles<'a> {
    outcome: &'a Outcome,
    title: &'a str,
}

impl Chart for Percentiles<'_> {
    fn stem(&self) -> &str {
        "latency-percentiles"
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let root = root.titled(&format!("Latency by percentile — {}", self.title), (FONT, 24)).map_err(perr)?;
        let (left, right) = root.split_horizontally((62).percent_width());
        let t = &self.outcome.total;
        panel(
            &left,
            "end to end (intended and actual send → decrypted)",
            &[
                ("e2e (corrected, from intended send)", t.get(Metric::E2e)),
                ("e2e_raw (from actual send)", t.get(Metric::E2eRaw)),
            ],
        )?;
        panel(
            &right,
            "handshake (initiator: first message → transport ready)",
            &[("handshake", t.get(Metric::Handshake))],
        )?;
        Ok(())
    }
}

pub(super) fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    series: &[(&str, &Histogram<u64>)],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let all: Vec<Vec<(f64, f64)>> = series.iter().map(|(_, h)| percentile_points(h)).collect();
    let xmax = all.iter().flatten().map(|p| p.0).fold(10.0, f64::max);
    let ymax = all.iter().flatten().map(|p| p.1).fold(0.001, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 17))
        .margin(14)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d((1.0..xmax).log_scale(), 0.0..ymax)
        .map_err(perr)?;
    chart
        .configure_mesh()
        .x_desc("percentile (log scale of 1/(1−p))")
        .y_desc("latency (ms)")
        .x_label_formatter(&|x| pct_label(*x))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(perr)?;
    for (i, ((name, h), pts)) in series.iter().zip(&all).enumerate() {
        if h.is_empty() {
            continue;
        }
        let c = colour(i);
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(3)))
            .map_err(perr)?
            .label(format!("{name} (n={})", h.len()))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3)));
    }
    if series.iter().all(|(_, h)| h.is_empty()) {
        chart
            .draw_series(std::iter::once(Text::new("no samples", (2.0, ymax / 2.0), (FONT, 18).into_font())))
            .map_err(perr)?;
    } else {
        super::legend(&mut chart, SeriesLabelPosition::UpperLeft, 14)?;
    }
    Ok(())
}

/// Deliveries per second of each `class=` traffic class (its online and offline
/// deliveries in the measured phase: the counts of its tagged `e2e` and `offline_e2e`).
fn class_rates(secs: &[crate::driver::Second]) -> Vec<(String, Vec<(f64, f64)>)> {
    let Some(tags) = secs.iter().map(|s| s.hist.tags()).find(|t| !t.is_empty()) else { return Vec::new() };
    tags.iter()
        .filter(|t| t.labels().count() == 1 && t.get(Label::Class).is_some())
        .map(|tag| {
            let pts = secs
                .iter()
                .map(|s| {
                    let n = |m| s.hist.get_tagged(m, tag).map_or(0, |h| h.len());
                    (s.t as f64, (n(Metric::E2e) + n(Metric::OfflineE2e)) as f64)
                })
                .collect();
            (tag.to_string(), pts)
        })
        .collect()
}

struct Timeline<'a> {
    outcome: &'a Outcome,
    title: &'a str,
    /// A staged run's stages: shaded bands with their names, and the target rate.
    stages: &'a [StageFigures],
}

/// The stages on a timeline panel (x: seconds since the run's start): a light band per
/// stage, alternating, with its name at the top (unmeasured stages in brackets), and a
/// line at each boundary.
fn stage_bands<DB: DrawingBackend>(
    c: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    stages: &[StageFigures],
    t0: f64,
    ymax: f64,
    names: bool,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    for (i, st) in stages.iter().enumerate() {
        let (a, b) = (t0 + st.start_s, t0 + st.end_s);
        let shade = if i % 2 == 0 { RGBColor(90, 120, 200).mix(0.07) } else { RGBColor(90, 120, 200).mix(0.16) };
        c.draw_series(std::iter::once(Rectangle::new([(a, 0.0), (b, ymax)], shade.filled()))).map_err(perr)?;
        c.draw_series(std::iter::once(PathElement::new(vec![(a, 0.0), (a, ymax)], BLACK.mix(0.35)))).map_err(perr)?;
        if names {
            let label = if st.measure { st.name.clone() } else { format!("({})", st.name) };
            c.draw_series(std::iter::once(Text::new(label, (a, ymax * 0.97), (FONT, 12).into_font()))).map_err(perr)?;
        }
    }
    Ok(())
}

impl Chart for Timeline<'_> {
    fn stem(&self) -> &str {
        "timeline"
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let root = root.titled(&format!("Timeline — {}", self.title), (FONT, 24)).map_err(perr)?;
        let panels = root.split_evenly((3, 1));
        let secs = &self.outcome.seconds;
        let tmax = secs.last().map_or(1.0, |s| s.t as f64).max(1.0);
        let t0 = self.outcome.steady_start_s.unwrap_or(0.0);
        // The target rate, stage by stage (linear within each).
        let target: Vec<(f64, f64)> = self
            .stages
            .iter()
            .flat_map(|st| [(t0 + st.start_s, st.target_start_per_s), (t0 + st.end_s, st.target_end_per_s)])
            .collect();
        let tmax = target.last().map_or(tmax, |p| tmax.max(p.0));
        self.rates(&panels[0], tmax, t0, target)?;
        self.latency(&panels[1], tmax, t0)?;
        self.connected(&panels[2], tmax)
    }
}

impl Timeline<'_> {
    /// The top panel: messages sent and delivered per second (per class too), against the
    /// target rate (`target`: its corners, `t0`: when sending started).
    fn rates<DB: DrawingBackend>(
        &self,
        panel: &DrawingArea<DB, Shift>,
        tmax: f64,
        t0: f64,
        target: Vec<(f64, f64)>,
    ) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let secs = &self.outcome.seconds;
        // Throughput: messages (the unit of the target) and the deliveries they fan out into.
        let sent: Vec<(f64, f64)> =
            secs.iter().map(|s| (s.t as f64, (s.delta.messages + s.delta.skipped_offline) as f64)).collect();
        let delivered: Vec<(f64, f64)> = secs.iter().map(|s| (s.t as f64, s.delta.delivered as f64)).collect();
        let by_class = class_rates(secs);
        let ymax = sent.iter().chain(&delivered).chain(&target).map(|p| p.1).fold(1.0, f64::max) * 1.15;
        let fanned_out = secs.iter().any(|s| s.delta.sent != s.delta.messages);
        let mut c = ChartBuilder::on(panel)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..tmax, 0.0..ymax)
            .map_err(perr)?;
        c.configure_mesh()
            .y_desc("messages/s")
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()
            .map_err(perr)?;
        stage_bands(&mut c, self.stages, t0, ymax, true)?;
        if !target.is_empty() {
            let col = BLACK.mix(0.6);
            c.draw_series(DashedLineSeries::new(target, 6, 4, col.stroke_width(2)))
                .map_err(perr)?
                .label("target/s")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(2)));
        }
        let (sent_name, delivered_name) =
            if fanned_out { ("messages sent/s", "deliveries/s") } else { ("sent/s", "delivered/s") };
        let mut lines = vec![(sent_name.to_owned(), sent, 2), (delivered_name.to_owned(), delivered, 2)];
        if by_class.len() > 1 {
            lines.extend(by_class.into_iter().map(|(name, pts)| (format!("deliveries/s {{{name}}}"), pts, 1)));
        }
        for (i, (name, pts, width)) in lines.into_iter().enumerate() {
            let col = colour(i);
            c.draw_series(LineSeries::new(pts, col.stroke_width(width)))
                .map_err(perr)?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(width)));
        }
        super::legend(&mut c, SeriesLabelPosition::UpperRight, 13)?;
        Ok(())
    }

    /// The middle panel: e2e p50 and p99 per second.
    fn latency<DB: DrawingBackend>(&self, panel: &DrawingArea<DB, Shift>, tmax: f64, t0: f64) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let secs = &self.outcome.seconds;
        let q = |p: f64| -> Vec<(f64, f64)> {
            secs.iter()
                .filter(|s| !s.hist.get(Metric::E2e).is_empty())
                .map(|s| (s.t as f64, s.hist.get(Metric::E2e).value_at_quantile(p) as f64 / 1e6))
                .collect()
        };
        let (p50, p99) = (q(0.5), q(0.99));
        let lmax = p99.iter().map(|p| p.1).fold(0.001, f64::max) * 1.15;
        let mut c = ChartBuilder::on(panel)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..tmax, 0.0..lmax)
            .map_err(perr)?;
        c.configure_mesh()
            .y_desc("e2e latency (ms)")
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()
            .map_err(perr)?;
        stage_bands(&mut c, self.stages, t0, lmax, false)?;
        for (i, (name, pts)) in [("e2e p50", p50), ("e2e p99", p99)].into_iter().enumerate() {
            let col = colour(i + 2);
            c.draw_series(LineSeries::new(pts, col.stroke_width(2)))
                .map_err(perr)?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(2)));
        }
        super::legend(&mut c, SeriesLabelPosition::UpperRight, 13)?;
        Ok(())
    }

    /// The bottom panel: clients connected.
    fn connected<DB: DrawingBackend>(&self, panel: &DrawingArea<DB, Shift>, tmax: f64) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let secs = &self.outcome.seconds;
        let conn: Vec<(f64, f64)> = secs.iter().map(|s| (s.t as f64, s.connected as f64)).collect();
        let cmax = conn.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15;
        let mut c = ChartBuilder::on(panel)
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..tmax, 0.0..cmax)
            .map_err(perr)?;
        c.configure_mesh()
            .x_desc("time since start (s)")
            .y_desc("connected clients")
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()
            .map_err(perr)?;
        c.draw_series(LineSeries::new(conn, colour(4).stroke_width(2))).map_err(perr)?;
        Ok(())
    }
}

struct LatencyHistogram<'a> {
    outcome: &'a Outcome,
    title: &'a str,
}

impl Chart for LatencyHistogram<'_> {
    fn stem(&self) -> &str {
        "latency-histogram"
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let h = self.outcome.total.get(Metric::E2e);
        let caption = format!("End-to-end latency distribution (corrected) — {}", self.title);
        if h.is_empty() {
            root.draw(&Text::new("no e2e samples", (50, 50), (FONT, 24).into_font())).map_err(perr)?;
            return Ok(());
        }
        // 60 log-spaced buckets between the smallest and largest sample.
        let (lo, hi) = ((h.min().max(1)) as f64, (h.max().max(2)) as f64 * 1.0001);
        let buckets = 60usize;
        let ratio = (hi / lo).powf(1.0 / buckets as f64);
        let mut bars = Vec::with_capacity(buckets);
        let mut edge = lo;
        for _ in 0..buckets {
            let next = edge * ratio;
            let n = h.count_between(edge as u64, (next as u64).saturating_sub(1).max(edge as u64));
            bars.push((edge / 1e6, next / 1e6, n));
            edge = next;
        }
        let ymax = bars.iter().map(|b| b.2).max().unwrap_or(1).max(1) as f64 * 1.1;
        let mut chart = ChartBuilder::on(root)
            .caption(caption, (FONT, 22))
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(90)
            .build_cartesian_2d((lo / 1e6..hi / 1e6).log_scale(), 0.0..ymax)
            .map_err(perr)?;
        chart
            .configure_mesh()
            .x_desc("e2e latency (ms, log scale)")
            .y_desc("messages")
            .x_label_formatter(&|v| trim_float(*v))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .draw()
            .map_err(perr)?;
        chart
            .draw_series(
                bars.iter().map(|&(a, b, n)| Rectangle::new([(a, 0.0), (b, n as f64)], colour(0).mix(0.8).filled())),
            )
            .map_err(perr)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels_read_naturally() {
        assert_eq!(pct_label(1.0), "0%");
        assert_eq!(pct_label(10.0), "90%");
        assert_eq!(pct_label(1000.0), "99.9%");
        assert_eq!(pct_label(2.0), "50%");
    }
}
