//! What one shard's tasks share: its devices (clients), conversations, pairwise sessions,
//! recorder and counters, and the handling of every frame a device receives
//! (single-threaded: `Rc<RefCell<State>>`).

use super::CRYPTO_SAMPLE;
use super::out::{Out, Sent};
use crate::clock::now_ns;
use crate::driver::ShardSpec;
use crate::driver::chat::Chat;
use crate::driver::conversation::{Conversation, NotOpened, Opened};
use crate::driver::recorder::tags::TagId;
use crate::driver::recorder::{Counters, Histograms, MAX_CODE, Metric};
use crate::driver::wire::{Incoming, RelayProtocol, RequestId, Side, Wire};
use bytes::{Bytes, BytesMut};
use sealcore::payload::{self, E2eKind, Stamp};
use sealcore::{OpenError, SenderKey};
use std::net::Ipv4Addr;
use std::task::Waker;

/// One simulated device of this shard: one client, one connection at a time.
#[derive(Debug)]
pub(super) struct Client {
    /// Relay id.
    pub(super) id: u64,
    /// Its conversation (index into `chats`) and its position among the conversation's devices.
    pub(super) chat: usize,
    pub(super) pos: usize,
    pub(super) source: Ipv4Addr,
    /// Sessions it is an end of.
    pub(super) sessions: Vec<usize>,
    /// Its connection's sending side: `Some` while online.
    pub(super) tx: Option<Out>,
    /// Which connection is current (a reader of an older one must not take it down).
    pub(super) generation: u32,
    /// Held offline by the stages' connected-client target (churn does not bring it back).
    pub(super) parked: bool,
    /// Copies addressed to it and not yet received (at the end: held by the relay while
    /// it is offline, or lost while it is online).
    pub(super) owed: u64,
    /// Stored messages announced by its last WELCOME and not yet received, and when.
    pub(super) stored_left: u32,
    pub(super) welcome_ns: u64,
}

/// Everything one shard's tasks share (single-threaded: `Rc<RefCell<_>>`).
pub(super) struct State {
    pub(super) clients: Vec<Client>,
    /// Pairwise sessions, sorted by id.
    pub(super) convs: Vec<Conversation>,
    pub(super) chats: Vec<Chat>,
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
    /// Sessions whose handshake has not ended, and sender keys not yet installed.
    pub(super) handshakes_pending: usize,
    pub(super) keys_pending: usize,
    /// Reused buffers for opening deliveries and sealing control messages.
    pub(super) scratch: Vec<u8>,
    pub(super) out: BytesMut,
    /// IK / NK: the initiator fetches the responder's key from the directory first.
    pub(super) needs_key: bool,
    /// Frames a device's queue holds (enough for the largest fan-out).
    pub(super) queue: usize,
    /// Clients written to since the last flush (each once), and the task that flushes
    /// them when frames were written outside the schedule's batches (replies).
    pub(super) dirty: Vec<usize>,
    pub(super) flusher: Option<Waker>,
    /// The schedule is sending a batch and flushes it itself (the flusher is not woken).
    pub(super) batching: bool,
    /// Per session: its handshake has been started.
    pub(super) begun: Vec<bool>,
    /// When the first handshake started and the last one finished (initiator side).
    pub(super) hs_first: Option<u64>,
    pub(super) hs_last: u64,
    /// The first connect or registration failure, for the coordinator's error message.
    pub(super) first_error: Option<String>,
    /// `crypto.protocol = "olm"`: accounts and session set-up (None for Noise).
    #[cfg(feature = "olm")]
    pub(super) olm: Option<super::olm::OlmShard>,
    /// `crypto.protocol = "mls"`: which devices' key packages are published.
    #[cfg(feature = "mls")]
    pub(super) mls: Option<super::mls::MlsShard>,
}

