//! A sliding replay window over 64-bit message counters (the IPsec / WireGuard scheme):
//! a fixed bitmap, no allocation, O(1) per message.
//!
//! The window only *checks* before decryption and is *marked* after a message
//! authenticates, so a forged message can never move it.

/// How many counters below the highest accepted one are still accepted (out of order).
pub const WINDOW: u64 = 1024;
const WORDS: usize = (WINDOW / 64) as usize;

/// Why a counter was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This counter was already accepted: a replay or a duplicate.
    Replay,
    /// The counter is further behind the newest accepted one than the window reaches.
    TooOld,
}

/// The replay window of one receiving direction.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    /// One past the highest accepted counter (0 before the first message).
    top: u64,
    /// Bit `c % WINDOW` is set when counter `c` (within the window) was accepted.
    bits: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    /// An empty window.
    pub const fn new() -> Self {
        ReplayWindow { top: 0, bits: [0; WORDS] }
    }

    /// One past the highest accepted counter.
    pub fn top(&self) -> u64 {
        self.top
    }

    fn bit(c: u64) -> (usize, u64) {
        let i = c % WINDOW;
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    /// May counter `c` be accepted? Does not change the window.
    ///
    /// # Errors
    /// [`Refusal::Replay`] when `c` was accepted before, [`Refusal::TooOld`] when it fell out
    /// of the window.
    #[inline]
    pub fn check(&self, c: u64) -> Result<(), Refusal> {
        if c >= self.top {
            return Ok(());
        }
        if self.top - c > WINDOW {
            return Err(Refusal::TooOld);
        }
        let (w, m) = Self::bit(c);
        if self.bits[w] & m != 0 { Err(Refusal::Replay) } else { Ok(()) }
    }

    /// Records counter `c` as accepted. Call only after [`check`](Self::check) passed and
    /// the message authenticated.
    #[inline]
    pub fn mark(&mut self, c: u64) {
        if c >= self.top {
            let advance = c + 1 - self.top;
            if advance >= WINDOW {
                self.bits = [0; WORDS];
            } else {
                for k in self.top..=c {
                    let (w, m) = Self::bit(k);
                    self.bits[w] &= !m;
                }
            }
            self.top = c + 1;
        }
        let (w, m) = Self::bit(c);
        self.bits[w] |= m;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_window_accepts_out_of_order_once_and_refuses_old() {
        let mut w = ReplayWindow::new();
        for c in [5u64, 3, 4, 0, 10] {
            assert_eq!(w.check(c), Ok(()));
            w.mark(c);
            assert_eq!(w.check(c), Err(Refusal::Replay));
        }
        assert_eq!(w.check(1), Ok(()));
        w.mark(2000);
        assert_eq!(w.check(10), Err(Refusal::TooOld));
        assert_eq!(w.check(2000 - WINDOW + 1), Ok(()));
        assert_eq!(w.check(2000), Err(Refusal::Replay));
        // A big jump clears bits that belonged to old counters sharing a slot.
        assert_eq!(w.check(2000 + WINDOW), Ok(()));
    }
}
