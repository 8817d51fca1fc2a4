//! `summary.json`: everything a run measured, schema-versioned, with provenance.

pub use super::accounting::{ClientsSummary, Messages};
use super::figure::{Counter, ErrorCounts, Metric, Path, Selector, Stat, TagSet};
use super::header::Header;
use crate::driver::Outcome;
use crate::provenance::Provenance;
use crate::scenario::{Plan, Scenario};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of the `summary.json` layout.
pub const SCHEMA_VERSION: u32 = 1;

/// Percentiles of one latency metric, in microseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Smallest, µs.
    pub min_us: f64,
    /// Mean, µs.
    pub mean_us: f64,
    /// Median, µs.
    pub p50_us: f64,
    /// 90th percentile, µs.
    pub p90_us: f64,
    /// 95th percentile, µs.
    pub p95_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
    /// Largest, µs.
    pub max_us: f64,
}

impl Latency {
    /// From a histogram in ns (None when empty).
    pub fn of(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1e3;
        Some(Latency {
            count: h.len(),
            min_us: us(h.min()),
            mean_us: h.mean() / 1e3,
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p95_us: us(h.value_at_quantile(0.95)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        })
    }

    /// A statistic, µs.
    pub fn get(&self, stat: Stat) -> f64 {
        match stat {
            Stat::Min => self.min_us,
            Stat::Mean => self.mean_us,
            Stat::P50 => self.p50_us,
            Stat::P90 => self.p90_us,
            Stat::P95 => self.p95_us,
            Stat::P99 => self.p99_us,
            Stat::P999 => self.p999_us,
            Stat::Max => self.max_us,
        }
    }
}

/// Rates.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Throughput {
    /// Wall seconds of sending (warm-up + measured phase; shorter if interrupted).
    pub seconds: f64,
    /// Deliveries sent per second over those seconds (a message to a group of 50 is 49).
    pub sent_per_s: f64,
    /// Deliveries decrypted per second over those seconds.
    pub delivered_per_s: f64,
    /// Messages handled per second — sent, or not sent because every device of the sender
    /// was offline: what the schedule asked of the generator, in the unit of `offered_per_s`.
    #[serde(default)]
    pub messages_per_s: f64,
    /// Handshakes completed per second, from the first handshake started to the last one
    /// finished (handshakes start as soon as both clients of a pair are connected).
    pub handshakes_per_s: f64,
    /// The rate the scenario asked for (all conversations), messages/s.
    pub offered_per_s: f64,
}

/// How the load generator itself fared.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Generator {
    /// Schedule lag percentiles (actual − intended send time).
    pub schedule_lag: Option<Latency>,
    /// CPU seconds of the driver's shard threads over the whole run (the embedded relay
    /// is not included).
    pub driver_cpu_s: f64,
    /// CPU seconds of the shard threads while sending.
    pub steady_cpu_s: f64,
    /// Share of the shard threads' time spent on CPU while sending (1.0 = every shard busy).
    pub steady_cpu_share: f64,
    /// Driver CPU per message while sending (seal + send + receive + open + record), µs.
    pub driver_cpu_us_per_msg: f64,
    /// Wake-ups of the driver's shard threads per message while sending (each time one
    /// blocked in `epoll_wait` and was woken), as the same-shape floor counts them; absent
    /// where the system does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_wakes_per_msg: Option<f64>,
    /// The relay's CPU per message while sending, µs: the embedded relay's threads, or an
    /// external relay's process CPU read from its `/metrics` (`relay.metrics`,
    /// `process_cpu_seconds_total`) at the start and end of sending; absent for an
    /// external relay without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_cpu_us_per_msg: Option<f64>,
    /// CPU per message as multiples of this machine's floor (one loopback hop, from the
    /// calibration in the provenance); absent without a calibration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor: Option<FloorMultiples>,
    /// How the cores were shared while sending: the driver's shard threads, and with an
    /// embedded relay its worker threads, on the same cores, not pinned (the default; the
    /// CPU figures above and every latency include that sharing), or pinned with `--cpus`
    /// (which CPUs each part had). Absent in older results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cores: Option<String>,
    /// Cores' worth of CPU that other processes on this machine used while sending
    /// (`/proc/stat`'s busy time of every core less this process's own CPU, over the
    /// sending phase's wall time); with the machine's cores, says whether the generator had
    /// the machine to itself. Absent where `/proc/stat` cannot be read, and in older results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub others_cores: Option<f64>,
    /// Cores' worth of CPU the hypervisor gave other guests while sending (`steal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steal_cores: Option<f64>,
    /// Driver shard threads.
    pub shards: usize,
    /// The embedded relay's worker threads (absent with an external relay, and in older
    /// results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_workers: Option<usize>,
    /// Peak resident memory of this process (driver, plus the relay when embedded), KiB
    /// (`VmHWM` of `/proc/self/status`).
    pub process_peak_rss_kib: u64,
    /// The generator could not keep its own schedule: latencies describe the generator.
    pub saturated: bool,
    /// What the saturation verdict rests on, with numbers: why it is saturated, or notes
    /// (sustained lag without a generator-side cause; relay back-pressure).
    pub saturation_reasons: Vec<String>,
    /// The criterion that fired (`sustained_lag+busy`, `sustained_lag+short_of_rate`, or
    /// both; or `busy+lost`); null when not saturated.
    #[serde(default)]
    pub saturation_criterion: Option<String>,
    /// Sending seconds whose schedule-lag p99 was above 1 ms without making a sustained
    /// pattern: stalls, not saturation.
    #[serde(default)]
    pub lag_spikes: u64,
}

