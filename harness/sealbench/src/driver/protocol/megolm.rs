//! Megolm (`crypto.protocol = "megolm"`): relay-fan-out groups whose senders encrypt each
//! message once with their Megolm session; the session keys travel over the devices' Olm
//! sessions (set up by the [`Olm`] this protocol contains, which also carries the 1:1
//! conversations), at set-up and at every rotation (after `crypto.megolm_rotate_after`
//! messages, and when a member leaves: `crypto.megolm_leave_every`), where `key_share`
//! records what sharing cost the sender. A departed device stays in the relay's group:
//! what is sent after it left still reaches it, is tried with the key it kept, and must
//! not open (`not_member`; `departed_read` if it did).

mod group;

pub use group::MegolmGroup;

use super::olm::Olm;
use super::pairwise::Timed;
use super::{Body, Ctx, SessionProtocol};
use crate::clock::now_ns;
use crate::driver::books::NotOpened;
use crate::driver::chat::Chat;
use crate::driver::recorder::Metric;
use crate::driver::wire::{Incoming, Side, group_id};
use crate::scenario::ProtocolPlan;
use bytes::BytesMut;
use sealcore::SealError;
use sealcore::payload::E2eKind;

/// The shard's Megolm state: its Olm sessions and its groups.
pub struct Megolm {
    olm: Olm,
    /// Per conversation: its Megolm sessions (relay-fan-out groups only).
    groups: Vec<Option<MegolmGroup>>,
}

impl std::fmt::Debug for Megolm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Megolm").finish_non_exhaustive()
    }
}

impl Megolm {
    /// Olm accounts for `devices` devices and `sessions` sessions, and Megolm sessions for
    /// every relay-fan-out group of `chats`.
    pub fn new(plan: &ProtocolPlan, chats: &[Chat], devices: usize, sessions: usize) -> Self {
        let group = |c: &Chat| {
            c.relay_fanout().then(|| {
                MegolmGroup::new(c.devices, c.sending, plan.megolm_rotate_after).with_leaves(plan.megolm_leave_every)
            })
        };
        Megolm { olm: Olm::new(devices, sessions), groups: chats.iter().map(group).collect() }
    }

    /// Once Olm session `s` is up, each of its ends that sends in the group shares its
    /// current Megolm session key with the other.
    fn hand_out_keys(&mut self, cx: &mut Ctx<'_>, s: usize, now: u64) {
        for side in Side::BOTH {
            let from = cx.sessions[s].client(side);
            let (chat, pos) = (cx.devices[from].chat, cx.devices[from].pos);
            let Some(key) = self.groups[chat].as_ref().and_then(|g| g.out.get(pos)).map(|o| o.session_key()) else {
                continue;
            };
            cx.send_control(s, side, E2eKind::SenderKey, &key, now);
        }
    }

    /// A Megolm session key for `side` of session `s`: installed for the group's sender.
    fn on_key(&mut self, cx: &mut Ctx<'_>, s: usize, side: Side, data: &mut [u8]) {
        let (to, from) = (cx.sessions[s].client(side), cx.sessions[s].client(side.peer()));
        let (chat, pos, sender) = (cx.devices[to].chat, cx.devices[to].pos, cx.devices[from].pos);
        let installed = match cx.sessions[s].open_control(side, data) {
            Ok(o) => self.groups[chat]
                .as_mut()
                .and_then(|g| (sender < g.out.len()).then(|| g.install(pos, sender, o.rest)).flatten()),
            Err(_) => None,
        };
        match installed {
            Some(true) => cx.books.key_installed(),
            Some(false) => {} // a rotation's key
            None => cx.books.counters.malformed += 1,
        }
    }

