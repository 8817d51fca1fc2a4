//! Olm sessions in a shard (`crypto.protocol = "olm"`): every device publishes its identity
//! bundle, a batch of one-time keys and a signed fallback key once it has registered; a
//! session starts when both its devices are up and the responder's keys are published:
//! the initiator fetches the responder's identity, claims one of its keys, creates the
//! outbound session and sends its first (pre-key) message; the responder creates the
//! inbound session from it. `handshake` records that set-up, claim to first message
//! decrypted. The responder tops its pool up when it runs low.

use super::state::State;
use crate::driver::recorder::Metric;
use crate::driver::wire::{Incoming, RelayProtocol, RequestId, Side, Wire};
use sealcore::frame::POOL_OLM;
use sealproto::olm::{ClaimedKey, OlmAccount};

/// One-time keys a device publishes at first, and again when its pool runs low.
const BATCH: usize = 8;
/// Unused one-time keys below which a device publishes another batch.
const LOW_WATER: usize = 2;
/// Request ids of a device's own publications: `Control(PUBLISH | client)`.
const PUBLISH: u32 = 1 << 31;

/// The shard's Olm state.
pub(super) struct OlmShard {
    /// Per device: its account.
    accounts: Vec<OlmAccount>,
    /// Per device: its keys are published (the directory can hand them out).
    published: Vec<bool>,
    /// Per session: the responder's identity bundle, once fetched.
    identity: Vec<Option<Box<[u8]>>>,
    /// Per session: when the initiator asked for the responder's keys.
    claimed_at: Vec<u64>,
    /// Claims answered with the fallback key (the pool was empty).
    pub(super) fallback_claims: u64,
}

impl std::fmt::Debug for OlmShard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OlmShard").field("devices", &self.accounts.len()).finish_non_exhaustive()
    }
}

impl OlmShard {
    /// Accounts for `devices` devices and bookkeeping for `sessions` sessions.
    pub(super) fn new(devices: usize, sessions: usize) -> Self {
        OlmShard {
            accounts: (0..devices).map(|_| OlmAccount::new()).collect(),
            published: vec![false; devices],
            identity: vec![None; sessions],
            claimed_at: vec![0; sessions],
            fallback_claims: 0,
        }
    }
}

impl State {
    /// Publishes device `client`'s identity bundle, one-time keys and signed fallback key
    /// (first connection only: a reconnecting device keeps its sessions).
    pub(super) fn publish_olm_keys(&mut self, client: usize) {
        let Some(olm) = self.olm.as_mut() else { return };
        if olm.published[client] {
            return;
        }
        let req = RequestId::Control(PUBLISH | client as u32);
        let account = &mut olm.accounts[client];
        let identity = Wire::key_publish_bytes(RequestId::Control(0), &account.identity());
        let keys = account.one_time_keys(BATCH);
        let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
        let otks = Wire::keys_publish(RequestId::Control(0), POOL_OLM, false, &refs);
        let fallback = Wire::keys_publish(req, POOL_OLM, true, &[&account.signed_fallback_key()]);
        for f in [identity, otks, fallback] {
            self.send_to(client, f);
        }
    }

    /// Starts Olm session `s` once both devices are up (it has begun) and the responder's
    /// keys are published: the initiator fetches its identity and claims one of its keys.
    pub(super) fn begin_olm(&mut self, s: usize, now: u64) {
        let Some(olm) = self.olm.as_mut() else { return };
        let (ini, resp) = (self.convs[s].initiator, self.convs[s].responder);
        if self.clients[ini].tx.is_none() || self.clients[resp].tx.is_none() {
            return;
        }
        self.begun[s] = true;
        if !olm.published[resp] || olm.claimed_at[s] != 0 {
            return; // waits for the responder's keys, or already claimed
        }
        olm.claimed_at[s] = now.max(1);
        self.hs_first.get_or_insert(now);
        let to = self.clients[resp].id;
        let fetch = Wire::key_fetch(RequestId::Control(s as u32), to);
        let claim = Wire::key_claim(RequestId::Control(s as u32), to, POOL_OLM);
        if !(self.send_to(ini, fetch) && self.send_to(ini, claim)) {
            self.fail_handshake(s);
        }
    }

