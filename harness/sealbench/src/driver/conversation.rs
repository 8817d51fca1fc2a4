//! One pairwise session between two devices, both ends (they live in the same shard): its
//! Noise handshake run end to end through the relay, then its two transport directions,
//! with the per-direction bookkeeping that accounting needs. A 1:1 conversation between
//! single-device users is one session; devices and groups have one per pair of devices
//! that exchange messages (see `chat`). No I/O here: methods take and return bytes.

use super::wire::{RelayProtocol, RequestId, Side, Wire};
use bytes::BytesMut;
use sealcore::payload::{self, E2E_HEADER_LEN, E2eKind, Stamp};
use sealcore::transport::HEADER_LEN;
use sealcore::{
    Handshake, HandshakeError, HandshakeKeys, OpenError, SealError, StaticKeypair, Suite, TransportMode,
    TransportReceiver, TransportSender,
};

/// Offset of the end-to-end body inside a send frame.
const BODY_AT: usize = Wire::ROUTED_HEADER_LEN;
/// Offset of the transport message inside a send frame.
pub const TRANSPORT_AT: usize = BODY_AT + E2E_HEADER_LEN;
/// Offset of the plaintext inside a SEND frame.
pub const PLAINTEXT_AT: usize = TRANSPORT_AT + HEADER_LEN;
/// How many recent send times each direction remembers (for relay-ack latency).
const SENT_RING: usize = 256;
/// Prologue of every handshake (both sides must agree).
pub const PROLOGUE: &[u8] = b"sealbench/1";

/// One end of a conversation, in the phases of the core's type-state: a handshake
/// becomes a transport, and a transport cannot exist before its handshake has ended.
#[derive(Debug, Default)]
pub enum End {
    /// Nothing started yet.
    #[default]
    Idle,
    /// Mid-handshake.
    Handshaking(Box<Handshake>),
    /// The handshake ended: sealing and opening.
    Ready(Box<Link>),
}

/// What protects an end's messages: a Noise transport, or an Olm session.
///
/// The Noise variant (~450 B: both halves, the replay window) stays inline: the whole
/// [`Link`] is boxed already, and boxing the transport too would add a pointer chase to
/// every Noise message.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Cipher {
    /// Noise transport: seals what this end sends, opens what it receives.
    Noise { sender: TransportSender, receiver: TransportReceiver },
    /// `crypto.protocol = "olm"`: the end's Olm session.
    #[cfg(feature = "olm")]
    Olm(Box<super::olm::OlmEnd>),
}

/// An end's transport and the per-direction bookkeeping that accounting needs.
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
}

impl End {
    fn ready(&self) -> bool {
        matches!(self, End::Ready(_))
    }

    fn link(&mut self) -> Option<&mut Link> {
        match self {
            End::Ready(l) => Some(l),
            _ => None,
        }
    }
}

/// Why a transport message was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotOpened {
    /// The receiving end has no transport yet (or never will).
    NotReady,
    /// The transport refused it.
    Open(OpenError),
}

/// Seals a group message (relay fan-out) with the sender's chain `sender` into a complete
/// GROUP_SEND frame in `out`: a timed plaintext whose sequence number is its message number.
///
/// # Errors
/// When the chain refuses (counter exhausted) or `out` cannot hold the frame.
pub fn seal_group_message(
    sender: &mut TransportSender,
    chat: u32,
    group: u64,
    m: Timed,
    out: &mut BytesMut,
) -> Result<(), SealError> {
    out.clear();
    out.resize(PLAINTEXT_AT + m.size + sealcore::TAG_LEN, 0);
    Wire::write_group_send_header(out, RequestId::Group(chat), group).map_err(|_| SealError::BufferTooSmall)?;
    payload::write_e2e_header(&mut out[BODY_AT..], E2eKind::Group, chat).map_err(|_| SealError::BufferTooSmall)?;
    Stamp { seq: m.msg, msg: m.msg, intended_ns: m.intended_ns, actual_ns: m.actual_ns }
        .write(&mut out[PLAINTEXT_AT..PLAINTEXT_AT + m.size])
        .map_err(|_| SealError::BufferTooSmall)?;
    sender.seal(&mut out[TRANSPORT_AT..], m.size)?;
    Ok(())
}

