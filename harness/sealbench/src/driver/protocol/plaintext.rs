//! No end-to-end encryption (`crypto.protocol = "plaintext"`): UNENCRYPTED. A message's
//! plaintext — its timing stamp, then its bytes — travels as it is, after the E2E header
//! (kinds `Plain` and `PlainGroup`, `docs/PROTOCOL.md` §3): the relay, and anyone who can
//! read the relay, can read every message. This is what a platform without end-to-end
//! encryption carries, the baseline beside which the E2E protocols' cost is measured
//! (as the `none` AEAD is for the ciphers, but without even a handshake).
//!
//! A session is ready as soon as both its devices are up: there is nothing to set up, so
//! no `handshake` is recorded and none is counted. A relay-fan-out group needs no keys.
//! Nothing authenticates a message, so a forgery cannot be told from a message; what
//! can still be told is a copy: each receiving direction keeps a replay window over the
//! stamp's sequence number (per sender's message number in a group), so a duplicate is
//! counted as `duplicated` and never delivered twice.

use super::pairwise::{BODY_AT, TRANSPORT_AT, Timed, write_plaintext};
use super::{Body, Cipher, Ctx, SessionProtocol};
use crate::driver::books::NotOpened;
use crate::driver::chat::Chat;
use crate::driver::content::Text;
use crate::driver::wire::{Incoming, RequestId, Side, group_id};
use bytes::BytesMut;
use sealcore::payload::{self, E2eKind, Stamp};
use sealcore::replay::{Refusal, ReplayWindow};
use sealcore::{OpenError, SealError};

/// One end of a plaintext session: the window of sequence numbers it has received.
#[derive(Debug, Default)]
pub struct PlainEnd {
    seen: ReplayWindow,
}

impl PlainEnd {
    /// Appends the plaintext itself after the headers in `out`.
    ///
    /// # Errors
    /// When the plaintext cannot hold the stamp.
    #[inline]
    pub fn seal(
        &mut self,
        out: &mut BytesMut,
        size: usize,
        stamp: Stamp,
        extra: &[u8],
        text: Text<'_>,
    ) -> Result<(), SealError> {
        out.resize(TRANSPORT_AT + size, 0);
        write_plaintext(&mut out[TRANSPORT_AT..], stamp, extra, text)
    }

    /// Returns the message itself, unless its sequence number was seen before.
    ///
    /// # Errors
    /// `Replay` for a copy, `TooOld` for a number behind the window, `Truncated` for a
    /// message too short for its stamp.
    #[inline]
    pub fn open<'a>(&mut self, data: &'a mut [u8]) -> Result<&'a mut [u8], OpenError> {
        let stamp = Stamp::read(data).map_err(|_| OpenError::Truncated)?;
        see(&mut self.seen, u64::from(stamp.seq))?;
        Ok(data)
    }
}

/// Accepts counter `c` once.
fn see(window: &mut ReplayWindow, c: u64) -> Result<(), OpenError> {
    window.check(c).map_err(|r| match r {
        Refusal::Replay => OpenError::Replay,
        Refusal::TooOld => OpenError::TooOld,
    })?;
    window.mark(c);
    Ok(())
}

/// The shard's plaintext state: per relay-fan-out group, per (recipient, sender), the
/// message numbers received.
#[derive(Debug)]
pub struct Plaintext {
    groups: Vec<Option<Vec<ReplayWindow>>>,
}

impl Plaintext {
    /// Windows for every relay-fan-out group of `chats`.
    pub fn new(chats: &[Chat]) -> Self {
        let windows = |c: &Chat| c.relay_fanout().then(|| vec![ReplayWindow::new(); c.devices * c.sending]);
        Plaintext { groups: chats.iter().map(windows).collect() }
    }

