//! The final console summary (in the spirit of wrk's and k6's) and the one-line progress.

use super::{latency_cells, latency_columns};
use crate::driver::recorder::Counters;
use crate::driver::{Phase, Second};
use crate::results::figure::{ErrorCounts, Metric, format_us};
use crate::results::summary::Summary;
use std::fmt::Write as _;

/// One progress line for a finished second.
pub fn progress_line(sec: &Second, total: &Counters, clients: usize) -> String {
    let e2e = sec.hist.get(Metric::E2e);
    let p99 = if e2e.is_empty() { "-".to_owned() } else { format_us(e2e.value_at_quantile(0.99) as f64 / 1e3) };
    let errors = ErrorCounts::of(total).total();
    let phase = match sec.phase {
        Phase::Connecting => format!("connecting {}/{clients}", sec.connected),
        // No denominator: how many handshakes a workload makes depends on its protocol and
        // shape (pairs, pairwise sessions in groups, MLS joins), and a wrong one misleads.
        Phase::Handshaking => format!("handshaking {} done", total.handshakes_ok),
        p => p.name().to_owned(),
    };
    format!(
        "[{:>4}s] {phase:<22} connected {:>6}  sent {:>8}/s  delivered {:>8}/s  p99 {:>9}  errors {}",
        sec.t, sec.connected, sec.delta.sent, sec.delta.delivered, p99, errors
    )
}

/// The final table: what ran, latencies, accounting, the generator's verdict, thresholds.
pub fn table(s: &Summary, dir: &str) -> String {
    let mut o = String::new();
    header(&mut o, s);
    latency_rows(&mut o, s);
    stage_rows(&mut o, s);
    accounting(&mut o, s);
    generator(&mut o, s);
    if !s.thresholds.is_empty() {
        let _ = writeln!(o, "\n  thresholds:");
        for v in &s.thresholds {
            let measured = crate::verdict::threshold::measured_text(&v.expr, v.measured);
            let _ = writeln!(o, "    {} {}  (measured {measured})", if v.pass { "✓ pass" } else { "✗ FAIL" }, v.expr);
        }
    }
    let _ = writeln!(o, "\n  results: {dir}");
    o
}

fn header(o: &mut String, s: &Summary) {
    let sc = &s.scenario;
    let _ = writeln!(o, "\nsealbench run `{}` — {} clients, {}", sc.name, sc.clients.count, s.suite);
    if let Some(p) = &s.partial {
        let _ = writeln!(o, "  *** PARTIAL merge: {p} ***");
    }
    if let Some(why) = crate::scenario::unencrypted(sc) {
        let _ = writeln!(o, "  *** UNENCRYPTED baseline run ({why}): messages crossed the relay in the clear ***");
    }
    if sc.stages.is_empty() {
        let _ = writeln!(o, "  relay: {}   duration {:?} (+{:?} warm-up)", s.relay, sc.duration, sc.warmup);
    } else {
        let total: std::time::Duration = sc.stages.iter().map(|st| st.duration).sum();
        let _ = writeln!(o, "  relay: {}   {} stages, {:?}", s.relay, sc.stages.len(), total);
    }
    if s.interrupted {
        let _ = writeln!(o, "  INTERRUPTED (Ctrl-C): results cover what was measured until then");
    }
    if let Some(a) = &s.aborted {
        let _ = writeln!(o, "  ABORTED: {a}");
    }
}

fn latency_rows(o: &mut String, s: &Summary) {
    let rows = super::latency_rows(s);
    // Wide enough for the longest class label (indented two more).
    let w = rows.iter().map(|(name, class, _)| name.len() + if *class { 2 } else { 0 }).max().unwrap_or(0).max(14);
    let _ = write!(o, "\n  {:<w$}", "latency");
    for (i, c) in latency_columns().iter().enumerate() {
        let _ = write!(o, " {:>cw$}", c, cw = if i == 0 { 8 } else { 10 });
    }
    o.push('\n');
    for (name, class, l) in rows {
        let label = if class { format!("  {name}") } else { name };
        let _ = write!(o, "  {label:<w$}");
        for (i, c) in latency_cells(l).iter().enumerate() {
            let _ = write!(o, " {:>cw$}", c, cw = if i == 0 { 8 } else { 10 });
        }
        o.push('\n');
    }
}

