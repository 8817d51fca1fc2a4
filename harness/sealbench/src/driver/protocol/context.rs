//! What a protocol handler is handed: the [`Ctx`] it writes its effects into — frames to
//! send through an [`Outlet`], the shard's [`Books`], its devices, sessions and
//! conversations — and the shared steps every protocol takes the same way (finding the
//! session or group a body belongs to, opening a pairwise message, recording a delivery).

use super::pairwise::Conversation;
use crate::clock::now_ns;
use crate::driver::books::{Books, NotOpened};
use crate::driver::chat::Chat;
use crate::driver::recorder::Metric;
use crate::driver::wire::{RequestId, Side};
use bytes::{Bytes, BytesMut};
use sealcore::payload::{E2eKind, Stamp};

/// Where frames go: the shard's connections, or a test's record of them.
///
/// One indirect call per frame (a few ns, against tens of µs of work per message): what it
/// buys is handlers that run without sockets in unit tests.
pub trait Outlet {
    /// Writes `frame` into device `client`'s connection; false when it is offline or its
    /// connection broke (control frames are taken past a full backlog, never dropped).
    fn send(&mut self, client: usize, frame: Bytes) -> bool;
    /// Whether device `client` is connected now.
    fn online(&self, client: usize) -> bool;
}

/// One device of the shard, as the protocols see it (fixed for the run).
#[derive(Debug, Clone)]
pub struct Device {
    /// Relay id.
    pub id: u64,
    /// Its conversation (index into the chats)…
    pub chat: usize,
    /// …and its position among the conversation's devices.
    pub pos: usize,
    /// Pairwise sessions it is an end of.
    pub sessions: Vec<usize>,
}

/// An end-to-end body delivered to a device.
#[derive(Debug)]
pub struct Body<'a> {
    /// Its kind (from the E2E header).
    pub kind: E2eKind,
    /// The session or conversation it names.
    pub conv: u32,
    /// What follows the E2E header (a copy: opened in place).
    pub data: &'a mut [u8],
    /// The sender's relay id.
    pub sender: u64,
    /// The relay stored it while the recipient was offline.
    pub stored: bool,
}

/// What a handler writes its effects into.
pub struct Ctx<'a> {
    /// Counters, histograms and windows.
    pub books: &'a mut Books,
    /// Where frames go.
    pub net: &'a mut dyn Outlet,
    /// The shard's devices.
    pub devices: &'a [Device],
    /// Pairwise sessions, sorted by id.
    pub sessions: &'a mut [Conversation],
    /// Conversations.
    pub chats: &'a mut [Chat],
    /// A reused buffer for set-up frames.
    pub out: &'a mut BytesMut,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("devices", &self.devices.len()).finish_non_exhaustive()
    }
}

