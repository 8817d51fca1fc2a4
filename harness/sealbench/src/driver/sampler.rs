//! What the machine did while the generator was sending: the embedded relay's CPU, this
//! process's CPU and every core's, so that a verdict can say when the generator did not
//! have the machine to itself. Read from `/proc` at the two ends of the sending phase by a
//! small thread of its own (one wake-up at each end): the shards' per-message path is
//! untouched.

use crate::clock::{now_ns, process_cpu_ns};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The machine's CPU over the sending phase.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SendingCpu {
    /// Wall time the window covered, ns.
    pub wall_ns: u64,
    /// CPU of the embedded relay's threads, ns (None without one).
    pub relay_ns: Option<u64>,
    /// CPU of this whole process (shards, embedded relay, coordinator), ns.
    pub process_ns: u64,
    /// Every core's CPU from `/proc/stat` (None where it cannot be read).
    pub machine: Option<MachineCpu>,
}

/// CPU time of all cores together from `/proc/stat`'s `cpu` line, ns.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MachineCpu {
    /// On CPU for anything (user, nice, system, irq, softirq).
    pub busy_ns: u64,
    /// Taken by the hypervisor for other guests (`steal`).
    pub steal_ns: u64,
}

impl SendingCpu {
    /// Cores' worth of CPU used by other processes on this machine while sending: every
    /// core's busy time minus this process's, over the wall time (0 when this process
    /// accounts for all of it; None without `/proc/stat`).
    pub fn others_cores(&self) -> Option<f64> {
        let m = self.machine?;
        let wall = self.wall_ns.max(1) as f64;
        Some(m.busy_ns.saturating_sub(self.process_ns) as f64 / wall)
    }

    /// Cores' worth of CPU the hypervisor gave other guests while this one wanted it.
    pub fn steal_cores(&self) -> Option<f64> {
        Some(self.machine?.steal_ns as f64 / self.wall_ns.max(1) as f64)
    }
}

/// `/proc/stat`'s aggregate `cpu` line, in ns (its unit is the kernel's clock tick).
fn machine_now() -> Option<MachineCpu> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    machine_of(&stat, rustix::param::clock_ticks_per_second())
}

/// Parses the aggregate line of a `/proc/stat` text: `cpu user nice system idle iowait irq
/// softirq steal …` in ticks of `hz`.
fn machine_of(stat: &str, hz: u64) -> Option<MachineCpu> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line.split_whitespace().skip(1).map_while(|v| v.parse().ok()).collect();
    let [user, nice, system, _idle, _iowait, irq, softirq, steal, ..] = f[..] else { return None };
    let ns = |ticks: u64| ticks.saturating_mul(1_000_000_000) / hz.max(1);
    Some(MachineCpu { busy_ns: ns(user + nice + system + irq + softirq), steal_ns: ns(steal) })
}

struct Reading {
    at: u64,
    relay: Option<u64>,
    process: u64,
    machine: Option<MachineCpu>,
}

/// Whose relay CPU the sampler reads: the embedded relay's threads, an external relay's
/// `/metrics` (`relay.metrics`), or none.
#[derive(Debug, Clone)]
pub enum RelayCpu {
    /// No relay CPU is known (an external relay without `relay.metrics`).
    Unknown,
    /// The embedded relay's threads.
    Embedded,
    /// An external relay's `process_cpu_seconds_total`.
    Scraped(crate::scrape::MetricsUrl),
}

fn read(relay: &RelayCpu) -> Reading {
    Reading {
        at: now_ns(),
        relay: match relay {
            RelayCpu::Unknown => None,
            RelayCpu::Embedded => Some(super::embedded::relay_threads_cpu_ns()),
            RelayCpu::Scraped(url) => crate::scrape::process_cpu_seconds(url).map(|s| (s * 1e9) as u64),
        },
        process: process_cpu_ns(),
        machine: machine_now(),
    }
}

/// Measures the sending phase: from the common start the coordinator sets until the end
/// of sending or a stop, with the relay's CPU as `relay` says. None when the sending
/// phase never started.
pub(super) fn sample_sending(
    mut start: tokio::sync::watch::Receiver<Option<u64>>,
    sending_ns: u64,
    stop: Arc<AtomicBool>,
    relay: RelayCpu,
) -> std::thread::JoinHandle<Option<SendingCpu>> {
    std::thread::spawn(move || {
        let t0 = loop {
            if let Some(t) = *start.borrow_and_update() {
                break t;
            }
            if stop.load(Ordering::Relaxed) || start.has_changed().is_err() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        while now_ns() < t0 {
            std::thread::sleep(Duration::from_nanos((t0 - now_ns()).min(5_000_000)));
        }
        let a = read(&relay);
        let end = t0 + sending_ns;
        while now_ns() < end && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_nanos((end.saturating_sub(now_ns())).min(20_000_000)));
        }
        let b = read(&relay);
        Some(SendingCpu {
            wall_ns: b.at.saturating_sub(a.at),
            relay_ns: b.relay.zip(a.relay).map(|(b, a)| b.saturating_sub(a)),
            process_ns: b.process.saturating_sub(a.process),
            machine: b.machine.zip(a.machine).map(|(b, a)| MachineCpu {
                busy_ns: b.busy_ns.saturating_sub(a.busy_ns),
                steal_ns: b.steal_ns.saturating_sub(a.steal_ns),
            }),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aggregate_line_of_proc_stat_is_read_in_ns() {
        let stat = "cpu  100 5 20 900 7 1 2 3 0 0\ncpu0 50 2 10 450 3 0 1 1 0 0\nintr 1\n";
        let m = machine_of(stat, 100).unwrap();
        assert_eq!(m.busy_ns, 128 * 10_000_000, "user + nice + system + irq + softirq");
        assert_eq!(m.steal_ns, 3 * 10_000_000);
        assert_eq!(machine_of("cpu0 1 2 3\n", 100), None, "no aggregate line");
        assert_eq!(machine_of("cpu  1 2 3\n", 100), None, "too few fields");
    }

    #[test]
    fn others_are_the_machine_less_this_process() {
        let s = SendingCpu {
            wall_ns: 10_000_000_000,
            relay_ns: None,
            process_ns: 7_000_000_000,
            machine: Some(MachineCpu { busy_ns: 19_000_000_000, steal_ns: 1_000_000_000 }),
        };
        assert_eq!(s.others_cores(), Some(1.2));
        assert_eq!(s.steal_cores(), Some(0.1));
        // This process measured a little above the machine's coarser ticks: none, not negative.
        let s = SendingCpu { process_ns: 20_000_000_000, ..s };
        assert_eq!(s.others_cores(), Some(0.0));
    }

    #[test]
    fn a_busy_loop_in_another_process_is_seen_as_other_work() {
        // A real reading of this machine while a child process spins for 300 ms.
        let a = read(&RelayCpu::Unknown);
        let mut child = std::process::Command::new("sh")
            .args(["-c", "end=$(($(date +%s%N) + 300000000)); while [ $(date +%s%N) -lt $end ]; do :; done"])
            .spawn()
            .unwrap();
        child.wait().unwrap();
        let b = read(&RelayCpu::Unknown);
        let (Some(ma), Some(mb)) = (a.machine, b.machine) else { return }; // no /proc/stat here
        let s = SendingCpu {
            wall_ns: b.at - a.at,
            relay_ns: None,
            process_ns: b.process - a.process,
            machine: Some(MachineCpu { busy_ns: mb.busy_ns - ma.busy_ns, steal_ns: mb.steal_ns - ma.steal_ns }),
        };
        assert!(s.others_cores().unwrap() > 0.3, "{s:?}");
    }
}