impl State {
    /// The state of a shard about to connect its clients: every session is pending until
    /// it is set up or has failed.
    ///
    /// # Errors
    /// When the OS has no randomness for sender keys.
    pub(super) fn new(spec: &mut ShardSpec, tags: &dyn Fn(&Chat) -> Vec<TagId>) -> Result<Self, getrandom::Error> {
        let convs = std::mem::take(&mut spec.convs);
        let (suite, mode) = (spec.plan.suite, spec.plan.mode);
        let crypto = &spec.plan.scenario.crypto;
        let megolm_rotate = (crypto.protocol == sealproto::Protocol::Megolm).then_some(crypto.megolm_rotate_after);
        let mut chats = Vec::with_capacity(spec.chats.len());
        for c in &spec.chats {
            #[allow(unused_mut)]
            let mut chat = Chat::new(c, suite, mode, megolm_rotate)?;
            #[cfg(feature = "megolm")]
            {
                chat.megolm = chat.megolm.take().map(|g| g.with_leaves(crypto.megolm_leave_every));
            }
            #[cfg(feature = "mls")]
            if crypto.protocol == sealproto::Protocol::Mls && chat.sender_keys.is_some() {
                let ids: Vec<u64> = (0..chat.devices).map(|p| spec.clients[c.first_client + p].id).collect();
                chat.sender_keys = None;
                chat.mls = crate::driver::mls::MlsGroupState::new(&ids, c.sending, crypto.mls_self_update_every)
                    .ok()
                    .map(|g| g.with_churn(crypto.mls_churn_every));
            }
            chat.tags = tags(&chat);
            chats.push(chat);
        }
        let mut clients: Vec<Client> = spec
            .clients
            .iter()
            .map(|c| Client {
                id: c.id,
                chat: c.chat,
                pos: c.pos,
                source: c.source,
                sessions: Vec::new(),
                tx: None,
                generation: 0,
                parked: false,
                owed: 0,
                stored_left: 0,
                welcome_ns: 0,
            })
            .collect();
        for (i, s) in convs.iter().enumerate() {
            clients[s.initiator].sessions.push(i);
            clients[s.responder].sessions.push(i);
        }
        let protocol = spec.plan.scenario.crypto.protocol;
        #[cfg(feature = "olm")]
        let (n_clients, n_sessions) = (clients.len(), convs.len());
        Ok(State {
            clients,
            handshakes_pending: convs.len(),
            keys_pending: chats.iter().map(Chat::keys_expected).sum(),
            begun: vec![false; convs.len()],
            convs,
            chats,
            hist: Histograms::with_tags(spec.plan.tags()),
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
            out: BytesMut::with_capacity(4 * 1024),
            needs_key: spec.plan.suite.pattern.needs_remote_static() && protocol == sealproto::Protocol::Noise,
            queue: spec.plan.max_copies() + super::QUEUE,
            dirty: Vec::with_capacity(n_clients),
            flusher: None,
            batching: false,
            hs_first: None,
            hs_last: 0,
            first_error: None,
            #[cfg(feature = "olm")]
            olm: matches!(protocol, sealproto::Protocol::Olm | sealproto::Protocol::Megolm)
                .then(|| super::olm::OlmShard::new(n_clients, n_sessions)),
            #[cfg(feature = "mls")]
            mls: (protocol == sealproto::Protocol::Mls).then(|| super::mls::MlsShard::new(n_clients)),
        })
    }

    /// Set-up still under way: handshakes, and sender keys of relay-fan-out groups.
    pub(super) fn setting_up(&self) -> bool {
        self.handshakes_pending > 0 || self.keys_pending > 0
    }

    /// Fails every session whose devices did not both connect.
    pub(super) fn fail_unbegun(&mut self) {
        for c in 0..self.convs.len() {
            if !self.begun[c] {
                self.fail_handshake(c);
            }
        }
    }

    /// Fails every session whose handshake has not ended with both transports.
    pub(super) fn fail_unfinished(&mut self) {
        for c in 0..self.convs.len() {
            if !self.convs[c].hs_finished || !self.convs[c].ready() {
                self.fail_handshake(c);
            }
        }
    }

    /// Writes `frame` into `client`'s connection (sent at the next flush); false when it
    /// is offline or its connection broke (data messages check `capacity` first; control frames
    /// are taken past it, never dropped for a full backlog).
    pub(super) fn send_to(&mut self, client: usize, frame: Bytes) -> bool {
        let Some(tx) = self.clients[client].tx.as_ref() else { return false };
        self.counters.bytes_sent += frame.len() as u64;
        match tx.send(frame) {
            Sent::Dirty => {
                if self.dirty.is_empty()
                    && !self.batching
                    && let Some(w) = self.flusher.take()
                {
                    w.wake(); // runs after the tasks already due: one flush for all of them
                }
                self.dirty.push(client);
                true
            }
            Sent::Taken => true,
            Sent::Refused => false,
        }
    }

    /// Flushes every connection written to since the last flush: one write each.
    pub(super) fn flush_dirty(&mut self) {
        for k in 0..self.dirty.len() {
            if let Some(tx) = self.clients[self.dirty[k]].tx.as_ref() {
                tx.flush();
            }
        }
        self.dirty.clear();
    }

