//! Noise sessions (`crypto.protocol = "noise"`, the reference): each pairwise session's
//! handshake runs end to end through the relay as soon as both its devices are up (IK /
//! NK: the initiator first fetches the responder's static key from the relay's key
//! directory); `handshake` records first message sent → the initiator's transport ready.
//! A relay-fan-out group's senders each hold a sender key (a 32-byte chain key of
//! sealcore's transport), handed to every other member over their Noise session once it
//! is up; a group message is sealed once with it and fanned out by the relay.

use super::franking::{self, Franker};
use super::pairwise::{BODY_AT, PLAINTEXT_AT, TRANSPORT_AT, Timed, write_plaintext};
use super::{Body, Cipher, Conversation, Ctx, SessionProtocol};
use crate::driver::books::NotOpened;
use crate::driver::chat::Chat;
use crate::driver::content::Text;
use crate::driver::wire::{Incoming, RequestId, Side, Wire, group_id};
use crate::scenario::ProtocolPlan;
use bytes::BytesMut;
use sealcore::payload::{self, E2eKind, Stamp};
use sealcore::{
    Handshake, HandshakeError, HandshakeKeys, OpenError, SealError, SenderKey, TransportReceiver, TransportSender,
};

/// Bytes franking adds to a franked group message: the key inside, the trailer beside.
const FRANKING_BYTES: u64 = (sealcore::franking::KEY_LEN + sealcore::franking::TRAILER_LEN) as u64;

/// Prologue of every handshake (both sides must agree).
pub const PROLOGUE: &[u8] = b"sealbench/1";

/// One end's Noise transport: seals what it sends, opens what it receives.
#[derive(Debug)]
pub struct NoiseEnd {
    sender: TransportSender,
    receiver: TransportReceiver,
}

impl NoiseEnd {
    /// Seals in place after the headers in `out`.
    ///
    /// # Errors
    /// When the transport refuses (counter exhausted).
    #[inline]
    pub fn seal(
        &mut self,
        out: &mut BytesMut,
        size: usize,
        stamp: Stamp,
        extra: &[u8],
        text: Text<'_>,
    ) -> Result<(), SealError> {
        out.resize(PLAINTEXT_AT + size + sealcore::TAG_LEN, 0);
        write_plaintext(&mut out[PLAINTEXT_AT..PLAINTEXT_AT + size], stamp, extra, text)?;
        self.sender.seal(&mut out[TRANSPORT_AT..], size)?;
        Ok(())
    }

    /// Seals a franked message in place after the headers in `out`: the plaintext of
    /// `size` bytes, then `fk` (see [`Cipher::seal_franked`]).
    ///
    /// # Errors
    /// When the transport refuses (counter exhausted).
    #[inline]
    pub fn seal_franked(
        &mut self,
        out: &mut BytesMut,
        size: usize,
        stamp: Stamp,
        fk: &sealcore::franking::FrankingKey,
        text: Text<'_>,
        timed: bool,
    ) -> Result<(sealcore::franking::Commitment, Option<u64>), SealError> {
        let key_at = PLAINTEXT_AT + size;
        out.resize(key_at + fk.len() + sealcore::TAG_LEN, 0);
        write_plaintext(&mut out[PLAINTEXT_AT..key_at], stamp, &[], text)?;
        let t0 = timed.then(crate::clock::now_ns);
        out[key_at..key_at + fk.len()].copy_from_slice(fk);
        let c = sealcore::franking::commit(fk, &out[PLAINTEXT_AT..key_at]);
        let took = t0.map(|t0| crate::clock::now_ns().saturating_sub(t0));
        self.sender.seal(&mut out[TRANSPORT_AT..], size + fk.len())?;
        Ok((c, took))
    }

    /// Opens in place.
    ///
    /// # Errors
    /// The transport's refusal.
    #[inline]
    pub fn open<'a>(&mut self, data: &'a mut [u8]) -> Result<&'a mut [u8], OpenError> {
        self.receiver.open(data)
    }
}

/// A session's handshake while it runs.
#[derive(Default)]
struct Setup {
    /// Each side's handshake state, while it is mid-handshake.
    hs: [Option<Box<Handshake>>; 2],
    /// When the initiator wrote its first message.
    started_ns: u64,
    /// The responder's static public key, once fetched (IK / NK).
    remote_static: Option<[u8; 32]>,
}