    /// A group message for `client`: read as it is, once.
    fn on_group(&mut self, cx: &mut Ctx<'_>, client: usize, body: Body<'_>, now: u64) {
        let Some((chat, pos, sender)) = cx.group_sender(client, body.conv, body.sender) else { return };
        let t0 = cx.books.open_timer();
        let sending = cx.chats[chat].sending;
        let Some(windows) = self.groups[chat].as_mut() else {
            cx.books.counters.malformed += 1;
            return;
        };
        let window = &mut windows[pos * sending + sender];
        let result = match Stamp::read(body.data) {
            Err(_) => Err(NotOpened::Open(OpenError::Truncated)),
            Ok(stamp) => {
                let reordered = u64::from(stamp.msg) + 1 < window.top();
                see(window, u64::from(stamp.msg)).map(|()| (stamp, reordered)).map_err(NotOpened::Open)
            }
        };
        cx.accept(client, chat, sender, result, body.stored, now, t0);
    }
}

impl SessionProtocol for Plaintext {
    /// Every session of `client` whose other device is up is ready at once.
    fn device_up(&mut self, cx: &mut Ctx<'_>, client: usize, now: u64) {
        for k in 0..cx.devices[client].sessions.len() {
            let s = cx.devices[client].sessions[k];
            if cx.sessions[s].begun || !cx.both_online(s) {
                continue;
            }
            cx.books.setup_started(now);
            cx.sessions[s].begun = true;
            for side in Side::BOTH {
                cx.sessions[s].set_ready(side, Cipher::Plain(PlainEnd::default()));
            }
            cx.books.handshakes_pending = cx.books.handshakes_pending.saturating_sub(1);
            cx.books.hs_last = cx.books.hs_last.max(now);
        }
    }

    /// Nothing is asked of the relay.
    fn on_reply(&mut self, _: &mut Ctx<'_>, _: &Incoming<'_>, _: u64) -> bool {
        false
    }

    #[inline]
    fn on_body(&mut self, cx: &mut Ctx<'_>, client: usize, body: Body<'_>, now: u64) {
        match body.kind {
            E2eKind::PlainGroup => self.on_group(cx, client, body, now),
            E2eKind::Plain => {
                if let Some((s, side)) = cx.session_of(body.conv, client) {
                    cx.on_pairwise(s, side, body.data, body.stored, now);
                }
            }
            _ => cx.books.counters.malformed += 1,
        }
    }

    /// The plaintext in a GROUP_SEND frame, its sequence number the message's number.
    fn seal_group(
        &mut self,
        cx: &mut Ctx<'_>,
        chat: usize,
        pos: usize,
        m: Timed,
        out: &mut BytesMut,
    ) -> Result<(), SealError> {
        let (id, wire) = (cx.chats[chat].id, cx.chats[chat].wire);
        let from = cx.devices[cx.chats[chat].first_client + pos].id;
        out.clear();
        out.resize(TRANSPORT_AT + m.size, 0);
        payload::write_e2e_header(&mut out[BODY_AT..], E2eKind::PlainGroup, id)
            .map_err(|_| SealError::BufferTooSmall)?;
        let stamp = Stamp { seq: m.msg, msg: m.msg, intended_ns: m.intended_ns, actual_ns: m.actual_ns };
        write_plaintext(&mut out[TRANSPORT_AT..], stamp, &[], m.text)?;
        wire.finish_group_send(out, RequestId::Group(id), group_id(id), from).map_err(|_| SealError::BufferTooSmall)
    }

    /// A group needs nothing set up.
    fn group_up(&self, chat: usize) -> bool {
        self.groups[chat].is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_end_reads_each_message_once_and_in_the_clear() {
        let mut end = PlainEnd::default();
        let mut out = BytesMut::new();
        out.resize(TRANSPORT_AT, 0);
        let stamp = Stamp { seq: 3, msg: 0, intended_ns: 1, actual_ns: 2 };
        end.seal(&mut out, 40, stamp, b"hello", Text::ZEROS).unwrap();
        assert_eq!(out.len(), TRANSPORT_AT + 40, "no overhead: nothing is added to the plaintext");
        assert_eq!(&out[TRANSPORT_AT + payload::PLAINTEXT_HEADER_LEN..][..5], b"hello", "readable on the wire");
        let mut copy = out[TRANSPORT_AT..].to_vec();
        assert_eq!(Stamp::read(end.open(&mut copy).unwrap()).unwrap(), stamp);
        let mut again = out[TRANSPORT_AT..].to_vec();
        assert_eq!(end.open(&mut again), Err(OpenError::Replay));
    }
}
