//! Charts of the protocol section of `sealbench crypto`: what each protocol's operations
//! cost against group size (set-up, key share or commit, per message), and the
//! per-message costs beside the Noise reference.

use super::{Chart, FONT, colour, perr};
use crate::crypto::protocols::ProtocolRow;
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Writes the protocol charts into `dir` (none when the report has no protocol section).
///
/// # Errors
/// When a file cannot be written.
pub fn render_all(dir: &Path, rows: &[ProtocolRow]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    if rows.iter().any(|r| r.group_size.is_some()) {
        files.extend(super::render(dir, &VsGroupSize(rows))?);
    }
    if rows.iter().any(|r| r.group_size.is_none()) {
        files.extend(super::render(dir, &PerMessage(rows))?);
    }
    Ok(files)
}

/// `protocol-cost-vs-group-size`: one line per size-dependent operation, log-log.
struct VsGroupSize<'a>(&'a [ProtocolRow]);

impl Chart for VsGroupSize<'_> {
    fn stem(&self) -> &str {
        "protocol-cost-vs-group-size"
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let sized: Vec<&ProtocolRow> = self.0.iter().filter(|r| r.group_size.is_some()).collect();
        let mut series: Vec<(String, String)> = Vec::new();
        for r in &sized {
            let key = (r.protocol.clone(), r.operation.clone());
            if !series.contains(&key) {
                series.push(key);
            }
        }
        let xs = sized.iter().filter_map(|r| r.group_size).map(|g| g as f64);
        let (xmin, xmax) = xs.fold((f64::MAX, 1.0_f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
        let ys = sized.iter().map(|r| r.us_median.max(0.01));
        let (ymin, ymax) = ys.fold((f64::MAX, 0.01_f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
        let mut chart = ChartBuilder::on(root)
            .caption("Protocol cost per operation against group size (one core)", (FONT, 26))
            .margin(18)
            .x_label_area_size(56)
            .y_label_area_size(90)
            .build_cartesian_2d((xmin.min(xmax / 2.0)..xmax * 1.3).log_scale(), (ymin / 2.0..ymax * 3.0).log_scale())
            .map_err(perr)?;
        chart
            .configure_mesh()
            .x_desc("group size (devices, log scale)")
            .y_desc("µs per operation (median, log scale)")
            .x_labels(12)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| if *v >= 1.0 { format!("{v:.0}") } else { format!("{v:.2}") })
            .label_style((FONT, 16))
            .axis_desc_style((FONT, 18))
            .draw()
            .map_err(perr)?;
        for (i, (proto, op)) in series.iter().enumerate() {
            let c = colour(i);
            let pts: Vec<(f64, f64)> = sized
                .iter()
                .filter(|r| &r.protocol == proto && &r.operation == op)
                .filter_map(|r| Some((r.group_size? as f64, r.us_median.max(0.01))))
                .collect();
            // Past the palette's eight colours, the series repeat them dashed, with triangles.
            let label = format!("{proto} {op}");
            if i < 8 {
                chart
                    .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                    .map_err(perr)?
                    .label(label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3)));
                chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled()))).map_err(perr)?;
            } else {
                chart
                    .draw_series(DashedLineSeries::new(pts.clone(), 8, 5, c.stroke_width(2)))
                    .map_err(perr)?
                    .label(label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 8, y)], c.stroke_width(3)));
                chart.draw_series(pts.iter().map(|&p| TriangleMarker::new(p, 5, c.filled()))).map_err(perr)?;
            }
        }
        super::legend(&mut chart, SeriesLabelPosition::UpperLeft, 13)?;
        Ok(())
    }
}

/// `protocol-per-message`: per-message and 1:1 operations of every protocol, bars in µs.
struct PerMessage<'a>(&'a [ProtocolRow]);

impl Chart for PerMessage<'_> {
    fn stem(&self) -> &str {
        "protocol-per-message"
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let rows: Vec<&ProtocolRow> = self.0.iter().filter(|r| r.group_size.is_none()).collect();
        let labels: Vec<String> = rows.iter().map(|r| format!("{} {}", r.protocol, r.operation)).collect();
        let values: Vec<Vec<Option<f64>>> = rows.iter().map(|r| vec![Some(r.us_median)]).collect();
        super::bars::grouped(
            root,
            "Per-message and session set-up cost per protocol (one core, 256 B; noise = reference)",
            "µs per operation (median)",
            &labels,
            &["median"],
            &values,
            &|v| format!("{v:.1}"),
        )
    }
}
