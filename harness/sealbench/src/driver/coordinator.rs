//! The coordinator: folds the shards' events into per-second intervals, the run's phase,
//! its totals and its verdict on how it ended. The run's total is exactly the sum of its
//! seconds — every sample a shard recorded is in exactly one second, the last (partial)
//! one included — so the interval log and the summary agree to the count. Pure: no I/O, no clock, no threads — the
//! caller passes the time of each event and carries out the [`Reaction`]s (start the
//! steady phase, stop, abort). It is never on the per-message path: shards report once
//! a second.

use super::recorder::{Counters, Histograms, Metric};
use super::{Phase, Second, ShardEvent};
use anyhow::{Result, bail};

/// Lead time between the last handshake and the common steady start, so that every
/// shard sees the start before it is due.
const START_LEAD_NS: u64 = 20_000_000;

/// Half of a reporting second: a second is judged (phase, stage) by its middle.
const HALF_SECOND_NS: u64 = 500_000_000;

/// Fraction of clients whose connection broke unexpectedly that means the relay is gone.
const RELAY_GONE_FRACTION: f64 = 0.5;

/// What the coordinator needs to know about the run.
#[derive(Debug, Clone)]
pub struct RunShape {
    /// Driver shards.
    pub shards: usize,
    /// Clients in the scenario.
    pub clients: usize,
    /// Warm-up before the measured phase, ns.
    pub warmup_ns: u64,
    /// Measured phase, ns.
    pub duration_ns: u64,
    /// Sending lasts this long after the steady start (warm-up, measured phase and any
    /// cool-down stage), ns.
    pub sending_ns: u64,
    /// Where each stage ends, ns after the steady start (a scenario without stages has
    /// a warm-up stage, when it has a warm-up, and the measured one).
    pub stage_ends_ns: Vec<u64>,
    /// When the run started (process clock, ns).
    pub run_start_ns: u64,
    /// The relay's URL, for error messages.
    pub relay_url: String,
    /// A split run's common start (process clock, ns): the steady phase starts no earlier.
    pub start_not_before_ns: Option<u64>,
}

/// What the caller must do after an event.
#[derive(Debug, Default)]
pub struct Reaction {
    /// Release the shards into the steady phase at this time (ns).
    pub start_at: Option<u64>,
    /// End the steady phase now.
    pub stop: bool,
    /// Skip the cooldown too.
    pub abort: bool,
    /// A second was completed (already kept in the coordinator's history).
    pub second: Option<usize>,
}

/// What a finished run measured, before the caller adds what only it knows (relay
/// statistics, wall time, URLs).
#[derive(Debug)]
pub struct Tally {
    /// Histograms of the whole measured phase.
    pub total: Histograms,
    /// Final counters, all shards.
    pub counters: Counters,
    /// Per-second history.
    pub seconds: Vec<Second>,
    /// Wall time of the steady phase actually run (every stage), s.
    pub measured_s: f64,
    /// When the steady phase started, seconds after the run's start (None: it never did).
    pub steady_start_s: Option<f64>,
    /// A split run's common start: how late this process was ready for it, s (0: in time).
    pub late_start_s: Option<f64>,
    /// Seconds from start to the end of handshakes.
    pub setup_s: f64,
    /// Seconds from the first handshake started to the last one finished.
    pub handshake_s: f64,
    /// CPU ns of the shard threads (whole run).
    pub cpu_ns: u64,
    /// CPU ns of the shard threads while sending.
    pub steady_cpu_ns: u64,
    /// Messages sent while sending.
    pub steady_sent: u64,
    /// Wake-ups of the shard threads while sending (None: not known on this system).
    pub steady_wakes: Option<u64>,
    /// Ctrl-C ended it early.
    pub interrupted: bool,
    /// Why it was aborted, if it was.
    pub aborted: Option<String>,
}

