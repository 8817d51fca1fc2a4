//! Charts of `sealbench crypto`: throughput and per-message cost over message size, and
//! complete handshakes per second per suite.

use super::{Chart, FONT, colour, perr, size_label};
use crate::crypto::CryptoReport;
use crate::crypto::report::AeadRow;
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Writes every crypto chart into `dir`; returns the files written.
///
/// # Errors
/// When a file cannot be written.
pub fn render_all(dir: &Path, report: &CryptoReport) -> Result<Vec<PathBuf>> {
    let mut files = super::render(dir, &SizeChart(report, SizeMetric::Throughput))?;
    files.extend(super::render(dir, &SizeChart(report, SizeMetric::PerMessage))?);
    files.extend(super::render(dir, &Handshakes(report))?);
    Ok(files)
}

/// AEAD names in report order, each once.
fn aeads(report: &CryptoReport) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for r in &report.aead {
        if !v.contains(&r.aead) {
            v.push(r.aead.clone());
        }
    }
    v
}

fn label(aead: &str) -> String {
    aead.parse::<sealcore::AeadKind>().map(|a| a.label().to_owned()).unwrap_or_else(|_| aead.to_owned())
}

/// Draws seal (solid) and open (dashed) lines of `aeads` over `sizes` for a y value.
fn draw_lines<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<LogCoord<f64>, plotters::coord::types::RangedCoordf64>>,
    report: &CryptoReport,
    names: &[String],
    max_size: usize,
    value: impl Fn(&AeadRow, bool) -> f64,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    for (i, name) in names.iter().enumerate() {
        let c = colour(i);
        let rows: Vec<_> = report.aead.iter().filter(|r| &r.aead == name && r.size <= max_size).collect();
        let seal: Vec<(f64, f64)> = rows.iter().map(|r| (r.size as f64, value(r, true))).collect();
        let open: Vec<(f64, f64)> = rows.iter().map(|r| (r.size as f64, value(r, false))).collect();
        chart
            .draw_series(LineSeries::new(seal.clone(), c.stroke_width(3)))
            .map_err(perr)?
            .label(format!("{} seal", label(name)))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3)));
        chart.draw_series(seal.iter().map(|&p| Circle::new(p, 4, c.filled()))).map_err(perr)?;
        chart
            .draw_series(DashedLineSeries::new(open.clone(), 10, 6, c.stroke_width(2)))
            .map_err(perr)?
            .label(format!("{} open", label(name)))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 10, y)], c.stroke_width(2)));
        chart.draw_series(open.iter().map(|&p| TriangleMarker::new(p, 5, c.filled()))).map_err(perr)?;
    }
    Ok(())
}

/// What a per-size chart shows.
#[derive(Clone, Copy)]
enum SizeMetric {
    /// MB/s, every size, `none` left out (it does no per-byte work).
    Throughput,
    /// ns per message up to 4 KiB (where the fixed per-message cost dominates), with the
    /// UNENCRYPTED `none` baseline.
    PerMessage,
}

/// `crypto-throughput` and `crypto-per-message`: one line per AEAD against message size
/// (log2 x axis), seal solid, open dashed.
struct SizeChart<'a>(&'a CryptoReport, SizeMetric);

impl SizeChart<'_> {
    fn value(&self, row: &AeadRow, seal: bool) -> f64 {
        let op = if seal { &row.seal } else { &row.open };
        match self.1 {
            SizeMetric::Throughput => op.mb_per_s,
            SizeMetric::PerMessage => op.ns_per_msg,
        }
    }

    /// Largest size shown: 4 KiB for per-message cost unless fewer than two sizes fit.
    fn limit(&self) -> usize {
        let small = self.0.aead.iter().filter(|x| x.size <= 4096).count();
        match self.1 {
            SizeMetric::PerMessage if small >= 2 => 4096,
            _ => usize::MAX,
        }
    }
}