/// CPU per message as multiples of the machine's floor: figures that compare between
/// machines where microseconds do not.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FloorMultiples {
    /// The floor: CPU of one unbatched loopback TCP hop on this machine, µs.
    pub hop_us: f64,
    /// When the floor was measured.
    pub calibrated_at: String,
    /// Driver CPU per message ÷ one hop (the driver's share of a relayed message is one
    /// hop: its send and its receive).
    pub driver: f64,
    /// Embedded relay CPU per message ÷ one hop (the relay's share is one hop too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<f64>,
    /// Driver + embedded relay per message ÷ two hops (a relayed message makes two).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub together: Option<f64>,
    /// The same against the floor of this run's own traffic shape (`calibrate --shape`:
    /// a minimal generator and relay at the same connections, rate and tick), when the
    /// calibration has it; absent otherwise (`shape_missing` says which to measure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<ShapeMultiples>,
    /// Without `shape`: the `calibrate --shape` that would give it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape_missing: Option<String>,
}

/// CPU per message as multiples of the floor of the run's own traffic shape.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShapeMultiples {
    /// The floor's shape: connections, msgs/s, tick (µs).
    pub connections: usize,
    /// Its rate, msgs/s.
    pub rate: f64,
    /// Its tick, µs.
    pub tick_us: f64,
    /// The floor generator's CPU per message, µs.
    pub generator_us: f64,
    /// The floor relay's CPU per message, µs.
    pub relay_us: f64,
    /// Driver CPU per message ÷ the floor generator's.
    pub driver: f64,
    /// Relay CPU per message ÷ the floor relay's (embedded or measured relay only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<f64>,
    /// (Driver + relay) ÷ (floor generator + floor relay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub together: Option<f64>,
    /// When this floor was measured, where that is not `calibrated_at` (kept from an
    /// earlier calibration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_at: Option<String>,
}

impl FloorMultiples {
    /// The multiples of `generator`'s CPU figures against `calibration`; against the floor
    /// of the run's shape (`connections`, `rate` msgs/s, `tick_us`) too when the
    /// calibration has it.
    pub fn of(
        g: &Generator,
        calibration: &crate::provenance::calibration::Calibration,
        (connections, rate, tick_us): (usize, f64, f64),
    ) -> Option<Self> {
        let hop_us = calibration.hop_ns / 1e3;
        if hop_us <= 0.0 || g.driver_cpu_us_per_msg <= 0.0 {
            return None;
        }
        let relay = g.relay_cpu_us_per_msg.filter(|r| *r > 0.0);
        Some(FloorMultiples {
            hop_us,
            calibrated_at: calibration.measured_at.clone(),
            driver: g.driver_cpu_us_per_msg / hop_us,
            relay: relay.map(|r| r / hop_us),
            together: relay.map(|r| (g.driver_cpu_us_per_msg + r) / (2.0 * hop_us)),
            shape: calibration.shapes.iter().find(|f| f.fits(connections, rate, tick_us)).map(|f| {
                let (gen_us, relay_us) = (f.generator_ns / 1e3, f.relay_ns / 1e3);
                ShapeMultiples {
                    connections: f.connections,
                    rate: f.rate,
                    tick_us: f.tick_us,
                    generator_us: gen_us,
                    relay_us,
                    driver: g.driver_cpu_us_per_msg / gen_us,
                    relay: relay.map(|r| r / relay_us),
                    together: relay.map(|r| (g.driver_cpu_us_per_msg + r) / (gen_us + relay_us)),
                    measured_at: f.measured_at.clone(),
                }
            }),
            shape_missing: None,
        })
        .map(|mut m| {
            if m.shape.is_none() {
                let even = connections + connections % 2;
                m.shape_missing = Some(format!("sealbench calibrate --shape {even}@{rate:.0}"));
            }
            m
        })
    }
}

