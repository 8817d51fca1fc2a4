//! The live terminal view of `run`: a compact block redrawn in place once a second —
//! phase and stage (with its target), clients, rates, e2e p50/p99 overall and per
//! traffic class, errors by code, reconnects.
//!
//! [`render`] is a pure function of one [`LiveSecond`] (tested as a text snapshot);
//! [`TerminalView`] only adds the escapes that redraw it in place.
//!
//! Why plain ANSI escapes and not a terminal crate: the view needs three sequences —
//! cursor up N lines (`ESC [ N A`), erase line (`ESC [ 2 K`), erase to the end of the
//! screen (`ESC [ J`) — which every terminal emulator in use understands (VT100), and it
//! is only drawn when stdout is a terminal. The progress line before it already used the
//! same escapes. Lines are cut to the terminal's width (`COLUMNS`, else 80) so that no
//! line wraps and the cursor-up count stays right.

use crate::results::figure::format_us;
use crate::results::live::{LiveCounters, LiveSecond};
use crate::results::summary::Latency;
use std::fmt::Write as _;

/// The block for one second, lines cut to `width` characters.
pub fn render(s: &LiveSecond, width: usize) -> String {
    let mut o = String::new();
    let _ = write!(o, "[{:>4}s] {}", s.t, s.phase);
    if let Some(st) = &s.stage {
        let target = if st.target_from_per_s == st.target_to_per_s {
            format!("{:.0}", st.target_to_per_s)
        } else {
            format!("{:.0}→{:.0}", st.target_from_per_s, st.target_to_per_s)
        };
        let measured = if st.measure { "" } else { ", not measured" };
        let _ = write!(o, " · stage {}/{} {}{measured} · target {target} msgs/s", st.index + 1, st.count, st.name);
    }
    o.push('\n');
    let _ = writeln!(o, "  clients    {}/{} connected   driver busy {:.0}%", s.connected, s.clients, s.busy * 100.0);
    let d = &s.delta;
    let _ = writeln!(
        o,
        "  rates      {}/s messages   {}/s deliveries sent   {}/s delivered",
        d.get("messages"),
        d.get("sent"),
        d.get("delivered")
    );
    latency(&mut o, s);
    errors(&mut o, &s.total, s.lost_or_pending);
    o.lines().map(|l| cut(l, width)).fold(String::new(), |mut acc, l| {
        acc.push_str(l);
        acc.push('\n');
        acc
    })
}

/// One row for e2e all classes together, then one per class.
fn latency(o: &mut String, s: &LiveSecond) {
    let row = |o: &mut String, label: &str, l: Option<&Latency>| {
        let cells = l.map_or_else(
            || "-".to_owned(),
            |l| format!("p50 {:>9}  p99 {:>9}  ({} samples)", format_us(l.p50_us), format_us(l.p99_us), l.count),
        );
        let _ = writeln!(o, "  {label:<24} {cells}");
    };
    row(o, "e2e", s.latency_us.get("e2e"));
    for (class, l) in s.latency_by_class_us.get("e2e").into_iter().flatten() {
        row(o, &format!("  {class}"), Some(l));
    }
}

/// Errors since the start: refusals by code, authentication failures, what is lost or
/// still in flight; then the connection churn.
fn errors(o: &mut String, t: &LiveCounters, lost_or_pending: u64) {
    let mut refused = t.get("refused").to_string();
    if !t.refused_by_code.is_empty() {
        let by: Vec<String> = t.refused_by_code.iter().map(|(c, n)| format!("{c} {n}")).collect();
        let _ = write!(refused, " ({})", by.join(", "));
    }
    let _ = writeln!(
        o,
        "  errors     refused {refused}   auth failed {}   lost or in flight {lost_or_pending}",
        t.get("auth_failed")
    );
    let _ = writeln!(
        o,
        "  churn      reconnects {} ({} failed)   disconnects {}   connects failed {}",
        t.get("reconnects"),
        t.get("reconnect_failures"),
        t.get("disconnects"),
        t.get("connects_failed")
    );
}

/// `line` cut to `width` characters (not bytes: `µs` and `→` are one column each).
fn cut(line: &str, width: usize) -> &str {
    match line.char_indices().nth(width) {
        Some((i, _)) => &line[..i],
        None => line,
    }
}