    pub(super) fn on_frame(&mut self, client: usize, data: Bytes, now: u64) {
        self.counters.bytes_received += data.len() as u64;
        let incoming = Wire::decode(&data);
        #[cfg(feature = "olm")]
        if self.on_olm_frame(&incoming, now) {
            return;
        }
        #[cfg(feature = "mls")]
        if self.on_mls_frame(&incoming, now) {
            return;
        }
        match incoming {
            Incoming::Deliver { body_at, sender, stored } => {
                self.on_deliver(client, &data, Delivery { body_at, sender, stored }, now);
            }
            Incoming::Ack(request) => self.on_ack(request, now),
            Incoming::Refused { request: RequestId::Message { conv, side, .. }, code } => {
                self.counters.refused[(code as usize).min(MAX_CODE - 1)] += 1;
                if let Some(s) = self.conv_index(conv) {
                    let to = self.convs[s].client(side.peer());
                    self.clients[to].owed = self.clients[to].owed.saturating_sub(1);
                }
            }
            Incoming::Refused { request: RequestId::Group(_), code } => {
                self.counters.group_refusals += 1;
                tracing::debug!(code, "relay refused a group send");
            }
            Incoming::Refused { code, .. } => {
                self.counters.other_errors += 1;
                tracing::debug!(code, "relay error on a control frame");
            }
            Incoming::Key { request: RequestId::Control(c), key } if (c as usize) < self.convs.len() => {
                let c = c as usize;
                if let Ok(k) = <[u8; 32]>::try_from(key) {
                    self.convs[c].remote_static = Some(k);
                    self.start_handshake(c, now);
                } else {
                    self.fail_handshake(c);
                }
            }
            Incoming::Key { .. }
            | Incoming::Claimed { .. }
            | Incoming::PoolStatus { .. }
            | Incoming::Unexpected
            | Incoming::Malformed => self.counters.malformed += 1,
        }
    }

    fn on_ack(&mut self, request: RequestId, now: u64) {
        let RequestId::Message { conv, side, seq } = request else { return };
        if let Some(c) = self.conv_index(conv)
            && let Some(t) = self.convs[c].sent_at(side, seq)
            && self.measures(t)
        {
            self.hist.record(Metric::RelayAck, now.saturating_sub(t));
        }
    }

    /// Starts timing an open when it is the one in `CRYPTO_SAMPLE` that is timed: its start.
    pub(super) fn open_timer(&mut self) -> Option<u64> {
        let timed = self.open_tick.is_multiple_of(CRYPTO_SAMPLE);
        self.open_tick += 1;
        timed.then(now_ns)
    }

    /// A message intended at `t` belongs in the histograms (the measured window).
    #[inline]
    pub(super) fn measures(&self, t: u64) -> bool {
        self.measure_from <= t && t < self.measure_until
    }

    fn conv_index(&self, conv_id: u32) -> Option<usize> {
        // Sessions of a shard are sorted by id.
        self.convs.binary_search_by_key(&conv_id, |c| c.id).ok()
    }

    fn on_deliver(&mut self, client: usize, data: &[u8], d: Delivery, now: u64) {
        // Open in a reused scratch buffer: the frame is a slice of tungstenite's shared
        // read buffer, so it cannot be opened in place, and a copy per message must not
        // cost an allocation.
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        buf.extend_from_slice(data);
        if d.stored {
            self.on_stored(client, now);
        }
        self.on_deliver_in(client, &mut buf, d, now);
        self.scratch = buf;
    }

    /// A stored message reached a reconnected device: the last one ends its mailbox drain.
    fn on_stored(&mut self, client: usize, now: u64) {
        let c = &mut self.clients[client];
        if c.stored_left > 0 {
            c.stored_left -= 1;
            let welcome = c.welcome_ns;
            if c.stored_left == 0 && self.measures(welcome) {
                self.hist.record(Metric::MailboxDrain, now.saturating_sub(welcome));
            }
        }
    }