/// The whole summary.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Layout version ([`SCHEMA_VERSION`]), kind (`run`, or `merge` for a merged split
    /// run) and provenance.
    #[serde(flatten)]
    pub header: Header,
    /// The resolved scenario (after `--set` overrides).
    pub scenario: Scenario,
    /// Noise protocol name + AEAD label; with `crypto.protocol` other than noise, the
    /// protocol and its library.
    pub suite: String,
    /// Bytes of one Noise handshake's messages, both directions (a hybrid pattern's
    /// ML-KEM-768 step included); 0 for a protocol that runs no Noise handshake.
    #[serde(default)]
    pub handshake_bytes: usize,
    /// Transport AEAD short name (`none` = UNENCRYPTED).
    pub aead: String,
    /// Relay used.
    pub relay: String,
    /// What carried the WebSocket (ws or wss) and whom TLS trusted (absent in results
    /// made before TLS: those were ws).
    #[serde(default)]
    pub transport: super::transport::TransportInfo,
    /// Ctrl-C ended the run early.
    pub interrupted: bool,
    /// Why the run was cut short, if it was.
    pub aborted: Option<String>,
    /// Clients.
    pub clients: ClientsSummary,
    /// Accounting.
    pub messages: Messages,
    /// Rates.
    pub throughput: Throughput,
    /// Latency per metric, all traffic classes together (absent when a metric had no
    /// samples).
    pub latency: BTreeMap<String, Latency>,
    /// The run's traffic classes (canonical form, `class=group,size=50`), decided by the
    /// plan: a threshold may name only these.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Latency per tagged metric ([`Metric::TAGGED`]) and traffic class:
    /// `latency_by_tag["e2e"]["class=dm"]`. Tags without samples are absent.
    #[serde(default)]
    pub latency_by_tag: ByTag,
    /// Threshold verdicts.
    pub thresholds: Vec<Verdict>,
    /// The load generator's own health.
    pub generator: Generator,
    /// The embedded relay's own counters (absent for an external relay): a cross-check of
    /// the clients' accounting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_stats: Option<crate::driver::RelayStats>,
    /// Wall seconds of the whole run.
    pub wall_s: f64,
    /// Per-stage figures of a scenario with `stages` (absent otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<super::stages::StageFigures>,
    /// A run split over processes: this process's part and how its start went (absent for
    /// a whole run). A merged result lists every part in `parts` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
    /// A merged result (`sealbench merge`): each part's directory and generator verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartVerdict>,
    /// A merge of only some parts (`merge --partial`): which are missing. Absent for a
    /// complete merge and for a run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<String>,
}

/// One process's part of a split run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Split {
    /// `index` of `count`.
    pub part: crate::scenario::Part,
    /// The common steady start every part was given (Unix seconds), if any.
    pub start_at_unix_s: Option<f64>,
    /// How late this part was ready for it, s (0: it waited for it).
    pub late_start_s: Option<f64>,
    /// This process's clock against the relay's, s: not measured — the relay's WELCOME
    /// carries no time, so parts are aligned on their own wall clocks (keep them in NTP
    /// sync). Latencies never need it: both ends of a message are in one process.
    pub clock_offset_s: Option<f64>,
}

/// A part of a merged result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PartVerdict {
    /// Its result directory, as given to `merge`.
    pub dir: String,
    /// Its part of the split (None: a whole run merged with others).
    pub part: Option<crate::scenario::Part>,
    /// Its generator saturated (its latencies then describe the generator).
    pub saturated: bool,
    /// Why, or why not.
    pub saturation_reasons: Vec<String>,
    /// How late it was ready for the common start, s.
    pub late_start_s: Option<f64>,
    /// How its cores were shared (its `generator.cores`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cores: Option<String>,
}

