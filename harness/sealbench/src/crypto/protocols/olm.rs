//! Olm's figures: session set-up from a claimed one-time key (both ends), DH-ratchet
//! turns (ping-pong) and chain steps (a one-way stream), and client fan-out over
//! per-device Olm sessions at each group size.

use super::{MESSAGE_SIZE, Progress, ProtocolPlan, ProtocolRow, clock, of_each, per_op, push_pair};
use anyhow::{Result, anyhow};
use sealproto::Protocol;
use sealproto::olm::{ClaimedKey, OlmAccount, OlmSession};
use std::time::Duration;

const ROUNDS: u64 = 400;

fn e(err: sealproto::ProtoError) -> anyhow::Error {
    anyhow!("olm: {err}")
}

/// A session pair past its pre-key phase (one message each way).
pub(super) fn pair() -> Result<(OlmSession, OlmSession)> {
    let (alice, mut bob) = (OlmAccount::new(), OlmAccount::new());
    let otk = bob.one_time_keys(1)[0];
    let mut a = alice.outbound(&bob.identity(), ClaimedKey::OneTime(&otk)).map_err(e)?;
    let mut m = Vec::new();
    a.encrypt(b"hello", &mut m).map_err(e)?;
    let (mut b, _) = bob.inbound(None, &m).map_err(e)?;
    m.clear();
    b.encrypt(b"hi", &mut m).map_err(e)?;
    a.decrypt(&m).map_err(e)?;
    Ok((a, b))
}

pub(super) fn run(plan: &ProtocolPlan, progress: &mut dyn Progress, rows: &mut Vec<ProtocolRow>) -> Result<()> {
    progress.step("protocol olm: session set-up, ratchet turns, chain steps");
    let pt = [0x5au8; MESSAGE_SIZE];
    let alice = OlmAccount::new();
    let mut bob = OlmAccount::new();
    let mut wire = Vec::with_capacity(1024);
    let (mut out_t, mut in_t, mut bytes) = (Vec::new(), Vec::new(), 0);
    for _ in 0..plan.samples.max(3) * 4 {
        let otk = bob.one_time_keys(1)[0];
        let identity = bob.identity();
        wire.clear();
        let (r, t) = clock(|| -> Result<()> {
            let mut s = alice.outbound(&identity, ClaimedKey::OneTime(&otk)).map_err(e)?;
            s.encrypt(&pt, &mut wire).map_err(e)?;
            Ok(())
        });
        r?;
        out_t.push(t);
        bytes = wire.len();
        let (r, t) = clock(|| bob.inbound(None, &wire).map_err(e));
        r?;
        in_t.push(t);
    }
    rows.push(ProtocolRow::new(Protocol::Olm, "session_setup_outbound", None, of_each(&out_t), Some(bytes)));
    rows.push(ProtocolRow::new(Protocol::Olm, "session_setup_inbound", None, of_each(&in_t), None));

    // Ping-pong: every message turns the DH ratchet on both ends.
    let (mut a, mut b) = pair()?;
    let (mut enc, mut dec) = (Vec::new(), Vec::new());
    for _ in 0..plan.budget.samples.max(1) {
        let (mut te, mut td) = (Duration::ZERO, Duration::ZERO);
        for round in 0..ROUNDS {
            let (from, to) = if round % 2 == 0 { (&mut a, &mut b) } else { (&mut b, &mut a) };
            wire.clear();
            let (r, t) = clock(|| from.encrypt(&pt, &mut wire));
            r.map_err(e)?;
            te += t;
            let (r, t) = clock(|| to.decrypt(&wire));
            r.map_err(e)?;
            td += t;
        }
        enc.push((te, ROUNDS));
        dec.push((td, ROUNDS));
    }
    let names = ("encrypt_ratchet_turn", "decrypt_ratchet_turn");
    push_pair(rows, Protocol::Olm, names, None, [&enc, &dec], wire.len());

    // A one-way stream: chain steps only.
    let (mut a, mut b) = pair()?;
    let (mut enc, mut dec) = (Vec::new(), Vec::new());
    let mut msgs: Vec<Vec<u8>> = (0..ROUNDS).map(|_| Vec::with_capacity(512)).collect();
    for _ in 0..plan.budget.samples.max(1) {
        let (r, te) = clock(|| -> Result<()> {
            for m in &mut msgs {
                m.clear();
                a.encrypt(&pt, m).map_err(e)?;
            }
            Ok(())
        });
        r?;
        let (r, td) = clock(|| -> Result<()> {
            for m in &msgs {
                b.decrypt(m).map_err(e)?;
            }
            Ok(())
        });
        r?;
        enc.push((te, ROUNDS));
        dec.push((td, ROUNDS));
    }
    let names = ("encrypt_chain_step", "decrypt_chain_step");
    push_pair(rows, Protocol::Olm, names, None, [&enc, &dec], msgs[0].len());

    // Client fan-out over per-device sessions: one copy per other device.
    for &n in &plan.group_sizes {
        progress.step(&format!("protocol olm: client fan-out to {} devices", n - 1));
        let mut sessions = Vec::with_capacity(n - 1);
        for _ in 1..n {
            sessions.push(pair()?.0);
        }
        let t = per_op(plan.samples, || {
            let (r, t) = clock(|| -> Result<()> {
                for s in &mut sessions {
                    wire.clear();
                    s.encrypt(&pt, &mut wire).map_err(e)?;
                }
                Ok(())
            });
            r.map(|_| (t, 1))
        })?;
        rows.push(ProtocolRow::new(Protocol::Olm, "fanout_encrypt", Some(n), t, Some(wire.len() * (n - 1))));
    }
    Ok(())
}
