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

mod group;

pub use group::{MlsGroupState, NotProcessed, Target};

use super::pairwise::Timed;
use super::{Body, Ctx, Device, SessionProtocol};
use crate::clock::now_ns;
use crate::driver::books::NotOpened;
use crate::driver::chat::Chat;
use crate::driver::recorder::Metric;
use crate::driver::wire::{DeviceOp, Incoming, RequestId, Sealbench1, group_id};
use crate::scenario::ProtocolPlan;
use bytes::BytesMut;
use sealcore::SealError;
use sealcore::frame::POOL_MLS;
use sealcore::payload::E2eKind;
use sealproto::ProtoError;
use sealproto::mls::Processed;

/// The shard's MLS state.
pub struct Mls {
    /// Per device: its key package is in the directory.
    published: Vec<bool>,
    /// Per conversation: its MLS members (relay-fan-out groups only).
    groups: Vec<Option<MlsGroupState>>,
}

/// A request id of `op` for device `client`.
fn request(op: DeviceOp, client: usize) -> RequestId {
    RequestId::Device(op, client as u32)
}

impl std::fmt::Debug for Mls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mls").finish_non_exhaustive()
    }
}

impl Mls {
    /// Members for every relay-fan-out group of `chats` (their relay ids, from `devices`,
    /// are their MLS identities).
    ///
    /// # Errors
    /// When a member's signature key cannot be made.
    pub fn new(plan: &ProtocolPlan, chats: &[Chat], devices: &[Device]) -> Result<Self, String> {
        let mut groups = Vec::with_capacity(chats.len());
        for c in chats {
            let group = if c.relay_fanout() {
                let ids: Vec<u64> = (0..c.devices).map(|p| devices[c.first_client + p].id).collect();
                let g = MlsGroupState::new(&ids, c.sending, plan.mls_self_update_every)
                    .map_err(|e| format!("an MLS member of conversation {} could not be made: {e}", c.id))?;
                Some(g.with_churn(plan.mls_churn_every))
            } else {
                None
            };
            groups.push(group);
        }
        Ok(Mls { published: vec![false; devices.len()], groups })
    }

    /// Publishes device `client`'s key package (a first one, or a fresh one after it was
    /// removed: its first one was used when the group was created).
    fn publish(&mut self, cx: &mut Ctx<'_>, client: usize) {
        let (chat, pos) = (cx.devices[client].chat, cx.devices[client].pos);
        let Some(g) = self.groups[chat].as_ref() else { return };
        let Ok(kp) = g.members[pos].key_package(false) else {
            cx.books.counters.other_errors += 1;
            return;
        };
        let f = Sealbench1::keys_publish(request(DeviceOp::Publish, client), POOL_MLS, false, &[&kp]);
        cx.send(client, f);
    }

    /// The creator's self-update: a commit fanned out to the group.
    fn self_update(&mut self, cx: &mut Ctx<'_>, c: usize) {
        let t0 = now_ns();
        let Some(g) = self.groups[c].as_mut() else { return };
        let Ok(commit) = g.members[0].self_update() else {
            cx.books.counters.other_errors += 1;
            return;
        };
        send_commit(cx, c, &commit.commit, t0);
    }

    /// Membership churn (`crypto.mls_churn_every`): the creator removes a device that does
    /// not send, by a commit; at the next change it claims the fresh key package that
    /// device has published since and re-adds it (the commit and Welcome go out when the
    /// claim is answered, [`Mls::readd`]).
    fn change_membership(&mut self, cx: &mut Ctx<'_>, c: usize) {
        let first = cx.chats[c].first_client;
        let Some(g) = self.groups[c].as_mut() else { return };
        match g.out {
            None => {
                let Some(v) = g.next_to_remove() else { return };
                let id = cx.devices[first + v].id.to_le_bytes();
                let t0 = now_ns();
                let Ok(commit) = g.members[0].remove(&[&id]) else {
                    cx.books.counters.other_errors += 1;
                    return;
                };
                g.evicted(v, commit.epoch);
                (g.out, g.republished, g.readding) = (Some(v), false, false);
                cx.books.counters.members_removed += 1;
                send_commit(cx, c, &commit.commit, t0);
            }
            Some(v) if g.republished && !g.readding => {
                g.readding = true;
                let d = first + v;
                let claim = Sealbench1::key_claim(request(DeviceOp::Claim, d), cx.devices[d].id, POOL_MLS);
                cx.send(first, claim);
            }
            // Its fresh key package is not in the directory yet, or the claim is under way.
            Some(_) => {}
        }
    }

    /// Once every device of group `chat` is up and published, its creator claims one key
    /// package of each other device.
    fn maybe_create(&mut self, cx: &mut Ctx<'_>, chat: usize, now: u64) {
        let (first, devices) = (cx.chats[chat].first_client, cx.chats[chat].devices);
        let ready = (first..first + devices).all(|d| cx.net.online(d) && self.published[d]);
        let Some(g) = self.groups[chat].as_mut() else { return };
        if !ready || g.claiming {
            return;
        }
        g.claiming = true;
        g.claimed_at = now;
        cx.books.setup_started(now);
        for d in first + 1..first + devices {
            let claim = Sealbench1::key_claim(request(DeviceOp::Claim, d), cx.devices[d].id, POOL_MLS);
            cx.send(first, claim);
        }
    }