impl Ctx<'_> {
    /// Sends `frame` from device `client` (see [`Outlet::send`]).
    #[inline]
    pub fn send(&mut self, client: usize, frame: Bytes) -> bool {
        self.net.send(client, frame)
    }

    /// Whether both devices of session `s` are connected.
    pub fn both_online(&self, s: usize) -> bool {
        let c = &self.sessions[s];
        self.net.online(c.initiator) && self.net.online(c.responder)
    }

    /// The session named `conv` and `client`'s side in it; None (counted as malformed)
    /// when there is none, or `client` is not one of its ends.
    pub fn session_of(&mut self, conv: u32, client: usize) -> Option<(usize, Side)> {
        // Sessions of a shard are sorted by id.
        let found = self.sessions.binary_search_by_key(&conv, |c| c.id).ok();
        let r = found.and_then(|s| self.sessions[s].side_of(client).map(|side| (s, side)));
        if r.is_none() {
            self.books.counters.malformed += 1;
        }
        r
    }

    /// The conversation, the recipient's position and the sender's position of a group
    /// message delivered to `client`; None (counted as malformed) when the sender is not a
    /// sending member or the message names another conversation.
    pub fn group_sender(&mut self, client: usize, chat_id: u32, sender: u64) -> Option<(usize, usize, usize)> {
        let (chat, pos) = (self.devices[client].chat, self.devices[client].pos);
        let first = self.chats[chat].first_client;
        let devices = self.devices;
        let sender = self.chats[chat].sender_position(sender, |p| devices[first + p].id);
        match (sender, self.chats[chat].id == chat_id) {
            (Some(sender), true) => Some((chat, pos, sender)),
            _ => {
                self.books.counters.malformed += 1;
                None
            }
        }
    }

    /// Session `s`'s set-up failed (or timed out): counted once.
    pub fn fail_session(&mut self, s: usize) {
        if !self.sessions[s].hs_finished {
            self.sessions[s].hs_finished = true;
            self.books.counters.handshakes_failed += 1;
            self.books.handshakes_pending = self.books.handshakes_pending.saturating_sub(1);
        }
    }

    /// Sends a set-up message of `kind` from `side` of session `s` over it (`extra` after
    /// the stamp: a group key, or nothing); false when it could not be sealed or sent.
    pub fn send_control(&mut self, s: usize, side: Side, kind: E2eKind, extra: &[u8], now: u64) -> bool {
        let from = self.sessions[s].client(side);
        let sealed = self.sessions[s].seal_control(side, kind, extra, now, self.out).is_ok();
        let frame = self.out.split().freeze();
        sealed && self.send(from, frame)
    }

    /// A conversation message for `side` of session `s`: opened in place, classified, and
    /// (from the warm-up's end) its latencies recorded.
    #[inline]
    pub fn on_pairwise(&mut self, s: usize, side: Side, data: &mut [u8], stored: bool, now: u64) {
        let t0 = self.books.open_timer();
        let (to, from) = (self.sessions[s].client(side), self.sessions[s].client(side.peer()));
        let result = self.sessions[s].open(side, data).map(|o| {
            if let Some(f) = o.report {
                self.report(s, side, &f);
            }
            (o.stamp, o.reordered)
        });
        let (chat, sender) = (self.devices[to].chat, self.devices[from].pos);
        self.accept(to, chat, sender, result, stored, now, t0);
    }

    /// `side` of session `s` reports the franked message `f` it opened to the relay.
    fn report(&mut self, s: usize, side: Side, f: &super::franking::Franked<'_>) {
        let c = &self.sessions[s];
        let (to, sender, recipient) = (c.client(side), c.ids[side.peer().index()], c.ids[side.index()]);
        self.report_to(to, RequestId::Control(c.id), sender, recipient, f);
    }

    /// Device `to` reports the franked message `f` that `sender` sent `recipient` (relay
    /// ids; a group's id for a group message) to the relay.
    pub fn report_to(
        &mut self,
        to: usize,
        request: RequestId,
        sender: u64,
        recipient: u64,
        f: &super::franking::Franked<'_>,
    ) {
        let frame = super::franking::report_frame(self.out, request, sender, recipient, f);
        if self.send(to, frame) {
            self.books.counters.reports_sent += 1;
        }
    }

    /// Classifies what opening a message for device `to` gave, and records an authentic
    /// one as delivered (a copy of a message of conversation `chat` from the device at
    /// `sender`).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn accept(
        &mut self,
        to: usize,
        chat: usize,
        sender: usize,
        result: Result<(Stamp, bool), NotOpened>,
        stored: bool,
        now: u64,
        open_started: Option<u64>,
    ) {
        match self.books.classify(result, now) {
            Some((Some(stamp), reordered)) => {
                self.books.received(to);
                self.delivered(chat, sender, stamp, reordered, stored, now, open_started);
            }
            Some((None, reordered)) => {
                // Delivered, untimed: no latency, no fan-out record (its numbers are not ours).
                self.books.received(to);
                self.books.counters.delivered += 1;
                self.books.counters.reordered += u64::from(reordered);
            }
            None => {}
        }
    }

    /// Records one delivered copy of a message of conversation `chat` sent by the device at
    /// `sender_pos`: online or offline latency by class, and the fan-out it completes.
    #[allow(clippy::too_many_arguments)]
    fn delivered(
        &mut self,
        chat: usize,
        sender_pos: usize,
        stamp: Stamp,
        reordered: bool,
        stored: bool,
        now: u64,
        open_started: Option<u64>,
    ) {
        let books = &mut *self.books;
        books.counters.delivered += 1;
        if reordered {
            books.counters.reordered += 1;
        }
        let measured = books.measures(stamp.intended_ns);
        let chat = &mut self.chats[chat];
        let arrival = if stored { Default::default() } else { chat.outboxes[sender_pos].arrived(stamp.msg, now) };
        if !measured {
            return;
        }
        let tags = &chat.tags;
        if let Some(t0) = open_started {
            books.hist.record(Metric::Open, now_ns() - t0);
        }
        if stored {
            books.hist.record_tagged(Metric::OfflineE2e, tags, now.saturating_sub(stamp.intended_ns));
            return;
        }
        books.hist.record_tagged(Metric::E2e, tags, now.saturating_sub(stamp.intended_ns));
        books.hist.record_tagged(Metric::E2eRaw, tags, now.saturating_sub(stamp.actual_ns));
        if let Some(ns) = arrival.first_ns {
            books.hist.record_tagged(Metric::FanoutFirst, tags, ns);
        }
        if let Some(ns) = arrival.last_ns {
            books.hist.record_tagged(Metric::FanoutLast, tags, ns);
        }
    }
}
