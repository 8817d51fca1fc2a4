//! Megolm in a shard (`crypto.protocol = "megolm"`): relay-fan-out groups whose senders
//! encrypt each message once with their Megolm session; the session keys travel over the
//! devices' Olm sessions (set up as in `shard/olm`), at set-up and at every rotation
//! (after `crypto.megolm_rotate_after` messages, and when a member leaves:
//! `crypto.megolm_leave_every`), where `key_share` records what sharing cost the sender.
//! A departed device stays in the relay's group: what is sent after it left still reaches
//! it, is tried with the key it kept, and must not open (`not_member`; `departed_read` if
//! it did).

use super::state::{Delivery, State};
use crate::clock::now_ns;
use crate::driver::conversation::{NotOpened, Opened, Timed};
use crate::driver::layout::group_id;
use crate::driver::recorder::Metric;
use crate::driver::wire::Side;
use bytes::BytesMut;

/// Seals message `m` of the sending device at `pos` of conversation `c` into `buf` when
/// the conversation is a Megolm group (None otherwise), rotating its session first when
/// the count says so.
pub(super) fn seal(st: &mut State, c: usize, pos: usize, m: Timed, buf: &mut BytesMut) -> super::Sealed {
    let due = st.chats[c].megolm.as_ref()?.out[pos].rotation_due();
    if due {
        rotate(st, c, pos);
    }
    let chat_id = st.chats[c].id;
    let g = st.chats[c].megolm.as_mut()?;
    Some(g.seal(pos, chat_id, group_id(chat_id), m, buf))
}

/// Starts the sender's next session and shares its key with every other member device
/// over their Olm sessions; records the time as `key_share`.
/// A member leaves before the next message of conversation `c` when that is due
/// (`crypto.megolm_leave_every`): every sender rotates its session at once and shares the
/// new key with the remaining members only.
pub(super) fn leave_if_due(st: &mut State, c: usize) {
    let Some(g) = st.chats[c].megolm.as_mut() else { return };
    let Some(v) = g.leave_due() else { return };
    g.leaving(v);
    for pos in 0..g.out.len() {
        rotate(st, c, pos);
    }
    if let Some(g) = st.chats[c].megolm.as_mut() {
        g.left(v);
    }
    st.counters.members_removed += 1;
}

fn rotate(st: &mut State, c: usize, pos: usize) {
    let t0 = now_ns();
    let Some(g) = st.chats[c].megolm.as_mut() else { return };
    g.out[pos].rotate();
    let key = g.out[pos].session_key();
    let client = st.chats[c].first_client + pos;
    let mut out = std::mem::take(&mut st.out);
    for k in 0..st.chats[c].routes[pos].len() {
        let (session, side) = st.chats[c].routes[pos][k];
        let to = st.clients[st.convs[session].client(side.peer())].pos;
        if g_departed(st, c, to) {
            continue; // it left: the new session is not for it
        }
        if st.convs[session].ready() && st.convs[session].seal_sender_key(side, &key, t0, &mut out).is_ok() {
            let frame = out.split().freeze();
            st.send_to(client, frame);
        }
    }
    st.out = out;
    if st.measures(t0) {
        let tags = &st.chats[c].tags;
        st.hist.record_tagged(Metric::KeyShare, tags, now_ns() - t0);
    }
}

fn g_departed(st: &State, c: usize, pos: usize) -> bool {
    st.chats[c].megolm.as_ref().is_some_and(|g| g.departed(pos))
}

impl State {
    /// Once Olm session `s` is up, each of its ends that sends in the group shares its
    /// current Megolm session key with the other.
    pub(super) fn hand_out_megolm_keys(&mut self, s: usize, now: u64) {
        for side in Side::BOTH {
            let from = self.convs[s].client(side);
            let (chat, pos) = (self.clients[from].chat, self.clients[from].pos);
            let Some(key) = self.chats[chat].megolm.as_ref().and_then(|g| g.out.get(pos)).map(|o| o.session_key())
            else {
                continue;
            };
            let mut out = std::mem::take(&mut self.out);
            if self.convs[s].seal_sender_key(side, &key, now, &mut out).is_ok() {
                let frame = out.split().freeze();
                self.send_to(from, frame);
            }
            self.out = out;
        }
    }

    /// A Megolm session key for `side` of session `s`: installed for the group's sender.
    pub(super) fn on_megolm_key(&mut self, s: usize, side: Side, data: &mut [u8]) {
        let (to, from) = (self.convs[s].client(side), self.convs[s].client(side.peer()));
        let (chat, pos, sender) = (self.clients[to].chat, self.clients[to].pos, self.clients[from].pos);
        let installed = match self.convs[s].open(side, data) {
            Ok(Opened { rest, .. }) => self.chats[chat]
                .megolm
                .as_mut()
                .and_then(|g| (sender < g.out.len()).then(|| g.install(pos, sender, rest)).flatten()),
            Err(_) => None,
        };
        match installed {
            Some(true) => {
                self.counters.sender_keys += 1;
                self.keys_pending = self.keys_pending.saturating_sub(1);
            }
            Some(false) => {} // a rotation's key
            None => self.counters.malformed += 1,
        }
    }

    /// A Megolm group message for `client`: decrypted with its sender's session.
    pub(super) fn on_megolm_group(&mut self, client: usize, chat_id: u32, d: Delivery, data: &mut [u8], now: u64) {
        let Some((chat, pos, sender)) = self.group_sender(client, chat_id, d) else { return };
        let t0 = self.open_timer();
        let Some(g) = self.chats[chat].megolm.as_mut() else { return };
        if g.departed(pos)
            && let Some(read) = g.read_after_leave(pos, sender, data)
        {
            // Sent after this device left (the relay still fans the group out to it):
            // not sent to it, and it must not be able to read it.
            if read {
                self.counters.departed_read += 1;
            } else {
                self.counters.not_member += 1;
            }
            return;
        }
        let result = match g.open(pos, sender, data) {
            None => Err(NotOpened::NotReady),
            Some(r) => r.map_err(NotOpened::Open),
        };
        if let Some((stamp, reordered)) = self.classify(result, now) {
            self.clients[client].owed = self.clients[client].owed.saturating_sub(1);
            self.delivered(chat, sender, stamp, reordered, d.stored, now, t0);
        }
    }
}
