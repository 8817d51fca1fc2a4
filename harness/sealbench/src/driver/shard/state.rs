//! What one shard's tasks share, split by concern — its devices' connections ([`Net`]),
//! its books (counters, histograms, windows), its pairwise sessions and conversations, and
//! the session protocol it runs — and the routing of every frame a device receives
//! (single-threaded: `Rc<RefCell<State>>`). Which protocol that is, is never asked here:
//! bodies and set-up answers go to [`Protocol`], with a [`Ctx`] to write their effects into.

use super::out::{Out, Sent};
use crate::driver::ShardSpec;
use crate::driver::books::Books;
use crate::driver::chat::Chat;
use crate::driver::protocol::{Body, Conversation, Ctx, Device, Outlet, Protocol};
use crate::driver::recorder::tags::TagId;
use crate::driver::recorder::{Histograms, MAX_CODE, Metric};
use crate::driver::wire::{Incoming, RequestId, Wire};
use bytes::{Bytes, BytesMut};
use sealcore::frame::{self, ErrorCode};
use sealcore::payload;
use std::net::Ipv4Addr;
use std::task::Waker;

/// One simulated device's connection: one at a time.
#[derive(Debug)]
pub(super) struct Client {
    pub(super) source: Ipv4Addr,
    /// Its connection's sending side: `Some` while online.
    pub(super) tx: Option<Out>,
    /// Which connection is current (a reader of an older one must not take it down).
    pub(super) generation: u32,
    /// Held offline by the stages' connected-client target (churn does not bring it back).
    pub(super) parked: bool,
    /// A reconnection is under way: a second one for the same device (its return falling
    /// due again while a slow reconnection still runs) would log in twice, and the server
    /// would drop the connection that became current first.
    pub(super) returning: bool,
    /// Stored messages announced by its last WELCOME and not yet received, and when.
    pub(super) stored_left: u32,
    pub(super) welcome_ns: u64,
}

/// The shard's connections: where frames go, and the flushing of what was written.
pub(super) struct Net {
    pub(super) clients: Vec<Client>,
    /// Connected now.
    pub(super) connected: usize,
    /// Frames a device's queue holds (enough for the largest fan-out).
    pub(super) queue: usize,
    /// Clients written to since the last flush (each once), and the task that flushes
    /// them when frames were written outside the schedule's batches (replies).
    dirty: Vec<usize>,
    pub(super) flusher: Option<Waker>,
    /// The schedule is sending a batch and flushes it itself (the flusher is not woken).
    pub(super) batching: bool,
    /// Bytes handed to connections (the books' `bytes_sent`, added at each report).
    pub(super) bytes_sent: u64,
}

impl Net {
    /// Flushes every connection written to since the last flush: one write each.
    pub(super) fn flush_dirty(&mut self) {
        for k in 0..self.dirty.len() {
            if let Some(tx) = self.clients[self.dirty[k]].tx.as_ref() {
                tx.flush();
            }
        }
        self.dirty.clear();
    }

    /// Frames device `client` can take now before the generator must hold back (0 offline).
    pub(super) fn capacity(&self, client: usize) -> usize {
        self.clients[client].tx.as_ref().map_or(0, Out::capacity)
    }
}

