//! One pairwise session between two devices, both ends (they live in the same shard):
//! who its ends are, the cipher each end holds once its protocol has set it up (a Noise
//! transport, an Olm session, or none at all), and the per-direction bookkeeping that
//! accounting needs (sequence numbers, reorders, relay-ack times). A 1:1 conversation
//! between single-device users is one session; devices and groups have one per pair of
//! devices that exchange messages (see `chat`). How a session is set up is its
//! protocol's business (`noise`, `olm`, `plaintext`); sealing and opening once it is, is
//! this file's, the same for every protocol. No I/O: methods take and return bytes.

use super::Cipher;
use super::franking::{Franked, Franker};
use crate::driver::books::NotOpened;
use crate::driver::content::Text;
use crate::driver::wire::{self, RequestId, Route, Side, Wire};
use crate::scenario::FrankingPlan;
use bytes::BytesMut;
use sealcore::payload::{self, E2E_HEADER_LEN, E2eKind, Stamp};
use sealcore::transport::HEADER_LEN;
use sealcore::{OpenError, SealError, StaticKeypair, Suite, TransportMode};

/// Offset of the end-to-end body inside a send buffer (the wire's header room comes
/// first: the wire writes its header there once the body is sealed, see
/// [`Wire::finish_send`]).
pub const BODY_AT: usize = wire::BODY_AT;
/// Offset of the transport message inside a send frame.
pub const TRANSPORT_AT: usize = BODY_AT + E2E_HEADER_LEN;
/// Offset of the plaintext inside a SEND frame.
pub const PLAINTEXT_AT: usize = TRANSPORT_AT + HEADER_LEN;
/// How many recent send times each direction remembers (for relay-ack latency).
const SENT_RING: usize = 256;

/// An end's cipher and the per-direction bookkeeping that accounting needs.
#[derive(Debug)]
pub struct Link {
    /// Seals what this end sends and opens what it receives.
    cipher: Cipher,
    /// Sequence number of this end's next message.
    next_seq: u64,
    /// Highest sequence number received from the peer.
    max_seq_rx: Option<u32>,
    /// Actual send times of recent messages, by `seq % SENT_RING` (relay-ack latency):
    /// empty (4 KiB less per end) until this end first sends a message that asks for an ack.
    sent_at: Vec<(u64, u64)>,
    /// With `crypto.franking`: this end's franking keys and report draws.
    frank: Option<Franker>,
}

/// Writes a timed plaintext: the stamp, then `extra`, then the padding — zeros, or the
/// message's `text` (`traffic.content`).
pub(super) fn write_plaintext(plain: &mut [u8], stamp: Stamp, extra: &[u8], text: Text<'_>) -> Result<(), SealError> {
    stamp.write(plain).map_err(|_| SealError::BufferTooSmall)?;
    let at = payload::PLAINTEXT_HEADER_LEN;
    plain.get_mut(at..at + extra.len()).ok_or(SealError::BufferTooSmall)?.copy_from_slice(extra);
    text.write(&mut plain[at + extra.len()..]);
    Ok(())
}

/// Fills `plain` with the timed plaintext of `m` (its stamp, then its text or zero padding
/// up to its size): what a group protocol's sender encrypts.
///
/// # Errors
/// Never in practice (the buffer is sized here); kept for the stamp's own check.
pub fn timed_plaintext(plain: &mut Vec<u8>, m: Timed) -> Result<(), SealError> {
    plain.clear();
    plain.resize(m.size.max(payload::PLAINTEXT_HEADER_LEN), 0);
    let stamp = Stamp { seq: m.msg, msg: m.msg, intended_ns: m.intended_ns, actual_ns: m.actual_ns };
    write_plaintext(plain, stamp, &[], m.text)
}

/// A timed message to seal.
#[derive(Debug, Clone, Copy)]
pub struct Timed<'a> {
    /// Plaintext bytes (at least the stamp).
    pub size: usize,
    /// The sender's logical message number (shared by every copy).
    pub msg: u32,
    /// When the schedule said to send it.
    pub intended_ns: u64,
    /// When it was sealed.
    pub actual_ns: u64,
    /// What it says after its stamp (zeros, or text a relay that reads could scan).
    pub text: Text<'a>,
}