/// A relay-fan-out group's sender keys.
struct SenderKeys {
    /// Per sending device: the key it hands out.
    keys: Vec<[u8; 32]>,
    /// Per sending device: its own sealing half.
    out: Vec<TransportSender>,
    /// Per (recipient position, sending position): the opening half, once received.
    inbound: Vec<Option<TransportReceiver>>,
    /// Per (recipient, sender): the highest message number received (reorder count).
    max_rx: Vec<Option<u32>>,
    /// With `crypto.franking`, per device: its franking keys (as a sender) and report
    /// draws (as a recipient); empty otherwise.
    frankers: Vec<Franker>,
}

/// The shard's Noise state.
pub struct Noise {
    plan: ProtocolPlan,
    /// Per session: its handshake while it runs (allocated as sessions begin).
    setups: Vec<Setup>,
    /// Per conversation: its sender keys (relay-fan-out groups only).
    groups: Vec<Option<SenderKeys>>,
}

impl std::fmt::Debug for Noise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Noise").finish_non_exhaustive()
    }
}

impl Noise {
    /// Sender keys for every relay-fan-out group of `chats`, drawn from the OS.
    ///
    /// # Errors
    /// When the OS has no randomness.
    pub fn new(plan: &ProtocolPlan, chats: &[Chat]) -> Result<Self, getrandom::Error> {
        let mut groups = Vec::with_capacity(chats.len());
        for c in chats {
            groups.push(if c.relay_fanout() { Some(SenderKeys::new(plan, c)?) } else { None });
        }
        Ok(Noise { plan: *plan, setups: Vec::new(), groups })
    }

    fn setup(&mut self, s: usize) -> &mut Setup {
        if self.setups.len() <= s {
            self.setups.resize_with(s + 1, Setup::default);
        }
        &mut self.setups[s]
    }

    /// Begins session `s` once both its devices are up.
    fn begin(&mut self, cx: &mut Ctx<'_>, s: usize, now: u64) {
        if cx.sessions[s].begun || !cx.both_online(s) {
            return;
        }
        cx.sessions[s].begun = true;
        if self.plan.fetch_responder_key {
            cx.books.setup_started(now);
            let (ini, resp) = (cx.sessions[s].initiator, cx.sessions[s].responder);
            let fetch = cx.sessions[s].wire().key_fetch(RequestId::Control(s as u32), cx.devices[resp].id);
            if !fetch.is_some_and(|f| cx.send(ini, f)) {
                cx.fail_session(s);
            }
        } else {
            self.start(cx, s, now);
        }
    }

    /// The initiator's first handshake message.
    fn start(&mut self, cx: &mut Ctx<'_>, s: usize, now: u64) {
        cx.books.setup_started(now);
        let setup = self.setup(s);
        let c = &cx.sessions[s];
        let (ini, rs) = (c.initiator, setup.remote_static);
        let keys =
            HandshakeKeys { local_static: c.keys[0].as_ref(), remote_static: rs.as_ref(), fixed_ephemeral: None };
        let frame = Handshake::initiator(c.suite(), keys, PROLOGUE).and_then(|mut hs| {
            let frame = handshake_frame(&mut hs, c, Side::Initiator)?;
            setup.started_ns = now;
            setup.hs[0] = Some(Box::new(hs));
            Ok(frame)
        });
        if !frame.is_ok_and(|f| cx.send(ini, f.freeze())) {
            cx.fail_session(s);
        }
    }

    /// A handshake message for `side` of session `s`: answered through the relay, and the
    /// handshake's time recorded when the initiator's transport is ready.
    fn on_handshake(&mut self, cx: &mut Ctx<'_>, s: usize, side: Side, data: &[u8], now: u64) {
        let settled_before = cx.sessions[s].hs_finished;
        let result = self.step(cx, s, side, data, now);
        if !settled_before && cx.sessions[s].hs_finished {
            // Both ends now hold their transports: the session is set up.
            cx.books.handshakes_pending = cx.books.handshakes_pending.saturating_sub(1);
        }
        match result {
            Ok(initiator_done) => {
                if let Some(ns) = initiator_done {
                    cx.books.handshake_done(ns, now);
                }
                if cx.sessions[s].ready() && !settled_before {
                    self.hand_out_sender_keys(cx, s, now);
                }
            }
            Err(e) => {
                tracing::debug!(session = cx.sessions[s].id, error = %e, "handshake failed");
                cx.fail_session(s);
            }
        }
    }