impl Outlet for Net {
    /// Writes `frame` into `client`'s connection (sent at the next flush); false when it
    /// is offline or its connection broke (data messages check `capacity` first; control
    /// frames are taken past it, never dropped for a full backlog).
    #[inline]
    fn send(&mut self, client: usize, frame: Bytes) -> bool {
        let Some(tx) = self.clients[client].tx.as_ref() else { return false };
        self.bytes_sent += frame.len() as u64;
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

    #[inline]
    fn online(&self, client: usize) -> bool {
        self.clients[client].tx.is_some()
    }
}

/// Everything one shard's tasks share (single-threaded: `Rc<RefCell<_>>`).
pub(super) struct State {
    pub(super) net: Net,
    /// The devices as the protocols see them (fixed for the run).
    pub(super) devices: Vec<Device>,
    pub(super) books: Books,
    /// Pairwise sessions, sorted by id.
    pub(super) sessions: Vec<Conversation>,
    pub(super) chats: Vec<Chat>,
    pub(super) protocol: Protocol,
    /// Shutting down: disconnects are expected.
    pub(super) closing: bool,
    pub(super) ack: bool,
    /// The wire protocol the target speaks (decodes every frame that arrives).
    pub(super) wire: Wire,
    /// Reused buffers for opening deliveries and writing set-up frames.
    scratch: Vec<u8>,
    out: BytesMut,
    /// The first connect or registration failure, for the coordinator's error message.
    pub(super) first_error: Option<String>,
}

impl State {
    /// The state of a shard about to connect its clients: every session is pending until
    /// it is set up or has failed.
    ///
    /// # Errors
    /// When the protocol cannot be set up (no randomness for group keys, a library refusing
    /// to make a member), said in words.
    pub(super) fn new(spec: &mut ShardSpec, tags: &dyn Fn(&Chat) -> Vec<TagId>) -> Result<Self, String> {
        let mut sessions = std::mem::take(&mut spec.convs);
        let plan = spec.plan.protocol;
        let mut chats: Vec<Chat> = spec.chats.iter().map(Chat::new).collect();
        for chat in &mut chats {
            chat.tags = tags(chat);
            chat.wire = spec.target.wire;
        }
        let mut devices: Vec<Device> =
            spec.clients.iter().map(|c| Device { id: c.id, chat: c.chat, pos: c.pos, sessions: Vec::new() }).collect();
        let wire = spec.target.wire;
        for (i, s) in sessions.iter_mut().enumerate() {
            // Each end's lane: the session's index among that device's sessions.
            let lanes = [devices[s.initiator].sessions.len(), devices[s.responder].sessions.len()];
            s.set_wire(wire, lanes.map(|l| u16::try_from(l).unwrap_or(u16::MAX)));
            s.set_franking(plan.franking);
            devices[s.initiator].sessions.push(i);
            devices[s.responder].sessions.push(i);
        }
        let clients: Vec<Client> = spec
            .clients
            .iter()
            .map(|c| Client {
                source: c.source,
                tx: None,
                generation: 0,
                parked: false,
                returning: false,
                stored_left: 0,
                welcome_ns: 0,
            })
            .collect();
        let protocol = Protocol::new(&plan, &chats, &devices, sessions.len())?;
        let keys = Protocol::keys_expected(&plan, &chats);
        let books = Books::new(Histograms::with_tags(spec.plan.tags()), devices.len(), sessions.len(), keys);
        let net = Net {
            dirty: Vec::with_capacity(clients.len()),
            clients,
            connected: 0,
            queue: spec.plan.max_copies() + super::QUEUE,
            flusher: None,
            batching: false,
            bytes_sent: 0,
        };
        Ok(State {
            net,
            devices,
            books,
            sessions,
            chats,
            protocol,
            closing: false,
            ack: spec.ack,
            wire,
            scratch: Vec::with_capacity(64 * 1024),
            out: BytesMut::with_capacity(4 * 1024),
            first_error: None,
        })
    }

    /// The protocol, and the context its handlers write into.
    #[inline]
    pub(super) fn split(&mut self) -> (&mut Protocol, Ctx<'_>) {
        let cx = Ctx {
            books: &mut self.books,
            net: &mut self.net,
            devices: &self.devices,
            sessions: &mut self.sessions,
            chats: &mut self.chats,
            out: &mut self.out,
        };
        (&mut self.protocol, cx)
    }

    /// The books with what the connections counted since the last call added.
    pub(super) fn settle(&mut self) -> &mut Books {
        self.books.counters.bytes_sent += std::mem::take(&mut self.net.bytes_sent);
        &mut self.books
    }

    /// Device `client` registered: its protocol publishes and begins what it now can.
    pub(super) fn device_up(&mut self, client: usize, now: u64) {
        let (p, mut cx) = self.split();
        p.device_up(&mut cx, client, now);
    }

    /// Fails every session whose devices did not both connect.
    pub(super) fn fail_unbegun(&mut self) {
        let (_, mut cx) = self.split();
        for s in 0..cx.sessions.len() {
            if !cx.sessions[s].begun {
                cx.fail_session(s);
            }
        }
    }

    /// Fails every session whose set-up has not ended with both ends ready.
    pub(super) fn fail_unfinished(&mut self) {
        let (_, mut cx) = self.split();
        for s in 0..cx.sessions.len() {
            if !cx.sessions[s].hs_finished || !cx.sessions[s].ready() {
                cx.fail_session(s);
            }
        }
    }