    fn on_deliver_in(&mut self, client: usize, buf: &mut [u8], d: Delivery, now: u64) {
        let Some(body) = buf.get_mut(d.body_at..) else {
            self.counters.malformed += 1;
            return;
        };
        let Ok((kind, conv_id, _)) = payload::parse_e2e(body) else {
            self.counters.malformed += 1;
            return;
        };
        let data = &mut body[payload::E2E_HEADER_LEN..];
        if kind == E2eKind::Group {
            self.on_group(client, conv_id, d, data, now);
            return;
        }
        #[cfg(feature = "mls")]
        if matches!(kind, E2eKind::MlsWelcome | E2eKind::MlsCommit) {
            return self.on_mls_control(client, kind, conv_id, data, now);
        }
        let Some(s) = self.conv_index(conv_id) else {
            self.counters.malformed += 1;
            return;
        };
        let side = if self.convs[s].initiator == client {
            Side::Initiator
        } else if self.convs[s].responder == client {
            Side::Responder
        } else {
            self.counters.malformed += 1;
            return;
        };
        match kind {
            E2eKind::Transport => self.on_transport(s, side, data, d.stored, now),
            E2eKind::Handshake => self.on_handshake_message(s, side, data, now),
            E2eKind::SenderKey => self.on_sender_key(s, side, data),
            #[cfg(feature = "olm")]
            E2eKind::Olm => self.on_transport(s, side, data, d.stored, now),
            #[cfg(feature = "olm")]
            E2eKind::OlmSetup => self.on_olm_setup(s, side, data, now),
            _ => self.counters.malformed += 1,
        }
    }

    /// A transport message for `side` of session `s`: opened in place, classified, and
    /// (from the warm-up's end) its latencies recorded.
    fn on_transport(&mut self, s: usize, side: Side, data: &mut [u8], stored: bool, now: u64) {
        let timed = self.open_tick.is_multiple_of(CRYPTO_SAMPLE);
        self.open_tick += 1;
        let t0 = if timed { now_ns() } else { 0 };
        let result = self.convs[s].open(side, data).map(|o| (o.stamp, o.reordered));
        let (to, from) = (self.convs[s].client(side), self.convs[s].client(side.peer()));
        if let Some((stamp, reordered)) = self.classify(result, now) {
            self.clients[to].owed = self.clients[to].owed.saturating_sub(1);
            let chat = self.clients[to].chat;
            let sender_pos = self.clients[from].pos;
            self.delivered(chat, sender_pos, stamp, reordered, stored, now, timed.then_some(t0));
        }
    }

    /// Counts a message that could not be opened (or whose stamp cannot belong to this
    /// run); passes on an authentic one.
    pub(super) fn classify(&mut self, r: Result<(Stamp, bool), NotOpened>, now: u64) -> Option<(Stamp, bool)> {
        match r {
            // A stamp that cannot belong to this run (sent before it started sending, or
            // "in the future"): authentic bytes, impossible timing — counted, never
            // recorded as a latency.
            Ok((stamp, _)) if !stamp_fits(&stamp, self.send_from, now) => self.counters.bad_timestamp += 1,
            Ok(ok) => return Some(ok),
            Err(NotOpened::NotReady) => self.counters.not_ready += 1,
            Err(NotOpened::Open(OpenError::Replay)) => self.counters.duplicated += 1,
            Err(NotOpened::Open(OpenError::Auth)) => self.counters.auth_failed += 1,
            Err(NotOpened::Open(OpenError::TooOld | OpenError::TooFarAhead)) => self.counters.too_old += 1,
            Err(NotOpened::Open(_)) => self.counters.malformed += 1,
        }
        None
    }

