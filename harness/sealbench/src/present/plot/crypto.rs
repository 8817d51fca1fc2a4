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

/// Distinct values of `f` over the AEAD rows, in report order.
fn distinct(report: &CryptoReport, f: impl Fn(&AeadRow) -> &String) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for r in &report.aead {
        if !v.contains(f(r)) {
            v.push(f(r).clone());
        }
    }
    v
}

fn label(aead: &str) -> String {
    aead.parse::<sealcore::AeadKind>().map(|a| a.label().to_owned()).unwrap_or_else(|_| aead.to_owned())
}

/// The value a chart shows for a row, seal or open.
type Value<'a> = &'a dyn Fn(&AeadRow, bool) -> f64;

/// Draws one series, seal (solid, circles) and open (dashed, triangles), of `rows`.
fn draw_series<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<LogCoord<f64>, plotters::coord::types::RangedCoordf64>>,
    rows: &[&AeadRow],
    c: RGBColor,
    name: &str,
    value: Value<'_>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let seal: Vec<(f64, f64)> = rows.iter().map(|r| (r.size as f64, value(r, true))).collect();
    let open: Vec<(f64, f64)> = rows.iter().map(|r| (r.size as f64, value(r, false))).collect();
    chart
        .draw_series(LineSeries::new(seal.clone(), c.stroke_width(3)))
        .map_err(perr)?
        .label(format!("{name} seal"))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3)));
    chart.draw_series(seal.iter().map(|&p| Circle::new(p, 4, c.filled()))).map_err(perr)?;
    chart
        .draw_series(DashedLineSeries::new(open.clone(), 10, 6, c.stroke_width(2)))
        .map_err(perr)?
        .label(format!("{name} open"))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 10, y)], c.stroke_width(2)));
    chart.draw_series(open.iter().map(|&p| TriangleMarker::new(p, 5, c.filled()))).map_err(perr)?;
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

