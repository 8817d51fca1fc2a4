//! MLS in a shard (`crypto.protocol = "mls"`): every device of a relay-fan-out group
//! publishes a key package (key pool 2) once it has registered; when all of a group's
//! devices are up and published, its first device claims one key package of every other
//! device and creates the group by adding them all in one commit, sending each its
//! Welcome. Application messages and the creator's periodic self-update commits go
//! through the relay's group fan-out. `mls_commit`, `mls_commit_process` and
//! `mls_welcome` record the costs; `handshake` a device's join (claims started → Welcome
//! processed); messages from an epoch a member no longer holds are `old_epoch`.
//!
//! **Membership churn** (`crypto.mls_churn_every`): the creator, the group's only
//! committer, removes a device that does not send by a commit; that device, once it has
//! processed its removal, publishes a fresh key package; at the next change the creator
//! claims it and re-adds the device (Welcome first, then the commit). Who a message is for
//! is decided by the sender's epoch ([`MlsGroupState::recipient`]); the relay's copies to a
//! device outside the group in a message's epoch are `not_member`.

use super::state::{Delivery, State};
use crate::clock::now_ns;
use crate::driver::conversation::{NotOpened, Timed};
use crate::driver::layout::group_id;
use crate::driver::mls::{MlsGroupState, NotProcessed, Target};
use crate::driver::recorder::Metric;
use crate::driver::wire::{Incoming, RelayProtocol, RequestId, Wire};
use bytes::BytesMut;
use sealcore::frame::POOL_MLS;
use sealcore::payload::E2eKind;
use sealproto::ProtoError;
use sealproto::mls::Processed;

/// Request ids of a device's key-package publication: `Control(PUBLISH | client)`.
const PUBLISH: u32 = 1 << 30;
/// Request ids of a creator's claim of a device's key package: `Control(CLAIM | client)`.
const CLAIM: u32 = 1 << 29;
/// Request ids of a Welcome to a device: `Control(WELCOME | client)` (a refusal, e.g.
/// TOO_LARGE from a relay whose message limit is below the Welcome, fails that join).
const WELCOME: u32 = 1 << 28;
const CLIENT: u32 = WELCOME - 1;

/// Per device: its key package is in the directory.
#[derive(Debug)]
pub(super) struct MlsShard {
    published: Vec<bool>,
}

impl MlsShard {
    pub(super) fn new(devices: usize) -> Self {
        MlsShard { published: vec![false; devices] }
    }
}

/// Seals message `m` of the device at `pos` of conversation `c` when it is an MLS group
/// (None otherwise).
pub(super) fn seal(st: &mut State, c: usize, pos: usize, m: Timed, buf: &mut BytesMut) -> super::Sealed {
    let chat_id = st.chats[c].id;
    st.chats[c].mls.as_mut().map(|g| g.seal(pos, chat_id, group_id(chat_id), m, buf))
}

/// The creator's commits due before the next message of conversation `c` (an MLS group):
/// a self-update, a membership change.
pub(super) fn commit_due(st: &mut State, c: usize) {
    let Some(g) = st.chats[c].mls.as_mut() else { return };
    let (update, churn) = (g.self_update_due(), g.churn_due());
    if update {
        self_update(st, c);
    }
    if churn {
        change_membership(st, c);
    }
}

/// The creator's self-update: a commit fanned out to the group.
fn self_update(st: &mut State, c: usize) {
    let t0 = now_ns();
    let Some(g) = st.chats[c].mls.as_mut() else { return };
    let Ok(commit) = g.members[0].self_update() else {
        st.counters.other_errors += 1;
        return;
    };
    send_commit(st, c, &commit.commit, t0);
}

/// Fans a commit of the creator out to the group, and records what making it took (from `t0`).
fn send_commit(st: &mut State, c: usize, commit: &[u8], t0: u64) {
    let took = now_ns() - t0;
    let chat_id = st.chats[c].id;
    let mut out = std::mem::take(&mut st.out);
    let framed = MlsGroupState::frame(E2eKind::MlsCommit, chat_id, Target::Group(group_id(chat_id)), commit, &mut out);
    if framed.is_ok() {
        let frame = out.split().freeze();
        st.send_to(st.chats[c].first_client, frame);
    }
    st.out = out;
    if st.measures(t0) {
        let tags = &st.chats[c].tags;
        st.hist.record_tagged(Metric::MlsCommit, tags, took);
    }
}