/// An opened transport message.
#[derive(Debug)]
pub struct Opened<'a> {
    /// Its timing stamp.
    pub stamp: Stamp,
    /// It arrived after a later message of the same direction.
    pub reordered: bool,
    /// The plaintext after the stamp.
    pub rest: &'a [u8],
    /// A franked message its recipient reports (drawn at `traffic.report_share`): what the
    /// REPORT carries.
    pub report: Option<Franked<'a>>,
}

/// A pairwise session.
pub struct Conversation {
    /// Global session id (in every E2E header).
    pub id: u32,
    /// Local index of the initiator's client.
    pub initiator: usize,
    /// Local index of the responder's client.
    pub responder: usize,
    /// Relay ids, by [`Side::index`].
    pub ids: [u64; 2],
    /// The two ends, by [`Side::index`]: `None` until the protocol has set it up.
    ends: [Option<Box<Link>>; 2],
    suite: Suite,
    mode: TransportMode,
    /// The static key pairs of the two ends, where the handshake pattern has them.
    pub keys: [Option<StaticKeypair>; 2],
    /// Its set-up has been started (both devices were up).
    pub begun: bool,
    /// Set-up over (either way).
    pub hs_finished: bool,
    /// The wire its frames are written for (sealbench's until [`Conversation::set_wire`]).
    wire: Wire,
    /// Each end's lane, by [`Side::index`]: the session's index among that device's
    /// sessions (a wire with short packet ids names the session of an ack by it).
    lanes: [u16; 2],
    /// Message franking (`crypto.franking`), for the ends set up from now on.
    franking: Option<FrankingPlan>,
}

impl std::fmt::Debug for Conversation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conversation").field("id", &self.id).field("ids", &self.ids).finish_non_exhaustive()
    }
}