    /// Routes a frame that arrived at `now` on connection `generation` of `client`.
    pub(super) fn on_frame(&mut self, client: usize, generation: u32, data: Bytes, now: u64) {
        self.books.counters.bytes_received += data.len() as u64;
        let incoming = self.wire.decode(&data);
        match incoming {
            Incoming::Deliver { body_at, sender, stored, receipt } => {
                if receipt.is_some() && generation != self.net.clients[client].generation {
                    // A delivery on a connection the device has left, which wants a receipt
                    // that connection can no longer carry: the server (MQTT QoS 1) keeps it
                    // unacknowledged and delivers it again when the device is back. Taken
                    // here it would arrive twice; it is still owed.
                    return;
                }
                if let Some(r) = receipt.and_then(|p| self.wire.receipt(p)) {
                    self.net.send(client, r);
                }
                if sender == self.devices[client].id && self.wire.capabilities().group_echo {
                    return; // its own group message, back from the server: not a delivery
                }
                self.on_deliver(client, &data[..], body_at, sender, stored, now)
            }
            Incoming::Ack(request) => self.on_ack(request, now),
            Incoming::Ignored => {}
            Incoming::ReportResult(result) => {
                let c = &mut self.books.counters;
                match result {
                    frame::REPORT_VERIFIED => c.reports_verified += 1,
                    frame::REPORT_REFUSED_COMMITMENT => c.reports_refused_commitment += 1,
                    frame::REPORT_REFUSED_STAMP => c.reports_refused_stamp += 1,
                    _ => c.malformed += 1,
                }
            }
            Incoming::LaneAck { lane, seq, seq_bits } => self.on_lane_ack(client, lane, seq, seq_bits, now),
            Incoming::Refused { request: RequestId::Message { conv, side, .. }, code } => {
                self.books.counters.refused[(code as usize).min(MAX_CODE - 1)] += 1;
                if let Ok(s) = self.sessions.binary_search_by_key(&conv, |c| c.id) {
                    let to = self.sessions[s].client(side.peer());
                    self.books.received(to);
                }
            }
            Incoming::Refused { request: RequestId::Group(_), code } => {
                self.books.counters.group_refusals += 1;
                tracing::debug!(code, "relay refused a group send");
                if code == ErrorCode::ContentBlocked as u16 {
                    self.blocked_group_send(client, code);
                }
            }
            Incoming::KeyOf { owner, key } => {
                // The key names its owner: the session this device initiates with it asked.
                let asked = self.devices[client].sessions.iter().copied().find(|&s| {
                    let c = &self.sessions[s];
                    c.initiator == client && self.devices[c.responder].id == owner
                });
                let request = match asked {
                    Some(s) => RequestId::Control(s as u32),
                    None => RequestId::Unknown,
                };
                let (p, mut cx) = self.split();
                if !p.on_reply(&mut cx, &Incoming::Key { request, key }, now) {
                    self.books.counters.malformed += 1;
                }
            }
            other => {
                let (p, mut cx) = self.split();
                if !p.on_reply(&mut cx, &other, now) {
                    match other {
                        Incoming::Refused { code, .. } => {
                            self.books.counters.other_errors += 1;
                            tracing::debug!(code, "relay error on a control frame");
                        }
                        _ => self.books.counters.malformed += 1,
                    }
                }
            }
        }
    }

    /// A GROUP_SEND of `client` that a relay that reads blocked (CONTENT_BLOCKED) reached
    /// no member: each copy it owed them is refused with that code, not lost. (Other group
    /// refusals may have reached some members, so their copies stay owed.)
    fn blocked_group_send(&mut self, client: usize, code: u16) {
        let (chat, pos) = (self.devices[client].chat, self.devices[client].pos);
        let (first, devices) = (self.chats[chat].first_client, self.chats[chat].devices);
        for p in 0..devices {
            if self.protocol.recipient(chat, pos, p) {
                self.books.counters.refused[(code as usize).min(MAX_CODE - 1)] += 1;
                self.books.received(first + p);
            }
        }
    }

    fn on_ack(&mut self, request: RequestId, now: u64) {
        let RequestId::Message { conv, side, seq } = request else { return };
        if let Ok(c) = self.sessions.binary_search_by_key(&conv, |c| c.id)
            && let Some(t) = self.sessions[c].sent_at(side, seq)
            && self.books.measures(t)
        {
            self.books.hist.record(Metric::RelayAck, now.saturating_sub(t));
        }
    }