/// Membership churn (`crypto.mls_churn_every`): the creator removes a device that does
/// not send, by a commit; at the next change it claims the fresh key package that device
/// has published since and re-adds it (the commit and Welcome go out when the claim is
/// answered, [`State::readd`]).
fn change_membership(st: &mut State, c: usize) {
    let first = st.chats[c].first_client;
    let Some(g) = st.chats[c].mls.as_mut() else { return };
    match g.out {
        None => {
            let Some(v) = g.next_to_remove() else { return };
            let id = st.clients[first + v].id.to_le_bytes();
            let t0 = now_ns();
            let Ok(commit) = g.members[0].remove(&[&id]) else {
                st.counters.other_errors += 1;
                return;
            };
            g.evicted(v, commit.epoch);
            (g.out, g.republished, g.readding) = (Some(v), false, false);
            st.counters.members_removed += 1;
            send_commit(st, c, &commit.commit, t0);
        }
        Some(v) if g.republished && !g.readding => {
            g.readding = true;
            let d = first + v;
            let claim = Wire::key_claim(RequestId::Control(CLAIM | d as u32), st.clients[d].id, POOL_MLS);
            st.send_to(first, claim);
        }
        // Its fresh key package is not in the directory yet, or the claim is under way.
        Some(_) => {}
    }
}

impl State {
    /// Publishes device `client`'s key package (first connection only).
    pub(super) fn publish_mls_key_package(&mut self, client: usize) {
        let chat = self.clients[client].chat;
        let pos = self.clients[client].pos;
        let Some(g) = self.chats[chat].mls.as_ref() else { return };
        if self.mls.as_ref().is_none_or(|m| m.published[client]) {
            return;
        }
        let Ok(kp) = g.members[pos].key_package(false) else {
            self.counters.other_errors += 1;
            return;
        };
        let f = Wire::keys_publish(RequestId::Control(PUBLISH | client as u32), POOL_MLS, false, &[&kp]);
        self.send_to(client, f);
    }

    /// Frames of the MLS set-up: publications answered, key packages claimed. Returns
    /// false for a frame that is not one of them.
    pub(super) fn on_mls_frame(&mut self, frame: &Incoming<'_>, now: u64) -> bool {
        if self.mls.is_none() {
            return false;
        }
        match *frame {
            Incoming::PoolStatus { request: RequestId::Control(c), .. } if c & PUBLISH != 0 => {
                let client = (c & !PUBLISH) as usize;
                if let Some(m) = self.mls.as_mut().filter(|_| client < self.clients.len()) {
                    m.published[client] = true;
                    let (chat, pos) = (self.clients[client].chat, self.clients[client].pos);
                    if let Some(g) = self.chats[chat].mls.as_mut().filter(|g| g.out == Some(pos)) {
                        g.republished = true;
                    }
                    self.maybe_create(chat, now);
                }
            }
            Incoming::Claimed { request: RequestId::Control(c), item, .. } if c & CLAIM != 0 => {
                self.on_key_package(((c & CLIENT) as usize).min(self.clients.len() - 1), item, now);
            }
            Incoming::Refused { request: RequestId::Control(c), code } if c & (CLAIM | PUBLISH | WELCOME) != 0 => {
                tracing::debug!(code, "mls set-up refused by the relay");
                self.counters.handshakes_failed += 1;
                if c & WELCOME != 0 {
                    self.keys_pending = self.keys_pending.saturating_sub(1); // that join will not happen
                }
                // A re-add's claim refused: the next membership change claims again.
                let client = ((c & CLIENT) as usize).min(self.clients.len() - 1);
                let (chat, pos) = (self.clients[client].chat, self.clients[client].pos);
                if let Some(g) = self.chats[chat].mls.as_mut().filter(|g| c & CLAIM != 0 && g.out == Some(pos)) {
                    g.readding = false;
                }
            }
            _ => return false,
        }
        true
    }

