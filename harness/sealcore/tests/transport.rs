//! Transport sessions: round trips, every tamper case gives its own error, ratchet windows.

use proptest::prelude::*;
use sealcore::handshake::complete_in_memory;
use sealcore::transport::{HEADER_LEN, OVERHEAD};
use sealcore::{
    AeadKind, Handshake, HandshakeError, HandshakeKeys, HashKind, OpenError, Pattern, StaticKeypair, Suite, Transport,
    TransportMode,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Runs a complete handshake in memory and returns (initiator, responder) transports.
fn pair(suite: Suite, mode: TransportMode) -> Result<(Transport, Transport), HandshakeError> {
    let is = StaticKeypair::generate()?;
    let rs = StaticKeypair::generate()?;
    let ikeys = HandshakeKeys { local_static: Some(&is), remote_static: Some(&rs.public), fixed_ephemeral: None };
    let rkeys = HandshakeKeys { local_static: Some(&rs), ..Default::default() };
    let mut i = Handshake::initiator(suite, ikeys, b"test")?;
    let mut r = Handshake::responder(suite, rkeys, b"test")?;
    let bytes = complete_in_memory(&mut i, &mut r)?;
    assert_eq!(bytes, suite.handshake_bytes(), "{suite}: handshake bytes");
    assert_eq!(i.handshake_hash(), r.handshake_hash());
    Ok((i.into_transport(mode)?, r.into_transport(mode)?))
}

fn all_suites() -> Vec<Suite> {
    let mut v = Vec::new();
    for p in Pattern::ALL {
        for a in AeadKind::ALL {
            for h in HashKind::ALL {
                v.push(Suite::new(p, a, h));
            }
        }
    }
    v
}

const MODES: [TransportMode; 3] =
    [TransportMode::Noise { rekey_every: 0 }, TransportMode::Noise { rekey_every: 3 }, TransportMode::KdfChain];

fn seal(t: &mut Transport, plaintext: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; plaintext.len() + OVERHEAD];
    buf[HEADER_LEN..HEADER_LEN + plaintext.len()].copy_from_slice(plaintext);
    let n = t.sender.seal(&mut buf, plaintext.len()).expect("seal");
    buf.truncate(n);
    buf
}

#[test]
fn every_suite_and_mode_round_trips_both_directions() -> TestResult {
    for suite in all_suites() {
        for mode in MODES {
            let (mut a, mut b) = pair(suite, mode)?;
            for k in 0..10u8 {
                let text = [k; 33];
                let mut m = seal(&mut a, &text);
                assert_eq!(b.receiver.open(&mut m)?, &text[..], "{suite} {mode:?}");
                let mut m = seal(&mut b, &text);
                assert_eq!(a.receiver.open(&mut m)?, &text[..], "{suite} {mode:?}");
            }
        }
    }
    Ok(())
}

#[test]
fn encrypted_suites_hide_the_plaintext_and_none_does_not() -> TestResult {
    for aead in AeadKind::ALL {
        let (mut a, _) = pair(Suite::new(Pattern::NN, aead, HashKind::Sha256), MODES[0])?;
        let text = [0x41u8; 64];
        let m = seal(&mut a, &text);
        let visible = m[HEADER_LEN..HEADER_LEN + 64] == text;
        assert_eq!(visible, !aead.is_encrypted(), "{aead}");
    }
    Ok(())
}

#[test]
fn replay_truncation_and_forgery_are_distinct_errors() -> TestResult {
    for suite in all_suites().into_iter().filter(|s| s.pattern == Pattern::XX && s.aead.is_encrypted()) {
        for mode in MODES {
            let (mut a, mut b) = pair(suite, mode)?;
            let m = seal(&mut a, b"hello");
            let mut copy = m.clone();
            b.receiver.open(&mut copy)?;
            let mut again = m.clone();
            assert_eq!(b.receiver.open(&mut again), Err(OpenError::Replay));
            let mut short = m[..OVERHEAD - 1].to_vec();
            assert_eq!(b.receiver.open(&mut short), Err(OpenError::Truncated));
            let m2 = seal(&mut a, b"world");
            let mut cut = m2[..m2.len() - 1].to_vec();
            assert_eq!(b.receiver.open(&mut cut), Err(OpenError::Auth), "truncated tag");
            // The failed forgery did not consume counter 1: the real message still opens.
            let mut real = m2.clone();
            assert_eq!(b.receiver.open(&mut real)?, b"world");
        }
    }
    Ok(())
}

