//! The cost of one timer wake-up as the driver's schedule takes it: a timerfd armed for a
//! moment ahead, the runtime parked in epoll until it fires, the timerfd read.

use crate::clock::{Ticker, now_ns, thread_cpu_ns};
use anyhow::{Context, Result};

/// How far ahead each wake-up is armed: short enough for the measurement to be quick,
/// long enough that the thread really parks.
const AHEAD_NS: u64 = 50_000;

/// CPU ns per wake-up over `n` wake-ups, on a current-thread runtime.
///
/// # Errors
/// When the runtime or the timerfd cannot be made.
pub fn measure(n: u32) -> Result<f64> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting a runtime")?;
    rt.block_on(async {
        let ticker = Ticker::new().context("creating a timerfd")?;
        let cpu0 = thread_cpu_ns();
        for _ in 0..n {
            ticker.sleep_until(now_ns() + AHEAD_NS).await?;
        }
        Ok((thread_cpu_ns() - cpu0) as f64 / f64::from(n.max(1)))
    })
}
