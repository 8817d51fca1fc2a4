//! Charts, each written as PNG and SVG. Plotting only consumes finished results.
//!
//! PNG text is drawn with DejaVu Sans compiled into the binary (`assets/`), so charts render
//! the same on a machine without any font packages.
//!
//! # Layout
//! - [`crypto`] — charts of `sealbench crypto`; [`protocols`] — its protocol section.
//! - [`run`] — charts of `sealbench run`; [`classes`] — its traffic-class charts (fan-out
//!   by group size, offline delivery), drawn when the run has them; [`matrix`], [`capacity`] — of those commands;
//!   [`bars`] — the shared bar chart.

pub mod bars;
pub mod capacity;
pub mod classes;
pub mod crypto;
pub mod matrix;
pub mod protocols;
pub mod run;

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Once;

/// The font family every chart uses (registered from the embedded DejaVu Sans).
pub const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../../../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        // The embedded file is a valid TrueType font; failure would be a build defect.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES);
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, FONT_BYTES);
    });
}

/// A chart that can draw itself on any plotters backend.
pub trait Chart {
    /// File name without extension (`crypto-throughput`).
    fn stem(&self) -> &str;
    /// Draws onto `root`.
    ///
    /// # Errors
    /// Whatever the backend reports.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static;
}

/// Pixel size of every chart.
pub const SIZE: (u32, u32) = (1280, 760);

/// Writes `chart` as `<dir>/<stem>.png` and `<dir>/<stem>.svg`; returns both paths.
///
/// # Errors
/// When a file cannot be written (the message names it).
pub fn render(dir: &Path, chart: &impl Chart) -> Result<Vec<PathBuf>> {
    register_font();
    let png = dir.join(format!("{}.png", chart.stem()));
    let svg = dir.join(format!("{}.svg", chart.stem()));
    {
        let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{}: {e:?}", png.display()))?;
        chart.draw(&root)?;
        root.present().map_err(|e| anyhow!("writing {}: {e:?}", png.display()))?;
    }
    {
        let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{}: {e:?}", svg.display()))?;
        chart.draw(&root)?;
        root.present().map_err(|e| anyhow!("writing {}: {e:?}", svg.display()))?;
    }
    Ok(vec![png, svg])
}

/// Draws the series legend of `chart` at `pos` in the house style.
///
/// # Errors
/// Whatever the backend reports.
pub(crate) fn legend<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    pos: SeriesLabelPosition,
    size: u32,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    CT: plotters::coord::CoordTranslate,
{
    chart
        .configure_series_labels()
        .position(pos)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, size))
        .draw()
        .map_err(perr)
}

/// Converts a plotters error into anyhow.
pub(crate) fn perr<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotting failed: {e:?}")
}

/// A fixed colour per series index, readable on white and distinct in print.
pub fn colour(i: usize) -> RGBColor {
    const PALETTE: [RGBColor; 8] = [
        RGBColor(0, 114, 178),
        RGBColor(213, 94, 0),
        RGBColor(0, 158, 115),
        RGBColor(204, 121, 167),
        RGBColor(110, 110, 110),
        RGBColor(230, 159, 0),
        RGBColor(86, 180, 233),
        RGBColor(0, 0, 0),
    ];
    PALETTE[i % PALETTE.len()]
}

/// A human size label: 16 B, 1 KiB, 64 KiB, 1350 B.
pub fn size_label(bytes: f64) -> String {
    let b = bytes.round() as u64;
    if b >= 1024 && b.is_multiple_of(1024) { format!("{} KiB", b / 1024) } else { format!("{b} B") }
}
