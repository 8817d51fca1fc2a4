//! Horizontal bar charts with one bar (or a group of bars) per label.

use super::{FONT, colour, perr};
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Draws groups of horizontal bars: one group per label, one bar per series.
///
/// `values[label][series]`; `None` leaves a gap.
pub fn grouped<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    x_desc: &str,
    labels: &[String],
    series: &[&str],
    values: &[Vec<Option<f64>>],
    fmt: &dyn Fn(f64) -> String,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let n = labels.len().max(1);
    let k = series.len().max(1);
    let xmax = values.iter().flatten().flatten().copied().fold(1e-9, f64::max) * 1.2;
    let slots = n * (k + 1);
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(330)
        .build_cartesian_2d(0.0..xmax, -0.5..slots as f64)
        .map_err(perr)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_desc(x_desc)
        .x_label_formatter(&|v| fmt(*v))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .draw()
        .map_err(perr)?;
    // Group labels, right-aligned left of the plot, at each group's centre (plotters' own
    // label placement picks "nice" numbers, not our group centres). First group on top.
    let style = TextStyle::from((FONT, 14).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
    for (li, label) in labels.iter().enumerate() {
        let centre = (row(n, li) * (k + 1)) as f64 + k as f64 / 2.0;
        let (x, y) = chart.backend_coord(&(0.0, centre));
        root.draw(&Text::new(label.clone(), (x - 8, y), style.clone())).map_err(perr)?;
    }
    for (si, name) in series.iter().enumerate() {
        let c = colour(si);
        let bars: Vec<Rectangle<(f64, f64)>> = values
            .iter()
            .enumerate()
            .filter_map(|(li, vals)| {
                let v = (*vals.get(si)?)?;
                let y0 = (row(n, li) * (k + 1) + (k - 1 - si)) as f64 + 0.1;
                Some(Rectangle::new([(0.0, y0), (v, y0 + 0.8)], c.mix(0.85).filled()))
            })
            .collect();
        chart
            .draw_series(bars)
            .map_err(perr)?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], c.filled()));
        let texts: Vec<Text<'_, (f64, f64), String>> = values
            .iter()
            .enumerate()
            .filter_map(|(li, vals)| {
                let v = (*vals.get(si)?)?;
                let y = (row(n, li) * (k + 1) + (k - 1 - si)) as f64 + 0.75;
                Some(Text::new(fmt(v), (v + xmax * 0.01, y), (FONT, 13).into_font()))
            })
            .collect();
        chart.draw_series(texts).map_err(perr)?;
    }
    if k > 1 {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font((FONT, 14))
            .draw()
            .map_err(perr)?;
    }
    Ok(())
}

/// Row (from the bottom) of group `li`: the first group is drawn on top.
fn row(n: usize, li: usize) -> usize {
    n - 1 - li
}
