//! Opening arbitrary bytes as a transport message never panics and never yields plaintext.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealcore::handshake::complete_in_memory;
use sealcore::{AeadKind, Handshake, HandshakeKeys, HashKind, Pattern, Suite, TransportMode};

fuzz_target!(|data: &[u8]| {
    let suite = Suite::new(Pattern::NN, AeadKind::ChaCha20Poly1305, HashKind::Sha256);
    let mode = if data.first().is_some_and(|b| b & 1 == 1) { TransportMode::KdfChain } else { TransportMode::Noise { rekey_every: 4 } };
    let mut i = Handshake::initiator(suite, HandshakeKeys::default(), b"").unwrap();
    let mut r = Handshake::responder(suite, HandshakeKeys::default(), b"").unwrap();
    complete_in_memory(&mut i, &mut r).unwrap();
    let mut t = r.into_transport(mode).unwrap();
    let mut buf = data.to_vec();
    assert!(t.receiver.open(&mut buf).is_err(), "a random message must not authenticate");
});