    /// A claimed key package of device `client`: when the creator holds all of them, it
    /// creates the group and sends the Welcome to every other device.
    fn on_key_package(&mut self, cx: &mut Ctx<'_>, client: usize, item: &[u8], now: u64) {
        let (chat, pos) = (cx.devices[client].chat, cx.devices[client].pos);
        let (first, chat_id) = (cx.chats[chat].first_client, cx.chats[chat].id);
        let Some(g) = self.groups[chat].as_mut() else { return };
        if g.created {
            if g.readding && g.out == Some(pos) {
                self.readd(cx, chat, pos, item);
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
            cx.books.counters.handshakes_failed += 1;
            return;
        };
        g.created = true;
        g.joined[0] = true;
        g.admitted(0, 0);
        for p in 1..g.members.len() {
            g.admitted(p, commit.epoch);
        }
        let welcome = commit.welcome.unwrap_or_default();
        cx.books.hist.record_tagged(Metric::MlsCommit, &cx.chats[chat].tags, took);
        for d in first + 1..first + cx.chats[chat].devices {
            send_welcome(cx, chat, d, &welcome);
        }
        cx.books.hs_last = cx.books.hs_last.max(now);
    }

    /// A Welcome or a commit for `client`.
    fn on_control(&mut self, cx: &mut Ctx<'_>, client: usize, body: Body<'_>, now: u64) {
        let (kind, chat_id, data) = (body.kind, body.conv, &*body.data);
        let (chat, pos) = (cx.devices[client].chat, cx.devices[client].pos);
        let g = self.groups[chat].as_mut().filter(|_| cx.chats[chat].id == chat_id);
        let Some(g) = g else {
            cx.books.counters.malformed += 1;
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
                    cx.books.counters.handshakes_failed += 1;
                    return;
                }
                cx.books.keys_pending = cx.books.keys_pending.saturating_sub(1);
                cx.books.handshake_done(setup, now);
                cx.books.hist.record(Metric::MlsWelcome, took);
            }
            E2eKind::MlsWelcome if !g.members[pos].in_group() => {
                // Re-added (membership churn): the commit that re-added it is merged.
                let joined = g.members[pos].join(data).is_ok();
                let took = now_ns() - t0;
                if !joined {
                    cx.books.counters.handshakes_failed += 1;
                    return;
                }
                cx.books.counters.members_readded += 1;
                cx.books.hist.record(Metric::MlsWelcome, took);
            }
            E2eKind::MlsWelcome => cx.books.counters.duplicated += 1,
            _ => {
                let processed = g.members[pos].process(data);
                let took = now_ns() - t0;
                // A commit of an epoch in which this device was not in the group (the relay
                // fans commits out to every device of the relay group).
                let outside = processed.as_ref().is_err_and(|e| *e != ProtoError::Malformed)
                    && !g.member_at(pos, g.members[pos].last_epoch());
                match processed {
                    Ok(Processed::Commit { .. } | Processed::Removed) => {
                        if cx.books.measures(t0) {
                            cx.books.hist.record_tagged(Metric::MlsCommitProcess, &cx.chats[chat].tags, took);
                        }
                    }
                    _ if outside => cx.books.counters.not_member += 1,
                    _ => cx.books.counters.malformed += 1,
                }
                if matches!(processed, Ok(Processed::Removed)) {
                    self.publish(cx, client);
                }
            }
        }
    }

    /// The claimed fresh key package of the device at `pos` of group `chat`, removed
    /// earlier: the creator re-adds it by a commit (to the group) and a Welcome (to it).
    fn readd(&mut self, cx: &mut Ctx<'_>, chat: usize, pos: usize, item: &[u8]) {
        let first = cx.chats[chat].first_client;
        let Some(g) = self.groups[chat].as_mut() else { return };
        let t0 = now_ns();
        let added = g.members[0].add(&[item]);
        g.readding = false;
        let Ok(commit) = added else {
            cx.books.counters.other_errors += 1;
            return;
        };
        g.admitted(pos, commit.epoch);
        (g.out, g.republished) = (None, false);
        // The Welcome first: the relay then queues it for the device before the commit
        // reaches any member, so no message of the new epoch can overtake it.
        send_welcome(cx, chat, first + pos, &commit.welcome.unwrap_or_default());
        send_commit(cx, chat, &commit.commit, t0);
    }

    /// An MLS application message for `client`.
    fn on_group(&mut self, cx: &mut Ctx<'_>, client: usize, body: Body<'_>, now: u64) {
        let Some((chat, pos, sender)) = cx.group_sender(client, body.conv, body.sender) else { return };
        let t0 = cx.books.open_timer();
        let Some(g) = self.groups[chat].as_mut() else { return };
        let result = match g.open(pos, sender, body.data) {
            Ok(r) => Ok(r),
            Err(NotProcessed::NotReady) => Err(NotOpened::NotReady),
            Err(NotProcessed::Open(e)) => Err(NotOpened::Open(e)),
            Err(NotProcessed::OldEpoch) => {
                cx.books.counters.old_epoch += 1;
                cx.books.received(client);
                return;
            }
            Err(NotProcessed::NotMember) => {
                cx.books.counters.not_member += 1;
                return;
            }
        };
        cx.accept(client, chat, sender, result, body.stored, now, t0);
    }

    /// A refused set-up request of device `client` (`op`).
    fn on_refused(&mut self, cx: &mut Ctx<'_>, op: DeviceOp, client: usize, code: u16) {
        tracing::debug!(code, ?op, "mls set-up refused by the relay");
        cx.books.counters.handshakes_failed += 1;
        if op == DeviceOp::Welcome {
            cx.books.keys_pending = cx.books.keys_pending.saturating_sub(1); // that join will not happen
        }
        // A re-add's claim refused: the next membership change claims again.
        let (chat, pos) = (cx.devices[client].chat, cx.devices[client].pos);
        if let Some(g) = self.groups[chat].as_mut().filter(|g| op == DeviceOp::Claim && g.out == Some(pos)) {
            g.readding = false;
        }
    }
}