    /// Records one delivered copy of a message of conversation `chat` sent by the device at
    /// `sender_pos`: online or offline latency by class, and the fan-out it completes.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn delivered(
        &mut self,
        chat: usize,
        sender_pos: usize,
        stamp: Stamp,
        reordered: bool,
        stored: bool,
        now: u64,
        open_started: Option<u64>,
    ) {
        self.counters.delivered += 1;
        if reordered {
            self.counters.reordered += 1;
        }
        let measured = self.measures(stamp.intended_ns);
        let chat = &mut self.chats[chat];
        let arrival = if stored { Default::default() } else { chat.outboxes[sender_pos].arrived(stamp.msg, now) };
        if !measured {
            return;
        }
        let tags = &chat.tags;
        if let Some(t0) = open_started {
            self.hist.record(Metric::Open, now_ns() - t0);
        }
        if stored {
            self.hist.record_tagged(Metric::OfflineE2e, tags, now.saturating_sub(stamp.intended_ns));
            return;
        }
        self.hist.record_tagged(Metric::E2e, tags, now.saturating_sub(stamp.intended_ns));
        self.hist.record_tagged(Metric::E2eRaw, tags, now.saturating_sub(stamp.actual_ns));
        if let Some(ns) = arrival.first_ns {
            self.hist.record_tagged(Metric::FanoutFirst, tags, ns);
        }
        if let Some(ns) = arrival.last_ns {
            self.hist.record_tagged(Metric::FanoutLast, tags, ns);
        }
    }

    /// A group message (relay fan-out) for `client`: opened with its sender's key.
    fn on_group(&mut self, client: usize, chat_id: u32, d: Delivery, data: &mut [u8], now: u64) {
        #[cfg(feature = "megolm")]
        if self.chats[self.clients[client].chat].megolm.is_some() {
            return self.on_megolm_group(client, chat_id, d, data, now);
        }
        #[cfg(feature = "mls")]
        if self.chats[self.clients[client].chat].mls.is_some() {
            return self.on_mls_group(client, chat_id, d, data, now);
        }
        let Some((chat, pos, sender)) = self.group_sender(client, chat_id, d) else { return };
        let t0 = self.open_timer();
        let sending = self.chats[chat].sending;
        let Some(keys) = self.chats[chat].sender_keys.as_mut() else {
            self.counters.malformed += 1;
            return;
        };
        let slot = pos * sending + sender;
        let result = match keys.inbound[slot].as_mut() {
            None => Err(NotOpened::NotReady),
            Some(rx) => rx.open(data).map_err(NotOpened::Open).and_then(|pt| {
                let stamp = Stamp::read(pt).map_err(|_| NotOpened::Open(OpenError::Truncated))?;
                let reordered = keys.max_rx[slot].is_some_and(|m| stamp.msg < m);
                if !reordered {
                    keys.max_rx[slot] = Some(stamp.msg);
                }
                Ok((stamp, reordered))
            }),
        };
        if let Some((stamp, reordered)) = self.classify(result, now) {
            self.clients[client].owed = self.clients[client].owed.saturating_sub(1);
            self.delivered(chat, sender, stamp, reordered, d.stored, now, t0);
        }
    }

    /// The conversation, the recipient's position and the sender's position of a group
    /// message delivered to `client`; None (counted as malformed) when the sender is not a
    /// sending member or the message names another conversation.
    pub(super) fn group_sender(&mut self, client: usize, chat_id: u32, d: Delivery) -> Option<(usize, usize, usize)> {
        let (chat, pos) = (self.clients[client].chat, self.clients[client].pos);
        let first = self.chats[chat].first_client;
        let clients = &self.clients;
        let sender = self.chats[chat].sender_position(d.sender, |p| clients[first + p].id);
        match (sender, self.chats[chat].id == chat_id) {
            (Some(sender), true) => Some((chat, pos, sender)),
            _ => {
                self.counters.malformed += 1;
                None
            }
        }
    }

    /// A sender key for `side` of session `s`: installed for the group's sender.
    fn on_sender_key(&mut self, s: usize, side: Side, data: &mut [u8]) {
        #[cfg(feature = "megolm")]
        if self.chats[self.clients[self.convs[s].client(side)].chat].megolm.is_some() {
            return self.on_megolm_key(s, side, data);
        }
        let (to, from) = (self.convs[s].client(side), self.convs[s].client(side.peer()));
        let key = match self.convs[s].open(side, data) {
            Ok(Opened { rest, .. }) => <[u8; 32]>::try_from(rest.get(..32).unwrap_or(&[])).ok(),
            Err(_) => None,
        };
        let (chat, pos, sender) = (self.clients[to].chat, self.clients[to].pos, self.clients[from].pos);
        let sending = self.chats[chat].sending;
        let Some(keys) = self.chats[chat].sender_keys.as_mut() else {
            self.counters.malformed += 1;
            return;
        };
        let (Some(key), true) = (key, sender < sending) else {
            self.counters.malformed += 1;
            return;
        };
        let slot = &mut keys.inbound[pos * sending + sender];
        if slot.is_none() {
            let suite = self.convs[s].suite();
            *slot = Some(SenderKey::new(suite.backend, suite.aead, self.convs[s].mode(), &key).receiver());
            self.counters.sender_keys += 1;
            self.keys_pending = self.keys_pending.saturating_sub(1);
        }
    }

    /// A handshake message for `side` of session `s`: answered through the relay, and the
    /// handshake's time recorded when the initiator's transport is ready.
    fn on_handshake_message(&mut self, s: usize, side: Side, data: &[u8], now: u64) {
        let settled_before = self.convs[s].hs_finished;
        let result = self.convs[s].on_handshake(side, data, now);
        if !settled_before && self.convs[s].hs_finished {
            // Both ends now hold their transports: the session is set up.
            self.handshakes_pending = self.handshakes_pending.saturating_sub(1);
        }
        match result {
            Ok(p) => {
                if let Some(out) = p.reply {
                    let from = self.convs[s].client(out.from);
                    self.send_to(from, out.frame.freeze());
                }
                if let Some(ns) = p.initiator_done_ns {
                    self.hist.record(Metric::Handshake, ns);
                    self.counters.handshakes_ok += 1;
                    self.hs_last = self.hs_last.max(now);
                }
                if self.convs[s].ready() && !settled_before {
                    self.hand_out_sender_keys(s, now);
                }
            }
            Err(e) => {
                tracing::debug!(session = self.convs[s].id, error = %e, "handshake failed");
                self.fail_handshake(s);
            }
        }
    }

    /// Relay fan-out: once session `s` is up, each of its ends that sends in the group
    /// hands its sender key to the other over it.
    pub(super) fn hand_out_sender_keys(&mut self, s: usize, now: u64) {
        #[cfg(feature = "megolm")]
        if self.chats[self.clients[self.convs[s].initiator].chat].megolm.is_some() {
            return self.hand_out_megolm_keys(s, now);
        }
        for side in Side::BOTH {
            let from = self.convs[s].client(side);
            let (chat, pos) = (self.clients[from].chat, self.clients[from].pos);
            let Some(keys) = self.chats[chat].sender_keys.as_ref() else { return };
            let Some(key) = keys.keys.get(pos).copied() else { continue };
            let mut out = std::mem::take(&mut self.out);
            if self.convs[s].seal_sender_key(side, &key, now, &mut out).is_ok() {
                let frame = out.split().freeze();
                self.send_to(from, frame);
            }
            self.out = out;
        }
    }

    pub(super) fn fail_handshake(&mut self, s: usize) {
        if !self.convs[s].hs_finished {
            self.convs[s].hs_finished = true;
            self.counters.handshakes_failed += 1;
            self.handshakes_pending = self.handshakes_pending.saturating_sub(1);
        }
    }

    /// Starts the handshake of every session of `client` whose other device is connected
    /// too — as soon as it is, so that a paced connect phase gives paced handshakes (and
    /// `connect_rate = 0` a storm).
    pub(super) fn begin_sessions_of(&mut self, client: usize, now: u64) {
        for k in 0..self.clients[client].sessions.len() {
            let s = self.clients[client].sessions[k];
            self.begin(s, now);
        }
    }

    fn begin(&mut self, s: usize, now: u64) {
        #[cfg(feature = "olm")]
        if self.olm.is_some() {
            return self.begin_olm(s, now);
        }
        let (ini, resp) = (self.convs[s].initiator, self.convs[s].responder);
        if self.begun[s] || self.clients[ini].tx.is_none() || self.clients[resp].tx.is_none() {
            return;
        }
        self.begun[s] = true;
        if self.needs_key {
            let fetch = Wire::key_fetch(RequestId::Control(s as u32), self.clients[resp].id);
            self.hs_first.get_or_insert(now);
            if !self.send_to(ini, fetch) {
                self.fail_handshake(s);
            }
        } else {
            self.start_handshake(s, now);
        }
    }

    pub(super) fn start_handshake(&mut self, s: usize, now: u64) {
        self.hs_first.get_or_insert(now);
        match self.convs[s].start(now) {
            Ok(out) => {
                let from = self.convs[s].initiator;
                if !self.send_to(from, out.frame.freeze()) {
                    self.fail_handshake(s);
                }
            }
            Err(_) => self.fail_handshake(s),
        }
    }

    /// Connection `generation` of `client` ended. An older connection's end (after the
    /// device left and came back) changes nothing; a device that left on purpose, or a
    /// run shutting down, is not a disconnect.
    pub(super) fn on_disconnect(&mut self, client: usize, generation: u32, left: bool) {
        let c = &mut self.clients[client];
        if c.generation != generation || left {
            return;
        }
        if c.tx.take().is_some() {
            self.connected = self.connected.saturating_sub(1);
        }
        if !self.closing {
            self.counters.disconnects += 1;
        }
    }

    /// Copies owed to devices that are offline now (held in the relay's mailboxes).
    pub(super) fn owed_offline(&self) -> u64 {
        self.clients.iter().filter(|c| c.tx.is_none()).map(|c| c.owed).sum()
    }
}

/// Where a delivery's body is, who sent it, and whether the relay stored it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Delivery {
    body_at: usize,
    pub(super) sender: u64,
    pub(super) stored: bool,
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
