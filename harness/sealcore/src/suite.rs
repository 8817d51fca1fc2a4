//! Cipher suites: a Noise handshake pattern (classical, or hybrid with ML-KEM-768), a hash,
//! a transport AEAD and the backend that implements them, named by the standard Noise
//! protocol name of the handshake plus the short AEAD name.

use crate::aead::AeadKind;
use crate::backend::Backend;
use core::fmt;
use core::str::FromStr;

/// A Noise handshake pattern (Noise spec §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Pattern {
    /// No static keys: anonymous, two messages.
    NN,
    /// Responder's static key known in advance, initiator anonymous: two messages.
    NK,
    /// Both static keys transmitted during the handshake: three messages.
    XX,
    /// Initiator knows the responder's static key (from the key directory) and sends its
    /// own in the first message: two messages.
    IK,
    /// XX with a hybrid post-quantum KEM step: X25519 + ML-KEM-768, the two secrets
    /// combined with HKDF (`docs/PROTOCOL.md`, "Hybrid handshake"). Three messages.
    XXpq,
    /// IK with the same hybrid KEM step. Two messages.
    IKpq,
}

impl Pattern {
    /// Every supported pattern: the classical ones, then the hybrid ones.
    pub const ALL: [Pattern; 6] = [Pattern::NN, Pattern::NK, Pattern::XX, Pattern::IK, Pattern::XXpq, Pattern::IKpq];
    /// The classical Noise patterns.
    pub const CLASSICAL: [Pattern; 4] = [Pattern::NN, Pattern::NK, Pattern::XX, Pattern::IK];
    /// The hybrid post-quantum patterns.
    pub const HYBRID: [Pattern; 2] = [Pattern::XXpq, Pattern::IKpq];

    /// The name on the command line and in files (`XX`, ..., `XX-pq`, `IK-pq`).
    pub fn name(self) -> &'static str {
        match self {
            Pattern::NN => "NN",
            Pattern::NK => "NK",
            Pattern::XX => "XX",
            Pattern::IK => "IK",
            Pattern::XXpq => "XX-pq",
            Pattern::IKpq => "IK-pq",
        }
    }

    /// The Noise pattern the handshake runs (a hybrid pattern's classical base).
    pub fn noise(self) -> Pattern {
        match self {
            Pattern::XXpq => Pattern::XX,
            Pattern::IKpq => Pattern::IK,
            other => other,
        }
    }

    /// True for the hybrid X25519 + ML-KEM-768 patterns.
    pub fn is_hybrid(self) -> bool {
        self != self.noise()
    }

    /// Number of handshake messages.
    pub fn message_count(self) -> usize {
        match self.noise() {
            Pattern::XX => 3,
            _ => 2,
        }
    }

    /// Does the initiator need the responder's static public key before it starts?
    pub fn needs_remote_static(self) -> bool {
        matches!(self.noise(), Pattern::NK | Pattern::IK)
    }

    /// Does the initiator have a static key pair?
    pub fn initiator_has_static(self) -> bool {
        matches!(self.noise(), Pattern::XX | Pattern::IK)
    }

    /// Does the responder have a static key pair?
    pub fn responder_has_static(self) -> bool {
        !matches!(self.noise(), Pattern::NN)
    }
}

impl FromStr for Pattern {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pattern::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s) || p.name().replace('-', "").eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownName {
                what: "handshake pattern",
                name: s.to_owned(),
                expected: "NN, NK, XX, IK, XX-pq, IK-pq",
            })
    }
}

/// The hash function of the handshake (and of nothing else: transport KDFs use SHA-256).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum HashKind {
    /// SHA-256.
    Sha256,
    /// BLAKE2s-256.
    Blake2s,
}

impl HashKind {
    /// Every supported hash.
    pub const ALL: [HashKind; 2] = [HashKind::Sha256, HashKind::Blake2s];

    /// The name used in Noise protocol names and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            HashKind::Sha256 => "SHA256",
            HashKind::Blake2s => "BLAKE2s",
        }
    }
}

impl FromStr for HashKind {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.replace('-', "");
        HashKind::ALL.into_iter().find(|h| h.name().eq_ignore_ascii_case(&t)).ok_or_else(|| UnknownName {
            what: "hash",
            name: s.to_owned(),
            expected: "SHA256, BLAKE2s",
        })
    }
}