impl Tally {
    /// CPU seconds of the shard threads (whole run).
    pub fn driver_cpu_s(&self) -> f64 {
        self.cpu_ns as f64 / 1e9
    }

    /// CPU seconds of the shard threads while sending.
    pub fn steady_cpu_s(&self) -> f64 {
        self.steady_cpu_ns as f64 / 1e9
    }
}

/// One shard's latest interval report, waiting for the others of the same second.
#[derive(Debug)]
struct Pending {
    at_ns: u64,
    hist: Histograms,
    counters: Counters,
    connected: usize,
    busy: f64,
    span_ns: u64,
}

/// The coordinator's state.
#[derive(Debug)]
pub struct Coordinator {
    shape: RunShape,
    phase: Phase,
    connected_shards: usize,
    handshaken_shards: usize,
    finished_shards: usize,
    pending: Vec<Option<Pending>>,
    done: Vec<bool>,
    shard_counters: Vec<Counters>,
    last_counters: Counters,
    /// Samples that arrived after the last complete second (the shards' final reports).
    tail: Histograms,
    total: Histograms,
    seconds: Vec<Second>,
    cpu_ns: u64,
    steady_cpu_ns: u64,
    steady_sent: u64,
    steady_wakes: Option<u64>,
    setup_s: f64,
    handshake_s: f64,
    hs_from: Option<u64>,
    hs_to: u64,
    steady_start: Option<u64>,
    late_start_s: Option<f64>,
    interrupted: bool,
    aborted: Option<String>,
    failure: Option<String>,
    first_error: Option<String>,
}

impl Coordinator {
    /// A coordinator for a run of this shape.
    pub fn new(shape: RunShape) -> Self {
        let n = shape.shards;
        Coordinator {
            shape,
            phase: Phase::Connecting,
            connected_shards: 0,
            handshaken_shards: 0,
            finished_shards: 0,
            pending: (0..n).map(|_| None).collect(),
            done: vec![false; n],
            shard_counters: vec![Counters::new(); n],
            last_counters: Counters::new(),
            tail: Histograms::new(),
            total: Histograms::new(),
            seconds: Vec::new(),
            cpu_ns: 0,
            steady_cpu_ns: 0,
            steady_wakes: Some(0),
            steady_sent: 0,
            setup_s: 0.0,
            handshake_s: 0.0,
            hs_from: None,
            hs_to: 0,
            steady_start: None,
            late_start_s: None,
            interrupted: false,
            aborted: None,
            failure: None,
            first_error: None,
        }
    }

    /// Every shard has finished (or failed).
    pub fn is_done(&self) -> bool {
        self.finished_shards >= self.shape.shards
    }

    /// The seconds completed so far.
    pub fn seconds(&self) -> &[Second] {
        &self.seconds
    }

    /// The phase now.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The counters of every shard added up, as of their latest report.
    pub fn counters_now(&self) -> Counters {
        let mut c = Counters::new();
        for s in &self.shard_counters {
            c.add(s);
        }
        c
    }

    /// The user interrupted the run (Ctrl-C) at `now_ns`: stop sending (the cooldown
    /// still drains) and release shards still waiting for the start.
    pub fn interrupt(&mut self, now_ns: u64) -> Reaction {
        if self.interrupted {
            return Reaction::default();
        }
        self.interrupted = true;
        Reaction { start_at: Some(now_ns), stop: true, ..Reaction::default() }
    }