/// The terminal's width: `COLUMNS` when the shell exports it, else 80.
pub fn terminal_width() -> usize {
    std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).filter(|&w| w >= 20).unwrap_or(80)
}

/// Redraws a block in place: each frame moves up over the previous one.
#[derive(Debug, Default)]
pub struct TerminalView {
    /// Lines the previous frame drew (the cursor sits on the line after them).
    drawn: usize,
}

impl TerminalView {
    /// The bytes that replace the previous frame with `block`.
    pub fn frame(&mut self, block: &str) -> String {
        let mut out = String::new();
        if self.drawn > 0 {
            let _ = write!(out, "\x1b[{}A", self.drawn);
        }
        for line in block.lines() {
            let _ = writeln!(out, "\r\x1b[2K{line}");
        }
        out.push_str("\x1b[J");
        self.drawn = block.lines().count();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::recorder::{Counters, Histograms, Metric};
    use crate::driver::{Phase, Second};
    use crate::results::live::LiveTracker;
    use crate::scenario::{Stage, stages::Profile};
    use crate::tags::{TagId, TagSet};
    use sealcore::frame::ErrorCode;
    use std::sync::Arc;
    use std::time::Duration;

    /// A second of a staged run with DMs and groups of 50: made up, so the text is fixed.
    fn synthetic() -> LiveSecond {
        let tags: Arc<[TagSet]> = ["class=dm", "class=group", "class=group,size=50"]
            .iter()
            .map(|t| TagSet::parse(t).unwrap())
            .collect::<Vec<_>>()
            .into();
        let mut hist = Histograms::with_tags(tags);
        for us in [800, 900, 1_000, 1_100] {
            hist.record_tagged(Metric::E2e, &[TagId(0)], us * 1_000);
        }
        for us in [2_000, 3_000, 12_000] {
            hist.record_tagged(Metric::E2e, &[TagId(1), TagId(2)], us * 1_000);
        }
        let mut delta = Counters::new();
        (delta.messages, delta.sent, delta.delivered, delta.reconnects, delta.auth_failed) = (120, 1_080, 1_070, 3, 1);
        delta.refused[ErrorCode::MailboxFull as usize] = 2;
        let sec =
            Second { t: 12, phase: Phase::Steady, hist, delta, connected: 998, busy: 0.42, stage: Some(1), at_s: 12.0 };
        let stage = |name: &str, rate: f64, from: Option<f64>| Stage {
            name: Some(name.into()),
            duration: Duration::from_secs(10),
            rate: Some(rate),
            from,
            measure: true,
            clients: None,
        };
        let profile = Profile::new(&[stage("flat", 100.0, None), stage("ramp", 500.0, Some(100.0))]).unwrap();
        LiveTracker::with_stages(profile.spans().to_vec(), 1_000, 0.0).next(&sec)
    }

    #[test]
    fn the_block_shows_stage_rates_classes_and_errors() {
        let expected = "\
[  12s] steady · stage 2/2 ramp · target 100→500 msgs/s
  clients    998/1000 connected   driver busy 42%
  rates      120/s messages   1080/s deliveries sent   1070/s delivered
  e2e                      p50    1.10ms  p99   12.00ms  (7 samples)
    class=dm               p50   900.1µs  p99    1.10ms  (4 samples)
    class=group            p50    3.00ms  p99   12.00ms  (3 samples)
    class=group,size=50    p50    3.00ms  p99   12.00ms  (3 samples)
  errors     refused 2 (mailbox_full 2)   auth failed 1   lost or in flight 8
  churn      reconnects 3 (0 failed)   disconnects 0   connects failed 0
";
        assert_eq!(render(&synthetic(), 100), expected);
    }

    #[test]
    fn lines_are_cut_to_the_width_so_the_redraw_stays_aligned() {
        let block = render(&synthetic(), 30);
        assert!(block.lines().all(|l| l.chars().count() <= 30), "{block}");
        assert_eq!(block.lines().count(), 9);
    }

    #[test]
    fn a_frame_moves_up_over_the_previous_one() {
        let mut v = TerminalView::default();
        assert_eq!(v.frame("a\nb\n"), "\r\x1b[2Ka\n\r\x1b[2Kb\n\x1b[J");
        assert_eq!(v.frame("c\n"), "\x1b[2A\r\x1b[2Kc\n\x1b[J");
    }
}