impl Chart for SizeChart<'_> {
    fn stem(&self) -> &str {
        match self.1 {
            SizeMetric::Throughput => "crypto-throughput",
            SizeMetric::PerMessage => "crypto-per-message",
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let r = self.0;
        let limit = self.limit();
        let names: Vec<String> = match self.1 {
            SizeMetric::Throughput => aeads(r).into_iter().filter(|a| a != "none").collect(),
            SizeMetric::PerMessage => aeads(r),
        };
        let rows: Vec<&AeadRow> = r.aead.iter().filter(|x| x.size <= limit && names.contains(&x.aead)).collect();
        let min_size = rows.iter().map(|x| x.size).min().unwrap_or(16).max(1) as f64;
        let max_size = (rows.iter().map(|x| x.size).max().unwrap_or(4096) as f64).max(min_size * 2.0);
        let ymax = rows.iter().map(|x| self.value(x, true).max(self.value(x, false))).fold(1.0, f64::max) * 1.12;
        let (title, y_desc) = match self.1 {
            SizeMetric::Throughput => (
                format!("AEAD throughput per message size (one core, {})", r.provenance.cpu_model),
                "throughput (MB/s, 10^6 bytes per second)",
            ),
            SizeMetric::PerMessage => {
                ("Cost per message, small messages (one core)".to_owned(), "time per message (ns)")
            }
        };
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 26))
            .margin(18)
            .x_label_area_size(56)
            .y_label_area_size(84)
            .build_cartesian_2d((min_size..max_size).log_scale().base(2.0), 0.0..ymax)
            .map_err(perr)?;
        chart
            .configure_mesh()
            .x_desc("message size (bytes of plaintext, log2 scale)")
            .y_desc(y_desc)
            .x_label_formatter(&|v| size_label(*v))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style((FONT, 16))
            .axis_desc_style((FONT, 18))
            .draw()
            .map_err(perr)?;
        draw_lines(&mut chart, r, &names, limit, |row, seal| self.value(row, seal))?;
        super::legend(&mut chart, SeriesLabelPosition::UpperLeft, 15)?;
        Ok(())
    }
}

/// `handshakes`: complete handshakes per second (both sides, one core), a bar per suite.
struct Handshakes<'a>(&'a CryptoReport);

impl Chart for Handshakes<'_> {
    fn stem(&self) -> &str {
        "handshakes"
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let rows = &self.0.handshakes;
        let n = rows.len().max(1);
        let xmax = rows.iter().map(|h| h.handshakes_per_s).fold(1.0, f64::max) * 1.15;
        let names: Vec<String> = rows.iter().map(|h| h.suite.trim_start_matches("Noise_").replace('_', " ")).collect();
        let mut chart = ChartBuilder::on(root)
            .caption("Complete Noise handshakes per second (both sides' work, one core)", (FONT, 26))
            .margin(18)
            .x_label_area_size(56)
            .y_label_area_size(300)
            .build_cartesian_2d(0.0..xmax, (0..n).into_segmented())
            .map_err(perr)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("handshakes per second")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_desc("pattern, DH, cipher, hash")
            .y_labels(n)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 18))
            .draw()
            .map_err(perr)?;
        let patterns: Vec<&str> = {
            let mut v: Vec<&str> = Vec::new();
            for h in rows {
                if !v.contains(&h.pattern.as_str()) {
                    v.push(&h.pattern);
                }
            }
            v
        };
        for (i, h) in rows.iter().enumerate() {
            let c = colour(patterns.iter().position(|p| *p == h.pattern).unwrap_or(0));
            let mut bar = Rectangle::new(
                [(0.0, SegmentValue::Exact(i)), (h.handshakes_per_s, SegmentValue::Exact(i + 1))],
                c.mix(0.85).filled(),
            );
            bar.set_margin(5, 5, 0, 0);
            chart.draw_series(std::iter::once(bar)).map_err(perr)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    format!("{:.0}/s", h.handshakes_per_s),
                    (h.handshakes_per_s + xmax * 0.01, SegmentValue::CenterOf(i)),
                    (FONT, 14).into_font(),
                )))
                .map_err(perr)?;
        }
        Ok(())
    }
}