    /// Folds one shard event that arrived at `now_ns`.
    pub fn on_event(&mut self, ev: ShardEvent, now_ns: u64) -> Reaction {
        let mut r = match ev {
            ShardEvent::Connected { .. } => {
                self.connected_shards += 1;
                if self.connected_shards == self.shape.shards {
                    self.phase = Phase::Handshaking;
                }
                Reaction::default()
            }
            ShardEvent::HandshakesDone { first_ns, last_ns, .. } => self.on_handshakes_done(first_ns, last_ns, now_ns),
            ShardEvent::Interval { shard, at_ns, hist, counters, connected, busy, span_ns } => {
                self.on_interval(shard, Pending { at_ns, hist, counters, connected, busy, span_ns })
            }
            ShardEvent::Finished {
                shard,
                hist,
                counters,
                cpu_ns,
                steady_cpu_ns,
                steady_sent,
                steady_wakes,
                first_error,
            } => {
                self.steady_wakes = self.steady_wakes.zip(steady_wakes).map(|(a, b)| a + b);
                if self.first_error.is_none() {
                    self.first_error = first_error;
                }
                self.steady_cpu_ns += steady_cpu_ns;
                self.steady_sent += steady_sent;
                self.tail.add(&hist);
                if let Some(p) = self.pending[shard].take() {
                    self.tail.add(&p.hist);
                }
                self.done[shard] = true;
                self.shard_counters[shard] = counters;
                self.cpu_ns += cpu_ns;
                self.finished_shards += 1;
                self.phase = Phase::Draining;
                let mut r = Reaction::default();
                if self.is_done() {
                    r.second = self.close_last_second(now_ns);
                }
                r
            }
            ShardEvent::Failed(msg) => {
                self.failure = Some(msg);
                Reaction { start_at: Some(now_ns), stop: true, abort: true, second: None }
            }
        };
        self.check_nothing_connected();
        if r.stop {
            r.start_at.get_or_insert(now_ns);
        }
        r
    }

    fn on_handshakes_done(&mut self, first_ns: u64, last_ns: u64, now_ns: u64) -> Reaction {
        self.handshaken_shards += 1;
        if first_ns > 0 {
            self.hs_from = Some(self.hs_from.map_or(first_ns, |f| f.min(first_ns)));
        }
        self.hs_to = self.hs_to.max(last_ns);
        if self.handshaken_shards < self.shape.shards {
            return Reaction::default();
        }
        self.setup_s = now_ns.saturating_sub(self.shape.run_start_ns) as f64 / 1e9;
        self.handshake_s = self.hs_to.saturating_sub(self.hs_from.unwrap_or(self.hs_to)) as f64 / 1e9;
        let ready = now_ns + START_LEAD_NS;
        let t0 = self.shape.start_not_before_ns.map_or(ready, |at| at.max(ready));
        if let Some(at) = self.shape.start_not_before_ns {
            self.late_start_s = Some(ready.saturating_sub(at) as f64 / 1e9);
        }
        self.steady_start = Some(t0);
        self.phase = if self.shape.warmup_ns > 0 { Phase::Warmup } else { Phase::Steady };
        Reaction { start_at: Some(t0), ..Reaction::default() }
    }

