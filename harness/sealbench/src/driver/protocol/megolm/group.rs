//! A relay-fan-out group's Megolm sessions inside the driver (`crypto.protocol =
//! "megolm"`): each sending device's outbound session, each member device's copy of each
//! sender's session (the current generation and up to [`KEPT_GENERATIONS`] before it, so
//! that messages in flight across rotations still decrypt, as Matrix clients keep their
//! inbound sessions), and sealing / opening a group message. The
//! keys travel over the devices' Olm sessions (`shard/megolm`). vodozemac allocates inside
//! every encrypt and decrypt; the buffers around it are reused. No I/O.

use crate::driver::protocol::pairwise::{BODY_AT, TRANSPORT_AT, Timed};
use crate::driver::wire::{RequestId, Wire};
use bytes::BytesMut;
use sealcore::payload::{self, E2eKind, Stamp};
use sealcore::{OpenError, SealError};
use sealproto::megolm::{MegolmInbound, MegolmOutbound};
use std::collections::VecDeque;

/// Earlier generations of a sender's session a member keeps (beside the current one). A
/// message of an older generation is refused as `too_old`: a bounded store, so that a run
/// rotating every few messages does not grow without limit (Matrix clients keep them all).
pub const KEPT_GENERATIONS: usize = 8;

/// The Megolm state of one relay-fan-out group.
#[derive(Debug)]
pub struct MegolmGroup {
    /// Per sending device position: its outbound session.
    pub out: Vec<MegolmOutbound>,
    /// Per (recipient position, sender position): the sender's current session.
    inbound: Vec<Option<MegolmInbound>>,
    /// Per (recipient, sender): earlier generations, newest first (messages in flight
    /// across rotations), at most [`KEPT_GENERATIONS`].
    previous: Vec<VecDeque<MegolmInbound>>,
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
            previous: (0..n).map(|_| VecDeque::new()).collect(),
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
        let incoming = inb.generation();
        // The newest generation is current; the others are kept newest first (a key can
        // arrive after a newer one when the relay reorders), at most KEPT_GENERATIONS.
        let older = match &self.inbound[slot] {
            Some(cur) if cur.generation() == incoming => return Some(first),
            Some(cur) if cur.generation() > incoming => inb,
            _ => match self.inbound[slot].replace(inb) {
                Some(old) => old,
                None => return Some(first),
            },
        };
        let kept = &mut self.previous[slot];
        let at = kept.iter().position(|p| p.generation() <= older.generation()).unwrap_or(kept.len());
        if kept.get(at).is_some_and(|p| p.generation() == older.generation()) || at == KEPT_GENERATIONS {
            return Some(first);
        }
        kept.insert(at, older);
        kept.truncate(KEPT_GENERATIONS);
        Some(first)
    }

    /// Seals message `m` of the sender at `pos` into a complete GROUP_SEND frame in `out`.
    ///
    /// # Errors
    /// When `out` cannot hold the headers.
    pub fn seal(&mut self, pos: usize, chat: u32, group: u64, m: Timed, out: &mut BytesMut) -> Result<(), SealError> {
        out.clear();
        out.resize(TRANSPORT_AT, 0);
        payload::write_e2e_header(&mut out[BODY_AT..], E2eKind::Group, chat).map_err(|_| SealError::BufferTooSmall)?;
        crate::driver::protocol::pairwise::timed_plaintext(&mut self.plain, m)?;
        self.wire.clear();
        self.out[pos].encrypt(&self.plain, &mut self.wire);
        out.extend_from_slice(&self.wire);
        // Megolm needs Olm's consume-once keys, which only sealbench's wire has (the plan
        // refuses Megolm on the others), so its frames are that wire's.
        Wire::Sealbench.finish_group_send(out, RequestId::Group(chat), group, 0).map_err(|_| SealError::BufferTooSmall)
    }

    /// Opens a group message from the sender at `sender` at the device at `recipient`:
    /// its stamp and whether it arrived after a later one.
    ///
    /// # Errors
    /// `None` when the key of the message's generation has not arrived (not ready: what a
    /// Matrix client shows as "unable to decrypt" until the key comes); otherwise the
    /// refusal under the transport's names (`Replay`, `Auth`; `TooOld` for an index the
    /// session has ratcheted past or a generation older than the kept ones; anything that
    /// does not decode is `Truncated`: malformed).
    pub fn open(&mut self, recipient: usize, sender: usize, data: &[u8]) -> Option<Result<(Stamp, bool), OpenError>> {
        let slot = recipient * self.sending + sender;
        let cur = self.inbound[slot].as_mut()?;
        let session = match MegolmInbound::generation_of(data) {
            Ok(g) if g > cur.generation() => return None,
            Ok(g) if g < cur.generation() => match self.previous[slot].iter_mut().find(|p| p.generation() == g) {
                Some(prev) => prev,
                None => return Some(Err(OpenError::TooOld)),
            },
            _ => cur,
        };
        let r = session
            .decrypt(data)
            .map_err(crate::driver::protocol::olm::open_error)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(g: &mut MegolmGroup, msg: u32) -> Vec<u8> {
        let mut out = BytesMut::with_capacity(1024);
        let m = Timed {
            size: payload::PLAINTEXT_HEADER_LEN,
            msg,
            intended_ns: 1,
            actual_ns: 2,
            text: crate::driver::content::Text::ZEROS,
        };
        g.seal(0, 7, 9, m, &mut out).unwrap();
        // What the recipient is handed: the Megolm message after the routed and E2E headers.
        out[Wire::ROUTED_HEADER_LEN + payload::E2E_HEADER_LEN..].to_vec()
    }

    fn share(g: &mut MegolmGroup) {
        let key = g.out[0].session_key();
        g.install(1, 0, &key).unwrap();
    }

    #[test]
    fn messages_in_flight_across_several_rotations_still_open_and_older_ones_are_too_old() {
        // One sender (device 0), one recipient (device 1); the sender rotates after every
        // message, so each message is of its own generation.
        let mut g = MegolmGroup::new(2, 1, 0);
        let mut in_flight = Vec::new();
        for msg in 0..=(KEPT_GENERATIONS as u32 + 1) {
            share(&mut g);
            in_flight.push(sealed(&mut g, msg));
            g.out[0].rotate();
        }
        // Delivered newest first: every kept generation opens, by name.
        let newest = in_flight.len() - 1;
        for (msg, data) in in_flight.iter().enumerate().rev() {
            let r = g.open(1, 0, data).expect("the key of every generation was shared");
            if newest - msg <= KEPT_GENERATIONS {
                let (stamp, _) = r.unwrap_or_else(|e| panic!("message {msg}: {e:?}"));
                assert_eq!(stamp.msg, msg as u32);
            } else {
                assert!(matches!(r, Err(OpenError::TooOld)), "message {msg}: {r:?}");
            }
        }
        // A message of a generation whose key has not arrived: not ready, not malformed.
        let late_key = g.out[0].session_key();
        let ahead = sealed(&mut g, 99);
        assert!(g.open(1, 0, &ahead).is_none());
        // Its key arrives late, after the next one (reordered shares): both open.
        g.out[0].rotate();
        share(&mut g);
        let next = sealed(&mut g, 100);
        g.install(1, 0, &late_key).unwrap();
        assert_eq!(g.open(1, 0, &ahead).unwrap().unwrap().0.msg, 99);
        assert_eq!(g.open(1, 0, &next).unwrap().unwrap().0.msg, 100);
    }
}