#[test]
fn ratchet_handles_out_of_order_within_the_window_and_refuses_evicted_keys() -> TestResult {
    let suite = Suite::new(Pattern::XX, AeadKind::ChaCha20Poly1305, HashKind::Sha256);
    let (mut a, mut b) = pair(suite, TransportMode::KdfChain)?;
    let msgs: Vec<Vec<u8>> = (0..300u32).map(|i| seal(&mut a, &i.to_le_bytes())).collect();
    // Deliver 299 first, then 100..299 in reverse, then 0 (whose key was evicted).
    let mut m = msgs[299].clone();
    assert_eq!(b.receiver.open(&mut m)?, &299u32.to_le_bytes());
    for i in (100..299).rev() {
        let mut m = msgs[i].clone();
        assert_eq!(b.receiver.open(&mut m)?, &(i as u32).to_le_bytes());
    }
    let mut m = msgs[0].clone();
    assert_eq!(b.receiver.open(&mut m), Err(OpenError::TooOld));
    let mut m = msgs[150].clone();
    assert_eq!(b.receiver.open(&mut m), Err(OpenError::Replay));
    Ok(())
}

#[test]
fn noise_rekey_accepts_stragglers_from_the_previous_epoch() -> TestResult {
    let suite = Suite::new(Pattern::NN, AeadKind::Aes256Gcm, HashKind::Blake2s);
    let (mut a, mut b) = pair(suite, TransportMode::Noise { rekey_every: 4 })?;
    let msgs: Vec<Vec<u8>> = (0..12u8).map(|i| seal(&mut a, &[i])).collect();
    for i in [0usize, 1, 5, 4, 2, 3, 6, 9, 8, 7, 10, 11] {
        let mut m = msgs[i].clone();
        assert_eq!(b.receiver.open(&mut m)?, &[i as u8], "message {i}");
    }
    Ok(())
}