/// `crypto-throughput` and `crypto-per-message` against message size (log2 x axis), seal
/// solid, open dashed. One backend: one chart, a line per AEAD. Several backends: a panel
/// per AEAD, a line per backend (each backend one colour in every panel).
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
        let small = distinct(self.0, |r| &r.aead).first().map_or(0, |a| {
            self.0.aead.iter().filter(|x| &x.aead == a && x.size <= 4096 && x.backend == self.0.aead[0].backend).count()
        });
        match self.1 {
            SizeMetric::PerMessage if small >= 2 => 4096,
            _ => usize::MAX,
        }
    }

    /// One panel: `series` (name, colour, rows) on shared axes.
    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        title: &str,
        title_size: u32,
        series: &[(String, RGBColor, Vec<&AeadRow>)],
    ) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let rows: Vec<&AeadRow> = series.iter().flat_map(|s| s.2.iter().copied()).collect();
        let min_size = rows.iter().map(|x| x.size).min().unwrap_or(16).max(1) as f64;
        let max_size = (rows.iter().map(|x| x.size).max().unwrap_or(4096) as f64).max(min_size * 2.0);
        let ymax = rows.iter().map(|x| self.value(x, true).max(self.value(x, false))).fold(1.0, f64::max) * 1.12;
        let y_desc = match self.1 {
            SizeMetric::Throughput => "throughput (MB/s, 10^6 bytes per second)",
            SizeMetric::PerMessage => "time per message (ns)",
        };
        let small = title_size < 26; // a panel of several
        let mut chart = ChartBuilder::on(area)
            .caption(title, (FONT, title_size))
            .margin(if small { 8 } else { 18 })
            .x_label_area_size(if small { 36 } else { 56 })
            .y_label_area_size(if small { 60 } else { 84 })
            .build_cartesian_2d((min_size..max_size).log_scale().base(2.0), 0.0..ymax)
            .map_err(perr)?;
        chart
            .configure_mesh()
            .x_desc(if small { "message size (log2)" } else { "message size (bytes of plaintext, log2 scale)" })
            .y_desc(match (small, self.1) {
                (true, SizeMetric::Throughput) => "MB/s",
                (true, SizeMetric::PerMessage) => "ns per message",
                (false, _) => y_desc,
            })
            .x_label_formatter(&|v| size_label(*v))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style((FONT, if small { 12 } else { 16 }))
            .axis_desc_style((FONT, if small { 13 } else { 18 }))
            .draw()
            .map_err(perr)?;
        for (name, c, rows) in series {
            draw_series(&mut chart, rows, *c, name, &|r, seal| self.value(r, seal))?;
        }
        super::legend(&mut chart, SeriesLabelPosition::UpperLeft, if small { 11 } else { 15 })?;
        Ok(())
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
        let aeads: Vec<String> = distinct(r, |x| &x.aead)
            .into_iter()
            .filter(|a| matches!(self.1, SizeMetric::PerMessage) || a != "none")
            .collect();
        let backends = distinct(r, |x| &x.backend);
        let rows_of = |aead: &str, backend: &str| -> Vec<&AeadRow> {
            r.aead.iter().filter(|x| x.aead == aead && x.backend == backend && x.size <= limit).collect()
        };
        let title = match self.1 {
            SizeMetric::Throughput => {
                format!("AEAD throughput per message size (one core, {})", r.header.provenance.cpu_model)
            }
            SizeMetric::PerMessage => "Cost per message, small messages (one core)".to_owned(),
        };
        if backends.len() <= 1 {
            let b = backends.first().cloned().unwrap_or_default();
            let series: Vec<_> = aeads.iter().enumerate().map(|(i, a)| (label(a), colour(i), rows_of(a, &b))).collect();
            return self.panel(root, &title, 26, &series);
        }
        // A panel per AEAD, a line per backend.
        let root = root.titled(&format!("{title}: a line per backend"), (FONT, 24)).map_err(perr)?;
        let cols = if aeads.len() > 4 { 3 } else { 2.min(aeads.len().max(1)) };
        let rows = aeads.len().div_ceil(cols).max(1);
        let panels = root.split_evenly((rows, cols));
        for (a, area) in aeads.iter().zip(panels.iter()) {
            let series: Vec<_> = backends
                .iter()
                .enumerate()
                .map(|(i, b)| (b.clone(), colour(i), rows_of(a, b)))
                .filter(|s| !s.2.is_empty())
                .collect();
            self.panel(area, &label(a), 18, &series)?;
        }
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
        let several = rows.iter().any(|h| h.backend != rows[0].backend);
        let names: Vec<String> = rows
            .iter()
            .map(|h| {
                let name = h.suite.trim_start_matches("Noise_").replace('_', " ");
                if several { format!("{name} ({})", h.backend) } else { name }
            })
            .collect();
        let mut chart = ChartBuilder::on(root)
            .caption("Complete handshakes per second (both sides' work, one core)", (FONT, 26))
            .margin(18)
            .x_label_area_size(56)
            .y_label_area_size(if several { 420 } else { 340 })
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
            .label_style((
                FONT,
                if n > 30 {
                    9
                } else if n > 24 {
                    11
                } else {
                    15
                },
            ))
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
        let backends: Vec<&str> = {
            let mut v: Vec<&str> = Vec::new();
            for h in rows {
                if !v.contains(&h.backend.as_str()) {
                    v.push(&h.backend);
                }
            }
            v
        };
        for (i, h) in rows.iter().enumerate() {
            // Colour by backend when there are several (the names say the pattern), else by pattern.
            let c = if several {
                colour(backends.iter().position(|b| *b == h.backend).unwrap_or(0))
            } else {
                colour(patterns.iter().position(|p| *p == h.pattern).unwrap_or(0))
            };
            let mut bar = Rectangle::new(
                [(0.0, SegmentValue::Exact(i)), (h.handshakes_per_s, SegmentValue::Exact(i + 1))],
                c.mix(0.85).filled(),
            );
            let margin = if n > 30 { 1 } else { 5 };
            bar.set_margin(margin, margin, 0, 0);
            chart.draw_series(std::iter::once(bar)).map_err(perr)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    format!("{:.0}/s, {} B", h.handshakes_per_s, h.bytes),
                    (h.handshakes_per_s + xmax * 0.01, SegmentValue::CenterOf(i)),
                    (FONT, if n > 30 { 10 } else { 14 }).into_font(),
                )))
                .map_err(perr)?;
        }
        Ok(())
    }
}