/// A threshold's verdict, as written to `summary.json` (and to a capacity step's `slos`).
/// Thresholds are judged by [`crate::verdict::threshold`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Verdict {
    /// The expression.
    pub expr: String,
    /// The measured value in the metric's base unit (µs, fraction, count), if available.
    pub measured: Option<f64>,
    /// Whether it held (false when the metric had no data).
    pub pass: bool,
}

impl Throughput {
    /// The rates of `outcome`, which was offered `offered_per_s`.
    pub fn of(outcome: &Outcome, offered_per_s: f64) -> Self {
        let c = &outcome.counters;
        let per_s = |n: u64| if outcome.measured_s > 0.0 { n as f64 / outcome.measured_s.max(1e-9) } else { 0.0 };
        Throughput {
            seconds: outcome.measured_s,
            sent_per_s: per_s(c.sent),
            delivered_per_s: per_s(c.delivered),
            messages_per_s: per_s(c.messages + c.skipped_offline),
            handshakes_per_s: if outcome.handshake_s > 0.0 {
                c.handshakes_ok as f64 / outcome.handshake_s
            } else {
                0.0
            },
            offered_per_s,
        }
    }
}

impl Generator {
    /// How the generator of `outcome` fared (`lag`: its schedule lag), not yet judged
    /// saturated or not (see [`crate::verdict::saturation`]).
    pub fn of(outcome: &Outcome, lag: Option<Latency>) -> Self {
        let shard_cap = outcome.shards as f64 * outcome.measured_s;
        let (driver_cpu_s, steady_cpu_s) = (outcome.driver_cpu_s(), outcome.steady_cpu_s());
        let share = if shard_cap > 0.0 { steady_cpu_s / shard_cap } else { 0.0 };
        Generator {
            schedule_lag: lag,
            driver_cpu_s,
            steady_cpu_s,
            steady_cpu_share: share,
            driver_cpu_us_per_msg: if outcome.steady_sent > 0 {
                steady_cpu_s * 1e6 / outcome.steady_sent as f64
            } else {
                0.0
            },
            driver_wakes_per_msg: outcome
                .steady_wakes
                .filter(|_| outcome.steady_sent > 0)
                .map(|w| w as f64 / outcome.steady_sent as f64),
            relay_cpu_us_per_msg: match outcome.relay_steady_cpu_s {
                Some(cpu) if outcome.steady_sent > 0 => Some(cpu * 1e6 / outcome.steady_sent as f64),
                _ => None,
            },
            floor: None,
            cores: None,
            others_cores: outcome.others_cores,
            steal_cores: outcome.steal_cores,
            shards: outcome.shards,
            relay_workers: outcome.relay_workers,
            process_peak_rss_kib: peak_rss_kib(),
            saturated: false,
            saturation_reasons: Vec::new(),
            saturation_criterion: None,
            lag_spikes: 0,
        }
    }
}

