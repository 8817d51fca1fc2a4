//! Olm sessions (`crypto.protocol = "olm"`, and under Megolm): every device publishes its
//! identity bundle, a batch of one-time keys and a signed fallback key once it has
//! registered; a session starts when both its devices are up and the responder's keys are
//! published: the initiator fetches the responder's identity, claims one of its keys,
//! creates the outbound session and sends its first (pre-key) message; the responder
//! creates the inbound session from it. `handshake` records that set-up, claim to first
//! message decrypted. The responder tops its pool up when it runs low.

mod end;

pub use end::{OlmEnd, open_error};

use super::pairwise::Timed;
use super::{Body, Cipher, Ctx, SessionProtocol};
use crate::driver::wire::{DeviceOp, Incoming, RequestId, Sealbench1, Side};
use bytes::BytesMut;
use sealcore::SealError;
use sealcore::frame::POOL_OLM;
use sealcore::payload::E2eKind;
use sealproto::olm::{ClaimedKey, OlmAccount};

/// One-time keys a device publishes at first, and again when its pool runs low.
const BATCH: usize = 8;
/// Unused one-time keys below which a device publishes another batch.
const LOW_WATER: usize = 2;

/// The shard's Olm state.
pub struct Olm {
    /// Per device: its account.
    accounts: Vec<OlmAccount>,
    /// Per device: its keys are published (the directory can hand them out).
    published: Vec<bool>,
    /// Per session: the responder's identity bundle, once fetched.
    identity: Vec<Option<Box<[u8]>>>,
    /// Per session: when the initiator asked for the responder's keys.
    claimed_at: Vec<u64>,
    /// Claims answered with the fallback key (the pool was empty).
    pub fallback_claims: u64,
}

impl std::fmt::Debug for Olm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Olm").finish_non_exhaustive()
    }
}

impl Olm {
    /// Accounts for `devices` devices and bookkeeping for `sessions` sessions.
    pub fn new(devices: usize, sessions: usize) -> Self {
        Olm {
            accounts: (0..devices).map(|_| OlmAccount::new()).collect(),
            published: vec![false; devices],
            identity: vec![None; sessions],
            claimed_at: vec![0; sessions],
            fallback_claims: 0,
        }
    }

    /// Publishes device `client`'s identity bundle, one-time keys and signed fallback key
    /// (first connection only: a reconnecting device keeps its sessions).
    fn publish(&mut self, cx: &mut Ctx<'_>, client: usize) {
        if self.published[client] {
            return;
        }
        let (refill, publish) =
            (RequestId::Device(DeviceOp::Refill, client as u32), RequestId::Device(DeviceOp::Publish, client as u32));
        let account = &mut self.accounts[client];
        let identity = Sealbench1::key_publish_bytes(refill, &account.identity());
        let keys = account.one_time_keys(BATCH);
        let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
        let otks = Sealbench1::keys_publish(refill, POOL_OLM, false, &refs);
        // The fallback last: its answer says the device's keys are all in the directory.
        let fallback = Sealbench1::keys_publish(publish, POOL_OLM, true, &[&account.signed_fallback_key()]);
        for f in [identity, otks, fallback] {
            cx.send(client, f);
        }
    }

    /// Starts session `s` once both devices are up and the responder's keys are
    /// published: the initiator fetches its identity and claims one of its keys.
    fn begin(&mut self, cx: &mut Ctx<'_>, s: usize, now: u64) {
        if !cx.both_online(s) {
            return;
        }
        cx.sessions[s].begun = true;
        let (ini, resp) = (cx.sessions[s].initiator, cx.sessions[s].responder);
        if !self.published[resp] || self.claimed_at[s] != 0 {
            return; // waits for the responder's keys, or already claimed
        }
        self.claimed_at[s] = now.max(1);
        cx.books.setup_started(now);
        let to = cx.devices[resp].id;
        let fetch = Sealbench1::key_fetch(RequestId::Control(s as u32), to);
        let claim = Sealbench1::key_claim(RequestId::Control(s as u32), to, POOL_OLM);
        if !(cx.send(ini, fetch) && cx.send(ini, claim)) {
            cx.fail_session(s);
        }
    }

    fn begin_sessions_of(&mut self, cx: &mut Ctx<'_>, client: usize, now: u64) {
        for k in 0..cx.devices[client].sessions.len() {
            self.begin(cx, cx.devices[client].sessions[k], now);
        }
    }

