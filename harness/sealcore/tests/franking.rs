//! Franking against the attack that motivates it: an AES-256-GCM ciphertext that opens
//! validly under two keys to two different plaintexts ("invisible salamanders", Dodis,
//! Grubbs, Ristenpart, Woodage, CRYPTO 2018, §3; the multi-key collision of GCM's
//! polynomial MAC). Built here from scratch: the AEAD accepts both openings; the franking
//! commitment accepts only the one committed to.
//!
//! Also: the franking test vectors (`vectors/franking.json`) checked in both directions.

use aes::Aes256;
use aes::cipher::{BlockCipherEncrypt, KeyInit};
use sealcore::aead::{AeadKey, AeadKind, TAG_LEN};
use sealcore::franking::{self, Context, RelayKey, ReportRefusal};

/// Multiplication in GF(2^128) as GCM defines it (NIST SP 800-38D, Algorithm 1): blocks are
/// big-endian, the first bit is the coefficient of x^0, R = 11100001 ‖ 0^120.
fn gf_mul(x: u128, y: u128) -> u128 {
    const R: u128 = 0xE1 << 120;
    let (mut z, mut v) = (0u128, y);
    for i in 0..128 {
        if (x >> (127 - i)) & 1 == 1 {
            z ^= v;
        }
        v = if v & 1 == 1 { (v >> 1) ^ R } else { v >> 1 };
    }
    z
}

fn gf_pow(mut a: u128, mut e: u128) -> u128 {
    let mut r = 1u128 << 127; // the field's one (x^0 is the first bit)
    while e > 0 {
        if e & 1 == 1 {
            r = gf_mul(r, a);
        }
        a = gf_mul(a, a);
        e >>= 1;
    }
    r
}

/// a^-1 = a^(2^128 - 2).
fn gf_inv(a: u128) -> u128 {
    gf_pow(a, u128::MAX - 1)
}

fn aes(key: &[u8; 32], block: [u8; 16]) -> u128 {
    let c = Aes256::new_from_slice(key).expect("a 32-byte key");
    let mut b = block.into();
    c.encrypt_block(&mut b);
    u128::from_be_bytes(b.into())
}

/// What GCM derives from a key and a 96-bit nonce: H = E(0), E(J0), and the keystream
/// blocks E(J0 + 1 + i).
struct Gcm {
    h: u128,
    ek_j0: u128,
    stream: Vec<u128>,
}

fn gcm(key: &[u8; 32], nonce: &[u8; 12], blocks: usize) -> Gcm {
    let counter = |c: u32| {
        let mut b = [0u8; 16];
        b[..12].copy_from_slice(nonce);
        b[12..].copy_from_slice(&c.to_be_bytes());
        b
    };
    Gcm {
        h: aes(key, [0u8; 16]),
        ek_j0: aes(key, counter(1)),
        stream: (0..blocks).map(|i| aes(key, counter(2 + i as u32))).collect(),
    }
}

/// GHASH of `blocks` (no associated data) and the length block, under `h`.
fn ghash(h: u128, blocks: &[u128]) -> u128 {
    let len = (blocks.len() as u128 * 128) & u128::from(u64::MAX); // 0 ‖ bit length of C
    blocks.iter().chain(std::iter::once(&len)).fold(0, |y, &x| gf_mul(y ^ x, h))
}

/// A ciphertext and tag that AES-256-GCM accepts under both `k1` and `k2` with `nonce`:
/// every block but `free` is what `p1` encrypts to under `k1`; block `free` solves the
/// linear equation that makes both tags equal.
fn two_key_ciphertext(k1: &[u8; 32], k2: &[u8; 32], nonce: &[u8; 12], p1: &[u128], free: usize) -> (Vec<u128>, u128) {
    let m = p1.len();
    let (g1, g2) = (gcm(k1, nonce, m), gcm(k2, nonce, m));
    let mut c: Vec<u128> = p1.iter().zip(&g1.stream).map(|(p, s)| p ^ s).collect();
    c[free] = 0;
    // GHASH_h(C) = Σ C_i·h^(m+2-i) ⊕ L·h (1-based i): the tags agree when
    // C_free·(h1^e ⊕ h2^e) = EK1(J0) ⊕ EK2(J0) ⊕ GHASH_h1(C with C_free = 0) ⊕ GHASH_h2(…).
    let e = (m + 1 - free) as u128;
    let rhs = g1.ek_j0 ^ g2.ek_j0 ^ ghash(g1.h, &c) ^ ghash(g2.h, &c);
    c[free] = gf_mul(rhs, gf_inv(gf_pow(g1.h, e) ^ gf_pow(g2.h, e)));
    let tag = ghash(g1.h, &c) ^ g1.ek_j0;
    assert_eq!(tag, ghash(g2.h, &c) ^ g2.ek_j0, "the two tags agree");
    (c, tag)
}

