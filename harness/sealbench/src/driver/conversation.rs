//! One 1:1 conversation, both ends (they live in the same shard): its Noise handshake run
//! end to end through the relay, then its two transport directions, with the per-direction
//! bookkeeping that accounting needs. No I/O here: methods take and return bytes.

use bytes::BytesMut;
use sealcore::frame::{self, ROUTED_HEADER_LEN};
use sealcore::payload::{self, E2E_HEADER_LEN, E2eKind, Stamp};
use sealcore::transport::HEADER_LEN;
use sealcore::{
    Handshake, HandshakeError, HandshakeKeys, OpenError, SealError, StaticKeypair, Suite, TransportMode,
    TransportReceiver, TransportSender,
};

/// Offset of the transport message inside a SEND frame.
pub const TRANSPORT_AT: usize = ROUTED_HEADER_LEN + E2E_HEADER_LEN;
/// Offset of the plaintext inside a SEND frame.
pub const PLAINTEXT_AT: usize = TRANSPORT_AT + HEADER_LEN;
/// How many recent send times each direction remembers (for relay-ack latency).
const SENT_RING: usize = 256;
/// Prologue of every handshake (both sides must agree).
pub const PROLOGUE: &[u8] = b"sealbench/1";

/// Request ids with this bit set belong to handshake or key-directory frames.
pub const CONTROL_REQUEST: u64 = 1 << 63;

/// One direction's end of a conversation.
#[derive(Debug, Default)]
pub struct End {
    /// Seals what this end sends (after the handshake).
    pub sender: Option<TransportSender>,
    /// Opens what this end receives.
    pub receiver: Option<TransportReceiver>,
    /// Sequence number of this end's next message.
    pub next_seq: u64,
    /// Highest sequence number received from the peer.
    pub max_seq_rx: Option<u64>,
    /// Actual send times of recent messages, by `seq % SENT_RING` (relay-ack latency).
    sent_at: Vec<(u64, u64)>,
}

impl End {
    fn ready(&self) -> bool {
        self.sender.is_some() && self.receiver.is_some()
    }
}

