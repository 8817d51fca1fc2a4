//! Timing loops for the crypto sweep: calibrate a batch, then take repeated samples and
//! keep the median and the spread. Single-threaded; each figure is per operation.
//!
//! Time is the measuring thread's CPU time ([`Stopwatch`]), not wall time: on a shared
//! machine another process's time slice is not the cost of a seal. (OpenSSL's `speed`
//! counts CPU time too, so the two compare.)

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The CPU time this thread has used (`CLOCK_THREAD_CPUTIME_ID`), read once per batch.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(Duration);

impl Stopwatch {
    /// Starts now.
    pub fn start() -> Self {
        Stopwatch(thread_cpu())
    }

    /// CPU time of this thread since [`start`](Self::start).
    pub fn elapsed(&self) -> Duration {
        thread_cpu().saturating_sub(self.0)
    }
}

fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec.max(0) as u64, t.tv_nsec.clamp(0, 999_999_999) as u32)
}

/// How long to measure one figure.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Wall time of one sample.
    pub sample: Duration,
    /// Number of samples (the median is reported, min/max as the spread).
    pub samples: usize,
}

/// One measured figure: nanoseconds per operation over repeated samples.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Timing {
    /// Median over samples of ns per operation.
    pub ns_median: f64,
    /// Fastest sample, ns per operation.
    pub ns_min: f64,
    /// Slowest sample, ns per operation.
    pub ns_max: f64,
    /// (max − min) / median: how much the samples disagreed.
    pub spread: f64,
    /// Operations timed in all samples together.
    pub iterations: u64,
    /// Number of samples.
    pub samples: usize,
}

impl Timing {
    /// Operations per second at the median.
    pub fn per_second(&self) -> f64 {
        if self.ns_median > 0.0 { 1e9 / self.ns_median } else { 0.0 }
    }

    /// Megabytes (10^6 bytes) per second at the median, for operations on `bytes` each.
    pub fn mb_per_s(&self, bytes: usize) -> f64 {
        if self.ns_median > 0.0 { bytes as f64 * 1e3 / self.ns_median } else { 0.0 }
    }
}

/// How many times a sample's CPU budget its wall time may run to.
const WALL_CAP: u32 = 3;

/// Measures `op`, which performs `n` operations and returns the time they took (so that it
/// can do untimed set-up inside, such as sealing the messages it is about to open).
pub fn measure(budget: Budget, mut op: impl FnMut(u64) -> Duration) -> Timing {
    // Calibrate: grow the batch until it takes at least 1/20 of a sample (or 1 ms).
    let floor = (budget.sample / 20).max(Duration::from_millis(1));
    let mut batch = 1u64;
    loop {
        let t = op(batch);
        if t >= floor || batch >= 1 << 30 {
            break;
        }
        let grow = if t.is_zero() { 16.0 } else { (floor.as_secs_f64() / t.as_secs_f64()).clamp(1.5, 16.0) };
        batch = ((batch as f64) * grow).ceil() as u64;
    }
    let mut per_op = Vec::with_capacity(budget.samples);
    let mut iterations = 0u64;
    for _ in 0..budget.samples.max(1) {
        let mut elapsed = Duration::ZERO;
        let mut n = 0u64;
        // A sample is `budget.sample` of CPU time, but at most WALL_CAP times that of wall
        // time: on a crowded machine a sample ends early with fewer operations (the figure
        // per operation stays right) so that the sweep's duration stays bounded.
        let wall = std::time::Instant::now();
        while elapsed < budget.sample && (n == 0 || wall.elapsed() < budget.sample * WALL_CAP) {
            elapsed += op(batch);
            n += batch;
        }
        iterations += n;
        per_op.push(elapsed.as_nanos() as f64 / n as f64);
    }
    summarize(per_op, iterations)
}

/// The median, min, max and spread of samples of nanoseconds per operation.
pub fn summarize(mut per_op: Vec<f64>, iterations: u64) -> Timing {
    if per_op.is_empty() {
        per_op.push(0.0);
    }
    per_op.sort_by(f64::total_cmp);
    let median = if per_op.len() % 2 == 1 {
        per_op[per_op.len() / 2]
    } else {
        (per_op[per_op.len() / 2 - 1] + per_op[per_op.len() / 2]) / 2.0
    };
    let (min, max) = (per_op[0], per_op[per_op.len() - 1]);
    Timing {
        ns_median: median,
        ns_min: min,
        ns_max: max,
        spread: if median > 0.0 { (max - min) / median } else { 0.0 },
        iterations,
        samples: per_op.len(),
    }
}

/// Times `n` runs of `f` (the usual case: nothing untimed inside).
pub fn timed(n: u64, mut f: impl FnMut()) -> Duration {
    let t0 = Stopwatch::start();
    for _ in 0..n {
        f();
    }
    t0.elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measure_reports_the_median_of_what_op_returns() {
        // An op that claims exactly 100 ns per operation, without sleeping.
        let budget = Budget { sample: Duration::from_millis(5), samples: 5 };
        let t = measure(budget, |n| Duration::from_nanos(100 * n));
        assert!((t.ns_median - 100.0).abs() < 1e-9, "{t:?}");
        assert_eq!(t.samples, 5);
        assert!(t.spread.abs() < 1e-9);
        assert!((t.per_second() - 1e7).abs() < 1e-3);
        assert!((t.mb_per_s(1000) - 10_000.0).abs() < 1e-6);
    }

    #[test]
    fn the_stopwatch_counts_this_threads_cpu_time_not_sleep() {
        let w = Stopwatch::start();
        std::thread::sleep(Duration::from_millis(30));
        assert!(w.elapsed() < Duration::from_millis(15), "{:?}", w.elapsed());
        let w = Stopwatch::start();
        let mut x = 0u64;
        while w.elapsed() < Duration::from_millis(5) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(w.elapsed() >= Duration::from_millis(5));
    }
}