impl Summary {
    /// Builds the summary of a run, not yet judged: neither its thresholds nor whether its
    /// generator saturated (see [`crate::verdict::judge_run`]).
    pub fn build(plan: &Plan, outcome: &Outcome, provenance: Provenance) -> Self {
        let scenario = &plan.scenario;
        let suite = scenario.crypto.protocol.suite_name().map_or_else(|| plan.suite.to_string(), str::to_owned);
        let latency: BTreeMap<String, Latency> = Metric::ALL
            .into_iter()
            .filter_map(|m| Latency::of(outcome.total.get(m)).map(|l| (m.name().to_owned(), l)))
            .collect();
        let mut latency_by_tag: BTreeMap<String, BTreeMap<String, Latency>> = BTreeMap::new();
        for (m, tag, h) in outcome.total.series() {
            if let (Some(tag), Some(l)) = (tag, Latency::of(h)) {
                latency_by_tag.entry(m.name().to_owned()).or_default().insert(tag.to_string(), l);
            }
        }
        let mut tags: Vec<TagSet> = plan.tags().to_vec();
        tags.sort();
        let offered = plan.local_offered_rate();
        let lag = latency.get(Metric::ScheduleLag.name()).cloned();
        let transport = super::transport::TransportInfo::of(&scenario.relay, &provenance);
        let mut generator = Generator::of(outcome, lag);
        let shape = (plan.local().1, offered, scenario.traffic.tick.as_secs_f64() * 1e6);
        generator.floor = provenance.calibration.as_ref().and_then(|c| FloorMultiples::of(&generator, c, shape));
        generator.cores = Some(cores_shared(provenance.cores, outcome));
        Summary {
            header: Header::new(SCHEMA_VERSION, "run", provenance),
            scenario: scenario.clone(),
            suite,
            handshake_bytes: if plan.scenario.crypto.protocol == sealproto::Protocol::Noise {
                plan.suite.handshake_bytes()
            } else {
                0
            },
            aead: scenario.crypto.aead.name().to_owned(),
            relay: outcome.relay_url.clone(),
            transport,
            interrupted: outcome.interrupted,
            aborted: outcome.aborted.clone(),
            clients: ClientsSummary::of(plan.local().1, &outcome.counters),
            messages: Messages {
                delivered_at_end: delivered_at_end(&outcome.seconds),
                ..Messages::of(&outcome.counters)
            },
            throughput: Throughput::of(outcome, offered),
            latency,
            tags: tags.iter().map(ToString::to_string).collect(),
            latency_by_tag,
            thresholds: Vec::new(),
            generator,
            relay_stats: outcome.relay_stats.clone(),
            wall_s: outcome.wall_s,
            stages: if scenario.stages.is_empty() {
                Vec::new()
            } else {
                super::stages::figures(&plan.profile, &outcome.seconds)
            },
            split: plan.part.map(|part| Split {
                part,
                start_at_unix_s: outcome.start_at_unix_s,
                late_start_s: outcome.late_start_s,
                clock_offset_s: None,
            }),
            parts: Vec::new(),
            partial: None,
        }
    }

    /// The value of a figure path (`e2e.p99` in µs, `errors.rate` as a fraction,
    /// `e2e{class=dm}.p99` of one traffic class…).
    pub fn lookup(&self, path: &str) -> Option<f64> {
        self.select(&Selector::parse(path).ok()?)
    }

    /// The value of a figure of one traffic class or of all (None without samples).
    pub fn select(&self, s: &Selector) -> Option<f64> {
        match (&s.tag, s.path) {
            (None, path) => self.value(path),
            (Some(tag), Path::Latency(metric, stat)) => {
                Some(self.latency_by_tag.get(metric.name())?.get(&tag.to_string())?.get(stat))
            }
            (Some(_), _) => None,
        }
    }

    /// The run's traffic classes, parsed (a summary of an older layout has none).
    pub fn tag_sets(&self) -> Vec<TagSet> {
        let mut v: Vec<TagSet> = self.tags.iter().filter_map(|t| TagSet::parse(t).ok()).collect();
        v.sort();
        v
    }

    /// Each class's latency of `metric`, in table order (class, fan-out, size by number).
    pub fn by_tag(&self, metric: Metric) -> Vec<(TagSet, &Latency)> {
        classes_of(&self.latency_by_tag, metric)
    }

    /// The value of a figure (None when the metric had no samples, or for the error rate
    /// of a run that sent nothing).
    pub fn value(&self, path: Path) -> Option<f64> {
        let m = &self.messages;
        let c = &self.clients;
        Some(match path {
            Path::Latency(metric, stat) => self.latency.get(metric.name())?.get(stat),
            Path::ErrorsRate => {
                if m.sent == 0 {
                    return None;
                }
                (self.errors().total() + m.lost) as f64 / m.sent as f64
            }
            Path::Counter(counter) => match counter {
                Counter::MessagesSent => m.sent as f64,
                Counter::MessagesDelivered => m.delivered as f64,
                Counter::MessagesLost => m.lost as f64,
                Counter::MessagesRefused => m.refused as f64,
                Counter::MessagesDuplicated => m.duplicated as f64,
                Counter::MessagesReordered => m.reordered as f64,
                Counter::MessagesAuthFailed => m.auth_failed as f64,
                Counter::SentPerS => self.throughput.sent_per_s,
                Counter::DeliveredPerS => self.throughput.delivered_per_s,
                Counter::ConnectsFailed => c.connect_failed as f64,
                Counter::ConnectsOk => c.connected as f64,
                Counter::HandshakesFailed => c.handshakes_failed as f64,
                Counter::HandshakesOk => c.handshakes_ok as f64,
            },
        })
    }