    /// An interval report: once every running shard has reported, the second is merged.
    fn on_interval(&mut self, shard: usize, report: Pending) -> Reaction {
        self.shard_counters[shard] = report.counters.clone();
        let mut report = report;
        if let Some(earlier) = self.pending[shard].take() {
            // A second report before the others caught up: its samples join the next, and
            // its CPU share is weighed by the time each report covers (the latest alone
            // would hide a busy stretch behind an idle second).
            report.hist.add(&earlier.hist);
            let span = report.span_ns + earlier.span_ns;
            report.busy =
                (report.busy * report.span_ns as f64 + earlier.busy * earlier.span_ns as f64) / span.max(1) as f64;
            report.span_ns = span;
        }
        self.pending[shard] = Some(report);
        let ready = (0..self.shape.shards).all(|s| self.pending[s].is_some() || self.done[s]);
        if !ready || self.pending.iter().all(Option::is_none) {
            return Reaction::default();
        }
        let mut merged = Histograms::new();
        let mut now_counters = Counters::new();
        let (mut connected, mut at, mut busy) = (0, 0, 0.0f64);
        for p in self.pending.iter_mut().filter_map(Option::take) {
            merged.add(&p.hist);
            now_counters.add(&p.counters);
            connected += p.connected;
            at = at.max(p.at_ns);
            busy = busy.max(p.busy);
        }
        // Shards that finished still count in the cumulative counters.
        for s in (0..self.shape.shards).filter(|&s| self.done[s]) {
            now_counters.add(&self.shard_counters[s]);
        }
        let mut stage = None;
        if let Some(t0) = self.steady_start {
            let (w, d) = (self.shape.warmup_ns, self.shape.duration_ns);
            // The shards report on a grid anchored at `t0`, so the set-up second ends just
            // after it: judged by its middle (as its stage is), it is still set-up time.
            self.phase = if at.saturating_sub(HALF_SECOND_NS) < t0 {
                Phase::Handshaking
            } else if at < t0 + w {
                Phase::Warmup
            } else if at < t0 + w + d {
                Phase::Steady
            } else if at < t0 + self.shape.sending_ns {
                Phase::CoolDown
            } else {
                Phase::Draining
            };
            stage = self.stage_of(at, t0);
        }
        self.total.add(&merged);
        let delta = now_counters.since(&self.last_counters);
        let t = (at.saturating_sub(self.shape.run_start_ns) as f64 / 1e9).round() as u64;
        let at_s = at.saturating_sub(self.shape.run_start_ns) as f64 / 1e9;
        let busy = busy.min(1.0);
        self.seconds.push(Second { t, phase: self.phase, hist: merged, delta, connected, busy, stage, at_s });
        let mut r = Reaction { second: Some(self.seconds.len() - 1), ..Reaction::default() };
        // The relay went away: most clients lost their connection unexpectedly.
        if self.aborted.is_none() && self.phase != Phase::Connecting && now_counters.disconnects > 0 {
            let lost = now_counters.disconnects as f64 / self.shape.clients as f64;
            if lost >= RELAY_GONE_FRACTION {
                self.aborted = Some(format!(
                    "{} of {} clients lost their connection to the relay",
                    now_counters.disconnects, self.shape.clients
                ));
                r.stop = true;
                r.abort = true;
            }
        }
        self.last_counters = now_counters;
        r
    }

    /// Once every shard has finished: the samples and counts that came after the last
    /// complete second make one last (partial) second, so that nothing recorded is
    /// missing from the per-second history.
    fn close_last_second(&mut self, now_ns: u64) -> Option<usize> {
        let counters = self.counters_now();
        let delta = counters.since(&self.last_counters);
        let empty = Metric::ALL.iter().all(|&m| self.tail.get(m).is_empty());
        if empty && delta == Counters::new() {
            return None;
        }
        let hist = std::mem::take(&mut self.tail);
        self.total.add(&hist);
        self.last_counters = counters;
        let t = (now_ns.saturating_sub(self.shape.run_start_ns) as f64 / 1e9).ceil() as u64;
        let t = t.max(self.seconds.last().map_or(0, |s| s.t + 1));
        let at_s = now_ns.saturating_sub(self.shape.run_start_ns) as f64 / 1e9;
        let stage = self.steady_start.and_then(|t0| self.stage_of(now_ns, t0));
        self.seconds.push(Second { t, phase: Phase::Draining, hist, delta, connected: 0, busy: 0.0, stage, at_s });
        Some(self.seconds.len() - 1)
    }

    /// The stage of the second that ended at `at` (ns; `t0` the steady start): the one
    /// its middle falls in (a second that straddles a boundary goes to the stage holding
    /// most of it). None before the steady start and after the last stage.
    fn stage_of(&self, at: u64, t0: u64) -> Option<usize> {
        let mid = (at.saturating_sub(HALF_SECOND_NS)).checked_sub(t0)?;
        self.shape.stage_ends_ns.iter().position(|&end| mid < end)
    }

