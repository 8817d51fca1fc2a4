//! Message franking on the end-to-end path (`crypto.franking`; `docs/PROTOCOL.md` §6.1):
//! what a pairwise end adds when it seals and checks when it opens. The primitives are
//! `sealcore::franking`; this file places them in the frame.
//!
//! - **Sealing**: the sender draws a fresh 32-byte franking key `fk`, seals
//!   `message ‖ fk` (the message being the load-test plaintext of §3.1, unchanged), and
//!   puts the commitment `c = HMAC-SHA256(fk, message)` beside the ciphertext, in the
//!   72-byte trailer that ends the SEND's body (time and stamp zero: the relay fills them
//!   in), with the FRANKED flag set.
//! - **Opening**: the recipient takes the trailer off, opens the body, and checks `c`
//!   against the message and `fk` it decrypted; a mismatch is
//!   [`NotOpened::Franking`] (counted as `franking_mismatch`, not delivered).
//! - **Reporting**: a share of what it opens (`traffic.report_share`, drawn from the
//!   run's seed) its recipient reports to the relay in a REPORT ([`report_frame`]).
//!
//! Franking keys come from the run's seeded generator (one stream per session end), so
//! that a run reproduces from its seed; a real client draws them from the OS
//! (`sealcore::franking::franking_key`). No allocation per message: the key is drawn into
//! an array, the trailer appended to the frame being built.

use super::Cipher;
use crate::driver::books::NotOpened;
use crate::driver::wire::{RequestId, Side};
use crate::rng::Rng;
use crate::scenario::FrankingPlan;
use bytes::{Bytes, BytesMut};
use sealcore::OpenError;
use sealcore::frame::{self, Frame};
use sealcore::franking::{self, Commitment, FrankingKey, KEY_LEN, RelayStamp};

/// Stream tag of franking keys in the run's generator (apart from the schedule's streams).
const KEY_STREAM: u64 = 0x6672_616e_6b00_0000; // "frank"
/// Stream tag of report draws.
const REPORT_STREAM: u64 = 0x7265_706f_7274_0000; // "report"

/// One session end's franking: its keys and its report draws.
#[derive(Debug)]
pub struct Franker {
    keys: Rng,
    reports: Rng,
    share: f64,
}

impl Franker {
    /// The franking of `side` of session `conv`, from the run's seed.
    pub fn new(plan: &FrankingPlan, conv: u32, side: Side) -> Self {
        Self::of_stream(plan, (u64::from(conv) << 1) | side.index() as u64)
    }

    /// The franking of the device at `pos` of relay-fan-out group `chat` (as sender and
    /// as reporter), apart from every session end's.
    pub fn of_member(plan: &FrankingPlan, chat: u32, pos: usize) -> Self {
        Self::of_stream(plan, (1 << 63) | (u64::from(chat) << 20) | pos as u64)
    }

    fn of_stream(plan: &FrankingPlan, stream: u64) -> Self {
        Franker {
            keys: Rng::new(plan.seed ^ KEY_STREAM, stream),
            reports: Rng::new(plan.seed ^ REPORT_STREAM, stream),
            share: plan.report_share,
        }
    }

    /// A fresh franking key.
    #[inline]
    pub fn key(&mut self) -> FrankingKey {
        let mut k = [0u8; KEY_LEN];
        for chunk in k.chunks_exact_mut(8) {
            chunk.copy_from_slice(&self.keys.next_u64().to_le_bytes());
        }
        k
    }

    /// Whether the message just opened is reported.
    #[inline]
    pub fn reports(&mut self) -> bool {
        self.share > 0.0 && self.reports.next_f64() < self.share
    }
}

/// An opened franked message: what a REPORT of it carries.
#[derive(Debug, Clone, Copy)]
pub struct Franked<'a> {
    /// The message as decrypted (the plaintext without its franking key).
    pub message: &'a [u8],
    /// The franking key found inside.
    pub fk: FrankingKey,
    /// The commitment from the trailer.
    pub commitment: Commitment,
    /// The relay's time from the trailer.
    pub time_ns: u64,
    /// The relay's stamp from the trailer.
    pub stamp: RelayStamp,
}

