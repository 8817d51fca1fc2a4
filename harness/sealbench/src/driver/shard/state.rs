//! What one shard's tasks share: its clients, conversations, recorder and counters, and
//! the handling of every frame a client receives (single-threaded: `Rc<RefCell<State>>`).

use super::CRYPTO_SAMPLE;
use crate::clock::now_ns;
use crate::driver::ShardSpec;
use crate::driver::conversation::{Conversation, NotOpened};
use crate::driver::recorder::{Counters, Histograms, MAX_CODE, Metric};
use crate::driver::wire::{Incoming, RelayProtocol, RequestId, Side, Wire};
use bytes::Bytes;
use sealcore::OpenError;
use sealcore::payload::{self, E2eKind, Stamp};
use tokio::sync::mpsc;

/// One simulated client of this shard.
#[derive(Debug)]
pub(super) struct Client {
    /// Relay id.
    pub(super) id: u64,
    /// Its conversation (index into `convs`) and its end of it.
    pub(super) conv: usize,
    pub(super) side: Side,
    /// Its outgoing queue (None until connected, and after it died).
    pub(super) tx: Option<mpsc::Sender<Bytes>>,
}

/// Everything one shard's tasks share (single-threaded: `Rc<RefCell<_>>`).
pub(super) struct State {
    pub(super) clients: Vec<Client>,
    pub(super) convs: Vec<Conversation>,
    /// Interval histograms (moved to the coordinator every second).
    pub(super) hist: Histograms,
    /// Cumulative counters.
    pub(super) counters: Counters,
    /// Histograms record samples whose intended time is at or after this (warm-up end)…
    pub(super) measure_from: u64,
    /// …and before this (the measured window's end: a cool-down stage follows it).
    pub(super) measure_until: u64,
    /// The steady start: no transport message of this run was due before it.
    pub(super) send_from: u64,
    /// Shutting down: disconnects are expected.
    pub(super) closing: bool,
    pub(super) ack: bool,
    /// Messages sealed / opened so far: each kind is timed for one message in
    /// `CRYPTO_SAMPLE` (separate counters, so neither starves the other).
    pub(super) seal_tick: u64,
    pub(super) open_tick: u64,
    pub(super) connected: usize,
    pub(super) handshakes_pending: usize,
    /// Reused buffer for opening deliveries.
    pub(super) scratch: Vec<u8>,
    /// IK / NK: the initiator fetches the responder's key from the directory first.
    pub(super) needs_key: bool,
    /// Per conversation: its handshake has been started.
    pub(super) begun: Vec<bool>,
    /// When the first handshake started and the last one finished (initiator side).
    pub(super) hs_first: Option<u64>,
    pub(super) hs_last: u64,
    /// The first connect or registration failure, for the coordinator's error message.
    pub(super) first_error: Option<String>,
}

impl State {
    /// The state of a shard about to connect its clients: every conversation is pending
    /// until it is set up or has failed.
    pub(super) fn new(spec: &mut ShardSpec) -> Self {
        let convs = std::mem::take(&mut spec.convs);
        State {
            clients: spec.clients.iter().map(|c| Client { id: c.id, conv: c.conv, side: c.side, tx: None }).collect(),
            handshakes_pending: convs.len(),
            begun: vec![false; convs.len()],
            convs,
            hist: Histograms::new(),
            counters: Counters::new(),
            measure_from: u64::MAX,
            measure_until: u64::MAX,
            send_from: u64::MAX,
            closing: false,
            ack: spec.ack,
            seal_tick: 0,
            open_tick: 0,
            connected: 0,
            scratch: Vec::with_capacity(64 * 1024),
            needs_key: spec.plan.suite.pattern.needs_remote_static(),
            hs_first: None,
            hs_last: 0,
            first_error: None,
        }
    }

    /// Fails every conversation whose clients did not both connect.
    pub(super) fn fail_unbegun(&mut self) {
        for c in 0..self.convs.len() {
            if !self.begun[c] {
                self.fail_handshake(c);
            }
        }
    }

    /// Fails every conversation whose handshake has not ended with both transports.
    pub(super) fn fail_unfinished(&mut self) {
        for c in 0..self.convs.len() {
            if !self.convs[c].hs_finished || !self.convs[c].ready() {
                self.fail_handshake(c);
            }
        }
    }

