//! Known-answer tests against the published vectors in `vectors/` (see its README for the
//! source of every value): RFC 7748 X25519, RFC 8439 and draft-irtf-cfrg-xchacha AEADs,
//! NIST / McGrew–Viega AES-GCM, and Cacophony Noise vectors run through our resolver —
//! each on every backend in the build (what a backend lacks is skipped, by name) — and
//! the C2SP CCTV accumulated ML-KEM-768 vectors (FIPS 203) on libcrux-ml-kem.

use sealcore::handshake::{X25519_BASEPOINT, x25519};
use sealcore::transport::{HEADER_LEN, OVERHEAD};
use sealcore::{
    AeadKey, AeadKind, Backend, Handshake, HandshakeKeys, HashKind, Pattern, StaticKeypair, Suite, TransportMode,
};
use serde::Deserialize;
use std::path::PathBuf;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../vectors")
}

fn load<T: for<'de> Deserialize<'de>>(name: &str) -> Result<T, Box<dyn std::error::Error>> {
    let path = vectors_dir().join(name);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

fn h32(s: &str) -> Result<[u8; 32], Box<dyn std::error::Error>> {
    Ok(hex::decode(s)?.try_into().map_err(|_| "expected 32 bytes")?)
}

#[derive(Deserialize)]
struct X25519File {
    scalar_mult: Vec<ScalarMult>,
    iterated: Vec<Iterated>,
    dh: Vec<Dh>,
}
#[derive(Deserialize)]
struct ScalarMult {
    source: String,
    scalar: String,
    u: String,
    out: String,
}
#[derive(Deserialize)]
struct Iterated {
    iterations: u64,
    out: String,
}
#[derive(Deserialize)]
struct Dh {
    alice_private: String,
    alice_public: String,
    bob_private: String,
    bob_public: String,
    shared: String,
}

#[test]
fn x25519_matches_rfc7748_section_5_2_and_6_1() -> TestResult {
    let f: X25519File = load("x25519.json")?;
    assert!(!f.scalar_mult.is_empty() && !f.dh.is_empty());
    for v in &f.scalar_mult {
        assert_eq!(hex::encode(x25519(h32(&v.scalar)?, h32(&v.u)?)), v.out, "{}", v.source);
    }
    for v in f.iterated.iter().filter(|v| v.iterations <= 1000) {
        let (mut k, mut u) = (X25519_BASEPOINT, X25519_BASEPOINT);
        for _ in 0..v.iterations {
            let next = x25519(k, u);
            u = k;
            k = next;
        }
        assert_eq!(hex::encode(k), v.out, "{} iterations", v.iterations);
    }
    for backend in Backend::compiled() {
        let on = |k: [u8; 32], u: [u8; 32]| sealcore::backend::x25519(backend, &k, &u).ok_or("all-zero result");
        for v in &f.scalar_mult {
            assert_eq!(hex::encode(on(h32(&v.scalar)?, h32(&v.u)?)?), v.out, "{backend}: {}", v.source);
        }
        for v in &f.dh {
            let (a, b) = (h32(&v.alice_private)?, h32(&v.bob_private)?);
            assert_eq!(hex::encode(sealcore::backend::x25519_public(backend, &a)), v.alice_public, "{backend}");
            assert_eq!(hex::encode(sealcore::backend::x25519_public(backend, &b)), v.bob_public, "{backend}");
            assert_eq!(hex::encode(on(a, h32(&v.bob_public)?)?), v.shared, "{backend}");
            assert_eq!(hex::encode(on(b, h32(&v.alice_public)?)?), v.shared, "{backend}");
        }
        // RFC 7748 §6.1: a low-order point gives an all-zero secret, which is refused.
        assert_eq!(sealcore::backend::x25519(backend, &h32(&f.dh[0].alice_private)?, &[0u8; 32]), None, "{backend}");
    }
    for v in &f.dh {
        let a = StaticKeypair::from_private(h32(&v.alice_private)?);
        let b = StaticKeypair::from_private(h32(&v.bob_private)?);
        assert_eq!(hex::encode(a.public), v.alice_public);
        assert_eq!(hex::encode(b.public), v.bob_public);
        assert_eq!(hex::encode(x25519(a.private, b.public)), v.shared);
        assert_eq!(hex::encode(x25519(b.private, a.public)), v.shared);
    }
    Ok(())
}

#[test]
#[ignore = "slow: 1,000,000 X25519 operations (about a minute)"]
fn x25519_million_iterations_match_rfc7748() -> TestResult {
    let f: X25519File = load("x25519.json")?;
    for v in f.iterated.iter().filter(|v| v.iterations > 1000) {
        let (mut k, mut u) = (X25519_BASEPOINT, X25519_BASEPOINT);
        for _ in 0..v.iterations {
            let next = x25519(k, u);
            u = k;
            k = next;
        }
        assert_eq!(hex::encode(k), v.out);
    }
    Ok(())
}

#[derive(Deserialize)]
struct AeadFile {
    vectors: Vec<AeadVector>,
}
#[derive(Deserialize)]
struct AeadVector {
    aead: String,
    source: String,
    key: String,
    nonce: String,
    aad: String,
    plaintext: String,
    ciphertext: String,
    tag: String,
}

#[test]
fn aeads_match_rfc8439_xchacha_draft_and_gcm_test_cases_on_every_backend() -> TestResult {
    let f: AeadFile = load("aead.json")?;
    for backend in Backend::compiled() {
        let mut seen = std::collections::BTreeSet::new();
        for v in &f.vectors {
            let kind: AeadKind = v.aead.parse()?;
            if !backend.has_aead(kind) {
                assert!(AeadKey::with_backend(backend, kind, &hex::decode(&v.key)?).is_err(), "{backend} {kind}");
                continue;
            }
            seen.insert(kind);
            let key = AeadKey::with_backend(backend, kind, &hex::decode(&v.key)?)?;
            let (nonce, aad) = (hex::decode(&v.nonce)?, hex::decode(&v.aad)?);
            let mut buf = hex::decode(&v.plaintext)?;
            let tag = key.seal(&nonce, &aad, &mut buf)?;
            assert_eq!(hex::encode(&buf), v.ciphertext, "{backend}: {} ciphertext", v.source);
            assert_eq!(hex::encode(tag), v.tag, "{backend}: {} tag", v.source);
            let mut bad = tag;
            bad[0] ^= 1;
            assert!(key.open(&nonce, &aad, &mut buf.clone(), &bad).is_err(), "{backend}: {} forged tag", v.source);
            key.open(&nonce, &aad, &mut buf, &tag)?;
            assert_eq!(hex::encode(&buf), v.plaintext, "{backend}: {} decrypt", v.source);
        }
        let expected = AeadKind::ALL.into_iter().filter(|a| a.is_encrypted() && backend.has_aead(*a)).count();
        assert_eq!(seen.len(), expected, "{backend}: a vector for every encrypted AEAD it has");
    }
    Ok(())
}

#[derive(Deserialize)]
struct CacophonyFile {
    vectors: Vec<Cacophony>,
}
#[derive(Deserialize)]
struct Cacophony {
    protocol_name: String,
    init_prologue: String,
    init_static: Option<String>,
    init_ephemeral: String,
    init_remote_static: Option<String>,
    resp_static: Option<String>,
    resp_ephemeral: Option<String>,
    handshake_hash: String,
    messages: Vec<Message>,
}
#[derive(Deserialize)]
struct Message {
    payload: String,
    ciphertext: String,
}

fn suite_of(name: &str) -> Result<Suite, Box<dyn std::error::Error>> {
    let parts: Vec<&str> = name.split('_').collect();
    let pattern: Pattern = parts[1].parse()?;
    let aead = match parts[3] {
        "ChaChaPoly" => AeadKind::ChaCha20Poly1305,
        "AESGCM" => AeadKind::Aes256Gcm,
        other => return Err(format!("cipher {other}").into()),
    };
    let hash: HashKind = parts[4].parse()?;
    let s = Suite::new(pattern, aead, hash);
    assert_eq!(s.noise_name(), name);
    Ok(s)
}

#[test]
fn cacophony_vectors_pass_through_our_resolver_and_transport_on_every_backend() -> TestResult {
    for backend in Backend::compiled() {
        cacophony_on(backend)?;
    }
    Ok(())
}

fn cacophony_on(backend: Backend) -> TestResult {
    let f: CacophonyFile = load("cacophony.json")?;
    let mut per_pattern = std::collections::BTreeMap::new();
    for v in &f.vectors {
        let suite = suite_of(&v.protocol_name)?.with_backend(backend);
        *per_pattern.entry(suite.pattern).or_insert(0) += 1;
        let prologue = hex::decode(&v.init_prologue)?;
        let is = v.init_static.as_deref().map(h32).transpose()?.map(StaticKeypair::from_private);
        let rs = v.resp_static.as_deref().map(h32).transpose()?.map(StaticKeypair::from_private);
        let irs = v.init_remote_static.as_deref().map(h32).transpose()?;
        let ie = h32(&v.init_ephemeral)?;
        let re = v.resp_ephemeral.as_deref().map(h32).transpose()?;
        let mut i = Handshake::initiator(
            suite,
            HandshakeKeys { local_static: is.as_ref(), remote_static: irs.as_ref(), fixed_ephemeral: Some(&ie) },
            &prologue,
        )?;
        let mut r = Handshake::responder(
            suite,
            HandshakeKeys { local_static: rs.as_ref(), remote_static: None, fixed_ephemeral: re.as_ref() },
            &prologue,
        )?;
        let hs = suite.pattern.message_count();
        let mut buf = [0u8; 1024];
        let mut out = [0u8; 1024];
        for (k, m) in v.messages.iter().take(hs).enumerate() {
            let (w, rd) = if k % 2 == 0 { (&mut i, &mut r) } else { (&mut r, &mut i) };
            let n = w.write_message(&hex::decode(&m.payload)?, &mut buf)?;
            assert_eq!(hex::encode(&buf[..n]), m.ciphertext, "{} message {k}", v.protocol_name);
            let p = rd.read_message(&buf[..n], &mut out)?;
            assert_eq!(hex::encode(&out[..p]), m.payload);
        }
        assert_eq!(hex::encode(i.handshake_hash()), v.handshake_hash, "{} handshake hash", v.protocol_name);
        let mode = TransportMode::Noise { rekey_every: 0 };
        let (mut ti, mut tr) = (i.into_transport(mode)?, r.into_transport(mode)?);
        for (k, m) in v.messages.iter().enumerate().skip(hs) {
            let (w, rd) = if k % 2 == 0 { (&mut ti, &mut tr) } else { (&mut tr, &mut ti) };
            let payload = hex::decode(&m.payload)?;
            let mut msg = vec![0u8; payload.len() + OVERHEAD];
            msg[HEADER_LEN..HEADER_LEN + payload.len()].copy_from_slice(&payload);
            let n = w.sender.seal(&mut msg, payload.len())?;
            // Our wire form is counter ‖ (standard Noise ciphertext ‖ tag).
            assert_eq!(hex::encode(&msg[HEADER_LEN..n]), m.ciphertext, "{} transport message {k}", v.protocol_name);
            assert_eq!(rd.receiver.open(&mut msg[..n])?, &payload[..]);
        }
    }
    for p in Pattern::CLASSICAL {
        assert!(per_pattern.get(&p).copied().unwrap_or(0) >= 2, "vectors for {p:?}");
    }
    Ok(())
}

/// C2SP CCTV "accumulated" ML-KEM-768 vectors (github.com/C2SP/CCTV, `ML-KEM/README.md`,
/// FIPS 203 final): 10,000 tests whose inputs come from one SHAKE-128 stream with an empty
/// input and whose outputs go into a second SHAKE-128; the hash of all of them is
/// published. This checks libcrux-ml-kem (the `rustcrypto` and `ring` backends' KEM)
/// through its deterministic API; aws-lc-rs has none, and is checked against libcrux in
/// `tests/backends.rs` (each decapsulates the other's ciphertexts to the same secret).
#[test]
fn ml_kem_768_matches_the_c2sp_cctv_accumulated_vectors() {
    use libcrux_ml_kem::mlkem768;
    use libcrux_sha3::portable::incremental::{Shake128Xof, Xof};
    const EXPECTED: &str = "f959d18d3d1180121433bf0e05f11e7908cf9d03edc150b2b07cb90bef5bc1c1";
    let mut rng = Shake128Xof::new();
    rng.absorb_final(&[]);
    let mut acc = Shake128Xof::new();
    for i in 0..10_000 {
        let (mut dz, mut m, mut ct_random) = ([0u8; 64], [0u8; 32], [0u8; 1088]);
        rng.squeeze(&mut dz);
        rng.squeeze(&mut m);
        rng.squeeze(&mut ct_random);
        if i == 0 {
            assert_eq!(hex::encode(&dz[..16]), "7f9c2ba4e88f827d616045507605853e", "the RNG stream");
        }
        let kp = mlkem768::generate_key_pair(dz);
        let (ct, k) = mlkem768::encapsulate(kp.public_key(), m);
        assert_eq!(mlkem768::decapsulate(kp.private_key(), &ct), k, "test {i}");
        let k_random = mlkem768::decapsulate(kp.private_key(), &mlkem768::MlKem768Ciphertext::from(ct_random));
        acc.absorb(kp.pk());
        acc.absorb(kp.sk());
        acc.absorb(ct.as_slice());
        acc.absorb(&k);
        acc.absorb(&k_random);
    }
    acc.absorb_final(&[]);
    let mut hash = [0u8; 32];
    acc.squeeze(&mut hash);
    assert_eq!(hex::encode(hash), EXPECTED);
}
