//! A relay-fan-out group's MLS state inside the driver (`crypto.protocol = "mls"`): one
//! openmls member per device (its provider, signer and group state), the key packages its
//! creator claimed, who has joined, and sealing / opening application messages. openmls
//! allocates inside every operation and writes its group state to the member's in-memory
//! storage provider; the buffers around it are reused. No I/O.

use crate::driver::protocol::pairwise::{BODY_AT, TRANSPORT_AT, Timed};
use crate::driver::wire::{RequestId, Route, Wire};
use bytes::BytesMut;
use sealcore::payload::{self, E2eKind, Stamp};
use sealcore::{OpenError, SealError};
use sealproto::ProtoError;
use sealproto::mls::{MlsMember, Processed};

/// Why an MLS message was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotProcessed {
    /// This device has not joined (yet), or the message is from an epoch it has not reached.
    NotReady,
    /// From an epoch whose secrets this device no longer holds.
    OldEpoch,
    /// From an epoch in which this device was not in the group (the relay's fan-out
    /// reaches every device of the relay group; MLS membership is end to end): the
    /// sender did not count it as a recipient.
    NotMember,
    /// Refused under the transport's names.
    Open(OpenError),
}

/// The MLS state of one group.
#[derive(Debug)]
pub struct MlsGroupState {
    /// Per device position: its MLS member.
    pub members: Vec<MlsMember>,
    /// Per device position: it has joined (the creator from the start).
    pub joined: Vec<bool>,
    /// Per device position: the key package its creator claimed for it.
    pub key_packages: Vec<Option<Vec<u8>>>,
    /// The creator has sent its claims (set-up under way).
    pub claiming: bool,
    /// When the creator started claiming (the group's set-up start).
    pub claimed_at: u64,
    /// The group exists (its creator made it).
    pub created: bool,
    /// Messages of the group since the last commit, and the self-update period.
    since_commit: u32,
    self_update_every: u32,
    /// Membership churn (`crypto.mls_churn_every`): messages since the last change, and
    /// the period (0: none).
    since_churn: u32,
    churn_every: u32,
    /// Per device position: the epochs it is in the group, as `[from, until)` intervals
    /// (the sender's epoch decides who a message is for; a late message's epoch decides
    /// whether its refusal is `old_epoch` or `not_member`).
    membership: Vec<Vec<(u64, u64)>>,
    /// The member removed last, while it is out (membership churn).
    pub out: Option<usize>,
    /// The member that is out has published a fresh key package (it can be re-added).
    pub republished: bool,
    /// The creator has claimed that key package (the re-add is under way).
    pub readding: bool,
    /// The next removal's candidate (a device that does not send: positions `sending..`).
    next_out: usize,
    /// Per (recipient, sender): the highest message number received (reorder count).
    max_rx: Vec<Option<u32>>,
    sending: usize,
    plain: Vec<u8>,
    wire: Vec<u8>,
}

impl MlsGroupState {
    /// Members for the devices `ids` (their relay ids are their MLS identities), `sending`
    /// of them senders; the creator commits a self-update every `self_update_every`
    /// messages (0: never).
    ///
    /// # Errors
    /// When a member's signature key cannot be made.
    pub fn new(ids: &[u64], sending: usize, self_update_every: u32) -> Result<Self, ProtoError> {
        let members = ids.iter().map(|id| MlsMember::new(&id.to_le_bytes())).collect::<Result<Vec<_>, _>>()?;
        let n = ids.len();
        Ok(MlsGroupState {
            members,
            joined: vec![false; n],
            key_packages: vec![None; n],
            claiming: false,
            claimed_at: 0,
            created: false,
            since_commit: 0,
            self_update_every,
            since_churn: 0,
            churn_every: 0,
            membership: vec![Vec::new(); n],
            out: None,
            republished: false,
            readding: false,
            next_out: sending,
            max_rx: vec![None; n * sending],
            sending,
            plain: Vec::with_capacity(256),
            wire: Vec::with_capacity(512),
        })
    }

    /// Whether the creator should commit a self-update before the next message.
    pub fn self_update_due(&mut self) -> bool {
        self.since_commit += 1;
        if self.self_update_every > 0 && self.since_commit > self.self_update_every {
            self.since_commit = 1;
            return true;
        }
        false
    }

    /// With membership churn every `every` messages of the group (0: none).
    pub fn with_churn(mut self, every: u32) -> Self {
        self.churn_every = every;
        self
    }

    /// Whether the creator should commit a membership change before the next message.
    pub fn churn_due(&mut self) -> bool {
        if self.churn_every == 0 {
            return false;
        }
        self.since_churn += 1;
        if self.since_churn > self.churn_every {
            self.since_churn = 1;
            return true;
        }
        false
    }

    /// The device to remove next (one that does not send, round robin), if any.
    pub fn next_to_remove(&mut self) -> Option<usize> {
        let n = self.members.len();
        if self.sending >= n {
            return None;
        }
        let p = self.next_out.clamp(self.sending, n - 1);
        self.next_out = if p + 1 >= n { self.sending } else { p + 1 };
        Some(p)
    }