/// A name that is not one of the supported choices.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{name}`: expected one of {expected}")]
pub struct UnknownName {
    /// What kind of name it was.
    pub what: &'static str,
    /// The name given.
    pub name: String,
    /// The accepted names.
    pub expected: &'static str,
}

/// A complete choice of handshake and transport cryptography, and who implements it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Suite {
    /// Handshake pattern.
    pub pattern: Pattern,
    /// Transport AEAD (also picks the handshake's Noise cipher family).
    pub aead: AeadKind,
    /// Handshake hash.
    pub hash: HashKind,
    /// The library that implements all of it (the two ends of a session may differ).
    pub backend: Backend,
}

impl Suite {
    /// A suite on the default backend (RustCrypto).
    pub fn new(pattern: Pattern, aead: AeadKind, hash: HashKind) -> Self {
        Suite { pattern, aead, hash, backend: Backend::default() }
    }

    /// The same suite on `backend`.
    pub fn with_backend(self, backend: Backend) -> Self {
        Suite { backend, ..self }
    }

    /// The standard Noise protocol name of the handshake, e.g.
    /// `Noise_XX_25519_ChaChaPoly_SHA256`. Any Noise implementation can run it. A hybrid
    /// pattern gives its classical base's name: the KEM step rides in the payloads.
    pub fn noise_name(&self) -> String {
        format!(
            "Noise_{}_25519_{}_{}",
            self.pattern.noise().name(),
            self.aead.noise_cipher().noise_name(),
            self.hash.name()
        )
    }

    /// Bytes of all the handshake's messages with empty payloads (both directions): the
    /// Noise messages (32-byte keys, 16-byte tags), plus for a hybrid pattern the ML-KEM-768
    /// encapsulation key, ciphertext and key confirmation (`docs/PROTOCOL.md` §1.1).
    pub fn handshake_bytes(&self) -> usize {
        let classical = match self.pattern.noise() {
            Pattern::NN => 32 + 48,
            Pattern::NK => 48 + 48,
            Pattern::XX => 32 + 96 + 64,
            _ => 96 + 48,
        };
        let kem = if self.pattern.is_hybrid() {
            crate::kem::EK_LEN + crate::kem::CT_LEN + crate::kem::CONFIRM_LEN
        } else {
            0
        };
        classical + kem
    }

    /// The protocol for people and result files: the Noise name, then `+MLKEM768` for a
    /// hybrid pattern (`Noise_XX_25519_ChaChaPoly_SHA256+MLKEM768`).
    pub fn protocol_name(&self) -> String {
        let kem = if self.pattern.is_hybrid() { "+MLKEM768" } else { "" };
        format!("{}{kem}", self.noise_name())
    }
}

impl fmt::Display for Suite {
    /// `Noise_XX_25519_ChaChaPoly_SHA256 + chacha20-poly1305`, then the backend unless it
    /// is the default.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} + {}", self.protocol_name(), self.aead.label())?;
        if self.backend != Backend::default() { write!(f, " on {}", self.backend) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_names_are_standard_noise_names() {
        let s = Suite::new(Pattern::XX, AeadKind::ChaCha20Poly1305, HashKind::Sha256);
        assert_eq!(s.noise_name(), "Noise_XX_25519_ChaChaPoly_SHA256");
        let s = Suite::new(Pattern::IK, AeadKind::Aes128Gcm, HashKind::Blake2s);
        assert_eq!(s.noise_name(), "Noise_IK_25519_AESGCM_BLAKE2s");
        assert_eq!("blake2s".parse::<HashKind>().unwrap(), HashKind::Blake2s);
        assert_eq!("sha-256".parse::<HashKind>().unwrap(), HashKind::Sha256);
        assert!("XK".parse::<Pattern>().is_err());
        let s = Suite::new(Pattern::XXpq, AeadKind::ChaCha20Poly1305, HashKind::Sha256);
        assert_eq!(s.noise_name(), "Noise_XX_25519_ChaChaPoly_SHA256");
        assert_eq!(s.protocol_name(), "Noise_XX_25519_ChaChaPoly_SHA256+MLKEM768");
        assert_eq!("xx-pq".parse::<Pattern>().unwrap(), Pattern::XXpq);
        assert_eq!("IKpq".parse::<Pattern>().unwrap(), Pattern::IKpq);
    }
}