fn bytes(blocks: &[u128]) -> Vec<u8> {
    blocks.iter().flat_map(|b| b.to_be_bytes()).collect()
}

/// Opens `ct ‖ tag` with sealcore's AES-256-GCM (RustCrypto): the plaintext, if accepted.
fn open(key: &[u8; 32], nonce: &[u8; 12], ct: &[u8], tag: u128) -> Option<Vec<u8>> {
    let k = AeadKey::new(AeadKind::Aes256Gcm, key).ok()?;
    let mut buf = ct.to_vec();
    let tag: [u8; TAG_LEN] = tag.to_be_bytes();
    k.open(nonce, &[], &mut buf, &tag).ok().map(|()| buf)
}

#[test]
fn an_aes_gcm_ciphertext_opens_under_two_keys_and_franking_accepts_only_the_committed_one() {
    let (k1, k2, nonce) = ([0x11u8; 32], [0x22u8; 32], [0x33u8; 12]);
    // The franked plaintext: franking key (2 blocks), then the message (2 blocks; its last
    // block is the one the attacker gives up to make the collision).
    let fk = [0x44u8; 32];
    let mut p1 = [0u8; 64];
    p1[..32].copy_from_slice(&fk);
    p1[32..48].copy_from_slice(b"hello, abuse-fre");
    let blocks: Vec<u128> = p1.chunks(16).map(|b| u128::from_be_bytes(b.try_into().unwrap())).collect();
    let (c, tag) = two_key_ciphertext(&k1, &k2, &nonce, &blocks, 3);
    let ct = bytes(&c);

    // Without franking: both openings are valid AEAD decryptions, of different plaintexts.
    let m1 = open(&k1, &nonce, &ct, tag).expect("valid under key 1");
    let m2 = open(&k2, &nonce, &ct, tag).expect("valid under key 2 as well");
    assert_ne!(m1, m2, "two different plaintexts from one ciphertext");
    assert_eq!(&m1[..48], &p1[..48], "key 1 opens to what the sender chose");
    assert!(open(&[0x55u8; 32], &nonce, &ct, tag).is_none(), "a third key is refused");

    // With franking: the sender committed to what key 1 opens to; the opening under key 2
    // carries another franking key and message, and its check fails.
    let commit = |m: &[u8]| franking::commit(m[..32].try_into().unwrap(), &m[32..]);
    let c1 = commit(&m1);
    let check = |m: &[u8]| franking::verify_commitment(m[..32].try_into().unwrap(), &m[32..], &c1);
    assert!(check(&m1), "the committed opening passes");
    assert!(!check(&m2), "the second opening is refused: the commitment binds the message");
}

#[test]
fn gf_arithmetic_inverts_and_matches_a_gcm_tag() {
    let a = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128;
    assert_eq!(gf_mul(a, gf_inv(a)), 1u128 << 127);
    // GCM's own tag (RustCrypto) equals GHASH ⊕ E(J0) as computed here.
    let (key, nonce) = ([7u8; 32], [9u8; 12]);
    let k = AeadKey::new(AeadKind::Aes256Gcm, &key).unwrap();
    let mut buf = [0xA5u8; 32];
    let tag = k.seal(&nonce, &[], &mut buf).unwrap();
    let g = gcm(&key, &nonce, 2);
    let c: Vec<u128> = buf.chunks(16).map(|b| u128::from_be_bytes(b.try_into().unwrap())).collect();
    assert_eq!(u128::from_be_bytes(tag), ghash(g.h, &c) ^ g.ek_j0);
}

#[derive(serde::Deserialize)]
struct Vector {
    franking_key: String,
    message: String,
    commitment: String,
    relay_secret: String,
    sender: u64,
    recipient: u64,
    time_ns: u64,
    stamp: String,
}