#[test]
fn counter_far_ahead_is_refused_before_any_work() -> TestResult {
    let suite = Suite::new(Pattern::NN, AeadKind::ChaCha20Poly1305, HashKind::Sha256);
    for mode in MODES {
        let (mut a, mut b) = pair(suite, mode)?;
        let mut m = seal(&mut a, b"x");
        m[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert_eq!(b.receiver.open(&mut m), Err(OpenError::TooFarAhead));
    }
    Ok(())
}

#[test]
fn into_transport_refuses_an_unfinished_handshake() -> TestResult {
    let suite = Suite::new(Pattern::NN, AeadKind::ChaCha20Poly1305, HashKind::Sha256);
    let h = Handshake::initiator(suite, HandshakeKeys::default(), b"")?;
    assert_eq!(h.into_transport(MODES[0]).err(), Some(HandshakeError::State));
    let ik = Suite::new(Pattern::IK, AeadKind::ChaCha20Poly1305, HashKind::Sha256);
    assert_eq!(Handshake::initiator(ik, HandshakeKeys::default(), b"").err(), Some(HandshakeError::MissingKey));
    Ok(())
}

#[test]
fn forged_handshake_message_is_an_auth_error() -> TestResult {
    let suite = Suite::new(Pattern::XX, AeadKind::ChaCha20Poly1305, HashKind::Sha256);
    let is = StaticKeypair::generate()?;
    let rs = StaticKeypair::generate()?;
    let mut i = Handshake::initiator(suite, HandshakeKeys { local_static: Some(&is), ..Default::default() }, b"")?;
    let mut r = Handshake::responder(suite, HandshakeKeys { local_static: Some(&rs), ..Default::default() }, b"")?;
    let mut buf = [0u8; 256];
    let mut p = [0u8; 256];
    let n = i.write_message(&[], &mut buf)?;
    r.read_message(&buf[..n], &mut p)?;
    let n = r.write_message(&[], &mut buf)?;
    buf[n - 1] ^= 1;
    assert_eq!(i.read_message(&buf[..n], &mut p), Err(HandshakeError::Auth));
    Ok(())
}

#[test]
fn complete_in_memory_finishes_both_sides_and_counts_the_message_bytes() -> TestResult {
    let suite = Suite::new(Pattern::NN, AeadKind::ChaCha20Poly1305, HashKind::Sha256);
    let mut i = Handshake::initiator(suite, HandshakeKeys::default(), b"")?;
    let mut r = Handshake::responder(suite, HandshakeKeys::default(), b"")?;
    // NN: `e` (32 bytes), then `e, ee` with the empty payload's tag (32 + 16).
    assert_eq!(complete_in_memory(&mut i, &mut r)?, 80);
    assert!(i.is_finished() && r.is_finished());
    assert_eq!(i.handshake_hash(), r.handshake_hash());
    Ok(())
}

#[test]
fn complete_in_memory_reports_mismatched_sides_as_errors() -> TestResult {
    let suite = Suite::new(Pattern::NN, AeadKind::ChaCha20Poly1305, HashKind::Sha256);
    let mut i = Handshake::initiator(suite, HandshakeKeys::default(), b"one")?;
    let mut r = Handshake::responder(suite, HandshakeKeys::default(), b"two")?;
    assert_eq!(complete_in_memory(&mut i, &mut r), Err(HandshakeError::Auth));
    let mut a = Handshake::initiator(suite, HandshakeKeys::default(), b"")?;
    let mut b = Handshake::initiator(suite, HandshakeKeys::default(), b"")?;
    assert_eq!(complete_in_memory(&mut a, &mut b), Err(HandshakeError::State));
    Ok(())
}

/// Sizes 0..=64 KiB, sampled: small sizes densely, then anything up to 64 KiB.
fn sizes() -> impl Strategy<Value = usize> {
    prop_oneof![0usize..=64, 0usize..=65_536]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn seal_then_open_round_trips_and_any_bit_flip_is_rejected(
        size in sizes(), aead_i in 0usize..4, ratchet in any::<bool>(), flip in any::<prop::sample::Index>(), seed in any::<u8>()
    ) {
        let aead = AeadKind::ALL[aead_i]; // encrypted ones only
        let mode = if ratchet { TransportMode::KdfChain } else { TransportMode::Noise { rekey_every: 0 } };
        let (mut a, mut b) = pair(Suite::new(Pattern::NN, aead, HashKind::Sha256), mode).unwrap();
        let text: Vec<u8> = (0..size).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
        let m = seal(&mut a, &text);
        let mut bad = m.clone();
        let bit = flip.index(bad.len() * 8);
        bad[bit / 8] ^= 1 << (bit % 8);
        let err = b.receiver.open(&mut bad).unwrap_err();
        // A flip in the counter header may also land outside the window.
        prop_assert!(matches!(err, OpenError::Auth | OpenError::TooFarAhead), "{:?}", err);
        let mut good = m.clone();
        prop_assert_eq!(b.receiver.open(&mut good).unwrap(), &text[..]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A responder fed arbitrary bytes as the first handshake message returns an error (or,
    /// for NN/XX whose first message is just an ephemeral key, possibly accepts it) and
    /// never panics.
    #[test]
    fn arbitrary_handshake_messages_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), p in 0usize..6) {
        let suite = Suite::new(Pattern::ALL[p], AeadKind::ChaCha20Poly1305, HashKind::Sha256);
        let rs = StaticKeypair::generate().unwrap();
        let mut r = Handshake::responder(suite, HandshakeKeys { local_static: Some(&rs), ..Default::default() }, b"").unwrap();
        let mut out = [0u8; 512];
        let _ = r.read_message(&bytes, &mut out);
    }
}
