//! Olm through the adapter: session set-up from a claimed key, out-of-order delivery
//! within vodozemac's window, replay refusal, fallback keys and spent one-time keys.
#![cfg(feature = "olm")]

use sealproto::ProtoError;
use sealproto::olm::{ClaimedKey, OlmAccount, Step};

type R = Result<(), Box<dyn std::error::Error>>;

fn send(s: &mut sealproto::olm::OlmSession, text: &str) -> (Vec<u8>, Step) {
    let mut out = Vec::new();
    let step = s.encrypt(text.as_bytes(), &mut out).expect("encrypt");
    (out, step)
}

#[test]
fn olm_conversation_survives_out_of_order_delivery_and_refuses_replays() -> R {
    let alice = OlmAccount::new();
    let mut bob = OlmAccount::new();
    let otk = bob.one_time_keys(5)[0];
    let mut a = alice.outbound(&bob.identity(), ClaimedKey::OneTime(&otk))?;

    // A one-way opening stream: pre-key messages, delivered 3, 0, 2, 1.
    let m: Vec<_> = (0..4).map(|i| send(&mut a, &format!("a{i}"))).collect();
    assert!(m.iter().all(|(_, s)| *s == Step::PreKey));
    let (mut b, first) = bob.inbound(Some(&alice.identity()), &m[3].0)?;
    assert_eq!(first, b"a3");
    for i in [0, 2, 1] {
        let (pt, _) = b.decrypt(&m[i].0)?;
        assert_eq!(pt, format!("a{i}").as_bytes());
    }
    assert_eq!(b.decrypt(&m[2].0).map(|_| ()), Err(ProtoError::Replay), "a replayed pre-key message");

    // Bob answers: his first message turns the DH ratchet; so does Alice's reading of it.
    let (r0, step) = send(&mut b, "b0");
    assert_eq!(step, Step::RatchetTurn);
    let (pt, step) = a.decrypt(&r0)?;
    assert_eq!((pt.as_slice(), step), (&b"b0"[..], Step::RatchetTurn));
    assert_eq!(a.decrypt(&r0).map(|_| ()), Err(ProtoError::Replay));

    // Ping-pong turns the ratchet every turn; a one-way burst steps the chain.
    let (x, s1) = send(&mut a, "a-turn");
    let (y, s2) = send(&mut a, "a-step");
    assert_eq!((s1, s2), (Step::RatchetTurn, Step::ChainStep));
    // Out of order across the burst: the chain step first, then the turn.
    let (pt, step) = b.decrypt(&y)?;
    assert_eq!((pt.as_slice(), step), (&b"a-step"[..], Step::RatchetTurn));
    let (pt, step) = b.decrypt(&x)?;
    assert_eq!((pt.as_slice(), step), (&b"a-turn"[..], Step::ChainStep));
    assert_eq!(b.decrypt(&x).map(|_| ()), Err(ProtoError::Replay));
    assert_eq!(b.decrypt(&y).map(|_| ()), Err(ProtoError::Replay));

    // Beyond the library's window of skipped keys (40 per chain): the oldest are gone.
    let burst: Vec<_> = (0..60).map(|i| send(&mut a, &format!("burst{i}")).0).collect();
    b.decrypt(&burst[59])?;
    assert_eq!(b.decrypt(&burst[0]).map(|_| ()), Err(ProtoError::TooOld));
    assert!(b.decrypt(&burst[58]).is_ok(), "a recent skipped key is still held");

    // A forged message changes nothing.
    let (mut z, _) = send(&mut a, "z");
    let last = z.len() - 1;
    z[last] ^= 1;
    assert_eq!(b.decrypt(&z).map(|_| ()), Err(ProtoError::Auth));
    z[last] ^= 1;
    assert!(b.decrypt(&z).is_ok());
    Ok(())
}

#[test]
fn a_spent_one_time_key_cannot_make_a_second_session() -> R {
    let mut bob = OlmAccount::new();
    let otk = bob.one_time_keys(1)[0];
    let (alice, carol) = (OlmAccount::new(), OlmAccount::new());
    let mut a = alice.outbound(&bob.identity(), ClaimedKey::OneTime(&otk))?;
    let mut c = carol.outbound(&bob.identity(), ClaimedKey::OneTime(&otk))?;
    let (ma, _) = send(&mut a, "hi");
    let (mc, _) = send(&mut c, "hi");
    bob.inbound(None, &ma)?;
    assert_eq!(bob.unused_one_time_keys(), 0);
    assert_eq!(bob.inbound(None, &mc).map(|_| ()), Err(ProtoError::MissingOneTimeKey));
    assert_eq!(bob.inbound(None, &ma).map(|_| ()), Err(ProtoError::MissingOneTimeKey), "replayed pre-key message");
    Ok(())
}

#[test]
fn the_fallback_key_is_verified_and_reusable() -> R {
    let mut bob = OlmAccount::new();
    let fallback = bob.signed_fallback_key();
    let (alice, carol) = (OlmAccount::new(), OlmAccount::new());
    let mut forged = fallback;
    forged[3] ^= 1;
    assert_eq!(alice.outbound(&bob.identity(), ClaimedKey::Fallback(&forged)).map(|_| ()), Err(ProtoError::BadKey));
    let mallory = OlmAccount::new();
    assert_eq!(
        alice.outbound(&mallory.identity(), ClaimedKey::Fallback(&fallback)).map(|_| ()),
        Err(ProtoError::BadKey),
        "a fallback key signed by someone else"
    );
    for acct in [&alice, &carol] {
        let mut s = acct.outbound(&bob.identity(), ClaimedKey::Fallback(&fallback))?;
        let (m, _) = send(&mut s, "via fallback");
        let (_, pt) = bob.inbound(Some(&acct.identity()), &m)?;
        assert_eq!(pt, b"via fallback");
    }
    Ok(())
}