    /// Frames of the Olm set-up: the answers to publications, fetches and claims. Returns
    /// false for a frame that is not one of them.
    pub(super) fn on_olm_frame(&mut self, frame: &Incoming<'_>, now: u64) -> bool {
        if self.olm.is_none() {
            return false;
        }
        match *frame {
            Incoming::PoolStatus { request: RequestId::Control(c), .. } if c & PUBLISH != 0 => {
                let client = (c & !PUBLISH) as usize;
                if let Some(olm) = self.olm.as_mut().filter(|_| client < self.clients.len()) {
                    olm.published[client] = true;
                    // Its sessions as responder can start now.
                    self.begin_sessions_of(client, now);
                }
            }
            Incoming::PoolStatus { .. } => {}
            Incoming::Key { request: RequestId::Control(c), key } if (c as usize) < self.convs.len() => {
                if let Some(olm) = self.olm.as_mut() {
                    olm.identity[c as usize] = Some(key.into());
                }
            }
            Incoming::Claimed { request: RequestId::Control(c), fallback, item } if (c as usize) < self.convs.len() => {
                self.on_claimed(c as usize, fallback, item, now);
            }
            Incoming::Refused { request: RequestId::Control(c), code } if (c as usize) < self.convs.len() => {
                tracing::debug!(code, session = c, "olm set-up refused by the relay");
                self.fail_handshake(c as usize);
            }
            _ => return false,
        }
        true
    }

    /// The responder's key arrived: the initiator creates the outbound session and sends
    /// its first message.
    fn on_claimed(&mut self, s: usize, fallback: bool, item: &[u8], now: u64) {
        let Some(olm) = self.olm.as_mut() else { return };
        olm.fallback_claims += u64::from(fallback);
        let ini = self.convs[s].initiator;
        let key = if fallback { ClaimedKey::Fallback(item) } else { ClaimedKey::OneTime(item) };
        let session = match olm.identity[s].as_deref() {
            Some(identity) => olm.accounts[ini].outbound(identity, key),
            None => Err(sealproto::ProtoError::BadKey),
        };
        let Ok(session) = session else {
            tracing::debug!(session = s, "olm: the claimed key or identity did not verify");
            self.fail_handshake(s);
            return;
        };
        self.convs[s].olm_ready(Side::Initiator, session);
        let mut out = std::mem::take(&mut self.out);
        let sent = self.convs[s].seal_olm_setup(now, &mut out).is_ok() && self.send_to(ini, out.split().freeze());
        self.out = out;
        if !sent {
            self.fail_handshake(s);
        }
    }

    /// The first message of session `s` reached its responder: the inbound session is
    /// created from it (spending the one-time key), and the set-up is recorded.
    pub(super) fn on_olm_setup(&mut self, s: usize, side: Side, data: &[u8], now: u64) {
        let Some(olm) = self.olm.as_mut() else {
            self.counters.malformed += 1;
            return;
        };
        if side != Side::Responder || self.convs[s].end_ready(Side::Responder) {
            // A copy of the set-up (replayed by an adversarial relay): not a second session.
            self.counters.duplicated += 1;
            return;
        }
        let (resp, ini) = (self.convs[s].responder, self.convs[s].initiator);
        let sender = olm.accounts[ini].identity();
        match olm.accounts[resp].inbound(Some(&sender), data) {
            Ok((session, _)) => {
                let need_more = olm.accounts[resp].unused_one_time_keys() < LOW_WATER;
                let took = now.saturating_sub(olm.claimed_at[s]);
                self.convs[s].olm_ready(Side::Responder, session);
                self.handshakes_pending = self.handshakes_pending.saturating_sub(1);
                self.hist.record(Metric::Handshake, took);
                self.counters.handshakes_ok += 1;
                self.hs_last = self.hs_last.max(now);
                if need_more {
                    self.top_up(resp);
                }
                // Megolm: each end that sends in the group shares its session key over it.
                self.hand_out_sender_keys(s, now);
            }
            Err(e) => {
                tracing::debug!(session = s, error = %e, "olm: inbound session not created");
                self.fail_handshake(s);
            }
        }
    }

    /// Publishes another batch of one-time keys for `client`.
    fn top_up(&mut self, client: usize) {
        let Some(olm) = self.olm.as_mut() else { return };
        let keys = olm.accounts[client].one_time_keys(BATCH);
        let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
        let f = Wire::keys_publish(RequestId::Control(0), POOL_OLM, false, &refs);
        self.send_to(client, f);
    }
}