    /// An ack that names its send by the sender's lane and the low bits of its sequence
    /// number (see [`crate::driver::wire::Route::lane`]).
    fn on_lane_ack(&mut self, client: usize, lane: u16, seq: u64, seq_bits: u32, now: u64) {
        let Some(&s) = self.devices[client].sessions.get(usize::from(lane)) else {
            self.books.counters.malformed += 1;
            return;
        };
        if let Some(side) = self.sessions[s].side_of(client)
            && let Some(t) = self.sessions[s].sent_at_low(side, seq, seq_bits)
            && self.books.measures(t)
        {
            self.books.hist.record(Metric::RelayAck, now.saturating_sub(t));
        }
    }

    fn on_deliver(&mut self, client: usize, data: &[u8], body_at: usize, sender: u64, marked: bool, now: u64) {
        // A wire that does not mark stored deliveries (MQTT) hands them over first after a
        // reconnection, in order: the first `stored_left` (what the device was owed when it
        // came back) are the stored ones.
        let stored = marked || (!self.wire.capabilities().stored_marked && self.net.clients[client].stored_left > 0);
        if stored {
            self.on_stored(client, now);
        }
        // Open in a reused scratch buffer: the frame is a slice of tungstenite's shared
        // read buffer, so it cannot be opened in place, and a copy per message must not
        // cost an allocation.
        let mut buf = std::mem::take(&mut self.scratch);
        let body_at = match self.wire.open_body(data, body_at, &mut buf) {
            Ok(at) => at,
            Err(why) => {
                tracing::debug!(why, "a delivery whose body cannot be read");
                usize::MAX
            }
        };
        match buf.get_mut(body_at..).map(|b| (payload::parse_e2e(b).map(|(k, c, _)| (k, c)), b)) {
            Some((Ok((kind, conv)), b)) => {
                let body = Body { kind, conv, data: &mut b[payload::E2E_HEADER_LEN..], sender, stored };
                let (p, mut cx) = self.split();
                p.on_body(&mut cx, client, body, now);
            }
            _ => self.books.counters.malformed += 1,
        }
        self.scratch = buf;
    }

    /// A stored message reached a reconnected device: the last one ends its mailbox drain.
    fn on_stored(&mut self, client: usize, now: u64) {
        let c = &mut self.net.clients[client];
        if c.stored_left > 0 {
            c.stored_left -= 1;
            let welcome = c.welcome_ns;
            if c.stored_left == 0 && self.books.measures(welcome) {
                self.books.hist.record(Metric::MailboxDrain, now.saturating_sub(welcome));
            }
        }
    }

    /// Connection `generation` of `client` ended. An older connection's end (after the
    /// device left and came back) changes nothing; a device that left on purpose, or a
    /// run shutting down, is not a disconnect.
    pub(super) fn on_disconnect(&mut self, client: usize, generation: u32, left: bool) {
        let c = &mut self.net.clients[client];
        if c.generation != generation || left {
            return;
        }
        if c.tx.take().is_some() {
            self.net.connected = self.net.connected.saturating_sub(1);
        }
        if !self.closing {
            self.books.counters.disconnects += 1;
        }
    }

    /// How many stored messages follow device `client`'s reconnection: what the server
    /// announced (`announced`), or — on a wire whose server neither counts nor marks them
    /// (MQTT) — every copy the device is owed now. The driver knows that count exactly: both
    /// ends of every conversation live in this shard (`driver::layout`, also with
    /// `--shard`), so every copy addressed to the device was sent from here and counted in
    /// the books' `owed` as it was, and what the device received since is counted off.
    pub(super) fn stored_at_return(&self, client: usize, announced: u32) -> u32 {
        if self.wire.capabilities().stored_marked {
            announced
        } else {
            u32::try_from(self.books.owed[client]).unwrap_or(u32::MAX)
        }
    }

    /// Copies owed to devices that are offline now (held in the relay's mailboxes).
    pub(super) fn owed_offline(&self) -> u64 {
        self.net.clients.iter().zip(&self.books.owed).filter(|(c, _)| c.tx.is_none()).map(|(_, o)| o).sum()
    }
}