    pub(super) fn send_to(&mut self, client: usize, frame: Bytes) -> bool {
        let Some(tx) = self.clients[client].tx.as_ref() else { return false };
        self.counters.bytes_sent += frame.len() as u64;
        tx.try_send(frame).is_ok()
    }

    pub(super) fn on_frame(&mut self, client: usize, data: Bytes, now: u64) {
        self.counters.bytes_received += data.len() as u64;
        match Wire::decode(&data) {
            Incoming::Deliver { body_at } => self.on_deliver(client, data, body_at, now),
            Incoming::Ack(request) => self.on_ack(request, now),
            Incoming::Refused { request: RequestId::Message { .. }, code } => {
                self.counters.refused[(code as usize).min(MAX_CODE - 1)] += 1;
            }
            Incoming::Refused { code, .. } => {
                self.counters.other_errors += 1;
                tracing::debug!(code, "relay error on a control frame");
            }
            Incoming::Key { key, .. } => {
                let c = self.clients[client].conv;
                if let Ok(k) = <[u8; 32]>::try_from(key) {
                    self.convs[c].remote_static = Some(k);
                    self.start_handshake(c, now);
                } else {
                    self.fail_handshake(c);
                }
            }
            Incoming::Unexpected | Incoming::Malformed => self.counters.malformed += 1,
        }
    }

    fn on_ack(&mut self, request: RequestId, now: u64) {
        let RequestId::Message { conv, side, seq } = request else { return };
        if let Some(c) = self.conv_index(conv) {
            if let Some(t) = self.convs[c].sent_at(side, seq) {
                if self.measures(t) {
                    self.hist.record(Metric::RelayAck, now.saturating_sub(t));
                }
            }
        }
    }

    /// A message intended at `t` belongs in the histograms (the measured window).
    #[inline]
    pub(super) fn measures(&self, t: u64) -> bool {
        self.measure_from <= t && t < self.measure_until
    }

    fn conv_index(&self, conv_id: u32) -> Option<usize> {
        // Conversations of a shard are sorted by id.
        self.convs.binary_search_by_key(&conv_id, |c| c.id).ok()
    }

    fn on_deliver(&mut self, client: usize, data: Bytes, body_at: usize, now: u64) {
        // Open in a reused scratch buffer: the frame is a slice of tungstenite's shared
        // read buffer, so it cannot be opened in place, and a copy per message must not
        // cost an allocation.
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        buf.extend_from_slice(&data);
        self.on_deliver_in(client, &mut buf, body_at, now);
        self.scratch = buf;
    }

    fn on_deliver_in(&mut self, client: usize, buf: &mut [u8], body_at: usize, now: u64) {
        let Some(body) = buf.get_mut(body_at..) else {
            self.counters.malformed += 1;
            return;
        };
        let Ok((kind, conv_id, _)) = payload::parse_e2e(body) else {
            self.counters.malformed += 1;
            return;
        };
        let (c, side) = (self.clients[client].conv, self.clients[client].side);
        if self.convs[c].id != conv_id {
            self.counters.malformed += 1;
            return;
        }
        let data = &mut body[payload::E2E_HEADER_LEN..];
        match kind {
            E2eKind::Transport => self.on_transport(c, side, data, now),
            E2eKind::Handshake => self.on_handshake_message(c, side, data, now),
            _ => self.counters.malformed += 1,
        }
    }

    /// A transport message for `side` of conversation `c`: opened in place, classified,
    /// and (from the warm-up's end) its latencies recorded.
    fn on_transport(&mut self, c: usize, side: Side, data: &mut [u8], now: u64) {
        let timed = self.open_tick % CRYPTO_SAMPLE == 0;
        self.open_tick += 1;
        let t0 = if timed { now_ns() } else { 0 };
        match self.convs[c].open(side, data) {
            // A stamp that cannot belong to this run (sent before it started sending, or
            // "in the future"): authentic bytes, impossible timing — counted, never
            // recorded as a latency.
            Ok((stamp, _)) if !stamp_fits(&stamp, self.send_from, now) => self.counters.bad_timestamp += 1,
            Ok((stamp, reordered)) => {
                let done = now_ns();
                self.counters.delivered += 1;
                if reordered {
                    self.counters.reordered += 1;
                }
                if self.measures(stamp.intended_ns) {
                    if timed {
                        self.hist.record(Metric::Open, done - t0);
                    }
                    self.hist.record(Metric::E2e, now.saturating_sub(stamp.intended_ns));
                    self.hist.record(Metric::E2eRaw, now.saturating_sub(stamp.actual_ns));
                }
            }
            Err(NotOpened::NotReady) => self.counters.not_ready += 1,
            Err(NotOpened::Open(OpenError::Replay)) => self.counters.duplicated += 1,
            Err(NotOpened::Open(OpenError::Auth)) => self.counters.auth_failed += 1,
            Err(NotOpened::Open(OpenError::TooOld | OpenError::TooFarAhead)) => self.counters.too_old += 1,
            Err(NotOpened::Open(_)) => self.counters.malformed += 1,
        }
    }

