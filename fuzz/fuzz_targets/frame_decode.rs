//! The relay frame decoder never panics, and whatever it accepts re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealcore::frame;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = frame::decode(data) {
        let mut out = vec![0u8; f.encoded_len()];
        let n = f.encode(&mut out).expect("a decoded frame encodes");
        assert_eq!(&out[..n], data);
    }
    let _ = sealcore::payload::parse_e2e(data);
});
