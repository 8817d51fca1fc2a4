//! The relay frame codec: round trips, hostile input, in-place SEND → DELIVER rewrite.

use proptest::prelude::*;
use sealcore::frame::{self, ErrorCode, Frame, FrameError, ROUTED_HEADER_LEN};

fn arb_frame() -> impl Strategy<Value = (u8, u64, u64, u8, Vec<u8>, u16, String)> {
    (
        0u8..12,
        any::<u64>(),
        any::<u64>(),
        any::<u8>(),
        prop::collection::vec(any::<u8>(), 0..300),
        any::<u16>(),
        "[a-z ]{0,40}",
    )
}

fn build<'a>(kind: u8, a: u64, b: u64, flags: u8, bytes: &'a [u8], code: u16, text: &'a str) -> Frame<'a> {
    let small = &bytes[..bytes.len().min(64)];
    let key = &bytes[..bytes.len().min(256)];
    match kind {
        0 => Frame::Hello { client_id: a, token: small },
        1 => Frame::Send { request_id: a, flags, recipient: b, body: bytes },
        2 => Frame::GroupJoin { request_id: a, group: b },
        3 => Frame::GroupLeave { request_id: a, group: b },
        4 => Frame::GroupSend { request_id: a, flags, group: b, body: bytes },
        5 => Frame::KeyPublish { request_id: a, key },
        6 => Frame::KeyFetch { request_id: a, client: b },
        7 => Frame::Welcome { client_id: a, stored: b as u32, max_message: (b >> 32) as u32 },
        8 => Frame::Deliver { sender: a, flags, group: b, body: bytes },
        9 => Frame::Ack { request_id: a },
        10 => Frame::Key { request_id: a, client: b, key },
        _ => Frame::Error { request_id: a, code, reason: text },
    }
}

proptest! {
    #[test]
    fn decode_of_encode_is_identity((kind, a, b, flags, bytes, code, text) in arb_frame()) {
        let f = build(kind, a, b, flags, &bytes, code, &text);
        let mut out = vec![0u8; f.encoded_len()];
        let n = f.encode(&mut out).unwrap();
        prop_assert_eq!(n, f.encoded_len());
        prop_assert_eq!(frame::decode(&out[..n]).unwrap(), f);
        // One byte short is never accepted as the same frame.
        if let Ok(g) = frame::decode(&out[..n - 1]) { prop_assert_ne!(g, f); }
    }

    #[test]
    fn key_pool_frames_round_trip(
        items in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..80), 0..20),
        a in any::<u64>(), b in any::<u64>(), pool in any::<u8>(), flags in any::<u8>(), n in any::<u32>(),
    ) {
        let mut raw = Vec::new();
        let count = frame::put_key_items(items.iter().map(Vec::as_slice), &mut raw).unwrap();
        let item = items.first().map_or(&[][..], Vec::as_slice);
        for f in [
            Frame::KeysPublish { request_id: a, pool, flags, items: &raw, count },
            Frame::KeyClaim { request_id: a, client: b, pool },
            Frame::PoolStatus { request_id: a, pool, available: n, fallback: flags },
            Frame::Claimed { request_id: a, client: b, pool, source: flags, remaining: n, item },
        ] {
            let mut out = vec![0u8; f.encoded_len()];
            let len = f.encode(&mut out).unwrap();
            prop_assert_eq!(len, f.encoded_len());
            prop_assert_eq!(frame::decode(&out[..len]).unwrap(), f);
            if let Ok(g) = frame::decode(&out[..len - 1]) { prop_assert_ne!(g, f); }
        }
        let got: Vec<&[u8]> = frame::key_items(&raw).collect();
        prop_assert_eq!(got, items.iter().map(Vec::as_slice).collect::<Vec<_>>());
    }

    #[test]
    fn decode_of_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = frame::decode(&bytes);
        let mut v = bytes.clone();
        if v.len() >= 2 { v[0] = frame::VERSION; v[1] = bytes[1] % 10; }
        let _ = frame::decode(&v);
    }
}

#[test]
fn malformed_inputs_are_distinct_typed_errors() {
    assert_eq!(frame::decode(&[]), Err(FrameError::Short));
    assert_eq!(frame::decode(&[9, 2]), Err(FrameError::Version(9)));
    assert_eq!(frame::decode(&[1, 0x7f]), Err(FrameError::UnknownType(0x7f)));
    // ACK with trailing bytes.
    assert_eq!(frame::decode(&[1, 0x83, 0, 0, 0, 0, 0, 0, 0, 0, 99]), Err(FrameError::Trailing));
    // KEY_PUBLISH whose length field claims 200 bytes but carries 3.
    let mut kp = vec![1, 0x06];
    kp.extend_from_slice(&7u64.to_le_bytes());
    kp.extend_from_slice(&200u16.to_le_bytes());
    kp.extend_from_slice(&[1, 2, 3]);
    assert_eq!(frame::decode(&kp), Err(FrameError::BadLength));
    // A truncated SEND header.
    assert_eq!(frame::decode(&[1, 0x02, 1, 2, 3]), Err(FrameError::Short));
    assert_eq!(FrameError::Version(3).code(), ErrorCode::UnsupportedVersion);
    assert_eq!(FrameError::BadLength.code(), ErrorCode::Malformed);
}