fn unhex<const N: usize>(s: &str) -> [u8; N] {
    hex::decode(s).expect("hex").try_into().expect("length")
}

#[test]
fn franking_vectors_hold_in_both_directions() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../vectors/franking.json");
    let text = std::fs::read_to_string(path).expect("vectors/franking.json");
    let vectors: Vec<Vector> = serde_json::from_str(&text).expect("the vectors parse");
    assert!(vectors.len() >= 3);
    for v in vectors {
        let (fk, msg) = (unhex::<32>(&v.franking_key), hex::decode(&v.message).unwrap());
        let relay = RelayKey::new(unhex::<32>(&v.relay_secret));
        let ctx = Context { sender: v.sender, recipient: v.recipient, time_ns: v.time_ns };
        // Forward: computing gives the recorded bytes.
        let c = franking::commit(&fk, &msg);
        assert_eq!(hex::encode(c), v.commitment);
        assert_eq!(hex::encode(relay.stamp(&c, ctx)), v.stamp);
        // Backward: the recorded bytes verify, and one flipped bit does not.
        let (c, s) = (unhex::<32>(&v.commitment), unhex::<32>(&v.stamp));
        assert_eq!(relay.verify_report(&msg, &fk, &c, ctx, &s), Ok(()));
        let mut bad = s;
        bad[31] ^= 0x80;
        assert_eq!(relay.verify_report(&msg, &fk, &c, ctx, &bad), Err(ReportRefusal::Stamp));
    }
}

/// `vectors/franking_frames.json`: franking on the wire (`docs/PROTOCOL.md` §6.1).
#[derive(serde::Deserialize)]
struct Frames {
    franking_key: String,
    message: String,
    relay_secret: String,
    sender: u64,
    recipient: u64,
    time_ns: u64,
    e2e_body: String,
    commitment: String,
    stamp: String,
    send: String,
    deliver: String,
    report: String,
    report_results: Vec<String>,
}

fn encoded(f: &sealcore::frame::Frame<'_>) -> String {
    let mut out = vec![0u8; f.encoded_len()];
    assert_eq!(f.encode(&mut out), Ok(out.len()));
    hex::encode(out)
}

#[test]
fn franking_frame_vectors_hold_in_both_directions() {
    use sealcore::frame::{self, FLAG_ACK, FLAG_FRANKED, Frame};
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../vectors/franking_frames.json");
    let v: Frames = serde_json::from_str(&std::fs::read_to_string(path).expect("vectors/franking_frames.json"))
        .expect("the vectors parse");
    let (fk, msg, body) =
        (unhex::<32>(&v.franking_key), hex::decode(&v.message).unwrap(), hex::decode(&v.e2e_body).unwrap());
    let (c, s) = (unhex::<32>(&v.commitment), unhex::<32>(&v.stamp));
    let relay = RelayKey::new(unhex::<32>(&v.relay_secret));
    assert_eq!(franking::commit(&fk, &msg), c);

    // SEND: the body, then the sender's trailer (c, zeros).
    let mut franked = body.clone();
    franking::put_trailer(&mut franked, &c);
    let send = Frame::Send { request_id: 7, flags: FLAG_ACK | FLAG_FRANKED, recipient: v.recipient, body: &franked };
    assert_eq!(encoded(&send), v.send);
    assert_eq!(frame::decode(&hex::decode(&v.send).unwrap()), Ok(send));

    // The relay's step: the header rewritten and the trailer stamped in place gives DELIVER.
    let mut wire = hex::decode(&v.send).unwrap();
    frame::rewrite_as_deliver(&mut wire, v.sender, FLAG_FRANKED, 0).unwrap();
    assert!(relay.stamp_trailer(&mut wire[frame::ROUTED_HEADER_LEN..], v.sender, v.recipient, v.time_ns));
    assert_eq!(hex::encode(&wire), v.deliver);
    let Ok(Frame::Deliver { sender, flags, body: got, .. }) = frame::decode(&wire) else { panic!("a DELIVER") };
    assert_eq!((sender, flags), (v.sender, FLAG_FRANKED));
    let t = franking::split_trailer(got).expect("a trailer");
    assert_eq!((t.body, t.commitment, t.time_ns, t.stamp), (&body[..], &c, v.time_ns, &s));

    // REPORT: both directions, and the relay verifies it; a flipped bit is refused by name.
    let report = Frame::Report {
        request_id: 9,
        sender: v.sender,
        recipient: v.recipient,
        time_ns: v.time_ns,
        commitment: &c,
        stamp: &s,
        franking_key: &fk,
        message: &msg,
    };
    assert_eq!(encoded(&report), v.report);
    assert_eq!(frame::decode(&hex::decode(&v.report).unwrap()), Ok(report));
    let ctx = Context { sender: v.sender, recipient: v.recipient, time_ns: v.time_ns };
    assert_eq!(relay.verify_report(&msg, &fk, &c, ctx, &s), Ok(()));
    let mut m2 = msg.clone();
    m2[0] ^= 1;
    assert_eq!(relay.verify_report(&m2, &fk, &c, ctx, &s), Err(ReportRefusal::Commitment));
    let mut s2 = s;
    s2[0] ^= 1;
    assert_eq!(relay.verify_report(&msg, &fk, &c, ctx, &s2), Err(ReportRefusal::Stamp));

    // REPORT_RESULT: verified, refused (commitment), refused (stamp).
    let codes = [frame::REPORT_VERIFIED, frame::REPORT_REFUSED_COMMITMENT, frame::REPORT_REFUSED_STAMP];
    for (hex_frame, result) in v.report_results.iter().zip(codes) {
        let f = Frame::ReportResult { request_id: 9, result };
        assert_eq!(&encoded(&f), hex_frame);
        assert_eq!(frame::decode(&hex::decode(hex_frame).unwrap()), Ok(f));
    }
    // A REPORT cut inside its fixed part does not decode.
    let short = hex::decode(&v.report).unwrap();
    assert!(frame::decode(&short[..frame::REPORT_FIXED_LEN - 1]).is_err());
}

