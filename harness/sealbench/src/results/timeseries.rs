//! `timeseries.csv`: one row per second.

use super::figure::{ErrorCounts, Metric};
use crate::driver::Second;
use std::fmt::Write as _;

/// Column header of `timeseries.csv` (units in the names; `docs/RESULTS.md` explains each).
pub const HEADER: &str = "t_s,phase,connected,handshakes,sent_per_s,delivered_per_s,e2e_p50_us,e2e_p99_us,e2e_max_us,e2e_raw_p99_us,schedule_lag_p99_us,refused,lost_or_pending,errors";

/// Renders the CSV.
pub fn render(seconds: &[Second]) -> String {
    let mut s = String::from(HEADER);
    s.push('\n');
    let mut in_flight: i64 = 0;
    for sec in seconds {
        let e2e = sec.hist.get(Metric::E2e);
        let raw = sec.hist.get(Metric::E2eRaw);
        let lag = sec.hist.get(Metric::ScheduleLag);
        let q = |h: &hdrhistogram::Histogram<u64>, p: f64| {
            if h.is_empty() { String::new() } else { format!("{:.1}", h.value_at_quantile(p) as f64 / 1e3) }
        };
        let max = if e2e.is_empty() { String::new() } else { format!("{:.1}", e2e.max() as f64 / 1e3) };
        let d = &sec.delta;
        let refused = d.refused_total();
        in_flight += d.sent as i64 - d.delivered as i64 - refused as i64;
        let errors = ErrorCounts::of(d).total();
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            sec.t,
            sec.phase.name(),
            sec.connected,
            d.handshakes_ok,
            d.sent,
            d.delivered,
            q(e2e, 0.5),
            q(e2e, 0.99),
            max,
            q(raw, 0.99),
            q(lag, 0.99),
            refused,
            in_flight.max(0),
            errors
        );
    }
    s
}