impl Conversation {
    /// A session between local clients `initiator` and `responder`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u32,
        initiator: usize,
        responder: usize,
        ids: [u64; 2],
        suite: Suite,
        mode: TransportMode,
        keys: [Option<StaticKeypair>; 2],
    ) -> Self {
        Conversation {
            id,
            initiator,
            responder,
            ids,
            ends: Default::default(),
            suite,
            mode,
            keys,
            begun: false,
            hs_finished: false,
            wire: Wire::Sealbench,
            lanes: [0; 2],
            franking: None,
        }
    }

    /// Its conversation messages are franked (`crypto.franking`), as `plan` says.
    pub fn set_franking(&mut self, plan: Option<FrankingPlan>) {
        self.franking = plan;
    }

    /// Whether its conversation messages are franked.
    pub fn franked(&self) -> bool {
        self.franking.is_some()
    }

    /// Frames of this session are written for `wire`; `lanes` are each end's lane (see
    /// [`Route::lane`]), by [`Side::index`].
    pub fn set_wire(&mut self, wire: Wire, lanes: [u16; 2]) {
        self.wire = wire;
        self.lanes = lanes;
    }

    /// The wire its frames are written for.
    pub fn wire(&self) -> Wire {
        self.wire
    }

    /// Completes a send from `side` to the other end in `out` (which holds the body at
    /// [`BODY_AT`]): the wire's header in front of it (see [`Wire::finish_send`]).
    ///
    /// # Errors
    /// `out` has no header room, or the frame is too long for the wire.
    #[inline]
    pub fn finish_send(
        &self,
        side: Side,
        request: RequestId,
        want_ack: bool,
        out: &mut BytesMut,
    ) -> Result<(), sealcore::frame::FrameError> {
        let (from, to) = (self.ids[side.index()], self.ids[side.peer().index()]);
        let route = Route { request, want_ack, from, to, lane: self.lanes[side.index()] };
        self.wire.finish_send(out, &route)
    }

    /// Its suite.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Its transport mode.
    pub fn mode(&self) -> TransportMode {
        self.mode
    }

    /// Local client index of `side`.
    pub fn client(&self, side: Side) -> usize {
        match side {
            Side::Initiator => self.initiator,
            Side::Responder => self.responder,
        }
    }

    /// The side local client `client` is of this session, if it is one.
    pub fn side_of(&self, client: usize) -> Option<Side> {
        if self.initiator == client {
            Some(Side::Initiator)
        } else if self.responder == client {
            Some(Side::Responder)
        } else {
            None
        }
    }

    /// Both ends are set up.
    pub fn ready(&self) -> bool {
        self.ends[0].is_some() && self.ends[1].is_some()
    }

    /// Whether `side` is set up.
    pub fn end_ready(&self, side: Side) -> bool {
        self.ends[side.index()].is_some()
    }

    /// `side` is set up with `cipher` (the session is finished once both are).
    pub fn set_ready(&mut self, side: Side, cipher: Cipher) {
        let sent_at = Vec::new();
        let frank = self.franking.map(|p| Franker::new(&p, self.id, side));
        self.ends[side.index()] = Some(Box::new(Link { cipher, next_seq: 0, max_seq_rx: None, sent_at, frank }));
        if self.ready() {
            self.hs_finished = true;
        }
    }

    /// Seals the next message of `side` into a complete SEND frame in `out`: a timed
    /// plaintext of `size` bytes, copy of the sender's logical message `msg`.
    ///
    /// # Errors
    /// When the end is not set up or its cipher refuses (counter exhausted). Returns the
    /// message's request id.
    pub fn seal(&mut self, side: Side, m: Timed, want_ack: bool, out: &mut BytesMut) -> Result<RequestId, SealError> {
        self.seal_kind(side, None, m, &[], want_ack, out, false).map(|(req, _)| req)
    }

    /// As [`Conversation::seal`]; with franking and `time_frank`, also returns the time
    /// franking took (the commitment), in ns.
    ///
    /// # Errors
    /// As [`Conversation::seal`].
    pub fn seal_timing(
        &mut self,
        side: Side,
        m: Timed,
        want_ack: bool,
        time_frank: bool,
        out: &mut BytesMut,
    ) -> Result<Option<u64>, SealError> {
        self.seal_kind(side, None, m, &[], want_ack, out, time_frank).map(|(_, ns)| ns)
    }

    /// Seals a set-up message of `kind` from `side` (a timed plaintext stamped `now_ns`,
    /// followed by `extra`: a group's sender key, or nothing).
    ///
    /// # Errors
    /// As [`Conversation::seal`].
    pub fn seal_control(
        &mut self,
        side: Side,
        kind: E2eKind,
        extra: &[u8],
        now_ns: u64,
        out: &mut BytesMut,
    ) -> Result<RequestId, SealError> {
        let size = payload::PLAINTEXT_HEADER_LEN + extra.len();
        let m = Timed { size, msg: 0, intended_ns: now_ns, actual_ns: now_ns, text: Text::ZEROS };
        self.seal_kind(side, Some(kind), m, extra, false, out, false).map(|(req, _)| req)
    }

    /// `kind`: None for a message of the conversation (its kind is the cipher's; franked
    /// when the session is). Returns the request id, and the franking time when timed.
    #[allow(clippy::too_many_arguments)]
    fn seal_kind(
        &mut self,
        side: Side,
        kind: Option<E2eKind>,
        m: Timed,
        extra: &[u8],
        want_ack: bool,
        out: &mut BytesMut,
        time_frank: bool,
    ) -> Result<(RequestId, Option<u64>), SealError> {
        let id = self.id;
        let link = self.ends[side.index()].as_deref_mut().ok_or(SealError::Aead)?;
        let seq = link.next_seq;
        let req = RequestId::Message { conv: id, side, seq };
        let stamp = Stamp { seq: seq as u32, msg: m.msg, intended_ns: m.intended_ns, actual_ns: m.actual_ns };
        let franker = if kind.is_none() { link.frank.as_mut() } else { None };
        let kind = kind.unwrap_or(link.cipher.message_kind());
        out.clear();
        out.resize(TRANSPORT_AT, 0);
        payload::write_e2e_header(&mut out[BODY_AT..], kind, id).map_err(|_| SealError::BufferTooSmall)?;
        let mut frank_ns = None;
        let commitment = match franker {
            Some(f) => {
                let (c, ns) = link.cipher.seal_franked(out, m.size, stamp, &f.key(), m.text, time_frank)?;
                frank_ns = ns;
                Some(c)
            }
            None => {
                link.cipher.seal(out, m.size, stamp, extra, m.text)?;
                None
            }
        };
        // The body is complete: the wire's header goes in front of it (and a franked
        // body's trailer behind it).
        self.finish_send(side, req, want_ack, out).map_err(|_| SealError::BufferTooSmall)?;
        if let Some(c) = commitment {
            super::franking::finish_franked(out, &c);
        }
        let link = self.ends[side.index()].as_deref_mut().ok_or(SealError::Aead)?;
        if want_ack {
            if link.sent_at.is_empty() {
                link.sent_at = vec![(u64::MAX, 0); SENT_RING];
            }
            link.sent_at[(seq as usize) % SENT_RING] = (seq, m.actual_ns);
        }
        link.next_seq = seq + 1;
        Ok((req, frank_ns))
    }

    /// Opens a message that arrived at `side`, in place.
    ///
    /// # Errors
    /// [`NotOpened::NotReady`] when this end is not set up (a message that overtook the
    /// last set-up message, or one for a failed session — not a forgery); otherwise the
    /// cipher's [`OpenError`] (`Truncated` when the plaintext has no timing header).
    /// Also returns whether it arrived after a later one, and the plaintext after the stamp.
    pub fn open<'a>(&mut self, side: Side, data: &'a mut [u8]) -> Result<Opened<'a>, NotOpened> {
        self.open_kind(side, data, true)
    }

    /// Opens a set-up message (a sender key) that arrived at `side`, in place: never
    /// franked (only conversation messages are).
    ///
    /// # Errors
    /// As [`Conversation::open`].
    pub fn open_control<'a>(&mut self, side: Side, data: &'a mut [u8]) -> Result<Opened<'a>, NotOpened> {
        self.open_kind(side, data, false)
    }

    fn open_kind<'a>(&mut self, side: Side, data: &'a mut [u8], message: bool) -> Result<Opened<'a>, NotOpened> {
        let link = self.ends[side.index()].as_deref_mut().ok_or(NotOpened::NotReady)?;
        let (pt, report) = match link.frank.as_mut().filter(|_| message) {
            // A franked message: its trailer off, opened, its commitment checked.
            Some(f) => {
                let (pt, franked) = super::franking::open(&mut link.cipher, data)?;
                let report = f.reports().then_some(franked);
                (pt, report)
            }
            None => (&*link.cipher.open(data).map_err(NotOpened::Open)?, None),
        };
        let stamp = Stamp::read(pt).map_err(|_| NotOpened::Open(OpenError::Truncated))?;
        let reordered = link.max_seq_rx.is_some_and(|m| stamp.seq < m);
        if !reordered {
            link.max_seq_rx = Some(stamp.seq);
        }
        Ok(Opened { stamp, reordered, rest: &pt[payload::PLAINTEXT_HEADER_LEN..], report })
    }

    /// The actual send time of message `seq` of `side` (as truncated in its request id),
    /// if still remembered.
    pub fn sent_at(&self, side: Side, seq: u64) -> Option<u64> {
        let link = self.ends[side.index()].as_deref()?;
        let (s, t) = *link.sent_at.get((seq as usize) % SENT_RING)?;
        let mask = (1u64 << RequestId::SEQ_BITS) - 1;
        (s & mask == seq).then_some(t)
    }

    /// The actual send time of the message of `side` whose sequence number's low `bits`
    /// bits are `seq` (a wire with short packet ids), if still remembered: the latest one
    /// sent with those bits, as long as the ring still holds it.
    pub fn sent_at_low(&self, side: Side, seq: u64, bits: u32) -> Option<u64> {
        let link = self.ends[side.index()].as_deref()?;
        let (s, t) = *link.sent_at.get((seq as usize) % SENT_RING)?;
        let mask = (1u64 << bits) - 1;
        (s != u64::MAX && s & mask == seq).then_some(t)
    }
}