/// Fans a commit of the creator of group `c` out to the group, and records what making it
/// took (from `t0`).
fn send_commit(cx: &mut Ctx<'_>, c: usize, commit: &[u8], t0: u64) {
    let took = now_ns() - t0;
    let chat_id = cx.chats[c].id;
    let to = Target::Group(group_id(chat_id));
    if MlsGroupState::frame(E2eKind::MlsCommit, chat_id, to, commit, cx.out).is_ok() {
        let frame = cx.out.split().freeze();
        cx.send(cx.chats[c].first_client, frame);
    }
    if cx.books.measures(t0) {
        cx.books.hist.record_tagged(Metric::MlsCommit, &cx.chats[c].tags, took);
    }
}

/// Sends a Welcome of group `chat` from its creator to device `d`.
fn send_welcome(cx: &mut Ctx<'_>, chat: usize, d: usize, welcome: &[u8]) {
    let to = Target::Device(cx.devices[d].id, request(DeviceOp::Welcome, d));
    if MlsGroupState::frame(E2eKind::MlsWelcome, cx.chats[chat].id, to, welcome, cx.out).is_ok() {
        let frame = cx.out.split().freeze();
        cx.send(cx.chats[chat].first_client, frame);
    }
}

impl SessionProtocol for Mls {
    /// Publishes the device's key package (first connection only).
    fn device_up(&mut self, cx: &mut Ctx<'_>, client: usize, _now: u64) {
        if !self.published[client] {
            self.publish(cx, client);
        }
    }

    fn on_reply(&mut self, cx: &mut Ctx<'_>, frame: &Incoming<'_>, now: u64) -> bool {
        let devices = self.published.len();
        match *frame {
            Incoming::PoolStatus { request: RequestId::Device(DeviceOp::Publish, c), .. } if (c as usize) < devices => {
                let client = c as usize;
                self.published[client] = true;
                let (chat, pos) = (cx.devices[client].chat, cx.devices[client].pos);
                if let Some(g) = self.groups[chat].as_mut().filter(|g| g.out == Some(pos)) {
                    g.republished = true;
                }
                self.maybe_create(cx, chat, now);
            }
            Incoming::Claimed { request: RequestId::Device(DeviceOp::Claim, c), item, .. }
                if (c as usize) < devices =>
            {
                self.on_key_package(cx, c as usize, item, now);
            }
            Incoming::Refused { request: RequestId::Device(op, c), code } if (c as usize) < devices => {
                self.on_refused(cx, op, c as usize, code);
            }
            _ => return false,
        }
        true
    }

    #[inline]
    fn on_body(&mut self, cx: &mut Ctx<'_>, client: usize, body: Body<'_>, now: u64) {
        match body.kind {
            E2eKind::Group => self.on_group(cx, client, body, now),
            E2eKind::MlsWelcome | E2eKind::MlsCommit => self.on_control(cx, client, body, now),
            _ => cx.books.counters.malformed += 1,
        }
    }

    /// The creator's commits due before the next message of group `chat`: a self-update,
    /// a membership change.
    fn before_group_send(&mut self, cx: &mut Ctx<'_>, chat: usize) {
        let Some(g) = self.groups[chat].as_mut() else { return };
        let (update, churn) = (g.self_update_due(), g.churn_due());
        if update {
            self.self_update(cx, chat);
        }
        if churn {
            self.change_membership(cx, chat);
        }
    }

    /// A member at the sender's epoch (membership churn changes who they are).
    fn recipient(&self, chat: usize, sender: usize, to: usize) -> bool {
        match self.groups[chat].as_ref() {
            Some(g) => to != sender && g.recipient(sender, to),
            None => to != sender,
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
        let id = cx.chats[chat].id;
        let g = self.groups[chat].as_mut().ok_or(SealError::Aead)?;
        g.seal(pos, id, group_id(id), m, out)
    }

    fn group_up(&self, chat: usize) -> bool {
        self.groups[chat].as_ref().is_some_and(|g| g.created)
    }
}
