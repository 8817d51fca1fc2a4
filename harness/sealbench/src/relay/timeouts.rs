//! A connection's timeouts as one sans-IO state machine, driven by one timer: the caller
//! sleeps until [`Timeouts::deadline`], then calls [`Timeouts::fire`] and does what it
//! says. Reads only record their time ([`Timeouts::on_read`]); the timer is not reset on
//! the hot path: when it fires early (something was read meanwhile) it is simply re-armed.
//!
//! - Before HELLO: the connection is closed (1008) at `accepted + handshake_timeout`.
//! - After HELLO: silent for ½ `idle_timeout` → one WebSocket ping; silent for the whole
//!   `idle_timeout` → closed (4002). Anything read (a pong included) starts the silence
//!   over, so a client that answers pings is never closed for idleness.

use std::time::Duration;
use tokio::time::Instant;

/// What the timer decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fire {
    /// Nothing due: sleep until [`Timeouts::deadline`] again.
    Wait,
    /// Send a ping now.
    Ping,
    /// No HELLO within the handshake timeout: close (1008).
    NoHello,
    /// Silent for the idle timeout: close (4002).
    Idle,
}

/// The timeout state of one connection.
#[derive(Debug, Clone)]
pub struct Timeouts {
    idle: Duration,
    hello_by: Instant,
    registered: bool,
    last_read: Instant,
    pinged: bool,
}

impl Timeouts {
    /// A connection accepted at `accepted`.
    pub fn new(accepted: Instant, handshake_timeout: Duration, idle_timeout: Duration) -> Self {
        Timeouts {
            idle: idle_timeout,
            hello_by: accepted + handshake_timeout,
            registered: false,
            last_read: accepted,
            pinged: false,
        }
    }

    /// Something was read at `now`.
    #[inline]
    pub fn on_read(&mut self, now: Instant) {
        self.last_read = now;
        self.pinged = false;
    }

    /// HELLO succeeded at `now`: from here on the idle rules apply.
    pub fn on_registered(&mut self, now: Instant) {
        self.registered = true;
        self.on_read(now);
    }

    /// When the timer must fire next.
    pub fn deadline(&self) -> Instant {
        if !self.registered {
            self.hello_by
        } else if self.pinged {
            self.last_read + self.idle
        } else {
            self.last_read + self.idle / 2
        }
    }

    /// The timer fired at `now`.
    pub fn fire(&mut self, now: Instant) -> Fire {
        if !self.registered {
            return if now >= self.hello_by { Fire::NoHello } else { Fire::Wait };
        }
        if now >= self.last_read + self.idle {
            Fire::Idle
        } else if !self.pinged && now >= self.last_read + self.idle / 2 {
            self.pinged = true;
            Fire::Ping
        } else {
            Fire::Wait
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// Runs the timer as the connection does, with reads at the given offsets; returns
    /// what fired and when (offset from the start).
    fn run(t: &mut Timeouts, t0: Instant, reads: &[Duration], until: Duration) -> Vec<(Duration, Fire)> {
        let mut out = Vec::new();
        let mut reads = reads.iter().copied().peekable();
        loop {
            let d = t.deadline();
            if let Some(&r) = reads.peek()
                && t0 + r < d
            {
                reads.next();
                t.on_read(t0 + r);
                continue;
            }
            if d > t0 + until {
                return out;
            }
            let f = t.fire(d);
            if f != Fire::Wait {
                out.push((d - t0, f));
            }
            if matches!(f, Fire::Idle | Fire::NoHello) {
                return out;
            }
        }
    }

    #[test]
    fn no_hello_closes_at_the_handshake_timeout_not_the_idle_one() {
        let t0 = Instant::now();
        let mut t = Timeouts::new(t0, 2 * S, 60 * S);
        assert_eq!(run(&mut t, t0, &[S], 100 * S), vec![(2 * S, Fire::NoHello)]);
    }

    #[test]
    fn a_silent_client_is_pinged_at_half_and_closed_at_the_idle_timeout() {
        let t0 = Instant::now();
        let mut t = Timeouts::new(t0, 10 * S, 60 * S);
        t.on_registered(t0 + 3 * S);
        assert_eq!(run(&mut t, t0, &[], 1000 * S), vec![(33 * S, Fire::Ping), (63 * S, Fire::Idle)]);
    }

    #[test]
    fn a_client_that_answers_every_ping_is_never_closed() {
        let t0 = Instant::now();
        let mut t = Timeouts::new(t0, 10 * S, 60 * S);
        t.on_registered(t0);
        // Each ping (every 30 s of silence) is answered 5 s later.
        let mut reads = Vec::new();
        let mut at = Duration::ZERO;
        for _ in 0..100 {
            at += 35 * S;
            reads.push(at);
        }
        let fired = run(&mut t, t0, &reads, at);
        assert_eq!(fired.len(), 100);
        assert!(fired.iter().all(|(_, f)| *f == Fire::Ping), "{fired:?}");
    }

    #[test]
    fn traffic_defers_the_ping() {
        let t0 = Instant::now();
        let mut t = Timeouts::new(t0, 10 * S, 60 * S);
        t.on_registered(t0);
        let fired = run(&mut t, t0, &[20 * S, 40 * S], 200 * S);
        assert_eq!(fired, vec![(70 * S, Fire::Ping), (100 * S, Fire::Idle)]);
    }
}