/// Writes a timed plaintext: the stamp, then `extra`, then zero padding.
fn write_plaintext(plain: &mut [u8], stamp: Stamp, extra: &[u8]) -> Result<(), SealError> {
    stamp.write(plain).map_err(|_| SealError::BufferTooSmall)?;
    let at = payload::PLAINTEXT_HEADER_LEN;
    plain.get_mut(at..at + extra.len()).ok_or(SealError::BufferTooSmall)?.copy_from_slice(extra);
    Ok(())
}

/// Fills `plain` with the timed plaintext of `m` (its stamp, then zero padding up to its
/// size): what a group protocol's sender encrypts.
///
/// # Errors
/// Never in practice (the buffer is sized here); kept for the stamp's own check.
pub fn timed_plaintext(plain: &mut Vec<u8>, m: Timed) -> Result<(), SealError> {
    plain.clear();
    plain.resize(m.size.max(payload::PLAINTEXT_HEADER_LEN), 0);
    write_plaintext(plain, Stamp { seq: m.msg, msg: m.msg, intended_ns: m.intended_ns, actual_ns: m.actual_ns }, &[])
}

/// A timed message to seal.
#[derive(Debug, Clone, Copy)]
pub struct Timed {
    /// Plaintext bytes (at least the stamp).
    pub size: usize,
    /// The sender's logical message number (shared by every copy).
    pub msg: u32,
    /// When the schedule said to send it.
    pub intended_ns: u64,
    /// When it was sealed.
    pub actual_ns: u64,
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
}

/// A handshake message to carry through the relay.
#[derive(Debug)]
pub struct Outbound {
    /// Who sends it.
    pub from: Side,
    /// The complete SEND frame.
    pub frame: BytesMut,
}

/// What processing a handshake message led to.
#[derive(Debug, Default)]
pub struct HsProgress {
    /// A reply to send, if any.
    pub reply: Option<Outbound>,
    /// The initiator's transport became ready: handshake time in ns.
    pub initiator_done_ns: Option<u64>,
}

/// A conversation.
pub struct Conversation {
    /// Global conversation id (in every E2E header).
    pub id: u32,
    /// Local index of the initiator's client.
    pub initiator: usize,
    /// Local index of the responder's client.
    pub responder: usize,
    /// Relay ids, by [`Side::index`].
    pub ids: [u64; 2],
    /// The two ends, by [`Side::index`].
    ends: [End; 2],
    suite: Suite,
    mode: TransportMode,
    keys: [Option<StaticKeypair>; 2],
    /// The responder's static public key, once known (IK / NK fetch it from the directory).
    pub remote_static: Option<[u8; 32]>,
    hs_started_ns: u64,
    /// Handshake over (either way).
    pub hs_finished: bool,
}

impl std::fmt::Debug for Conversation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conversation").field("id", &self.id).field("ids", &self.ids).finish_non_exhaustive()
    }
}

