//! sans-IO adapters over the protocols real messengers run, from their well-kept libraries:
//! Olm (the Double Ratchet with one-time prekeys) and Megolm (a group sender ratchet) from
//! `vodozemac`, and MLS (RFC 9420) from `openmls` with its RustCrypto provider.
//!
//! Like `sealcore`, this crate has no I/O and no clock: a caller hands bytes in and gets
//! bytes out. What it adds over the libraries is what a load harness needs around them:
//! the key material a key directory carries (identity bundle, signed fallback key,
//! one-time keys, key packages) as plain byte strings, one small framing byte per message
//! so that a receiver knows which kind it holds, which step of the protocol a message cost
//! (a DH ratchet turn or a chain step, a commit or an application message), and errors
//! classified under stable names (`replay`, `too_old`, `old_epoch`, …) so that a load run
//! can count every message it could not decrypt under its own name.
//!
//! **Allocation.** The libraries allocate internally for every message (vodozemac returns
//! the ciphertext and plaintext as `Vec`s, openmls builds framed messages and writes its
//! group state to its storage provider on every operation); the adapters append into
//! caller buffers where they can and say where they cannot. That cost is part of what the
//! protocols cost, and sealbench measures it rather than hiding it.
//!
//! # Layout
//! - [`protocol`]: the protocol dimension (`noise | olm | megolm | mls | plaintext`) and its names.
//! - [`olm`]: accounts (identity keys, signed fallback key, one-time keys) and 1:1 sessions.
//! - [`megolm`]: outbound group sessions with rotation, inbound sessions with a replay window.
//! - [`mls`]: a member (provider, signer, key packages) and its group: commits, Welcome,
//!   application messages.
//! - [`error`]: the classified error every adapter returns.
#![warn(missing_docs)]

pub mod error;
#[cfg(feature = "megolm")]
pub mod megolm;
#[cfg(feature = "mls")]
pub mod mls;
#[cfg(feature = "olm")]
pub mod olm;
pub mod protocol;

pub use error::ProtoError;
pub use protocol::Protocol;
