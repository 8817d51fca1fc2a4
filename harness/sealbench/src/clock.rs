//! One process-wide monotonic clock in nanoseconds, and a precise async sleep.
//!
//! Every timestamp the driver takes (intended and actual send times in a message, receive
//! times, handshake and connect timings) is `now_ns()`: nanoseconds of `CLOCK_MONOTONIC`
//! since the first call in this process. Both ends of a conversation live in this process,
//! so send and receive times compare directly.
//!
//! [`Ticker`] sleeps until an absolute time with a `timerfd` registered with tokio: tokio's
//! own timer wheel ticks at 1 ms, which would add up to 1 ms of the generator's own lag to
//! every corrected latency; a timerfd wakes within tens of microseconds.

use rustix::time::{ClockId, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};
use std::io;
use std::os::fd::OwnedFd;
use std::sync::OnceLock;
use tokio::io::unix::AsyncFd;

static EPOCH: OnceLock<u64> = OnceLock::new();

fn raw_now() -> u64 {
    let t = rustix::time::clock_gettime(ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// The raw `CLOCK_MONOTONIC` reading of the epoch, in ns.
fn epoch() -> u64 {
    *EPOCH.get_or_init(raw_now)
}

/// Nanoseconds since the process-wide epoch.
#[inline]
pub fn now_ns() -> u64 {
    let e = epoch();
    raw_now().saturating_sub(e)
}

/// Times the calling thread has blocked and been woken so far (its voluntary context
/// switches, `/proc/thread-self/status`): a shard thread blocks only in `epoll_wait`, so
/// each is one wake-up, as the same-shape floor counts them. None where `/proc` cannot say.
pub fn thread_wakes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/thread-self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))?;
    line.trim().parse().ok()
}

/// CPU time of the calling thread, ns.
pub fn thread_cpu_ns() -> u64 {
    cpu_ns(ClockId::ThreadCPUTime)
}

/// CPU time of this whole process (every thread), ns.
pub fn process_cpu_ns() -> u64 {
    cpu_ns(ClockId::ProcessCPUTime)
}

fn cpu_ns(clock: ClockId) -> u64 {
    let t = rustix::time::clock_gettime(clock);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// A precise sleeper (one timerfd). Needs a tokio runtime with I/O enabled.
#[derive(Debug)]
pub struct Ticker {
    fd: AsyncFd<OwnedFd>,
}

impl Ticker {
    /// A new ticker.
    ///
    /// # Errors
    /// When the kernel refuses a timerfd.
    pub fn new() -> io::Result<Self> {
        let fd =
            rustix::time::timerfd_create(TimerfdClockId::Monotonic, TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC)?;
        // `AsyncFd::new` is deprecated because a `T` that does not own its descriptor could
        // close it while registered; ours is an `OwnedFd` moved in, so it cannot. (The
        // replacement `register` is `unsafe`, which this workspace forbids.)
        #[allow(deprecated)]
        let fd = AsyncFd::new(fd)?;
        Ok(Ticker { fd })
    }

    /// Sleeps until `deadline_ns` (on the [`now_ns`] scale). Returns at once if it has passed.
    ///
    /// # Errors
    /// When arming or reading the timerfd fails.
    pub async fn sleep_until(&self, deadline_ns: u64) -> io::Result<()> {
        if now_ns() >= deadline_ns {
            return Ok(());
        }
        let abs = epoch() + deadline_ns;
        let spec = Itimerspec {
            it_interval: Timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: Timespec { tv_sec: (abs / 1_000_000_000) as _, tv_nsec: (abs % 1_000_000_000) as _ },
        };
        rustix::time::timerfd_settime(self.fd.get_ref(), TimerfdTimerFlags::ABSTIME, &spec)?;
        loop {
            let mut guard = self.fd.readable().await?;
            let mut buf = [0u8; 8];
            match rustix::io::read(guard.get_inner(), &mut buf) {
                Ok(_) => {
                    // The expiry is consumed and the timer disarmed: forget the readiness
                    // now, or the next sleep would find it still set and pay a read that
                    // fails (EAGAIN) before it can wait.
                    guard.clear_ready();
                    return Ok(());
                }
                Err(rustix::io::Errno::AGAIN) => guard.clear_ready(),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticker_wakes_close_to_the_deadline() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let t = Ticker::new().unwrap();
            let deadline = now_ns() + 3_000_000;
            t.sleep_until(deadline).await.unwrap();
            let late = now_ns() - deadline;
            // Never early; lateness is a machine property, bounded loosely here.
            assert!(now_ns() >= deadline);
            assert!(late < 50_000_000, "woke {late} ns late");
            t.sleep_until(0).await.unwrap(); // a past deadline returns at once
        });
    }
}