#[test]
fn send_is_rewritten_into_deliver_in_place() {
    let body = b"opaque ciphertext";
    let send = Frame::Send { request_id: 77, flags: frame::FLAG_ACK, recipient: 42, body };
    let mut buf = vec![0u8; send.encoded_len()];
    send.encode(&mut buf).unwrap();
    frame::rewrite_as_deliver(&mut buf, 5, 0, 0).unwrap();
    assert_eq!(frame::decode(&buf).unwrap(), Frame::Deliver { sender: 5, flags: 0, group: 0, body });
    assert_eq!(ROUTED_HEADER_LEN, 19);
}

#[test]
fn auth_tokens_verify_only_for_their_id_and_secret() {
    let t = frame::auth_token(b"secret", 9);
    assert!(frame::verify_auth_token(b"secret", 9, &t));
    assert!(!frame::verify_auth_token(b"secret", 10, &t));
    assert!(!frame::verify_auth_token(b"other", 9, &t));
    assert!(!frame::verify_auth_token(b"secret", 9, &t[..31]));
}

#[test]
fn every_error_code_round_trips_and_has_a_name() {
    for c in ErrorCode::ALL {
        assert_eq!(ErrorCode::from_u16(c as u16), Some(c));
        assert!(!c.name().is_empty());
    }
}

/// The worked examples of docs/PROTOCOL.md §4.7, byte for byte.
#[test]
fn protocol_examples() {
    let body = [2u8, 1, 0, 0, 0, 0x68, 0x69];
    let key = [0xde, 0xad, 0xbe, 0xef];
    let mut items = Vec::new();
    frame::put_key_items([&[0xaa, 0xbb][..], &[0xcc][..]], &mut items).unwrap();
    let cases: Vec<(Frame<'_>, &str)> = vec![
        (Frame::Hello { client_id: 42, token: &[] }, "01 01 2a 00 00 00 00 00 00 00 00"),
        (
            Frame::Send { request_id: 7, flags: frame::FLAG_ACK, recipient: 43, body: &body },
            "01 02 07 00 00 00 00 00 00 00 01 2b 00 00 00 00 00 00 00 02 01 00 00 00 68 69",
        ),
        (Frame::GroupJoin { request_id: 8, group: 9 }, "01 03 08 00 00 00 00 00 00 00 09 00 00 00 00 00 00 00"),
        (Frame::GroupLeave { request_id: 10, group: 9 }, "01 04 0a 00 00 00 00 00 00 00 09 00 00 00 00 00 00 00"),
        (
            Frame::GroupSend { request_id: 11, flags: 0, group: 9, body: b"yo" },
            "01 05 0b 00 00 00 00 00 00 00 00 09 00 00 00 00 00 00 00 79 6f",
        ),
        (Frame::KeyPublish { request_id: 12, key: &key }, "01 06 0c 00 00 00 00 00 00 00 04 00 de ad be ef"),
        (Frame::KeyFetch { request_id: 13, client: 42 }, "01 07 0d 00 00 00 00 00 00 00 2a 00 00 00 00 00 00 00"),
        (
            Frame::Welcome { client_id: 42, stored: 0, max_message: 65536 },
            "01 81 2a 00 00 00 00 00 00 00 00 00 00 00 00 00 01 00",
        ),
        (
            Frame::Deliver { sender: 42, flags: 0, group: 0, body: &body },
            "01 82 2a 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 02 01 00 00 00 68 69",
        ),
        (Frame::Ack { request_id: 7 }, "01 83 07 00 00 00 00 00 00 00"),
        (
            Frame::Key { request_id: 13, client: 42, key: &key },
            "01 84 0d 00 00 00 00 00 00 00 2a 00 00 00 00 00 00 00 04 00 de ad be ef",
        ),
        (
            Frame::Error { request_id: 7, code: ErrorCode::MailboxFull as u16, reason: "full" },
            "01 85 07 00 00 00 00 00 00 00 09 00 04 00 66 75 6c 6c",
        ),
        (
            Frame::KeysPublish { request_id: 14, pool: frame::POOL_OLM, flags: 0, items: &items, count: 2 },
            "01 08 0e 00 00 00 00 00 00 00 01 00 02 00 02 00 aa bb 01 00 cc",
        ),
        (
            Frame::KeyClaim { request_id: 15, client: 42, pool: frame::POOL_OLM },
            "01 09 0f 00 00 00 00 00 00 00 2a 00 00 00 00 00 00 00 01",
        ),
        (
            Frame::PoolStatus { request_id: 14, pool: frame::POOL_OLM, available: 2, fallback: 0 },
            "01 86 0e 00 00 00 00 00 00 00 01 02 00 00 00 00",
        ),
        (
            Frame::Claimed {
                request_id: 15,
                client: 42,
                pool: frame::POOL_OLM,
                source: frame::CLAIM_ONE_TIME,
                remaining: 1,
                item: &[0xaa, 0xbb],
            },
            "01 87 0f 00 00 00 00 00 00 00 2a 00 00 00 00 00 00 00 01 01 01 00 00 00 02 00 aa bb",
        ),
    ];
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/PROTOCOL.md")).unwrap();
    for (f, hex) in cases {
        let mut out = vec![0u8; f.encoded_len()];
        let n = f.encode(&mut out).unwrap();
        let got: Vec<String> = out[..n].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got.join(" "), hex, "{f:?}");
        assert!(doc.contains(&format!("`{hex}`")), "docs/PROTOCOL.md shows {hex}");
    }
}