    /// Runs one handshake message through `side`'s state: its reply sent, its transport
    /// installed when it ends. Returns the handshake's time when the initiator's ended.
    fn step(
        &mut self,
        cx: &mut Ctx<'_>,
        s: usize,
        side: Side,
        msg: &[u8],
        now: u64,
    ) -> Result<Option<u64>, HandshakeError> {
        let i = side.index();
        let c = &cx.sessions[s];
        let (from, mode) = (c.client(side), c.mode());
        let setup = self.setup(s);
        if side == Side::Responder && setup.hs[i].is_none() && !c.end_ready(side) {
            let keys = HandshakeKeys { local_static: c.keys[i].as_ref(), ..Default::default() };
            setup.hs[i] = Some(Box::new(Handshake::responder(c.suite(), keys, PROLOGUE)?));
        }
        let mut hs = setup.hs[i].take().ok_or(HandshakeError::State)?;
        let mut scratch = [0u8; 256];
        hs.read_message(msg, &mut scratch)?;
        if !hs.is_finished() {
            let frame = handshake_frame(&mut hs, &cx.sessions[s], side)?;
            cx.send(from, frame.freeze());
        }
        // (The initiator of XX finishes by *writing* the last message: that is the
        // `hs.is_finished()` after writing the reply above.)
        if !hs.is_finished() {
            setup.hs[i] = Some(hs);
            return Ok(None);
        }
        let (sender, receiver) = hs.into_transport(mode)?.split();
        cx.sessions[s].set_ready(side, Cipher::Noise(NoiseEnd { sender, receiver }));
        Ok((side == Side::Initiator).then(|| now.saturating_sub(setup.started_ns)))
    }

    /// Relay fan-out: once session `s` is up, each of its ends that sends in the group
    /// hands its sender key to the other over it.
    fn hand_out_sender_keys(&mut self, cx: &mut Ctx<'_>, s: usize, now: u64) {
        for side in Side::BOTH {
            let from = cx.sessions[s].client(side);
            let (chat, pos) = (cx.devices[from].chat, cx.devices[from].pos);
            let Some(keys) = self.groups[chat].as_ref() else { return };
            let Some(key) = keys.keys.get(pos).copied() else { continue };
            cx.send_control(s, side, E2eKind::SenderKey, &key, now);
        }
    }

    /// A sender key for `side` of session `s`: installed for the group's sender.
    fn on_sender_key(&mut self, cx: &mut Ctx<'_>, s: usize, side: Side, data: &mut [u8]) {
        let (to, from) = (cx.sessions[s].client(side), cx.sessions[s].client(side.peer()));
        let key = match cx.sessions[s].open_control(side, data) {
            Ok(o) => <[u8; 32]>::try_from(o.rest.get(..32).unwrap_or(&[])).ok(),
            Err(_) => None,
        };
        let (chat, pos, sender) = (cx.devices[to].chat, cx.devices[to].pos, cx.devices[from].pos);
        let sending = cx.chats[chat].sending;
        let (Some(keys), Some(key), true) = (self.groups[chat].as_mut(), key, sender < sending) else {
            cx.books.counters.malformed += 1;
            return;
        };
        let slot = &mut keys.inbound[pos * sending + sender];
        if slot.is_none() {
            let suite = cx.sessions[s].suite();
            *slot = Some(SenderKey::new(suite.backend, suite.aead, cx.sessions[s].mode(), &key).receiver());
            cx.books.key_installed();
        }
    }