/// Completes a franked SEND in `out` (the wire's header in front of the sealed body):
/// the FRANKED flag, and the trailer with commitment `c` behind the body.
#[inline]
pub fn finish_franked(out: &mut BytesMut, c: &Commitment) {
    // Franking runs on sealbench's wire only (the plan refuses others): byte 10 is the
    // flags of its routed header.
    if let Some(flags) = out.get_mut(10) {
        *flags |= frame::FLAG_FRANKED;
    }
    franking::put_trailer(out, c);
}

/// Opens a franked body in place: its trailer off, the rest opened by `cipher`, the
/// commitment checked against the message and the franking key inside.
///
/// # Errors
/// [`OpenError::Truncated`] when there is no room for a trailer or a key, the cipher's
/// refusal, or [`NotOpened::Franking`] when the commitment does not match.
#[inline]
pub fn open<'a>(cipher: &mut Cipher, data: &'a mut [u8]) -> Result<(&'a [u8], Franked<'a>), NotOpened> {
    open_with(data, |body| cipher.open(body))
}

/// As [`open`], with `open_body` opening the body (a group's sender-key receiver).
///
/// # Errors
/// As [`open`].
#[inline]
pub fn open_with<'a>(
    data: &'a mut [u8],
    open_body: impl FnOnce(&'a mut [u8]) -> Result<&'a mut [u8], OpenError>,
) -> Result<(&'a [u8], Franked<'a>), NotOpened> {
    let truncated = NotOpened::Open(OpenError::Truncated);
    let at = data.len().checked_sub(franking::TRAILER_LEN).ok_or(truncated)?;
    let (body, trailer) = data.split_at_mut(at);
    let t = franking::split_trailer(trailer).ok_or(truncated)?;
    let pt: &'a [u8] = open_body(body).map_err(NotOpened::Open)?;
    let split = pt.len().checked_sub(KEY_LEN).ok_or(truncated)?;
    let (message, fk) = pt.split_at(split);
    let fk: FrankingKey = fk.try_into().map_err(|_| truncated)?;
    if !franking::verify_commitment(&fk, message, t.commitment) {
        return Err(NotOpened::Franking);
    }
    let franked = Franked { message, fk, commitment: *t.commitment, time_ns: t.time_ns, stamp: *t.stamp };
    Ok((message, franked))
}

/// A REPORT of `f`, a message `sender` sent `recipient` (relay ids), built in `out`.
pub fn report_frame(out: &mut BytesMut, request: RequestId, sender: u64, recipient: u64, f: &Franked<'_>) -> Bytes {
    let report = Frame::Report {
        request_id: request.encode(),
        sender,
        recipient,
        time_ns: f.time_ns,
        commitment: &f.commitment,
        stamp: &f.stamp,
        franking_key: &f.fk,
        message: f.message,
    };
    out.clear();
    out.resize(report.encoded_len(), 0);
    // The buffer is exactly `encoded_len` long: encoding cannot run short.
    let _ = report.encode(out);
    out.split().freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_report_draws_reproduce_from_the_seed_and_differ_by_end() {
        let plan = FrankingPlan { report_share: 0.5, seed: 7 };
        let (mut a, mut b) = (Franker::new(&plan, 3, Side::Initiator), Franker::new(&plan, 3, Side::Initiator));
        let mut other = Franker::new(&plan, 3, Side::Responder);
        let k = a.key();
        assert_eq!(k, b.key(), "same seed, same end: same key");
        assert_ne!(k, other.key(), "the other end draws its own");
        assert_ne!(k, a.key(), "a fresh key per message");
        let draws: Vec<bool> = (0..1000).map(|_| a.reports()).collect();
        assert_eq!(draws, (0..1000).map(|_| b.reports()).collect::<Vec<_>>());
        let n = draws.iter().filter(|d| **d).count();
        assert!((400..600).contains(&n), "about half reported at 0.5: {n}");
        let mut none = Franker::new(&FrankingPlan { report_share: 0.0, seed: 7 }, 3, Side::Initiator);
        assert!((0..1000).all(|_| !none.reports()));
    }
}