    /// The responder's key arrived: the initiator creates the outbound session and sends
    /// its first message.
    fn on_claimed(&mut self, cx: &mut Ctx<'_>, s: usize, fallback: bool, item: &[u8], now: u64) {
        self.fallback_claims += u64::from(fallback);
        let ini = cx.sessions[s].initiator;
        let key = if fallback { ClaimedKey::Fallback(item) } else { ClaimedKey::OneTime(item) };
        let session = match self.identity[s].as_deref() {
            Some(identity) => self.accounts[ini].outbound(identity, key),
            None => Err(sealproto::ProtoError::BadKey),
        };
        let Ok(session) = session else {
            tracing::debug!(session = s, "olm: the claimed key or identity did not verify");
            cx.fail_session(s);
            return;
        };
        cx.sessions[s].set_ready(Side::Initiator, Cipher::Olm(Box::new(OlmEnd::new(session))));
        if !cx.send_control(s, Side::Initiator, E2eKind::OlmSetup, &[], now) {
            cx.fail_session(s);
        }
    }

    /// The first message of session `s` reached its responder: the inbound session is
    /// created from it (spending the one-time key), and the set-up is recorded. Returns
    /// whether the session came up.
    pub fn on_setup(&mut self, cx: &mut Ctx<'_>, s: usize, side: Side, data: &[u8], now: u64) -> bool {
        if side != Side::Responder || cx.sessions[s].end_ready(Side::Responder) {
            // A copy of the set-up (replayed by an adversarial relay): not a second session.
            cx.books.counters.duplicated += 1;
            return false;
        }
        let (resp, ini) = (cx.sessions[s].responder, cx.sessions[s].initiator);
        let sender = self.accounts[ini].identity();
        match self.accounts[resp].inbound(Some(&sender), data) {
            Ok((session, _)) => {
                let need_more = self.accounts[resp].unused_one_time_keys() < LOW_WATER;
                let took = now.saturating_sub(self.claimed_at[s]);
                cx.sessions[s].set_ready(Side::Responder, Cipher::Olm(Box::new(OlmEnd::new(session))));
                cx.books.handshakes_pending = cx.books.handshakes_pending.saturating_sub(1);
                cx.books.handshake_done(took, now);
                if need_more {
                    self.top_up(cx, resp);
                }
                true
            }
            Err(e) => {
                tracing::debug!(session = s, error = %e, "olm: inbound session not created");
                cx.fail_session(s);
                false
            }
        }
    }

    /// Publishes another batch of one-time keys for `client`.
    fn top_up(&mut self, cx: &mut Ctx<'_>, client: usize) {
        let keys = self.accounts[client].one_time_keys(BATCH);
        let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
        let f = Sealbench1::keys_publish(RequestId::Device(DeviceOp::Refill, client as u32), POOL_OLM, false, &refs);
        cx.send(client, f);
    }
}

impl SessionProtocol for Olm {
    fn device_up(&mut self, cx: &mut Ctx<'_>, client: usize, now: u64) {
        self.publish(cx, client);
        self.begin_sessions_of(cx, client, now);
    }

    fn on_reply(&mut self, cx: &mut Ctx<'_>, frame: &Incoming<'_>, now: u64) -> bool {
        let sessions = cx.sessions.len();
        match *frame {
            Incoming::PoolStatus { request: RequestId::Device(DeviceOp::Publish, c), .. } => {
                let client = c as usize;
                if client < self.published.len() {
                    self.published[client] = true;
                    // Its sessions as responder can start now.
                    self.begin_sessions_of(cx, client, now);
                }
            }
            Incoming::PoolStatus { .. } => {}
            Incoming::Key { request: RequestId::Control(c), key } if (c as usize) < sessions => {
                self.identity[c as usize] = Some(key.into());
            }
            Incoming::Claimed { request: RequestId::Control(c), fallback, item } if (c as usize) < sessions => {
                self.on_claimed(cx, c as usize, fallback, item, now);
            }
            Incoming::Refused { request: RequestId::Control(c), code } if (c as usize) < sessions => {
                tracing::debug!(code, session = c, "olm set-up refused by the relay");
                cx.fail_session(c as usize);
            }
            _ => return false,
        }
        true
    }

    #[inline]
    fn on_body(&mut self, cx: &mut Ctx<'_>, client: usize, body: Body<'_>, now: u64) {
        let Some((s, side)) = cx.session_of(body.conv, client) else { return };
        match body.kind {
            E2eKind::Olm => cx.on_pairwise(s, side, body.data, body.stored, now),
            E2eKind::OlmSetup => {
                self.on_setup(cx, s, side, body.data, now);
            }
            _ => cx.books.counters.malformed += 1,
        }
    }

    fn seal_group(&mut self, _: &mut Ctx<'_>, _: usize, _: usize, _: Timed, _: &mut BytesMut) -> Result<(), SealError> {
        // Olm has no relay-fan-out groups (the scenario's check refuses them).
        Err(SealError::Aead)
    }
}
