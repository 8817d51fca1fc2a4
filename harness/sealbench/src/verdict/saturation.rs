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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provenance::Provenance;
    use crate::results::summary::{ClientsSummary, Generator, Latency, Messages, Throughput};
    use crate::scenario::Scenario;

    /// A run that kept up: 1,000 msgs/s offered and sent, threads half busy, no lag.
    fn kept_up() -> anyhow::Result<Summary> {
        let scenario = Scenario::parse(
            "name = \"t\"\nduration = \"10s\"\n[clients]\ncount = 2\n[traffic]\nrate = 1000\nsize = 64\n",
            "t.toml",
            &[],
        )?;
        let zero = |n: u64| ClientsSummary {
            requested: n,
            connected: n,
            connect_failed: 0,
            register_failed: 0,
            disconnected: 0,
            handshakes_ok: n / 2,
            handshakes_failed: 0,
        };
        Ok(Summary {
            schema_version: 1,
            kind: "run".into(),
            provenance: Provenance::collect(),
            scenario,
            suite: String::new(),
            aead: "chacha20-poly1305".into(),
            relay: String::new(),
            interrupted: false,
            aborted: None,
            clients: zero(2),
            messages: Messages {
                sent: 10_000,
                delivered: 10_000,
                refused: 0,
                refused_by_code: Default::default(),
                lost: 0,
                duplicated: 0,
                reordered: 0,
                auth_failed: 0,
                too_old: 0,
                malformed: 0,
                sent_measured: 10_000,
                backlogged: 0,
                control_errors: 0,
                bytes_sent: 0,
                bytes_received: 0,
            },
            throughput: Throughput {
                seconds: 10.0,
                sent_per_s: 1000.0,
                delivered_per_s: 1000.0,
                handshakes_per_s: 0.0,
                offered_per_s: 1000.0,
            },
            latency: Default::default(),
            thresholds: Vec::new(),
            generator: Generator {
                schedule_lag: None,
                driver_cpu_s: 5.0,
                steady_cpu_s: 5.0,
                steady_cpu_share: 0.5,
                driver_cpu_us_per_msg: 500.0,
                shards: 1,
                process_peak_rss_kib: 0,
                saturated: false,
                saturation_reasons: Vec::new(),
            },
            relay_stats: None,
            wall_s: 12.0,
        })
    }

    fn lag(p99_us: f64) -> Latency {
        Latency {
            count: 1,
            min_us: 0.0,
            mean_us: 0.0,
            p50_us: 0.0,
            p90_us: 0.0,
            p95_us: 0.0,
            p99_us,
            p999_us: p99_us,
            max_us: p99_us,
        }
    }

    #[test]
    fn a_generator_that_kept_up_is_not_saturated() -> anyhow::Result<()> {
        let mut s = kept_up()?;
        s.generator.schedule_lag = Some(lag(SATURATED_LAG_US));
        judge(&mut s);
        assert!(!s.generator.saturated, "{:?}", s.generator.saturation_reasons);
        Ok(())
    }

    #[test]
    fn lag_busy_threads_backlog_or_a_short_rate_each_saturate_the_generator() -> anyhow::Result<()> {
        type Spoil = fn(&mut Summary);
        let cases: [(&str, Spoil); 4] = [
            ("schedule lag", |s| s.generator.schedule_lag = Some(lag(1500.0))),
            ("busy", |s| s.generator.steady_cpu_share = 0.97),
            ("full connection queue", |s| s.messages.backlogged = 101),
            ("sent 900/s of the 1000/s offered", |s| s.throughput.sent_per_s = 900.0),
        ];
        for (why, spoil) in cases {
            let mut s = kept_up()?;
            spoil(&mut s);
            judge(&mut s);
            assert!(s.generator.saturated, "{why}");
            assert_eq!(s.generator.saturation_reasons.len(), 1);
            assert!(s.generator.saturation_reasons[0].contains(why), "{:?}", s.generator.saturation_reasons);
        }
        Ok(())
    }

    #[test]
    fn an_interrupted_run_is_not_saturated_for_sending_less() -> anyhow::Result<()> {
        let mut s = kept_up()?;
        s.throughput.sent_per_s = 100.0;
        s.interrupted = true;
        judge(&mut s);
        assert!(!s.generator.saturated);
        Ok(())
    }
}