    /// Every shard has connected, none has finished its handshakes, and not one client
    /// could connect: the relay is not there.
    fn check_nothing_connected(&mut self) {
        let all_tried = self.connected_shards == self.shape.shards;
        if !all_tried || self.handshaken_shards >= self.shape.shards || self.aborted.is_some() {
            return;
        }
        let ok: u64 = self.shard_counters.iter().map(|c| c.connects_ok).sum();
        let failed: u64 = self.shard_counters.iter().map(|c| c.connects_failed).sum();
        if ok == 0 && failed > 0 {
            self.aborted = Some(format!("no client could connect to {}", self.shape.relay_url));
        }
    }

    /// The run's tally once every shard is done (`now_ns`: when the last one ended).
    ///
    /// # Errors
    /// A shard failed to run; no client connected; or every client connected but none
    /// could register. Each message says what to check.
    pub fn finish(self) -> Result<Tally> {
        if let Some(msg) = self.failure {
            bail!(msg);
        }
        let mut counters = Counters::new();
        for c in &self.shard_counters {
            counters.add(c);
        }
        let url = &self.shape.relay_url;
        if counters.connects_ok == 0 {
            let why = self.aborted.clone().unwrap_or_else(|| format!("no client could connect to {url}"));
            // A TLS failure already says what to do (--ca / --insecure); the relay is there.
            if let Some(e) = self.first_error.as_ref().filter(|e| e.contains("TLS handshake")) {
                bail!("{why}: {e}");
            }
            let first = self.first_error.map(|e| format!(" (first failure: {e})")).unwrap_or_default();
            bail!("{why}{first}: is the relay running and reachable? (relay.url / --relay)");
        }
        if counters.connects_ok == counters.registers_failed {
            let first = self.first_error.unwrap_or_default();
            bail!(
                "every client connected but none could register with the relay at {url} ({first}); a relay started \
                 with --auth-secret needs the same secret here: --set relay.auth_secret=SECRET"
            );
        }
        let measured_s = match self.steady_start {
            Some(_) if !self.interrupted && self.aborted.is_none() => self.shape.sending_ns as f64 / 1e9,
            Some(t0) => self
                .seconds
                .last()
                .map(|s| (self.shape.run_start_ns + s.t * 1_000_000_000).saturating_sub(t0) as f64 / 1e9)
                .unwrap_or(0.0),
            None => 0.0,
        };
        Ok(Tally {
            total: self.total,
            counters,
            seconds: self.seconds,
            measured_s,
            steady_start_s: self.steady_start.map(|t0| t0.saturating_sub(self.shape.run_start_ns) as f64 / 1e9),
            late_start_s: self.late_start_s,
            setup_s: self.setup_s,
            handshake_s: self.handshake_s,
            cpu_ns: self.cpu_ns,
            steady_cpu_ns: self.steady_cpu_ns,
            steady_sent: self.steady_sent,
            steady_wakes: self.steady_wakes,
            interrupted: self.interrupted,
            aborted: self.aborted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn shape(shards: usize) -> RunShape {
        RunShape {
            shards,
            clients: 4 * shards,
            warmup_ns: S,
            duration_ns: 2 * S,
            sending_ns: 3 * S,
            stage_ends_ns: vec![S, 3 * S],
            run_start_ns: 100 * S,
            relay_url: "ws://127.0.0.1:1/".into(),
            start_not_before_ns: None,
        }
    }

    #[test]
    fn a_split_run_starts_at_the_common_time_and_says_how_late_it_was_ready() {
        let mut sh = shape(1);
        sh.start_not_before_ns = Some(200 * S);
        let mut c = Coordinator::new(sh.clone());
        let r = c.on_event(ShardEvent::HandshakesDone { shard: 0, first_ns: 1, last_ns: 2 }, 150 * S);
        assert_eq!(r.start_at, Some(200 * S), "waits for the common start");
        sh.start_not_before_ns = Some(120 * S);
        let mut c = Coordinator::new(sh);
        let r = c.on_event(ShardEvent::HandshakesDone { shard: 0, first_ns: 1, last_ns: 2 }, 150 * S);
        let t0 = r.start_at.unwrap();
        assert!(t0 > 150 * S, "ready after the common start: starts as soon as it can");
        assert!((c.late_start_s.unwrap() - (t0 - 120 * S) as f64 / 1e9).abs() < 1e-9);
    }

    fn interval(shard: usize, at_ns: u64, e2e: &[u64], sent: u64, connected: usize) -> ShardEvent {
        let mut hist = Histograms::new();
        for &v in e2e {
            hist.record(Metric::E2e, v);
        }
        let mut counters = Counters::new();
        counters.connects_ok = connected as u64;
        counters.sent = sent;
        counters.delivered = sent;
        ShardEvent::Interval {
            shard,
            at_ns,
            hist,
            counters,
            connected,
            busy: 0.25 * shard as f64,
            span_ns: 1_000_000_000,
        }
    }

    /// The run's total equals the sum of its seconds, metric by metric.
    fn assert_seconds_add_up(t: &Tally) {
        for m in Metric::ALL {
            let sum: u64 = t.seconds.iter().map(|s| s.hist.get(m).len()).sum();
            assert_eq!(sum, t.total.get(m).len(), "{}: seconds vs total", m.name());
        }
    }

    fn finished(shard: usize, counters: Counters) -> ShardEvent {
        ShardEvent::Finished {
            shard,
            hist: Histograms::new(),
            counters,
            cpu_ns: 5,
            steady_cpu_ns: 3,
            steady_sent: 7,
            steady_wakes: Some(2),
            first_error: None,
        }
    }

    /// Connects and hands both shards through their handshakes; returns the start time.
    fn set_up(c: &mut Coordinator) -> u64 {
        assert!(c.on_event(ShardEvent::Connected { shard: 0 }, 101 * S).start_at.is_none());
        c.on_event(ShardEvent::Connected { shard: 1 }, 101 * S);
        assert_eq!(c.phase(), Phase::Handshaking);
        c.on_event(ShardEvent::HandshakesDone { shard: 1, first_ns: 101 * S, last_ns: 102 * S }, 102 * S);
        let r = c.on_event(ShardEvent::HandshakesDone { shard: 0, first_ns: 101 * S + 5, last_ns: 102 * S }, 102 * S);
        let t0 = r.start_at.expect("all handshakes done: the steady phase starts");
        assert_eq!(t0, 102 * S + START_LEAD_NS);
        assert_eq!(c.phase(), Phase::Warmup);
        t0
    }

    #[test]
    fn a_shard_reporting_twice_before_the_others_counts_its_cpu_share_by_time() {
        let mut c = Coordinator::new(shape(2));
        let t0 = set_up(&mut c);
        let report = |busy: f64, span_s: u64, at_ns: u64| ShardEvent::Interval {
            shard: 1,
            at_ns,
            hist: Histograms::new(),
            counters: Counters::new(),
            connected: 4,
            busy,
            span_ns: span_s * S,
        };
        // Shard 1: one idle second, then three busy ones in one late report; shard 0 stalled.
        assert!(c.on_event(report(0.2, 1, t0 + S), t0).second.is_none());
        assert!(c.on_event(report(1.0, 3, t0 + 4 * S), t0).second.is_none());
        let mut zero = interval(0, t0 + 4 * S, &[], 0, 4);
        if let ShardEvent::Interval { busy, span_ns, .. } = &mut zero {
            (*busy, *span_ns) = (0.1, 4 * S);
        }
        let r = c.on_event(zero, t0);
        let s = &c.seconds()[r.second.expect("both shards reported")];
        assert!((s.busy - 0.8).abs() < 1e-9, "(0.2 × 1 s + 1.0 × 3 s) / 4 s, not the last report's: {}", s.busy);
    }

    #[test]
    fn intervals_of_all_shards_make_one_second_with_phase_and_deltas() -> Result<()> {
        let mut c = Coordinator::new(shape(2));
        let t0 = set_up(&mut c);
        assert!(c.on_event(interval(0, t0 + S + 10, &[1_000, 2_000], 10, 4), t0).second.is_none());
        let r = c.on_event(interval(1, t0 + S + 20, &[3_000], 5, 4), t0);
        let s = &c.seconds()[r.second.expect("both shards reported")];
        assert_eq!((s.t, s.phase, s.connected), (3, Phase::Steady, 8));
        assert_eq!(s.busy, 0.25, "the busiest shard's share");
        assert_eq!(s.hist.get(Metric::E2e).len(), 3);
        assert_eq!(s.delta.sent, 15);
        c.on_event(interval(0, t0 + 2 * S, &[], 30, 4), t0);
        let r = c.on_event(interval(1, t0 + 2 * S, &[], 5, 4), t0);
        assert_eq!(c.seconds()[r.second.unwrap()].delta.sent, 20, "counters are cumulative; seconds hold deltas");
        let mut last = Counters::new();
        (last.connects_ok, last.sent, last.delivered) = (4, 30, 30);
        c.on_event(finished(0, last.clone()), t0 + 4 * S);
        assert!(!c.is_done());
        c.on_event(finished(1, last), t0 + 4 * S);
        assert!(c.is_done());
        let tally = c.finish()?;
        assert_seconds_add_up(&tally);
        assert_eq!(tally.counters.sent, 60);
        assert_eq!(tally.total.get(Metric::E2e).len(), 3);
        assert_eq!(tally.measured_s, 3.0);
        assert_eq!((tally.cpu_ns, tally.steady_cpu_ns, tally.steady_sent), (10, 6, 14));
        assert!((tally.setup_s - 2.0).abs() < 1e-9 && (tally.handshake_s - 1.0).abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn each_second_knows_its_stage_and_a_trailing_unmeasured_stage_is_cool_down() {
        let mut shape = shape(1);
        // Warm-up 1 s, measured 2 s, cool-down stage 1 s.
        (shape.sending_ns, shape.stage_ends_ns) = (4 * S, vec![S, 3 * S, 4 * S]);
        let mut c = Coordinator::new(shape);
        c.on_event(ShardEvent::Connected { shard: 0 }, 101 * S);
        let t0 =
            c.on_event(ShardEvent::HandshakesDone { shard: 0, first_ns: 1, last_ns: 2 }, 102 * S).start_at.unwrap();
        let mut seen = Vec::new();
        for k in 1..=5 {
            let r = c.on_event(interval(0, t0 + k * S - S / 10, &[], k, 4), t0);
            let s = &c.seconds()[r.second.unwrap()];
            seen.push((s.stage, s.phase));
        }
        assert_eq!(
            seen,
            vec![
                (Some(0), Phase::Warmup),
                (Some(1), Phase::Steady),
                (Some(1), Phase::Steady),
                (Some(2), Phase::CoolDown),
                (None, Phase::Draining)
            ]
        );
    }

    #[test]
    fn a_shard_reporting_twice_before_the_others_loses_no_sample() -> Result<()> {
        let mut c = Coordinator::new(shape(2));
        let t0 = set_up(&mut c);
        c.on_event(interval(0, t0 + S, &[1_000], 1, 4), t0);
        c.on_event(interval(0, t0 + 2 * S, &[2_000, 3_000], 2, 4), t0);
        c.on_event(interval(1, t0 + 2 * S, &[4_000], 1, 4), t0);
        c.on_event(interval(0, t0 + 3 * S, &[5_000], 3, 4), t0);
        for s in 0..2 {
            let mut f = Counters::new();
            f.connects_ok = 4;
            c.on_event(finished(s, f), t0 + 4 * S);
        }
        let tally = c.finish()?;
        assert_eq!(tally.total.get(Metric::E2e).len(), 5, "every recorded sample reaches the total");
        assert_seconds_add_up(&tally);
        Ok(())
    }

    #[test]
    fn the_last_partial_second_is_kept() -> Result<()> {
        let mut c = Coordinator::new(shape(2));
        let t0 = set_up(&mut c);
        c.on_event(interval(0, t0 + S, &[1_000], 1, 4), t0);
        c.on_event(interval(1, t0 + S, &[2_000], 1, 4), t0);
        let mut leftover = Histograms::new();
        leftover.record(Metric::E2e, 3_000);
        let mut f = Counters::new();
        (f.connects_ok, f.sent, f.delivered) = (4, 2, 2);
        let mut ev = finished(0, f.clone());
        if let ShardEvent::Finished { hist, .. } = &mut ev {
            *hist = leftover;
        }
        c.on_event(ev, t0 + S + S / 2);
        let r = c.on_event(finished(1, f), t0 + S + S / 2);
        let last = &c.seconds()[r.second.expect("a last partial second")];
        assert_eq!((last.hist.get(Metric::E2e).len(), last.delta.sent), (1, 2));
        let tally = c.finish()?;
        assert_eq!(tally.total.get(Metric::E2e).len(), 3);
        assert_seconds_add_up(&tally);
        Ok(())
    }

    #[test]
    fn most_clients_disconnecting_aborts_the_run() {
        let mut c = Coordinator::new(shape(2));
        let t0 = set_up(&mut c);
        let mut ev = interval(0, t0 + S, &[], 1, 4);
        if let ShardEvent::Interval { counters, .. } = &mut ev {
            counters.disconnects = 4;
        }
        c.on_event(ev, t0);
        let r = c.on_event(interval(1, t0 + S, &[], 1, 4), t0 + S);
        assert!(r.stop && r.abort && r.start_at.is_some());
        let mut f = Counters::new();
        f.connects_ok = 4;
        c.on_event(finished(0, f.clone()), t0 + S);
        c.on_event(finished(1, f), t0 + S);
        let tally = c.finish().unwrap();
        assert!(tally.aborted.unwrap().contains("4 of 8 clients"));
    }

    #[test]
    fn nobody_connecting_or_registering_is_an_error_that_says_what_to_check() {
        let mut c = Coordinator::new(shape(1));
        let mut f = Counters::new();
        f.connects_failed = 4;
        c.on_event(ShardEvent::Connected { shard: 0 }, S);
        c.on_event(interval(0, 2 * S, &[], 0, 0), 2 * S);
        c.on_event(finished(0, f), 2 * S);
        let e = c.finish().unwrap_err().to_string();
        assert!(e.contains("ws://127.0.0.1:1/") && e.contains("relay.url"), "{e}");

        let mut c = Coordinator::new(shape(1));
        let mut f = Counters::new();
        (f.connects_ok, f.registers_failed) = (4, 4);
        c.on_event(finished(0, f), 2 * S);
        assert!(c.finish().unwrap_err().to_string().contains("--auth-secret"));
    }

    #[test]
    fn a_failed_shard_stops_everyone_and_fails_the_run() {
        let mut c = Coordinator::new(shape(2));
        let r = c.on_event(ShardEvent::Failed("shard 1: no runtime".into()), 7);
        assert!(r.stop && r.abort && r.start_at == Some(7));
        assert!(c.finish().unwrap_err().to_string().contains("no runtime"));
    }

    #[test]
    fn an_interrupt_stops_once_and_releases_waiting_shards() {
        let mut c = Coordinator::new(shape(1));
        let r = c.interrupt(42);
        assert!(r.stop && !r.abort && r.start_at == Some(42));
        assert!(!c.interrupt(43).stop, "a second interrupt changes nothing");
    }
}