impl Conversation {
    /// A conversation between local clients `initiator` and `responder`.
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
            remote_static: None,
            hs_started_ns: 0,
            hs_finished: false,
        }
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

    /// Both ends have their transports.
    pub fn ready(&self) -> bool {
        self.ends[0].ready() && self.ends[1].ready()
    }

    /// Starts the handshake on the initiator: its first message.
    ///
    /// # Errors
    /// When the pattern needs a key that is missing.
    pub fn start(&mut self, now_ns: u64) -> Result<Outbound, HandshakeError> {
        let rs = self.remote_static;
        let keys =
            HandshakeKeys { local_static: self.keys[0].as_ref(), remote_static: rs.as_ref(), fixed_ephemeral: None };
        let mut hs = Handshake::initiator(self.suite, keys, PROLOGUE)?;
        self.hs_started_ns = now_ns;
        let frame = self.handshake_frame(&mut hs, Side::Initiator)?;
        self.ends[0] = End::Handshaking(Box::new(hs));
        Ok(Outbound { from: Side::Initiator, frame })
    }

    fn handshake_frame(&self, hs: &mut Handshake, from: Side) -> Result<BytesMut, HandshakeError> {
        // A hybrid pattern's first two messages carry 1,184 and 1,120 bytes of ML-KEM data.
        let mut buf = BytesMut::zeroed(TRANSPORT_AT + 2048);
        let n = hs.write_message(&[], &mut buf[TRANSPORT_AT..])?;
        buf.truncate(TRANSPORT_AT + n);
        let to = self.ids[from.peer().index()];
        Wire::write_send_header(&mut buf, RequestId::Control(self.id), false, to)
            .map_err(|_| HandshakeError::BufferTooSmall)?;
        payload::write_e2e_header(&mut buf[BODY_AT..], E2eKind::Handshake, self.id)
            .map_err(|_| HandshakeError::BufferTooSmall)?;
        Ok(buf)
    }

    /// Processes a handshake message that arrived at `side`.
    ///
    /// # Errors
    /// Any handshake failure (authentication, malformed, out of turn).
    pub fn on_handshake(&mut self, side: Side, msg: &[u8], now_ns: u64) -> Result<HsProgress, HandshakeError> {
        let mut progress = HsProgress::default();
        let i = side.index();
        if side == Side::Responder && matches!(self.ends[i], End::Idle) {
            let keys = HandshakeKeys { local_static: self.keys[i].as_ref(), ..Default::default() };
            self.ends[i] = End::Handshaking(Box::new(Handshake::responder(self.suite, keys, PROLOGUE)?));
        }
        let mut hs = match std::mem::take(&mut self.ends[i]) {
            End::Handshaking(hs) => hs,
            other => {
                self.ends[i] = other;
                return Err(HandshakeError::State);
            }
        };
        let mut scratch = [0u8; 256];
        hs.read_message(msg, &mut scratch)?;
        if !hs.is_finished() {
            let frame = self.handshake_frame(&mut hs, side)?;
            progress.reply = Some(Outbound { from: side, frame });
        }
        if hs.is_finished() {
            self.finish(side, *hs)?;
            if side == Side::Initiator {
                progress.initiator_done_ns = Some(now_ns.saturating_sub(self.hs_started_ns));
            }
        } else {
            self.ends[i] = End::Handshaking(hs);
        }
        // (The initiator of XX finishes by *writing* the last message: that is the
        // `hs.is_finished()` after writing the reply above.)
        Ok(progress)
    }

    fn finish(&mut self, side: Side, hs: Handshake) -> Result<(), HandshakeError> {
        let t = hs.into_transport(self.mode)?;
        let (sender, receiver) = t.split();
        self.set_ready(side, Cipher::Noise { sender, receiver });
        Ok(())
    }

    fn set_ready(&mut self, side: Side, cipher: Cipher) {
        let sent_at = Vec::new();
        self.ends[side.index()] = End::Ready(Box::new(Link { cipher, next_seq: 0, max_seq_rx: None, sent_at }));
        if self.ready() {
            self.hs_finished = true;
        }
    }

    /// `crypto.protocol = "olm"`: `side`'s Olm session is set up (the initiator's from a
    /// claimed key, the responder's from the first pre-key message).
    #[cfg(feature = "olm")]
    pub fn olm_ready(&mut self, side: Side, session: sealproto::olm::OlmSession) {
        self.set_ready(side, Cipher::Olm(Box::new(super::olm::OlmEnd::new(session))));
    }

    /// Whether `side`'s session is set up.
    pub fn end_ready(&self, side: Side) -> bool {
        self.ends[side.index()].ready()
    }

    /// The first message of an Olm session from the initiator (kind `OlmSetup`, a timed
    /// plaintext stamped `now_ns`).
    ///
    /// # Errors
    /// As [`Conversation::seal`].
    pub fn seal_olm_setup(&mut self, now_ns: u64, out: &mut BytesMut) -> Result<RequestId, SealError> {
        let m = Timed { size: payload::PLAINTEXT_HEADER_LEN, msg: 0, intended_ns: now_ns, actual_ns: now_ns };
        self.seal_kind(Side::Initiator, E2eKind::OlmSetup, m, &[], false, out)
    }

    /// Seals the next message of `side` into a complete SEND frame in `out`: a timed
    /// plaintext of `size` bytes, copy of the sender's logical message `msg`.
    ///
    /// # Errors
    /// When the transport is not ready or refuses (counter exhausted). Returns the
    /// message's request id.
    pub fn seal(&mut self, side: Side, m: Timed, want_ack: bool, out: &mut BytesMut) -> Result<RequestId, SealError> {
        self.seal_kind(side, E2eKind::Transport, m, &[], want_ack, out)
    }

    /// Seals a group sender key from `side` to its peer (a timed plaintext followed by
    /// the key bytes: a 32-byte chain key, or a Megolm session key).
    ///
    /// # Errors
    /// As [`Conversation::seal`].
    pub fn seal_sender_key(
        &mut self,
        side: Side,
        key: &[u8],
        now_ns: u64,
        out: &mut BytesMut,
    ) -> Result<RequestId, SealError> {
        let size = payload::PLAINTEXT_HEADER_LEN + key.len();
        let m = Timed { size, msg: 0, intended_ns: now_ns, actual_ns: now_ns };
        self.seal_kind(side, E2eKind::SenderKey, m, key, false, out)
    }

    fn seal_kind(
        &mut self,
        side: Side,
        kind: E2eKind,
        m: Timed,
        extra: &[u8],
        want_ack: bool,
        out: &mut BytesMut,
    ) -> Result<RequestId, SealError> {
        let (id, to) = (self.id, self.ids[side.peer().index()]);
        let link = self.ends[side.index()].link().ok_or(SealError::Aead)?;
        let seq = link.next_seq;
        let size = m.size;
        let req = RequestId::Message { conv: id, side, seq };
        let stamp = Stamp { seq: seq as u32, msg: m.msg, intended_ns: m.intended_ns, actual_ns: m.actual_ns };
        let kind = match (&link.cipher, kind) {
            #[cfg(feature = "olm")]
            (Cipher::Olm(_), E2eKind::Transport) => E2eKind::Olm,
            _ => kind,
        };
        let total = match link.cipher {
            Cipher::Noise { .. } => PLAINTEXT_AT + size + sealcore::TAG_LEN,
            #[cfg(feature = "olm")]
            Cipher::Olm(_) => TRANSPORT_AT,
        };
        out.clear();
        out.resize(total, 0);
        Wire::write_send_header(out, req, want_ack, to).map_err(|_| SealError::BufferTooSmall)?;
        payload::write_e2e_header(&mut out[BODY_AT..], kind, id).map_err(|_| SealError::BufferTooSmall)?;
        match &mut link.cipher {
            Cipher::Noise { sender, .. } => {
                let plain = &mut out[PLAINTEXT_AT..PLAINTEXT_AT + size];
                write_plaintext(plain, stamp, extra)?;
                sender.seal(&mut out[TRANSPORT_AT..], size)?;
            }
            #[cfg(feature = "olm")]
            Cipher::Olm(olm) => {
                let plain = olm.plaintext(size);
                write_plaintext(plain, stamp, extra)?;
                olm.seal(out)?;
            }
        }
        if want_ack {
            if link.sent_at.is_empty() {
                link.sent_at = vec![(u64::MAX, 0); SENT_RING];
            }
            link.sent_at[(seq as usize) % SENT_RING] = (seq, m.actual_ns);
        }
        link.next_seq = seq + 1;
        Ok(req)
    }

    /// Opens a transport message that arrived at `side`, in place.
    ///
    /// # Errors
    /// [`NotOpened::NotReady`] when this end's handshake has not ended (a message that
    /// overtook the last handshake message, or one for a failed conversation — not a
    /// forgery); otherwise the transport's [`OpenError`] (`Truncated` when the plaintext
    /// has no timing header).
    /// Also returns whether it arrived after a later one, and the plaintext after the stamp.
    pub fn open<'a>(&mut self, side: Side, data: &'a mut [u8]) -> Result<Opened<'a>, NotOpened> {
        let link = self.ends[side.index()].link().ok_or(NotOpened::NotReady)?;
        let pt = match &mut link.cipher {
            Cipher::Noise { receiver, .. } => receiver.open(data).map_err(NotOpened::Open)?,
            #[cfg(feature = "olm")]
            Cipher::Olm(olm) => olm.open(data).map_err(NotOpened::Open)?,
        };
        let stamp = Stamp::read(pt).map_err(|_| NotOpened::Open(OpenError::Truncated))?;
        let reordered = link.max_seq_rx.is_some_and(|m| stamp.seq < m);
        if !reordered {
            link.max_seq_rx = Some(stamp.seq);
        }
        Ok(Opened { stamp, reordered, rest: &pt[payload::PLAINTEXT_HEADER_LEN..] })
    }

    /// The actual send time of message `seq` of `side` (as truncated in its request id),
    /// if still remembered.
    pub fn sent_at(&self, side: Side, seq: u64) -> Option<u64> {
        let End::Ready(link) = &self.ends[side.index()] else { return None };
        let (s, t) = *link.sent_at.get((seq as usize) % SENT_RING)?;
        let mask = (1u64 << RequestId::SEQ_BITS) - 1;
        (s & mask == seq).then_some(t)
    }
}