    /// Once every device of group `chat` is up and published, its creator claims one key
    /// package of each other device.
    fn maybe_create(&mut self, chat: usize, now: u64) {
        let (first, devices) = (self.chats[chat].first_client, self.chats[chat].devices);
        let ready = (first..first + devices)
            .all(|d| self.clients[d].tx.is_some() && self.mls.as_ref().is_some_and(|m| m.published[d]));
        let Some(g) = self.chats[chat].mls.as_mut() else { return };
        if !ready || g.claiming {
            return;
        }
        g.claiming = true;
        g.claimed_at = now;
        self.hs_first.get_or_insert(now);
        for d in first + 1..first + devices {
            let claim = Wire::key_claim(RequestId::Control(CLAIM | d as u32), self.clients[d].id, POOL_MLS);
            self.send_to(first, claim);
        }
    }

    /// A claimed key package of device `client`: when the creator holds all of them, it
    /// creates the group and sends the Welcome to every other device.
    fn on_key_package(&mut self, client: usize, item: &[u8], now: u64) {
        let (chat, pos) = (self.clients[client].chat, self.clients[client].pos);
        let (first, chat_id) = (self.chats[chat].first_client, self.chats[chat].id);
        let Some(g) = self.chats[chat].mls.as_mut() else { return };
        if g.created {
            if g.readding && g.out == Some(pos) {
                self.readd(chat, pos, item);
            }
            return;
        }
        g.key_packages[pos] = Some(item.to_vec());
        if g.key_packages.iter().skip(1).any(Option::is_none) {
            return;
        }
        let kps: Vec<&[u8]> = g.key_packages.iter().skip(1).flatten().map(Vec::as_slice).collect();
        let t0 = now_ns();
        let created = g.members[0].create_group(&u64::from(chat_id).to_le_bytes(), &kps);
        let took = now_ns() - t0;
        let Ok(commit) = created else {
            self.counters.handshakes_failed += 1;
            return;
        };
        g.created = true;
        g.joined[0] = true;
        g.admitted(0, 0);
        for p in 1..g.members.len() {
            g.admitted(p, commit.epoch);
        }
        let welcome = commit.welcome.unwrap_or_default();
        self.hist.record_tagged(Metric::MlsCommit, &self.chats[chat].tags, took);
        let mut out = std::mem::take(&mut self.out);
        for d in first + 1..first + self.chats[chat].devices {
            let to = Target::Device(self.clients[d].id, WELCOME | d as u32);
            if MlsGroupState::frame(E2eKind::MlsWelcome, chat_id, to, &welcome, &mut out).is_ok() {
                let frame = out.split().freeze();
                self.send_to(first, frame);
            }
        }
        self.out = out;
        self.hs_last = self.hs_last.max(now);
    }

    /// A Welcome or a commit for `client`.
    pub(super) fn on_mls_control(&mut self, client: usize, kind: E2eKind, chat_id: u32, data: &[u8], now: u64) {
        let (chat, pos) = (self.clients[client].chat, self.clients[client].pos);
        if self.chats[chat].id != chat_id {
            self.counters.malformed += 1;
            return;
        }
        let Some(g) = self.chats[chat].mls.as_mut() else {
            self.counters.malformed += 1;
            return;
        };
        let t0 = now_ns();
        match kind {
            E2eKind::MlsWelcome if !g.joined[pos] => {
                let joined = g.members[pos].join(data).is_ok();
                let took = now_ns() - t0;
                g.joined[pos] |= joined;
                let setup = now.saturating_sub(g.claimed_at);
                if !joined {
                    self.counters.handshakes_failed += 1;
                    return;
                }
                self.keys_pending = self.keys_pending.saturating_sub(1);
                self.counters.handshakes_ok += 1;
                self.hist.record(Metric::MlsWelcome, took);
                self.hist.record(Metric::Handshake, setup);
                self.hs_last = self.hs_last.max(now);
            }
            E2eKind::MlsWelcome if !g.members[pos].in_group() => {
                // Re-added (membership churn): the commit that re-added it is merged.
                let joined = g.members[pos].join(data).is_ok();
                let took = now_ns() - t0;
                if !joined {
                    self.counters.handshakes_failed += 1;
                    return;
                }
                self.counters.members_readded += 1;
                self.hist.record(Metric::MlsWelcome, took);
            }
            E2eKind::MlsWelcome => self.counters.duplicated += 1,
            _ => {
                let processed = g.members[pos].process(data);
                let took = now_ns() - t0;
                // A commit of an epoch in which this device was not in the group (the relay
                // fans commits out to every device of the relay group).
                let outside = processed.as_ref().is_err_and(|e| *e != ProtoError::Malformed)
                    && !g.member_at(pos, g.members[pos].last_epoch());
                match processed {
                    Ok(Processed::Commit { .. } | Processed::Removed) => {
                        if self.measures(t0) {
                            self.hist.record_tagged(Metric::MlsCommitProcess, &self.chats[chat].tags, took);
                        }
                    }
                    _ if outside => self.counters.not_member += 1,
                    _ => self.counters.malformed += 1,
                }
                if matches!(processed, Ok(Processed::Removed)) {
                    self.republish_mls_key_package(client);
                }
            }
        }
    }

