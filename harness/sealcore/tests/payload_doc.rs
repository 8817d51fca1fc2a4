//! The load-test plaintext as `docs/PROTOCOL.md` §3.1 writes it: the document's own example
//! line, read from the document, checked in both directions (a client written from the
//! document reads what sealbench writes, and the other way round).

use sealcore::payload::{PLAINTEXT_HEADER_LEN, Stamp};

fn documented_example() -> Vec<u8> {
    let doc = include_str!("../../../docs/PROTOCOL.md");
    let at = doc.find("<!-- stamp-example -->").expect("PROTOCOL.md §3.1 marks its stamp example");
    let line = doc[at..].lines().nth(1).expect("the example follows its marker");
    line.trim().trim_matches('`').split_whitespace().map(|h| u8::from_str_radix(h, 16).expect("hex")).collect()
}

#[test]
fn the_documented_stamp_example_reads_and_writes_byte_for_byte() {
    let bytes = documented_example();
    assert_eq!(bytes.len(), 32, "the example is a 32-byte message");
    let want = Stamp { seq: 1, msg: 7, intended_ns: 1_000_000, actual_ns: 1_000_500 };
    assert_eq!(Stamp::read(&bytes).unwrap(), want, "seq u32 | msg u32 | intended u64 | actual u64");
    let mut written = vec![0xFFu8; 32];
    want.write(&mut written).unwrap();
    assert_eq!(written, bytes, "and padded with zeros after byte {PLAINTEXT_HEADER_LEN}");
}