/// A handshake message to carry through the relay.
#[derive(Debug)]
pub struct Outbound {
    /// True when the initiator sends it (to the responder).
    pub from_initiator: bool,
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
    /// Relay ids.
    pub ids: [u64; 2],
    /// [initiator end, responder end].
    pub ends: [End; 2],
    suite: Suite,
    mode: TransportMode,
    keys: [Option<StaticKeypair>; 2],
    /// The responder's static public key, once known (IK / NK fetch it from the directory).
    pub remote_static: Option<[u8; 32]>,
    hs: [Option<Handshake>; 2],
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
            hs: [None, None],
            hs_started_ns: 0,
            hs_finished: false,
        }
    }

    /// Local client index of `side` (0 initiator, 1 responder).
    pub fn client(&self, side: usize) -> usize {
        if side == 0 { self.initiator } else { self.responder }
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
        let frame = self.handshake_frame(&mut hs, true)?;
        self.hs[0] = Some(hs);
        Ok(Outbound { from_initiator: true, frame })
    }

    fn handshake_frame(&self, hs: &mut Handshake, from_initiator: bool) -> Result<BytesMut, HandshakeError> {
        let mut buf = BytesMut::zeroed(TRANSPORT_AT + 256);
        let n = hs.write_message(&[], &mut buf[TRANSPORT_AT..])?;
        buf.truncate(TRANSPORT_AT + n);
        let to = self.ids[usize::from(from_initiator)];
        let req = CONTROL_REQUEST | u64::from(self.id);
        frame::write_send_header(&mut buf, req, 0, to).map_err(|_| HandshakeError::BufferTooSmall)?;
        payload::write_e2e_header(&mut buf[ROUTED_HEADER_LEN..], E2eKind::Handshake, self.id)
            .map_err(|_| HandshakeError::BufferTooSmall)?;
        Ok(buf)
    }

    /// Processes a handshake message that arrived at `side`.
    ///
    /// # Errors
    /// Any handshake failure (authentication, malformed, out of turn).
    pub fn on_handshake(&mut self, side: usize, msg: &[u8], now_ns: u64) -> Result<HsProgress, HandshakeError> {
        let mut progress = HsProgress::default();
        if side == 1 && self.hs[1].is_none() && !self.ends[1].ready() {
            let keys = HandshakeKeys { local_static: self.keys[1].as_ref(), ..Default::default() };
            self.hs[1] = Some(Handshake::responder(self.suite, keys, PROLOGUE)?);
        }
        let mut hs = self.hs[side].take().ok_or(HandshakeError::State)?;
        let mut scratch = [0u8; 256];
        hs.read_message(msg, &mut scratch)?;
        if !hs.is_finished() {
            let frame = self.handshake_frame(&mut hs, side == 0)?;
            progress.reply = Some(Outbound { from_initiator: side == 0, frame });
        }
        if hs.is_finished() {
            self.finish(side, hs)?;
            if side == 0 {
                progress.initiator_done_ns = Some(now_ns.saturating_sub(self.hs_started_ns));
            }
        } else {
            self.hs[side] = Some(hs);
        }
        // (The initiator of XX finishes by *writing* the last message: that is the
        // `hs.is_finished()` after writing the reply above.)
        Ok(progress)
    }

    fn finish(&mut self, side: usize, hs: Handshake) -> Result<(), HandshakeError> {
        let t = hs.into_transport(self.mode)?;
        let (s, r) = t.split();
        self.ends[side].sender = Some(s);
        self.ends[side].receiver = Some(r);
        self.ends[side].sent_at = vec![(u64::MAX, 0); SENT_RING];
        if self.ready() {
            self.hs_finished = true;
        }
        Ok(())
    }

    /// Seals the next message of `side` into a complete SEND frame in `out`.
    ///
    /// # Errors
    /// When the transport is not ready or refuses (counter exhausted).
    #[allow(clippy::too_many_arguments)]
    pub fn seal(
        &mut self,
        side: usize,
        size: usize,
        intended_ns: u64,
        actual_ns: u64,
        flags: u8,
        out: &mut BytesMut,
    ) -> Result<u64, SealError> {
        let to = self.ids[1 - side];
        let end = &mut self.ends[side];
        let sender = end.sender.as_mut().ok_or(SealError::Aead)?;
        let seq = end.next_seq;
        let total = PLAINTEXT_AT + size + sealcore::TAG_LEN;
        out.clear();
        out.resize(total, 0);
        let req = (u64::from(self.id) << 32) | (side as u64) << 31 | (seq & 0x7fff_ffff);
        frame::write_send_header(out, req, flags, to).map_err(|_| SealError::BufferTooSmall)?;
        payload::write_e2e_header(&mut out[ROUTED_HEADER_LEN..], E2eKind::Transport, self.id)
            .map_err(|_| SealError::BufferTooSmall)?;
        Stamp { seq, intended_ns, actual_ns }
            .write(&mut out[PLAINTEXT_AT..PLAINTEXT_AT + size])
            .map_err(|_| SealError::BufferTooSmall)?;
        sender.seal(&mut out[TRANSPORT_AT..], size)?;
        end.sent_at[(seq as usize) % SENT_RING] = (seq, actual_ns);
        end.next_seq = seq + 1;
        Ok(req)
    }

    /// Opens a transport message that arrived at `side`, in place.
    ///
    /// # Errors
    /// The transport's [`OpenError`]; `Truncated` when the plaintext has no timing header.
    pub fn open(&mut self, side: usize, data: &mut [u8]) -> Result<(Stamp, bool), OpenError> {
        let end = &mut self.ends[side];
        let receiver = end.receiver.as_mut().ok_or(OpenError::Auth)?;
        let pt = receiver.open(data)?;
        let stamp = Stamp::read(pt).map_err(|_| OpenError::Truncated)?;
        let reordered = end.max_seq_rx.is_some_and(|m| stamp.seq < m);
        if !reordered {
            end.max_seq_rx = Some(stamp.seq);
        }
        Ok((stamp, reordered))
    }

    /// The actual send time of message `seq` of `side`, if still remembered.
    pub fn sent_at(&self, side: usize, seq: u64) -> Option<u64> {
        let (s, t) = *self.ends[side].sent_at.get((seq as usize) % SENT_RING)?;
        (s == seq).then_some(t)
    }
}