    /// A group message (relay fan-out) for `client`: opened with its sender's key.
    fn on_group(&mut self, cx: &mut Ctx<'_>, client: usize, body: Body<'_>, now: u64) {
        let Some((chat, pos, sender)) = cx.group_sender(client, body.conv, body.sender) else { return };
        let t0 = cx.books.open_timer();
        let sending = cx.chats[chat].sending;
        let Some(keys) = self.groups[chat].as_mut() else {
            cx.books.counters.malformed += 1;
            return;
        };
        let slot = pos * sending + sender;
        let group = group_id(cx.chats[chat].id);
        let result = match keys.inbound[slot].as_mut() {
            None => Err(NotOpened::NotReady),
            // A franked group message: its trailer off, opened, its commitment checked; a
            // share of them reported, with the group as the stamp's recipient.
            Some(rx) if !keys.frankers.is_empty() => {
                franking::open_with(body.data, |b| rx.open(b)).and_then(|(pt, franked)| {
                    if keys.frankers[pos].reports() {
                        cx.report_to(client, RequestId::Group(cx.chats[chat].id), body.sender, group, &franked);
                    }
                    let stamp = Stamp::read(pt).map_err(|_| NotOpened::Open(OpenError::Truncated))?;
                    let reordered = keys.max_rx[slot].is_some_and(|m| stamp.msg < m);
                    if !reordered {
                        keys.max_rx[slot] = Some(stamp.msg);
                    }
                    Ok((stamp, reordered))
                })
            }
            Some(rx) => rx.open(body.data).map_err(NotOpened::Open).and_then(|pt| {
                let stamp = Stamp::read(pt).map_err(|_| NotOpened::Open(OpenError::Truncated))?;
                let reordered = keys.max_rx[slot].is_some_and(|m| stamp.msg < m);
                if !reordered {
                    keys.max_rx[slot] = Some(stamp.msg);
                }
                Ok((stamp, reordered))
            }),
        };
        cx.accept(client, chat, sender, result, body.stored, now, t0);
    }
}

impl SessionProtocol for Noise {
    fn device_up(&mut self, cx: &mut Ctx<'_>, client: usize, now: u64) {
        for k in 0..cx.devices[client].sessions.len() {
            self.begin(cx, cx.devices[client].sessions[k], now);
        }
    }

    fn on_reply(&mut self, cx: &mut Ctx<'_>, frame: &Incoming<'_>, now: u64) -> bool {
        let Incoming::Key { request: RequestId::Control(c), key } = *frame else { return false };
        let s = c as usize;
        if s >= cx.sessions.len() {
            return false;
        }
        match <[u8; 32]>::try_from(key) {
            Ok(k) => {
                self.setup(s).remote_static = Some(k);
                self.start(cx, s, now);
            }
            Err(_) => cx.fail_session(s),
        }
        true
    }

    #[inline]
    fn on_body(&mut self, cx: &mut Ctx<'_>, client: usize, body: Body<'_>, now: u64) {
        if body.kind == E2eKind::Group {
            return self.on_group(cx, client, body, now);
        }
        let Some((s, side)) = cx.session_of(body.conv, client) else { return };
        match body.kind {
            E2eKind::Transport => cx.on_pairwise(s, side, body.data, body.stored, now),
            E2eKind::Handshake => self.on_handshake(cx, s, side, body.data, now),
            E2eKind::SenderKey => self.on_sender_key(cx, s, side, body.data),
            _ => cx.books.counters.malformed += 1,
        }
    }

    fn seal_group(
        &mut self,
        cx: &mut Ctx<'_>,
        chat: usize,
        pos: usize,
        m: Timed,
        out: &mut BytesMut,
    ) -> Result<(), SealError> {
        let (id, wire) = (cx.chats[chat].id, cx.chats[chat].wire);
        let from = cx.devices[cx.chats[chat].first_client + pos].id;
        let keys = self.groups[chat].as_mut().ok_or(SealError::Aead)?;
        match keys.frankers.get_mut(pos) {
            Some(f) => {
                let fk = f.key();
                seal_franked_group_message(&mut keys.out[pos], wire, from, id, &fk, m, out)?;
                cx.books.counters.franking_bytes += FRANKING_BYTES;
                Ok(())
            }
            None => seal_group_message(&mut keys.out[pos], wire, from, id, group_id(id), m, out),
        }
    }
}

impl SenderKeys {
    fn new(plan: &ProtocolPlan, c: &Chat) -> Result<Self, getrandom::Error> {
        let mut keys = vec![[0u8; 32]; c.sending];
        for k in &mut keys {
            getrandom::fill(k)?;
        }
        let (suite, mode) = (plan.suite, plan.mode);
        let out = keys.iter().map(|k| SenderKey::new(suite.backend, suite.aead, mode, k).sender()).collect();
        let n = c.devices * c.sending;
        let frankers = match &plan.franking {
            Some(f) => (0..c.devices).map(|pos| Franker::of_member(f, c.id, pos)).collect(),
            None => Vec::new(),
        };
        Ok(SenderKeys { keys, out, inbound: (0..n).map(|_| None).collect(), max_rx: vec![None; n], frankers })
    }
}

