//! Megolm's figures: per-message encrypt (one Ed25519 signature) and decrypt (one
//! verification), and sharing a new session key over Olm with every other device of a
//! group (at set-up and at each rotation), the sender's side and one recipient's.

use super::{MESSAGE_SIZE, Progress, ProtocolPlan, ProtocolRow, clock, of_batches, per_op, push_pair};
use anyhow::{Result, anyhow};
use sealproto::Protocol;
use sealproto::megolm::{MegolmInbound, MegolmOutbound};
use std::time::Duration;

const BATCH: usize = 400;

fn e(err: sealproto::ProtoError) -> anyhow::Error {
    anyhow!("megolm: {err}")
}

pub(super) fn run(plan: &ProtocolPlan, progress: &mut dyn Progress, rows: &mut Vec<ProtocolRow>) -> Result<()> {
    progress.step("protocol megolm: encrypt, decrypt");
    let pt = [0x5au8; MESSAGE_SIZE];
    let mut out = MegolmOutbound::new(0);
    let mut inbound = MegolmInbound::from_shared(&out.session_key()).map_err(e)?;
    let mut msgs: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(512)).collect();
    let (mut enc, mut dec) = (Vec::new(), Vec::new());
    for _ in 0..plan.budget.samples.max(1) {
        let ((), te) = clock(|| {
            for m in &mut msgs {
                m.clear();
                out.encrypt(&pt, m);
            }
        });
        let (r, td) = clock(|| -> Result<()> {
            for m in &msgs {
                inbound.decrypt(m).map_err(e)?;
            }
            Ok(())
        });
        r?;
        enc.push((te, BATCH as u64));
        dec.push((td, BATCH as u64));
    }
    push_pair(rows, Protocol::Megolm, ("encrypt", "decrypt"), None, [&enc, &dec], msgs[0].len());

    for &n in &plan.group_sizes {
        progress.step(&format!("protocol megolm: key share with {} devices", n - 1));
        let mut pairs = Vec::with_capacity(n - 1);
        for _ in 1..n {
            pairs.push(super::olm::pair()?);
        }
        let mut wires: Vec<Vec<u8>> = (1..n).map(|_| Vec::with_capacity(512)).collect();
        let mut recv_t = Vec::new();
        let sender = per_op(plan.samples, || {
            let (r, t) = clock(|| -> Result<()> {
                out.rotate();
                let key = out.session_key();
                for ((s, _), w) in pairs.iter_mut().zip(&mut wires) {
                    w.clear();
                    s.encrypt(&key, w).map_err(e)?;
                }
                Ok(())
            });
            r?;
            // Every recipient's side (untimed above): decrypt the share, make the session.
            let mut spent = Duration::ZERO;
            for ((_, b), w) in pairs.iter_mut().zip(&wires) {
                let (r, t) = clock(|| -> Result<()> {
                    let (key, _) = b.decrypt(w).map_err(e)?;
                    MegolmInbound::from_shared(&key).map_err(e)?;
                    Ok(())
                });
                r?;
                spent += t;
            }
            recv_t.push((spent, (n - 1) as u64));
            Ok((t, 1))
        })?;
        rows.push(ProtocolRow::new(
            Protocol::Megolm,
            "key_share_sender",
            Some(n),
            sender,
            Some(wires[0].len() * (n - 1)),
        ));
        let t = of_batches(&recv_t);
        rows.push(ProtocolRow::new(Protocol::Megolm, "key_share_recipient", Some(n), t, Some(wires[0].len())));
    }
    Ok(())
}
