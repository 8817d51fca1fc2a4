//! The sans-IO protocol core of sealbench: bytes in, bytes out, into caller buffers.
//!
//! No async runtime, no clock, no sockets, and no allocation per message: the load driver,
//! the relay, the benches and the crypto sweep all drive these state machines.
//!
//! # Layout
//! - [`aead`] — the AEADs compared (ChaCha20-Poly1305, XChaCha20-Poly1305, AES-128/256-GCM,
//!   and the UNENCRYPTED `none` baseline), keyed once, sealing in place.
//! - [`backend`] — who implements the cryptography: RustCrypto (default), `ring`,
//!   `aws-lc-rs` (Cargo features, on by default), each behind one small trait.
//! - [`commit`] — a key-committing mode over the AEADs (a key commitment beside the
//!   ciphertext, checked before decrypting: Albertini et al., USENIX Security 2022).
//! - [`suite`] — handshake pattern × AEAD × hash, with standard Noise protocol names.
//! - [`resolver`] — our `snow` crypto resolver, one per backend.
//! - [`kem`] — ML-KEM-768 for the hybrid post-quantum handshake (aws-lc-rs or libcrux).
//! - [`handshake`] — the Noise handshake; becomes a transport only when finished.
//! - [`transport`] — transport sessions (`noise` counter nonces with rekey, or a
//!   per-message symmetric `kdf-chain`, not a Double Ratchet), with replay / forgery /
//!   truncation detection.
//! - [`replay`] — the sliding replay window.
//! - [`kdf`] — HKDF-SHA256 derivations beyond the handshake.
//! - [`frame`] — the relay wire protocol (envelopes, error codes, auth tokens).
//! - [`payload`] — the end-to-end body and the timed plaintext layout.
//! - [`franking`] — message franking: a commitment beside the ciphertext, the relay's
//!   stamp, and the verification of a recipient's report.
#![warn(missing_docs)]

pub mod aead;
pub mod backend;
pub mod commit;
pub mod frame;
pub mod franking;
pub mod handshake;
pub mod kdf;
pub mod kem;
pub mod payload;
pub mod replay;
pub mod resolver;
pub mod suite;
pub mod transport;

pub use aead::{AeadKey, AeadKind, TAG_LEN};
pub use backend::{Backend, BackendError, X25519Secret};
pub use handshake::{Handshake, HandshakeError, HandshakeKeys, StaticKeypair};
pub use suite::{HashKind, Pattern, Suite};
pub use transport::{OpenError, SealError, SenderKey, Transport, TransportMode, TransportReceiver, TransportSender};
