//! A relay-fan-out group's Megolm sessions inside the driver (`crypto.protocol =
//! "megolm"`): each sending device's outbound session, each member device's copy of each
//! sender's session (the current generation and the one before, so that messages in
//! flight across a rotation still decrypt), and sealing / opening a group message. The
//! keys travel over the devices' Olm sessions (`shard/megolm`). vodozemac allocates inside
//! every encrypt and decrypt; the buffers around it are reused. No I/O.

use super::conversation::{TRANSPORT_AT, Timed};
use super::wire::{RelayProtocol, RequestId, Wire};
use bytes::BytesMut;
use sealcore::payload::{self, E2eKind, Stamp};
use sealcore::{OpenError, SealError};
use sealproto::megolm::{MegolmInbound, MegolmOutbound};

/// The Megolm state of one relay-fan-out group.
#[derive(Debug)]
pub struct MegolmGroup {
    /// Per sending device position: its outbound session.
    pub out: Vec<MegolmOutbound>,
    /// Per (recipient position, sender position): the sender's current session.
    inbound: Vec<Option<MegolmInbound>>,
    /// Per (recipient, sender): the generation before (in-flight messages of a rotation).
    previous: Vec<Option<MegolmInbound>>,
    /// Per (recipient, sender): the highest message number received (reorder count).
    max_rx: Vec<Option<u32>>,
    /// Senders (the row length of the per-pair tables).
    sending: usize,
    /// `crypto.megolm_leave_every`: messages of the group since the last leave, and the
    /// period (0: none); the next device to leave (one that does not send).
    since_leave: u32,
    leave_every: u32,
    next_leave: usize,
    /// Per device position: it has left the group.
    departed: Vec<bool>,
    /// Per (recipient, sender): the first generation of that sender not meant for it (the
    /// one it rotated to when the recipient left; `u32::MAX` while it is a member).
    cutoff: Vec<u32>,
    plain: Vec<u8>,
    wire: Vec<u8>,
}

impl MegolmGroup {
    /// Sessions for `sending` senders among `devices` devices, rotated after
    /// `rotate_after` messages (0: never by count).
    pub fn new(devices: usize, sending: usize, rotate_after: u32) -> Self {
        let n = devices * sending;
        MegolmGroup {
            out: (0..sending).map(|_| MegolmOutbound::new(rotate_after)).collect(),
            inbound: (0..n).map(|_| None).collect(),
            previous: (0..n).map(|_| None).collect(),
            max_rx: vec![None; n],
            sending,
            since_leave: 0,
            leave_every: 0,
            next_leave: sending,
            departed: vec![false; devices],
            cutoff: vec![u32::MAX; n],
            plain: Vec::with_capacity(256),
            wire: Vec::with_capacity(512),
        }
    }

    /// With a member leaving every `every` messages of the group (0: never).
    pub fn with_leaves(mut self, every: u32) -> Self {
        self.leave_every = every;
        self
    }

    /// The device that leaves before the next message, when a leave is due (the next one
    /// that does not send and is still a member; None once only senders remain).
    pub fn leave_due(&mut self) -> Option<usize> {
        if self.leave_every == 0 {
            return None;
        }
        self.since_leave += 1;
        if self.since_leave <= self.leave_every || self.next_leave >= self.departed.len() {
            return None;
        }
        self.since_leave = 1;
        let v = self.next_leave;
        self.next_leave += 1;
        Some(v)
    }

    /// Device `pos` is leaving: senders no longer count it, and their rotation's key skips it.
    pub fn leaving(&mut self, pos: usize) {
        self.departed[pos] = true;
    }

    /// Device `pos` has left: every sender has rotated (its current generation is the
    /// first one not meant for `pos`).
    pub fn left(&mut self, pos: usize) {
        for s in 0..self.sending {
            self.cutoff[pos * self.sending + s] = self.out[s].generation();
        }
    }