fn accounting(o: &mut String, s: &Summary) {
    let m = &s.messages;
    let _ = writeln!(
        o,
        "\n  messages: sent {}  delivered {}  refused {}  lost {}  | duplicated {}  reordered {}  auth failed {}  too old {}",
        m.sent, m.delivered, m.refused, m.lost, m.duplicated, m.reordered, m.auth_failed, m.too_old
    );
    if m.messages != m.sent || m.skipped_offline + m.undelivered_offline > 0 {
        let _ = writeln!(
            o,
            "    {} messages fanned out into those {} deliveries; {} not sent (sender's devices all offline), {} held by \
             the relay for devices offline at the end (not lost), {} fan-outs incomplete",
            m.messages, m.sent, m.skipped_offline, m.undelivered_offline, m.fanout_incomplete
        );
    }
    if m.lost > 0 && m.delivered_at_end > 0 {
        let _ = writeln!(
            o,
            "    lost {}: deliveries were still arriving when the run stopped waiting ({} delivered just before it stopped) — most \
             are likely still queued, not dropped; a longer `cooldown` waits for them",
            m.lost, m.delivered_at_end
        );
    }
    if m.not_ready + m.bad_timestamp > 0 {
        let _ = writeln!(
            o,
            "    not opened: {} before the handshake ended; delivered without a latency: {} with a timestamp not of this run",
            m.not_ready, m.bad_timestamp
        );
    }
    for (code, n) in &m.refused_by_code {
        let _ = writeln!(o, "    refused {code}: {n}");
    }
    if let Some(a) = s.relay_stats.as_ref().and_then(|r| r.adversary) {
        let _ = writeln!(
            o,
            "    adversarial relay did: tampered {}  replayed {}  duplicated {}  dropped {}  reordered {}  delayed {}",
            a.tampered, a.replayed, a.duplicated, a.dropped, a.reordered, a.delayed
        );
    }
    if let Some(r) = s.relay_stats.as_ref().and_then(|r| r.scan.as_ref()) {
        let time = r
            .time_us
            .as_ref()
            .map_or(String::new(), |t| format!("; scan {:.2} µs p50, {:.2} µs p99 per message", t.p50_us, t.p99_us));
        let _ = writeln!(
            o,
            "    relay that reads ({} words, {}): read {}, could not read {} (end-to-end encrypted); matched {} ({} keywords), blocked {}{time}",
            r.words,
            r.action.name(),
            r.scanned,
            r.unreadable,
            r.matched,
            r.matches,
            r.blocked
        );
    }
    let c = &s.clients;
    let _ = writeln!(
        o,
        "  clients: connected {}/{}  connect failed {}  handshakes {} ok / {} failed  disconnected {}",
        c.connected, c.requested, c.connect_failed, c.handshakes_ok, c.handshakes_failed, c.disconnected
    );
    let t = &s.throughput;
    let _ = writeln!(
        o,
        "  throughput: {:.0} msgs/s delivered ({:.0} sent; {:.0} messages/s of {:.0} offered) over {:.1}s; {:.0} handshakes/s at set-up",
        t.delivered_per_s, t.sent_per_s, t.messages_per_s, t.offered_per_s, t.seconds, t.handshakes_per_s
    );
}

fn generator(o: &mut String, s: &Summary) {
    let g = &s.generator;
    let _ = writeln!(
        o,
        "  generator: {} shard(s), {:.0}% busy while sending, {:.2} µs CPU per delivery sent (driver side, relay excluded); peak RSS {:.1} MiB",
        g.shards,
        g.steady_cpu_share * 100.0,
        g.driver_cpu_us_per_msg,
        g.process_peak_rss_kib as f64 / 1024.0
    );
    if let Some(c) = &g.cores {
        let others =
            g.others_cores.map(|x| format!("; other processes used {x:.2} cores while sending")).unwrap_or_default();
        let _ = writeln!(o, "  cores: {c}{others}");
    }
    if let Some(r) = g.relay_cpu_us_per_msg {
        let _ = writeln!(o, "  relay: {r:.2} µs CPU per delivery (while sending)");
    }
    if let Some(f) = &g.floor {
        let mut line = format!(
            "  against this machine's floor (one loopback hop = {:.2} µs CPU, calibrated {}): driver {:.1}×",
            f.hop_us, f.calibrated_at, f.driver
        );
        if let (Some(r), Some(t)) = (f.relay, f.together) {
            line.push_str(&format!(", relay {r:.1}×, together {t:.1}× the two hops a relayed message makes"));
        }
        let _ = writeln!(o, "{line}");
        match (&f.shape, &f.shape_missing) {
            (Some(sh), _) => {
                let mut line = format!(
                    "  against the floor of this traffic shape ({} connections at {:.0} msgs/s: generator {:.2} µs, relay {:.2} µs): driver {:.1}×",
                    sh.connections, sh.rate, sh.generator_us, sh.relay_us, sh.driver
                );
                if let (Some(r), Some(t)) = (sh.relay, sh.together) {
                    line.push_str(&format!(", relay {r:.1}×, together {t:.1}×"));
                }
                if let Some(t) = &sh.measured_at {
                    line.push_str(&format!(" (that floor measured {t})"));
                }
                let _ = writeln!(o, "{line}");
                if let Some(note) = shape_threads(g.shards, g.relay_workers) {
                    let _ = writeln!(o, "  ({note})");
                }
            }
            (None, Some(cmd)) => {
                let _ = writeln!(o, "  (no floor of this traffic shape calibrated: `{cmd}` measures it)");
            }
            (None, None) => {}
        }
    }
    if g.saturated {
        let criterion = g.saturation_criterion.as_deref().unwrap_or("unnamed");
        let _ = writeln!(
            o,
            "\n  !!! GENERATOR SATURATED ({criterion}): the load generator could not keep its own schedule."
        );
        for r in &g.saturation_reasons {
            let _ = writeln!(o, "  !!!   {r}");
        }
        let more = format!("add shards (--shards N; this run had {})", g.shards);
        let advice = if crate::results::others::other_work(s).is_some() {
            format!(
                "Other processes took part of the cores (above): rerun where nothing else competes for them, then \
                 lower the rate or {more} if it persists."
            )
        } else {
            format!("Lower the rate or {more}.")
        };
        let _ = writeln!(o, "  !!! The latencies above describe the generator, not the relay. {advice}");
        return;
    }
    for r in &g.saturation_reasons {
        let _ = writeln!(o, "  note: {r}");
    }
    if g.lag_spikes > 0 {
        let _ = writeln!(
            o,
            "  note: {} second(s) with a schedule-lag spike (p99 > 1 ms), not sustained: not saturation",
            g.lag_spikes
        );
    }
}