    /// A device removed from its group publishes a fresh key package (its first one was
    /// used when the group was created), so that its creator can claim it to re-add it.
    fn republish_mls_key_package(&mut self, client: usize) {
        let (chat, pos) = (self.clients[client].chat, self.clients[client].pos);
        let Some(g) = self.chats[chat].mls.as_ref() else { return };
        let Ok(kp) = g.members[pos].key_package(false) else {
            self.counters.other_errors += 1;
            return;
        };
        let f = Wire::keys_publish(RequestId::Control(PUBLISH | client as u32), POOL_MLS, false, &[&kp]);
        self.send_to(client, f);
    }

    /// The claimed fresh key package of the device at `pos` of group `chat`, removed
    /// earlier: the creator re-adds it by a commit (to the group) and a Welcome (to it).
    fn readd(&mut self, chat: usize, pos: usize, item: &[u8]) {
        let (first, chat_id) = (self.chats[chat].first_client, self.chats[chat].id);
        let Some(g) = self.chats[chat].mls.as_mut() else { return };
        let t0 = now_ns();
        let added = g.members[0].add(&[item]);
        g.readding = false;
        let Ok(commit) = added else {
            self.counters.other_errors += 1;
            return;
        };
        g.admitted(pos, commit.epoch);
        (g.out, g.republished) = (None, false);
        let welcome = commit.welcome.unwrap_or_default();
        // The Welcome first: the relay then queues it for the device before the commit
        // reaches any member, so no message of the new epoch can overtake it.
        let d = first + pos;
        let mut out = std::mem::take(&mut self.out);
        let to = Target::Device(self.clients[d].id, WELCOME | d as u32);
        if MlsGroupState::frame(E2eKind::MlsWelcome, chat_id, to, &welcome, &mut out).is_ok() {
            let frame = out.split().freeze();
            self.send_to(first, frame);
        }
        self.out = out;
        send_commit(self, chat, &commit.commit, t0);
    }

    /// An MLS application message for `client`.
    pub(super) fn on_mls_group(&mut self, client: usize, chat_id: u32, d: Delivery, data: &[u8], now: u64) {
        let Some((chat, pos, sender)) = self.group_sender(client, chat_id, d) else { return };
        let t0 = self.open_timer();
        let Some(g) = self.chats[chat].mls.as_mut() else { return };
        let result = match g.open(pos, sender, data) {
            Ok(r) => Ok(r),
            Err(NotProcessed::NotReady) => Err(NotOpened::NotReady),
            Err(NotProcessed::Open(e)) => Err(NotOpened::Open(e)),
            Err(NotProcessed::OldEpoch) => {
                self.counters.old_epoch += 1;
                self.clients[client].owed = self.clients[client].owed.saturating_sub(1);
                return;
            }
            Err(NotProcessed::NotMember) => {
                self.counters.not_member += 1;
                return;
            }
        };
        if let Some((stamp, reordered)) = self.classify(result, now) {
            self.clients[client].owed = self.clients[client].owed.saturating_sub(1);
            self.delivered(chat, sender, stamp, reordered, d.stored, now, t0);
        }
    }
}
