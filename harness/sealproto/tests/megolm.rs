//! Megolm through the adapter: a sender's session key shared over Olm with a group of 50
//! devices, rotated when a member leaves; the departed member cannot read what follows.
#![cfg(feature = "megolm")]

use sealproto::ProtoError;
use sealproto::megolm::{MegolmInbound, MegolmOutbound};
use sealproto::olm::{ClaimedKey, OlmAccount, OlmSession};

type R = Result<(), Box<dyn std::error::Error>>;

/// A member device: its account, its Olm session from the sender, its Megolm copy.
struct Device {
    account: OlmAccount,
    from_sender: Option<OlmSession>,
    inbound: Option<MegolmInbound>,
}

/// The sender shares its current session key with `members` over Olm (a session per
/// device, created from a claimed one-time key the first time).
fn share(
    sender: &OlmAccount,
    to: &mut [OlmSession],
    out: &MegolmOutbound,
    devices: &mut [Device],
    members: &[usize],
) -> R {
    let key = out.session_key();
    for &d in members {
        let mut wire = Vec::new();
        to[d].encrypt(&key, &mut wire)?;
        let dev = &mut devices[d];
        let pt = match dev.from_sender.as_mut() {
            Some(s) => s.decrypt(&wire)?.0,
            None => {
                let (s, pt) = dev.account.inbound(Some(&sender.identity()), &wire)?;
                dev.from_sender = Some(s);
                pt
            }
        };
        dev.inbound = Some(MegolmInbound::from_shared(&pt)?);
    }
    Ok(())
}

#[test]
fn a_megolm_group_of_50_rotates_on_leave_and_the_departed_member_cannot_decrypt() -> R {
    const N: usize = 50;
    let sender = OlmAccount::new();
    let mut devices: Vec<Device> =
        (1..N).map(|_| Device { account: OlmAccount::new(), from_sender: None, inbound: None }).collect();
    let mut sessions = Vec::new();
    for d in &mut devices {
        let otk = d.account.one_time_keys(1)[0];
        sessions.push(sender.outbound(&d.account.identity(), ClaimedKey::OneTime(&otk))?);
    }
    let mut out = MegolmOutbound::new(0);
    let everyone: Vec<usize> = (0..N - 1).collect();
    share(&sender, &mut sessions, &out, &mut devices, &everyone)?;

    let mut before = Vec::new();
    out.encrypt(b"before the leave", &mut before);
    for d in &mut devices {
        let (pt, index) = d.inbound.as_mut().ok_or("no session")?.decrypt(&before)?;
        assert_eq!((pt.as_slice(), index), (&b"before the leave"[..], 0));
    }

    // Device 49 leaves: the sender rotates and shares the new key with the 48 others only.
    let departed = N - 2;
    out.rotate();
    let remaining: Vec<usize> = (0..N - 1).filter(|&d| d != departed).collect();
    share(&sender, &mut sessions, &out, &mut devices, &remaining)?;
    let mut after = Vec::new();
    out.encrypt(b"after the leave", &mut after);
    for &d in &remaining {
        let (pt, _) = devices[d].inbound.as_mut().ok_or("no session")?.decrypt(&after)?;
        assert_eq!(pt, b"after the leave");
    }
    let old = devices[departed].inbound.as_mut().ok_or("no session")?;
    assert_eq!(old.decrypt(&after).map(|_| ()), Err(ProtoError::UnknownSession));
    // Even ignoring the generation, the old key does not verify the new session's messages.
    let body = &after[4..];
    assert_eq!(old.decrypt_body(body).map(|_| ()), Err(ProtoError::Auth));
    Ok(())
}

#[test]
fn the_count_policy_asks_for_rotation_and_a_late_joiner_cannot_read_earlier_messages() -> R {
    let mut out = MegolmOutbound::new(3);
    let mut early = Vec::new();
    out.encrypt(b"early", &mut early);
    let mut joiner = MegolmInbound::from_shared(&out.session_key())?;
    assert_eq!(joiner.decrypt(&early).map(|_| ()), Err(ProtoError::TooOld), "shared after index 0");
    for _ in 0..2 {
        out.encrypt(b"x", &mut Vec::new());
    }
    assert!(out.rotation_due());
    out.rotate();
    assert!(!out.rotation_due());
    assert_eq!(out.generation(), 1);
    Ok(())
}
