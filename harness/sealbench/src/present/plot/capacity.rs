//! Charts of `sealbench capacity`: the latency "hockey stick" with the SLO and the found
//! capacity marked, and delivered against offered load.

use super::{Chart, FONT, colour, perr};
use crate::results::capacity::{Capacity, Step};
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Writes the capacity charts into `dir`.
///
/// # Errors
/// When a file cannot be written.
pub fn render_all(dir: &Path, c: &Capacity) -> Result<Vec<PathBuf>> {
    let mut files = super::render(dir, &CapChart(c, false))?;
    files.extend(super::render(dir, &CapChart(c, true))?);
    Ok(files)
}

struct CapChart<'a>(&'a Capacity, bool);

/// Picks one latency of a step.
type StepValue = fn(&Step) -> Option<f64>;

/// The latency SLO line, in ms, if an `e2e.pXX < …` SLO exists.
fn slo_line(c: &Capacity) -> Option<(String, f64)> {
    c.slos.iter().find_map(|s| {
        let t = crate::verdict::threshold::Threshold::parse(s).ok()?;
        t.metric.starts_with("e2e.").then(|| (s.clone(), t.value / 1e3))
    })
}

impl Chart for CapChart<'_> {
    fn stem(&self) -> &str {
        if self.1 { "capacity-throughput" } else { "capacity-latency" }
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let c = self.0;
        let mut steps: Vec<_> = c.steps.iter().collect();
        steps.sort_by(|a, b| a.offered.total_cmp(&b.offered));
        let xname = if c.search == "clients" { "connected clients" } else { "offered load (messages/s)" };
        let xmax = steps.iter().map(|s| s.offered).fold(1.0, f64::max) * 1.1;
        if self.1 {
            return throughput(root, c, &steps, xname, xmax);
        }
        let slo = slo_line(c);
        let ymax = steps
            .iter()
            .filter_map(|s| s.e2e_p999_us.or(s.e2e_p99_us))
            .map(|u| u / 1e3)
            .fold(slo.as_ref().map_or(0.001, |s| s.1), f64::max)
            * 1.15;
        let mut ch = ChartBuilder::on(root)
            .caption(
                format!("e2e latency vs offered load — {} (red rings: generator saturated)", c.scenario.name),
                (FONT, 22),
            )
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..xmax, 0.0..ymax)
            .map_err(perr)?;
        ch.configure_mesh()
            .x_desc(xname)
            .y_desc("e2e latency (ms)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .draw()
            .map_err(perr)?;
        let series: [(&str, StepValue); 3] =
            [("e2e p50", |s| s.e2e_p50_us), ("e2e p99", |s| s.e2e_p99_us), ("e2e p99.9", |s| s.e2e_p999_us)];
        for (i, (name, f)) in series.into_iter().enumerate() {
            let col = colour(i);
            let pts: Vec<(f64, f64)> = steps.iter().filter_map(|s| f(s).map(|u| (s.offered, u / 1e3))).collect();
            ch.draw_series(LineSeries::new(pts.clone(), col.stroke_width(3)))
                .map_err(perr)?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(3)));
            ch.draw_series(pts.iter().map(|&p| Circle::new(p, 4, col.filled()))).map_err(perr)?;
        }
        // Saturated steps get a red ring.
        ch.draw_series(
            steps
                .iter()
                .filter(|s| s.saturated)
                .filter_map(|s| s.e2e_p99_us.map(|u| Circle::new((s.offered, u / 1e3), 10, RED.stroke_width(2)))),
        )
        .map_err(perr)?;
        if let Some((label, y)) = slo {
            ch.draw_series(LineSeries::new(vec![(0.0, y), (xmax, y)], RED.stroke_width(2)))
                .map_err(perr)?
                .label(format!("SLO {label}"))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
        }
        if let Some(limit) = c.generator_limit {
            ch.draw_series(DashedLineSeries::new(vec![(limit, 0.0), (limit, ymax)], 8, 6, RED.stroke_width(2)))
                .map_err(perr)?
                .label(format!("generator saturates at {limit:.0}"))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(1)));
        }
        if let Some(cap) = c.capacity {
            ch.draw_series(LineSeries::new(vec![(cap, 0.0), (cap, ymax)], BLACK.stroke_width(2)))
                .map_err(perr)?
                .label(format!("capacity {cap:.0}"))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
        }
        super::legend(&mut ch, SeriesLabelPosition::UpperLeft, 14)?;
        Ok(())
    }
}

/// Delivered against offered load, one point per step (sorted by offered value).
fn throughput<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    c: &Capacity,
    steps: &[&Step],
    xname: &str,
    xmax: f64,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let ymax = steps.iter().map(|s| s.delivered_per_s.max(s.offered_per_s)).fold(1.0, f64::max) * 1.1;
    let mut ch = ChartBuilder::on(root)
        .caption(format!("Delivered vs offered — {}", c.scenario.name), (FONT, 24))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(90)
        .build_cartesian_2d(0.0..xmax, 0.0..ymax)
        .map_err(perr)?;
    ch.configure_mesh()
        .x_desc(xname)
        .y_desc("messages/s")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .draw()
        .map_err(perr)?;
    let off: Vec<(f64, f64)> = steps.iter().map(|s| (s.offered, s.offered_per_s)).collect();
    let del: Vec<(f64, f64)> = steps.iter().map(|s| (s.offered, s.delivered_per_s)).collect();
    for (i, (name, pts)) in [("offered msgs/s", off), ("delivered msgs/s", del)].into_iter().enumerate() {
        let col = colour(i);
        ch.draw_series(LineSeries::new(pts.clone(), col.stroke_width(3)))
            .map_err(perr)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(3)));
        ch.draw_series(pts.iter().map(|&p| Circle::new(p, 5, col.filled()))).map_err(perr)?;
    }
    super::legend(&mut ch, SeriesLabelPosition::UpperLeft, 14)?;
    Ok(())
}