    /// A Megolm group message for `client`: decrypted with its sender's session.
    fn on_group(&mut self, cx: &mut Ctx<'_>, client: usize, body: Body<'_>, now: u64) {
        let Some((chat, pos, sender)) = cx.group_sender(client, body.conv, body.sender) else { return };
        let t0 = cx.books.open_timer();
        let Some(g) = self.groups[chat].as_mut() else { return };
        if g.departed(pos)
            && let Some(read) = g.read_after_leave(pos, sender, body.data)
        {
            // Sent after this device left (the relay still fans the group out to it):
            // not sent to it, and it must not be able to read it.
            if read {
                cx.books.counters.departed_read += 1;
            } else {
                cx.books.counters.not_member += 1;
            }
            return;
        }
        let result = match g.open(pos, sender, body.data) {
            None => Err(NotOpened::NotReady),
            Some(r) => r.map_err(NotOpened::Open),
        };
        cx.accept(client, chat, sender, result, body.stored, now, t0);
    }

    /// Starts the sender's next session and shares its key with every other member device
    /// over their Olm sessions; records the time as `key_share`.
    fn rotate(&mut self, cx: &mut Ctx<'_>, c: usize, pos: usize) {
        let t0 = now_ns();
        let Some(g) = self.groups[c].as_mut() else { return };
        g.out[pos].rotate();
        let key = g.out[pos].session_key();
        for k in 0..cx.chats[c].routes[pos].len() {
            let (session, side) = cx.chats[c].routes[pos][k];
            let to = cx.devices[cx.sessions[session].client(side.peer())].pos;
            if g.departed(to) {
                continue; // it left: the new session is not for it
            }
            if cx.sessions[session].ready() {
                cx.send_control(session, side, E2eKind::SenderKey, &key, t0);
            }
        }
        if cx.books.measures(t0) {
            cx.books.hist.record_tagged(Metric::KeyShare, &cx.chats[c].tags, now_ns() - t0);
        }
    }
}

impl SessionProtocol for Megolm {
    fn device_up(&mut self, cx: &mut Ctx<'_>, client: usize, now: u64) {
        self.olm.device_up(cx, client, now);
    }

    fn on_reply(&mut self, cx: &mut Ctx<'_>, frame: &Incoming<'_>, now: u64) -> bool {
        self.olm.on_reply(cx, frame, now)
    }

    #[inline]
    fn on_body(&mut self, cx: &mut Ctx<'_>, client: usize, body: Body<'_>, now: u64) {
        match body.kind {
            E2eKind::Group => self.on_group(cx, client, body, now),
            E2eKind::SenderKey => {
                if let Some((s, side)) = cx.session_of(body.conv, client) {
                    self.on_key(cx, s, side, body.data);
                }
            }
            E2eKind::OlmSetup => {
                let Some((s, side)) = cx.session_of(body.conv, client) else { return };
                if self.olm.on_setup(cx, s, side, body.data, now) {
                    // Each end that sends in the group shares its session key over it.
                    self.hand_out_keys(cx, s, now);
                }
            }
            _ => self.olm.on_body(cx, client, body, now),
        }
    }

    /// A member leaves before the next message of conversation `chat` when that is due
    /// (`crypto.megolm_leave_every`): every sender rotates its session at once and shares
    /// the new key with the remaining members only.
    fn before_group_send(&mut self, cx: &mut Ctx<'_>, chat: usize) {
        let Some(g) = self.groups[chat].as_mut() else { return };
        let Some(v) = g.leave_due() else { return };
        g.leaving(v);
        for pos in 0..g.out.len() {
            self.rotate(cx, chat, pos);
        }
        if let Some(g) = self.groups[chat].as_mut() {
            g.left(v);
        }
        cx.books.counters.members_removed += 1;
    }

    fn recipient(&self, chat: usize, sender: usize, to: usize) -> bool {
        to != sender && !self.groups[chat].as_ref().is_some_and(|g| g.departed(to))
    }

    /// Seals with the sender's Megolm session, rotating it first when the count says so.
    fn seal_group(
        &mut self,
        cx: &mut Ctx<'_>,
        chat: usize,
        pos: usize,
        m: Timed,
        out: &mut BytesMut,
    ) -> Result<(), SealError> {
        let due = self.groups[chat].as_ref().ok_or(SealError::Aead)?.out[pos].rotation_due();
        if due {
            self.rotate(cx, chat, pos);
        }
        let id = cx.chats[chat].id;
        let g = self.groups[chat].as_mut().ok_or(SealError::Aead)?;
        g.seal(pos, id, group_id(id), m, out)
    }
}