/// Per-stage rows of a staged run: its window, target, what was achieved, and e2e from
/// the stage's own histograms (unmeasured stages in brackets, without latencies).
/// Whether the run had the floor's shape of threads (one generator thread, one relay
/// thread), and if not, what that means for the multiple just printed.
fn shape_threads(shards: usize, relay_workers: Option<usize>) -> Option<String> {
    let extra_relay = relay_workers.filter(|&n| n > 1);
    if shards == 1 && extra_relay.is_none() {
        return None;
    }
    let relay = extra_relay.map(|n| format!(" and {n} relay worker threads")).unwrap_or_default();
    let how = match relay_workers {
        Some(_) => "`--shards 1 --relay-threads 1`",
        None => "`--shards 1` with `sealbench relay --threads 1`",
    };
    Some(format!(
        "the floor is one generator thread and one relay thread; this run had {shards} shard(s){relay}, and on a small \
         machine every thread beyond what the load needs costs wake-ups: {how} runs the floor's shape"
    ))
}

fn stage_rows(o: &mut String, s: &Summary) {
    if s.stages.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "\n  {:<16} {:>13} {:>17} {:>10} {:>12} {:>9} {:>9} {:>9}",
        "stage", "window (s)", "target (msgs/s)", "msgs/s", "delivered/s", "e2e p50", "e2e p99", "e2e max"
    );
    for st in &s.stages {
        let name = if st.measure { st.name.clone() } else { format!("({})", st.name) };
        let target = if st.target_start_per_s == st.target_end_per_s {
            format!("{:.0}", st.target_end_per_s)
        } else {
            format!("{:.0}→{:.0}", st.target_start_per_s, st.target_end_per_s)
        };
        let lat =
            |f: fn(&crate::results::summary::Latency) -> f64| st.e2e.as_ref().map_or("-".into(), |l| format_us(f(l)));
        let _ = writeln!(
            o,
            "  {name:<16} {:>13} {target:>17} {:>10.0} {:>12.0} {:>9} {:>9} {:>9}",
            format!("{:.1}–{:.1}", st.start_s, st.end_s),
            if st.messages_per_s > 0.0 { st.messages_per_s } else { st.sent_per_s },
            st.delivered_per_s,
            lat(|l| l.p50_us),
            lat(|l| l.p99_us),
            lat(|l| l.max_us),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::shape_threads;

    #[test]
    fn the_floor_multiple_says_when_the_run_had_more_threads_than_the_floor() {
        assert_eq!(shape_threads(1, Some(1)), None, "the floor's own shape");
        assert_eq!(shape_threads(1, None), None, "an external relay's threads are its own");
        let note = shape_threads(2, Some(2)).unwrap_or_default();
        assert!(note.contains("2 shard(s) and 2 relay worker threads") && note.contains("--relay-threads 1"), "{note}");
        assert!(shape_threads(1, Some(2)).is_some());
        let external = shape_threads(2, None).unwrap_or_default();
        assert!(
            external.contains("sealbench relay --threads 1") && !external.contains("--relay-threads"),
            "{external}"
        );
    }
}