    /// The run's errors, as [`ErrorCounts`] defines them.
    pub fn errors(&self) -> ErrorCounts {
        let (m, c) = (&self.messages, &self.clients);
        ErrorCounts {
            refused: m.refused,
            auth_failed: m.auth_failed,
            malformed: m.malformed,
            connects_failed: c.connect_failed,
            handshakes_failed: c.handshakes_failed,
            disconnects: c.disconnected,
        }
    }

    /// True when every threshold passed.
    pub fn thresholds_pass(&self) -> bool {
        self.thresholds.iter().all(|v| v.pass)
    }
}

/// Latency per metric name, then per class (canonical tag text): `latency_by_tag`.
pub type ByTag = BTreeMap<String, BTreeMap<String, Latency>>;

/// Each class's latency of `metric` in `by_tag` (a summary's `latency_by_tag`), in table
/// order (class, fan-out, size by number).
pub fn classes_of(by_tag: &ByTag, metric: Metric) -> Vec<(TagSet, &Latency)> {
    let mut v: Vec<(TagSet, &Latency)> = by_tag
        .get(metric.name())
        .into_iter()
        .flatten()
        .filter_map(|(t, l)| Some((TagSet::parse(t).ok()?, l)))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// `VmHWM` (peak resident set) of this process, KiB; 0 where unavailable.
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Deliveries recorded within the last second of the run's history (its last rows:
/// the end of the cool-down and the partial second after it).
fn delivered_at_end(seconds: &[crate::driver::Second]) -> u64 {
    let Some(end) = seconds.last().map(|s| s.at_s) else { return 0 };
    seconds.iter().rev().take_while(|s| s.at_s > end - 1.0).map(|s| s.delta.delivered).sum()
}

/// `generator.cores`: how the driver's shard threads and the embedded relay's workers
/// shared the machine's `cores` while sending.
fn cores_shared(cores: usize, o: &crate::driver::Outcome) -> String {
    use crate::driver::cpus::list;
    let pins = &o.cpus;
    let embedded = o.relay_url.starts_with("embedded");
    if pins.driver.is_none() && pins.relay.is_none() {
        return if embedded {
            format!(
                "{cores} cores shared, not pinned, by {} driver shard thread(s) and the embedded relay's {} worker thread(s)",
                o.shards,
                o.relay_workers.unwrap_or(cores)
            )
        } else {
            format!(
                "{cores} cores, not pinned, for {} driver shard thread(s); the relay was external (its CPU is not in these figures, wherever it ran)",
                o.shards
            )
        };
    }
    let driver = match &pins.driver {
        Some(c) => format!("{} driver shard thread(s) pinned to CPU {}", o.shards, list(c)),
        None => format!("{} driver shard thread(s) not pinned", o.shards),
    };
    if !embedded {
        return format!(
            "{cores} cores: {driver}; the relay was external (its CPU is not in these figures, wherever it ran)"
        );
    }
    let relay = match &pins.relay {
        Some(c) => format!("the embedded relay's {} worker thread(s) pinned to CPU {}", c.len(), list(c)),
        None => format!("the embedded relay's {} worker thread(s) not pinned", o.relay_workers.unwrap_or(cores)),
    };
    let how = match (&pins.driver, &pins.relay) {
        (Some(_), Some(_)) if pins.overlap() => "pinned, overlapping",
        (Some(_), Some(_)) => "pinned apart",
        _ => "partly pinned",
    };
    format!("{cores} cores {how}: {driver}; {relay}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::recorder::{Counters, Histograms};
    use crate::driver::{Phase, Second};

    fn row(at_s: f64, delivered: u64) -> Second {
        let mut delta = Counters::new();
        delta.delivered = delivered;
        Second {
            t: at_s as u64,
            phase: Phase::Draining,
            hist: Histograms::new(),
            delta,
            connected: 2,
            busy: 0.1,
            stage: None,
            at_s,
        }
    }

    #[test]
    fn deliveries_at_the_end_are_those_of_the_last_second_only() {
        // Still arriving when the cool-down ended: the last full second and the partial one.
        let rows = [row(10.0, 5_000), row(11.0, 3_000), row(12.0, 2_000), row(12.3, 400)];
        assert_eq!(delivered_at_end(&rows), 2_400);
        // Everything arrived early in the cool-down: nothing at the end.
        let rows = [row(10.0, 5_000), row(11.0, 0), row(12.0, 0), row(12.1, 0)];
        assert_eq!(delivered_at_end(&rows), 0);
        assert_eq!(delivered_at_end(&[]), 0);
    }
}
