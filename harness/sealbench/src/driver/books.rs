//! A shard's books: what it has counted and recorded, the windows that decide what is
//! recorded, and what is still owed to whom. Written by the shard and by every session
//! protocol through [`crate::driver::protocol::Ctx`]; read by the coordinator once a second.
//! No I/O, no clock of its own (the sampled crypto timers read the process clock).

use super::recorder::{Counters, Histograms, Metric};
use crate::clock::now_ns;
use sealcore::OpenError;
use sealcore::payload::Stamp;

/// Measure seal/open time for one message in this many (a clock read costs ~25 ns, a
/// seal a few hundred: timing every one would cost more than the 2 % budget).
pub const CRYPTO_SAMPLE: u64 = 16;

/// Why a message was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotOpened {
    /// The receiving end has no session (or key) for it yet, or never will.
    NotReady,
    /// The session refused it.
    Open(OpenError),
    /// It opened, but its franking commitment does not match the message and franking
    /// key decrypted (`crypto.franking`): not the message committed to.
    Franking,
}

/// The counters, histograms and windows of one shard.
#[derive(Debug)]
pub struct Books {
    /// Interval histograms (moved to the coordinator every second).
    pub hist: Histograms,
    /// Cumulative counters.
    pub counters: Counters,
    /// Histograms record samples whose intended time is at or after this (warm-up end)…
    pub measure_from: u64,
    /// …and before this (the measured window's end: a cool-down stage follows it).
    pub measure_until: u64,
    /// The steady start: no transport message of this run was due before it.
    pub send_from: u64,
    /// Messages sealed / opened so far: each kind is timed for one message in
    /// [`CRYPTO_SAMPLE`] (separate counters, so neither starves the other).
    seal_tick: u64,
    open_tick: u64,
    /// Sessions whose set-up has not ended, and group keys (or joins) not yet installed.
    pub handshakes_pending: usize,
    /// Group keys (or MLS joins) still to be installed.
    pub keys_pending: usize,
    /// When the first set-up started…
    pub hs_first: Option<u64>,
    /// …and when the last one finished.
    pub hs_last: u64,
    /// Per device: copies addressed to it and not yet received (at the end: held by the
    /// relay while it is offline, or lost while it is online).
    pub owed: Vec<u64>,
}

impl Books {
    /// Empty books for `devices` devices, with `handshakes` sessions and `keys` group keys
    /// to set up, histograms per `hist`'s tags.
    pub fn new(hist: Histograms, devices: usize, handshakes: usize, keys: usize) -> Self {
        Books {
            hist,
            counters: Counters::new(),
            measure_from: u64::MAX,
            measure_until: u64::MAX,
            send_from: u64::MAX,
            seal_tick: 0,
            open_tick: 0,
            handshakes_pending: handshakes,
            keys_pending: keys,
            hs_first: None,
            hs_last: 0,
            owed: vec![0; devices],
        }
    }

    /// A message intended at `t` belongs in the histograms (the measured window).
    #[inline]
    pub fn measures(&self, t: u64) -> bool {
        self.measure_from <= t && t < self.measure_until
    }

    /// Starts timing an open when it is the one in [`CRYPTO_SAMPLE`] that is timed: its start.
    #[inline]
    pub fn open_timer(&mut self) -> Option<u64> {
        let timed = self.open_tick.is_multiple_of(CRYPTO_SAMPLE);
        self.open_tick += 1;
        timed.then(now_ns)
    }

    /// Whether this seal is the one in [`CRYPTO_SAMPLE`] that is timed.
    #[inline]
    pub fn seal_timed(&mut self) -> bool {
        let t = self.seal_tick.is_multiple_of(CRYPTO_SAMPLE);
        self.seal_tick += 1;
        t
    }

    /// Set-up still under way: sessions, and the keys (or joins) of relay-fan-out groups.
    pub fn setting_up(&self) -> bool {
        self.handshakes_pending > 0 || self.keys_pending > 0
    }

    /// A set-up started at `now` (the first one dates the set-up phase).
    pub fn setup_started(&mut self, now: u64) {
        self.hs_first.get_or_insert(now);
    }

    /// A session's set-up ended well at `now`, after `took_ns` (recorded as `handshake`).
    pub fn handshake_done(&mut self, took_ns: u64, now: u64) {
        self.hist.record(Metric::Handshake, took_ns);
        self.counters.handshakes_ok += 1;
        self.hs_last = self.hs_last.max(now);
    }

    /// One group key (or join) arrived where it was expected.
    pub fn key_installed(&mut self) {
        self.counters.sender_keys += 1;
        self.keys_pending = self.keys_pending.saturating_sub(1);
    }

    /// A copy owed to `device` arrived (or will never be owed again).
    #[inline]
    pub fn received(&mut self, device: usize) {
        self.owed[device] = self.owed[device].saturating_sub(1);
    }

    /// Counts a message that could not be opened; passes on an authentic one, with its stamp
    /// only when the stamp can belong to this run.
    pub fn classify(&mut self, r: Result<(Stamp, bool), NotOpened>, now: u64) -> Option<(Option<Stamp>, bool)> {
        match r {
            // A stamp that cannot belong to this run (an independent client's, zeros or
            // anything: docs/PROTOCOL.md §3.1; or a clock gone wrong): the message is
            // authentic and delivered, but its timing is not this run's — counted, never
            // recorded as a latency.
            Ok((stamp, reordered)) if !stamp_fits(&stamp, self.send_from, now) => {
                self.counters.bad_timestamp += 1;
                return Some((None, reordered));
            }
            Ok((stamp, reordered)) => return Some((Some(stamp), reordered)),
            Err(NotOpened::NotReady) => self.counters.not_ready += 1,
            Err(NotOpened::Open(OpenError::Replay)) => self.counters.duplicated += 1,
            Err(NotOpened::Open(OpenError::Auth)) => self.counters.auth_failed += 1,
            Err(NotOpened::Open(OpenError::TooOld | OpenError::TooFarAhead)) => self.counters.too_old += 1,
            Err(NotOpened::Open(_)) => self.counters.malformed += 1,
            Err(NotOpened::Franking) => self.counters.franking_mismatch += 1,
        }
        None
    }
}

/// A message's stamp can belong to this run: due no earlier than the steady start, sent
/// no earlier than due, and neither in the future of its arrival (one process clock).
fn stamp_fits(stamp: &Stamp, send_from: u64, now: u64) -> bool {
    send_from <= stamp.intended_ns && stamp.intended_ns <= stamp.actual_ns && stamp.actual_ns <= now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_outside_the_run_do_not_fit() {
        let s = |intended_ns, actual_ns| Stamp { seq: 0, msg: 0, intended_ns, actual_ns };
        assert!(stamp_fits(&s(100, 150), 100, 200));
        assert!(!stamp_fits(&s(99, 150), 100, 200), "due before the run started sending");
        assert!(!stamp_fits(&s(120, 110), 100, 200), "sent before it was due");
        assert!(!stamp_fits(&s(120, 201), 100, 200), "sent after it arrived");
        assert!(!stamp_fits(&s(0, 0), 100, 200), "a zero stamp (another process, or forged)");
    }
}