    /// For a device that has left: whether `data`, from the sender at `sender`, was sent
    /// after it left (`None`: it was not, open it as a member's), and if so whether the
    /// device could read it anyway, trying what a departed member who kept its last key
    /// would (that key on the message body, whatever its generation says). It must not:
    /// `Some(true)` means the rotation did not exclude it.
    pub fn read_after_leave(&mut self, recipient: usize, sender: usize, data: &[u8]) -> Option<bool> {
        let slot = recipient * self.sending + sender;
        let generation = MegolmInbound::generation_of(data).ok()?;
        if generation < *self.cutoff.get(slot)? {
            return None;
        }
        let body = data.get(4..).unwrap_or_default();
        Some(self.inbound[slot].as_mut().is_some_and(|kept| kept.decrypt_body(body).is_ok()))
    }

    /// Whether device `pos` has left the group.
    pub fn departed(&self, pos: usize) -> bool {
        self.departed.get(pos).copied().unwrap_or(false)
    }

    /// Installs a shared session key of `sender` at `recipient`; returns whether this was
    /// the first key of that sender there (set-up), or `None` when it does not decode.
    pub fn install(&mut self, recipient: usize, sender: usize, shared: &[u8]) -> Option<bool> {
        let inb = MegolmInbound::from_shared(shared).ok()?;
        let slot = recipient * self.sending + sender;
        let first = self.inbound[slot].is_none();
        match &self.inbound[slot] {
            Some(cur) if cur.generation() >= inb.generation() => {}
            _ => self.previous[slot] = self.inbound[slot].replace(inb),
        }
        Some(first)
    }

    /// Seals message `m` of the sender at `pos` into a complete GROUP_SEND frame in `out`.
    ///
    /// # Errors
    /// When `out` cannot hold the headers.
    pub fn seal(&mut self, pos: usize, chat: u32, group: u64, m: Timed, out: &mut BytesMut) -> Result<(), SealError> {
        out.clear();
        out.resize(TRANSPORT_AT, 0);
        Wire::write_group_send_header(out, RequestId::Group(chat), group).map_err(|_| SealError::BufferTooSmall)?;
        let body = &mut out[Wire::ROUTED_HEADER_LEN..];
        payload::write_e2e_header(body, E2eKind::Group, chat).map_err(|_| SealError::BufferTooSmall)?;
        super::conversation::timed_plaintext(&mut self.plain, m)?;
        self.wire.clear();
        self.out[pos].encrypt(&self.plain, &mut self.wire);
        out.extend_from_slice(&self.wire);
        Ok(())
    }

    /// Opens a group message from the sender at `sender` at the device at `recipient`:
    /// its stamp and whether it arrived after a later one.
    ///
    /// # Errors
    /// `None` when no key of that sender has arrived yet (not ready); otherwise the refusal
    /// under the transport's names (`Replay`, `TooOld`, `Auth`; a generation this device
    /// does not hold, or anything that does not decode, is `Truncated`: malformed).
    pub fn open(&mut self, recipient: usize, sender: usize, data: &[u8]) -> Option<Result<(Stamp, bool), OpenError>> {
        let slot = recipient * self.sending + sender;
        let generation = MegolmInbound::generation_of(data).ok();
        let cur = self.inbound[slot].as_mut()?;
        let session = match (generation, self.previous[slot].as_mut()) {
            (Some(g), Some(prev)) if g != cur.generation() && g == prev.generation() => prev,
            _ => cur,
        };
        let r = session
            .decrypt(data)
            .map_err(super::olm::open_error)
            .and_then(|(pt, _)| Stamp::read(&pt).map_err(|_| OpenError::Truncated));
        Some(r.map(|stamp| {
            let reordered = self.max_rx[slot].is_some_and(|m| stamp.msg < m);
            if !reordered {
                self.max_rx[slot] = Some(stamp.msg);
            }
            (stamp, reordered)
        }))
    }
}
