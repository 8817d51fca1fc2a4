//! Whether the load generator kept its own schedule. When it did not, a run's latencies
//! describe the generator, not the relay: the summary says so, `matrix` marks the cell and
//! the capacity search brackets below the step.

use crate::results::summary::Summary;

/// Schedule lag p99 above which the generator counts as saturated, µs.
pub const SATURATED_LAG_US: f64 = 1000.0;

/// Share of the driver threads' time on CPU while sending above which the generator
/// counts as saturated.
pub const BUSY_SHARE: f64 = 0.95;

/// Why the generator of `s` counts as saturated (empty when it kept up): it sent late,
/// its threads were busy, sends queued up behind full connections, or it sent less than
/// it was offered.
pub fn reasons(s: &Summary) -> Vec<String> {
    let (g, m, t) = (&s.generator, &s.messages, &s.throughput);
    let mut reasons = Vec::new();
    if let Some(l) = &g.schedule_lag {
        if l.p99_us > SATURATED_LAG_US {
            reasons.push(format!(
                "schedule lag p99 {:.0} µs > {:.0} µs: the generator sent late",
                l.p99_us, SATURATED_LAG_US
            ));
        }
    }
    if g.steady_cpu_share > BUSY_SHARE {
        reasons.push(format!("driver threads were {:.0}% busy while sending", 100.0 * g.steady_cpu_share));
    }
    if m.sent_measured > 0 && m.backlogged as f64 > 0.01 * m.sent_measured as f64 {
        reasons.push(format!("{} sends waited for a full connection queue", m.backlogged));
    }
    if t.offered_per_s > 0.0 && t.seconds > 0.0 && !s.interrupted && t.sent_per_s < 0.95 * t.offered_per_s {
        reasons.push(format!("sent {:.0}/s of the {:.0}/s offered", t.sent_per_s, t.offered_per_s));
    }
    reasons
}

/// Judges whether the generator of `s` saturated and records why in it.
pub fn judge(s: &mut Summary) {
    let reasons = reasons(s);
    s.generator.saturated = !reasons.is_empty();
    s.generator.saturation_reasons = reasons;
}