    /// Device `pos` is in the group from `epoch` on.
    pub fn admitted(&mut self, pos: usize, epoch: u64) {
        self.membership[pos].push((epoch, u64::MAX));
    }

    /// Device `pos` is out of the group from `epoch` on.
    pub fn evicted(&mut self, pos: usize, epoch: u64) {
        if let Some(last) = self.membership[pos].last_mut() {
            last.1 = last.1.min(epoch);
        }
    }

    /// Whether device `pos` is in the group at `epoch`.
    pub fn member_at(&self, pos: usize, epoch: u64) -> bool {
        self.membership.get(pos).is_some_and(|m| m.iter().any(|&(a, b)| a <= epoch && epoch < b))
    }

    /// Whether device `to` is a recipient of what the device at `sender` sends now (in
    /// the group at the sender's epoch).
    pub fn recipient(&self, sender: usize, to: usize) -> bool {
        to != sender && self.member_at(to, self.members[sender].epoch())
    }

    /// A complete frame carrying `data` (a Welcome to one device, or a commit to the
    /// group) in `out`.
    ///
    /// # Errors
    /// When `out` cannot hold the headers.
    pub fn frame(kind: E2eKind, chat: u32, to: Target, data: &[u8], out: &mut BytesMut) -> Result<(), SealError> {
        out.clear();
        out.resize(TRANSPORT_AT, 0);
        payload::write_e2e_header(&mut out[BODY_AT..], kind, chat).map_err(|_| SealError::BufferTooSmall)?;
        out.extend_from_slice(data);
        // MLS needs the relay's key pools, which only sealbench's wire has (the plan
        // refuses MLS on the others), so its frames are that wire's.
        let header = match to {
            Target::Device(id, request) => {
                Wire::Sealbench.finish_send(out, &Route { request, want_ack: false, from: 0, to: id, lane: 0 })
            }
            Target::Group(g) => Wire::Sealbench.finish_group_send(out, RequestId::Group(chat), g, 0),
        };
        header.map_err(|_| SealError::BufferTooSmall)
    }

    /// Seals message `m` of the device at `pos` into a complete GROUP_SEND frame.
    ///
    /// # Errors
    /// When the device is not in the group, or `out` cannot hold the headers.
    pub fn seal(&mut self, pos: usize, chat: u32, group: u64, m: Timed, out: &mut BytesMut) -> Result<(), SealError> {
        crate::driver::protocol::pairwise::timed_plaintext(&mut self.plain, m)?;
        self.wire.clear();
        self.members[pos].encrypt(&self.plain, &mut self.wire).map_err(|_| SealError::Aead)?;
        let wire = std::mem::take(&mut self.wire);
        let r = Self::frame(E2eKind::Group, chat, Target::Group(group), &wire, out);
        self.wire = wire;
        r
    }

    /// Processes an application message from the sender at `sender` at the device at
    /// `recipient`: its stamp and whether it arrived after a later one.
    ///
    /// # Errors
    /// A [`NotProcessed`]: not joined or a future epoch, an old epoch, or a refusal.
    pub fn open(&mut self, recipient: usize, sender: usize, data: &[u8]) -> Result<(Stamp, bool), NotProcessed> {
        if !self.joined[recipient] {
            return Err(NotProcessed::NotReady);
        }
        let processed = self.members[recipient].process(data);
        // The epoch is read before processing: a message that does not decode has none.
        let decoded = !matches!(processed, Ok(_) | Err(ProtoError::Malformed));
        if decoded && !self.member_at(recipient, self.members[recipient].last_epoch()) {
            return Err(NotProcessed::NotMember);
        }
        let pt = match processed {
            Ok(Processed::Application(pt)) => pt,
            Ok(_) => return Err(NotProcessed::Open(OpenError::Truncated)),
            Err(ProtoError::NotMember) => return Err(NotProcessed::OldEpoch),
            Err(ProtoError::OldEpoch) => return Err(NotProcessed::OldEpoch),
            Err(ProtoError::FutureEpoch) => return Err(NotProcessed::NotReady),
            Err(e) => return Err(NotProcessed::Open(crate::driver::protocol::olm::open_error(e))),
        };
        let stamp = Stamp::read(&pt).map_err(|_| NotProcessed::Open(OpenError::Truncated))?;
        let slot = recipient * self.sending + sender;
        let reordered = self.max_rx.get(slot).copied().flatten().is_some_and(|m| stamp.msg < m);
        if !reordered && slot < self.max_rx.len() {
            self.max_rx[slot] = Some(stamp.msg);
        }
        Ok((stamp, reordered))
    }
}

/// Where an MLS control message goes.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// One device (a Welcome): its relay id, and the request id to send it under.
    Device(u64, RequestId),
    /// The relay group (a commit).
    Group(u64),
}
