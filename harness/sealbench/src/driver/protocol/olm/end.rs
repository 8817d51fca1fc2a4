//! One end of an Olm session inside a driver conversation (`crypto.protocol = "olm"`):
//! sealing a timed plaintext into a SEND frame and opening a delivery, with the
//! plaintext and ciphertext buffers reused from message to message. vodozemac still
//! allocates inside every encrypt and decrypt (its message and plaintext `Vec`s): that
//! is part of what Olm costs, measured, not hidden. No I/O.

use crate::driver::content::Text;
use crate::driver::protocol::pairwise::write_plaintext;
use bytes::BytesMut;
use sealcore::payload::Stamp;
use sealcore::{OpenError, SealError};
use sealproto::ProtoError;
use sealproto::olm::OlmSession;

/// An end's Olm session and its reused buffers.
#[derive(Debug)]
pub struct OlmEnd {
    session: OlmSession,
    /// The plaintext being sealed.
    plain: Vec<u8>,
    /// The framed Olm message being written.
    wire: Vec<u8>,
}

impl OlmEnd {
    /// The end of `session`.
    pub fn new(session: OlmSession) -> Self {
        OlmEnd { session, plain: Vec::with_capacity(256), wire: Vec::with_capacity(512) }
    }

    /// The plaintext buffer, `size` bytes, for the caller to fill.
    pub fn plaintext(&mut self, size: usize) -> &mut [u8] {
        self.plain.clear();
        self.plain.resize(size, 0);
        &mut self.plain
    }

    /// Encrypts the plaintext and appends the framed Olm message to `out` (which holds the
    /// frame's headers).
    ///
    /// # Errors
    /// [`SealError::Aead`] when vodozemac refuses (a non-contributory key).
    pub fn seal(&mut self, out: &mut BytesMut) -> Result<(), SealError> {
        self.wire.clear();
        self.session.encrypt(&self.plain, &mut self.wire).map_err(|_| SealError::Aead)?;
        out.extend_from_slice(&self.wire);
        Ok(())
    }

    /// Seals a timed plaintext of `size` bytes (`stamp`, then `extra`, then zeros) and
    /// appends the Olm message to `out`.
    ///
    /// # Errors
    /// As [`OlmEnd::seal`], or when the plaintext cannot hold the stamp.
    pub fn seal_timed(
        &mut self,
        out: &mut BytesMut,
        size: usize,
        stamp: Stamp,
        extra: &[u8],
        text: Text<'_>,
    ) -> Result<(), SealError> {
        write_plaintext(self.plaintext(size), stamp, extra, text)?;
        self.seal(out)
    }

    /// Decrypts a framed Olm message; the plaintext is copied to the front of `data` (it is
    /// shorter than the message) and returned from there.
    ///
    /// # Errors
    /// The refusal under the transport's names: `Replay`, `TooOld`, `TooFarAhead`, `Auth`;
    /// anything that does not decode (or names another session) is `Truncated` (counted
    /// as malformed).
    pub fn open<'a>(&mut self, data: &'a mut [u8]) -> Result<&'a mut [u8], OpenError> {
        let (pt, _step) = self.session.decrypt(data).map_err(open_error)?;
        let n = pt.len().min(data.len());
        data[..n].copy_from_slice(&pt[..n]);
        Ok(&mut data[..n])
    }
}

/// An Olm refusal under the transport's names (the run's counters).
pub fn open_error(e: ProtoError) -> OpenError {
    match e {
        ProtoError::Replay => OpenError::Replay,
        ProtoError::TooOld => OpenError::TooOld,
        ProtoError::TooFarAhead => OpenError::TooFarAhead,
        ProtoError::Auth => OpenError::Auth,
        _ => OpenError::Truncated,
    }
}
