//! The franking section of `sealbench crypto`: what message franking costs per message
//! (`sealcore::franking`, docs/PROTOCOL.md §6), at the AEAD sweep's message sizes, beside
//! the AEADs — the sender's `frank` (a fresh franking key from the OS and the HMAC
//! commitment over the message), the relay's `stamp` (one HMAC over commitment and
//! context, whatever the message size), and the relay's `report_verify` (the commitment
//! recomputed over the reported message, then the stamp).

use super::measure::{Budget, Timing, measure, timed};
use sealcore::franking::{self, Context, RelayKey};
use serde::{Deserialize, Serialize};
use std::hint::black_box;

/// Bytes franking adds to a message on the wire (`docs/PROTOCOL.md` §6.1): the franking
/// key inside the sealed plaintext and the 72-byte trailer beside the ciphertext
/// (commitment, and room for the relay's time and stamp), on the SEND and the DELIVER alike.
pub const BYTES_ADDED: usize = franking::KEY_LEN + franking::TRAILER_LEN;

/// Franking at one message size.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FrankingRow {
    /// Plaintext bytes per message.
    pub size: usize,
    /// The sender: a fresh franking key and the commitment (median ns per message).
    pub frank: Timing,
    /// The relay: its stamp over commitment and context (median ns per message).
    pub stamp: Timing,
    /// The relay: verifying a report (commitment recomputed, stamp checked).
    pub report_verify: Timing,
    /// Bytes franking adds per message (franking key + trailer).
    pub bytes_added: usize,
}

/// Measures franking at each of `sizes`.
///
/// # Errors
/// When the OS has no randomness for franking keys.
pub fn run(sizes: &[usize], budget: Budget) -> anyhow::Result<Vec<FrankingRow>> {
    franking::franking_key().map_err(|e| anyhow::anyhow!("franking: no randomness: {e}"))?;
    let relay = RelayKey::new([0x5A; 32]);
    let ctx = Context { sender: 1, recipient: 2, time_ns: 3 };
    let mut rows = Vec::with_capacity(sizes.len());
    for &size in sizes {
        let msg = vec![0xA5u8; size];
        let frank = measure(budget, |n| {
            timed(n, || {
                let fk = franking::franking_key().unwrap_or([0; 32]);
                black_box(franking::commit(&fk, black_box(&msg)));
            })
        });
        let fk = [7u8; 32];
        let c = franking::commit(&fk, &msg);
        let stamp = measure(budget, |n| {
            timed(n, || {
                black_box(relay.stamp(black_box(&c), ctx));
            })
        });
        let s = relay.stamp(&c, ctx);
        let report_verify = measure(budget, |n| {
            timed(n, || {
                let _ = black_box(relay.verify_report(black_box(&msg), &fk, &c, ctx, &s));
            })
        });
        rows.push(FrankingRow { size, frank, stamp, report_verify, bytes_added: BYTES_ADDED });
    }
    Ok(rows)
}