    /// A handshake message for `side` of conversation `c`: answered through the relay,
    /// and the handshake's time recorded when the initiator's transport is ready.
    fn on_handshake_message(&mut self, c: usize, side: Side, data: &[u8], now: u64) {
        let settled_before = self.convs[c].hs_finished;
        let result = self.convs[c].on_handshake(side, data, now);
        if !settled_before && self.convs[c].hs_finished {
            // Both ends now hold their transports: the conversation is set up.
            self.handshakes_pending = self.handshakes_pending.saturating_sub(1);
        }
        match result {
            Ok(p) => {
                if let Some(out) = p.reply {
                    let from = self.convs[c].client(out.from);
                    self.send_to(from, out.frame.freeze());
                }
                if let Some(ns) = p.initiator_done_ns {
                    self.hist.record(Metric::Handshake, ns);
                    self.counters.handshakes_ok += 1;
                    self.hs_last = self.hs_last.max(now);
                }
            }
            Err(e) => {
                tracing::debug!(conversation = self.convs[c].id, error = %e, "handshake failed");
                self.fail_handshake(c);
            }
        }
    }

    pub(super) fn fail_handshake(&mut self, c: usize) {
        if !self.convs[c].hs_finished {
            self.convs[c].hs_finished = true;
            self.counters.handshakes_failed += 1;
            self.handshakes_pending = self.handshakes_pending.saturating_sub(1);
        }
    }

    /// Starts conversation `c`'s handshake once both its clients are connected — as soon as
    /// they are, so that a paced connect phase gives paced handshakes (and `connect_rate = 0`
    /// a storm).
    pub(super) fn begin(&mut self, c: usize, now: u64) {
        let (ini, resp) = (self.convs[c].initiator, self.convs[c].responder);
        if self.begun[c] || self.clients[ini].tx.is_none() || self.clients[resp].tx.is_none() {
            return;
        }
        self.begun[c] = true;
        if self.needs_key {
            let fetch = Wire::key_fetch(RequestId::Control(c as u32), self.clients[resp].id);
            self.hs_first.get_or_insert(now);
            if !self.send_to(ini, fetch) {
                self.fail_handshake(c);
            }
        } else {
            self.start_handshake(c, now);
        }
    }

    pub(super) fn start_handshake(&mut self, c: usize, now: u64) {
        self.hs_first.get_or_insert(now);
        match self.convs[c].start(now) {
            Ok(out) => {
                let from = self.convs[c].initiator;
                if !self.send_to(from, out.frame.freeze()) {
                    self.fail_handshake(c);
                }
            }
            Err(_) => self.fail_handshake(c),
        }
    }

    pub(super) fn on_disconnect(&mut self, client: usize) {
        self.clients[client].tx = None;
        self.connected = self.connected.saturating_sub(1);
        if !self.closing {
            self.counters.disconnects += 1;
        }
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
        let s = |intended_ns, actual_ns| Stamp { seq: 0, intended_ns, actual_ns };
        assert!(stamp_fits(&s(100, 150), 100, 200));
        assert!(!stamp_fits(&s(99, 150), 100, 200), "due before the run started sending");
        assert!(!stamp_fits(&s(120, 110), 100, 200), "sent before it was due");
        assert!(!stamp_fits(&s(120, 201), 100, 200), "sent after it arrived");
        assert!(!stamp_fits(&s(0, 0), 100, 200), "a zero stamp (another process, or forged)");
    }
}
