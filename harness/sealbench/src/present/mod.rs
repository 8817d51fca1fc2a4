//! Presentation: consumers of finished results.
//!
//! # Layout
//! - [`console`] — the progress line and the final table; [`html`] — `report.html`;
//!   [`plot`] — charts (PNG + SVG).

pub mod console;
pub mod html;
pub mod plot;