#[test]
fn the_two_key_ciphertext_is_refused_under_the_key_committing_mode() {
    use sealcore::commit::{CommitRefusal, CommittingKey};
    let (k1, k2, nonce) = ([0x11u8; 32], [0x22u8; 32], [0x33u8; 12]);
    // The attacker knows both keys, so it builds the collision for the AEAD keys the mode
    // derives from them.
    let e1: [u8; 32] = CommittingKey::encryption_key(AeadKind::Aes256Gcm, &k1).try_into().unwrap();
    let e2: [u8; 32] = CommittingKey::encryption_key(AeadKind::Aes256Gcm, &k2).try_into().unwrap();
    let p1 = [0x61u8; 48];
    let blocks: Vec<u128> = p1.chunks(16).map(|b| u128::from_be_bytes(b.try_into().unwrap())).collect();
    let (c, tag) = two_key_ciphertext(&e1, &e2, &nonce, &blocks, 2);
    let ct = bytes(&c);
    // At the AEAD layer both keys accept it…
    assert!(open(&e1, &nonce, &ct, tag).is_some() && open(&e2, &nonce, &ct, tag).is_some());
    // …but the ciphertext carries key 1's commitment: key 2 refuses it before decrypting.
    let (m1, m2) =
        (CommittingKey::new(AeadKind::Aes256Gcm, &k1).unwrap(), CommittingKey::new(AeadKind::Aes256Gcm, &k2).unwrap());
    let com = *m1.commitment();
    let tag: [u8; TAG_LEN] = tag.to_be_bytes();
    let mut under_k2 = ct.clone();
    assert_eq!(m2.open(&nonce, &[], &mut under_k2, &tag, &com), Err(CommitRefusal::Key));
    assert_eq!(under_k2, ct, "nothing was decrypted");
    // Passing key 2's own commitment instead does not help the attacker either way: the
    // recipient holding key 1 refuses it.
    let mut under_k1 = ct.clone();
    assert_eq!(m1.open(&nonce, &[], &mut under_k1, &tag, m2.commitment()), Err(CommitRefusal::Key));
    let mut ok = ct.clone();
    assert_eq!(m1.open(&nonce, &[], &mut ok, &tag, &com), Ok(()));
    assert_eq!(&ok[..32], &p1[..32], "key 1 opens to what the sender chose");
}