/// A handshake message of session `c` written by `hs` at `side`, to the other end, in a
/// complete send frame.
fn handshake_frame(hs: &mut Handshake, c: &Conversation, side: Side) -> Result<BytesMut, HandshakeError> {
    // A hybrid pattern's first two messages carry 1,184 and 1,120 bytes of ML-KEM data.
    let mut buf = BytesMut::zeroed(TRANSPORT_AT + 2048);
    let n = hs.write_message(&[], &mut buf[TRANSPORT_AT..])?;
    buf.truncate(TRANSPORT_AT + n);
    payload::write_e2e_header(&mut buf[BODY_AT..], E2eKind::Handshake, c.id)
        .map_err(|_| HandshakeError::BufferTooSmall)?;
    c.finish_send(side, RequestId::Control(c.id), false, &mut buf).map_err(|_| HandshakeError::BufferTooSmall)?;
    Ok(buf)
}

/// Seals a group message (relay fan-out) from device `from` with its chain `sender` into a
/// complete group send of `wire` in `out`: a timed plaintext whose sequence number is its
/// message number, then its text (or zeros).
///
/// # Errors
/// When the chain refuses (counter exhausted) or `out` cannot hold the frame.
pub fn seal_group_message(
    sender: &mut TransportSender,
    wire: Wire,
    from: u64,
    chat: u32,
    group: u64,
    m: Timed,
    out: &mut BytesMut,
) -> Result<(), SealError> {
    out.clear();
    out.resize(PLAINTEXT_AT + m.size + sealcore::TAG_LEN, 0);
    payload::write_e2e_header(&mut out[BODY_AT..], E2eKind::Group, chat).map_err(|_| SealError::BufferTooSmall)?;
    Stamp { seq: m.msg, msg: m.msg, intended_ns: m.intended_ns, actual_ns: m.actual_ns }
        .write(&mut out[PLAINTEXT_AT..PLAINTEXT_AT + m.size])
        .map_err(|_| SealError::BufferTooSmall)?;
    m.text.write(&mut out[PLAINTEXT_AT + payload::PLAINTEXT_HEADER_LEN..PLAINTEXT_AT + m.size]);
    sender.seal(&mut out[TRANSPORT_AT..], m.size)?;
    wire.finish_group_send(out, RequestId::Group(chat), group, from).map_err(|_| SealError::BufferTooSmall)
}

/// As [`seal_group_message`] for a franked group message (`crypto.franking`): the
/// plaintext followed by `fk` sealed, the commitment in the trailer behind the body, the
/// FRANKED flag set (`docs/PROTOCOL.md` §6.1).
///
/// # Errors
/// As [`seal_group_message`].
fn seal_franked_group_message(
    sender: &mut TransportSender,
    wire: Wire,
    from: u64,
    chat: u32,
    fk: &sealcore::franking::FrankingKey,
    m: Timed,
    out: &mut BytesMut,
) -> Result<(), SealError> {
    let key_at = PLAINTEXT_AT + m.size;
    out.clear();
    out.resize(key_at + fk.len() + sealcore::TAG_LEN, 0);
    payload::write_e2e_header(&mut out[BODY_AT..], E2eKind::Group, chat).map_err(|_| SealError::BufferTooSmall)?;
    let stamp = Stamp { seq: m.msg, msg: m.msg, intended_ns: m.intended_ns, actual_ns: m.actual_ns };
    write_plaintext(&mut out[PLAINTEXT_AT..key_at], stamp, &[], m.text)?;
    out[key_at..key_at + fk.len()].copy_from_slice(fk);
    let c = sealcore::franking::commit(fk, &out[PLAINTEXT_AT..key_at]);
    sender.seal(&mut out[TRANSPORT_AT..], m.size + fk.len())?;
    wire.finish_group_send(out, RequestId::Group(chat), group_id(chat), from).map_err(|_| SealError::BufferTooSmall)?;
    franking::finish_franked(out, &c);
    Ok(())
}
