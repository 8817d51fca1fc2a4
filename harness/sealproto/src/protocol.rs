//! The protocol dimension of a scenario, a matrix and the crypto sweep.

use std::fmt;
use std::str::FromStr;

/// The messaging protocol a conversation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[non_exhaustive]
pub enum Protocol {
    /// A Noise session (sealcore's handshake and transport): the reference.
    #[default]
    Noise,
    /// Olm: the Double Ratchet with one-time prekeys (vodozemac).
    Olm,
    /// Megolm: a group sender ratchet per sender, its key shared over Olm (vodozemac).
    Megolm,
    /// MLS, RFC 9420, ciphersuite 0x0001 (openmls with its RustCrypto provider).
    Mls,
    /// No end-to-end encryption at all (UNENCRYPTED): the payload travels readable, as on
    /// a platform that reads what it carries. The baseline beside the others.
    Plaintext,
}

impl Protocol {
    /// Every protocol, the reference first.
    pub const ALL: [Protocol; 5] =
        [Protocol::Noise, Protocol::Olm, Protocol::Megolm, Protocol::Mls, Protocol::Plaintext];

    /// Its name in scenarios, flags and result files.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Noise => "noise",
            Protocol::Olm => "olm",
            Protocol::Megolm => "megolm",
            Protocol::Mls => "mls",
            Protocol::Plaintext => "plaintext",
        }
    }

    /// Whether this build has it (each protocol but `noise` is a Cargo feature of
    /// `sealproto`, on by default).
    pub fn available(self) -> bool {
        match self {
            Protocol::Noise | Protocol::Plaintext => true,
            Protocol::Olm => cfg!(feature = "olm"),
            Protocol::Megolm => cfg!(feature = "megolm"),
            Protocol::Mls => cfg!(feature = "mls"),
        }
    }

    /// Whether messages are encrypted end to end (a protocol that does not is a baseline,
    /// said UNENCRYPTED wherever a run shows it).
    pub fn encrypts(self) -> bool {
        match self {
            Protocol::Noise | Protocol::Olm | Protocol::Megolm | Protocol::Mls => true,
            Protocol::Plaintext => false,
        }
    }

    /// The cipher suite a run of it names, for a protocol with its own (`None` for `noise`,
    /// whose suite is the scenario's pattern, AEAD and hash).
    pub fn suite_name(self) -> Option<&'static str> {
        match self {
            Protocol::Noise => None,
            Protocol::Olm => Some("olm: Olm v1 (vodozemac), every pairwise session"),
            Protocol::Megolm => Some("megolm: Megolm v1 groups, keys over Olm v1 (vodozemac)"),
            Protocol::Mls => Some("mls: MLS ciphersuite 0x0001 (openmls), relay fan-out groups"),
            Protocol::Plaintext => Some("plaintext: UNENCRYPTED, no end-to-end encryption (the relay could read it)"),
        }
    }

    /// Whether it is a group protocol (its messages need the relay's group fan-out).
    pub fn is_group(self) -> bool {
        matches!(self, Protocol::Megolm | Protocol::Mls)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown protocol name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol '{0}' (expected one of: noise, olm, megolm, mls, plaintext)")]
pub struct UnknownProtocol(pub String);

impl FromStr for Protocol {
    type Err = UnknownProtocol;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Protocol::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownProtocol(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for p in Protocol::ALL {
            assert_eq!(p.name().parse::<Protocol>(), Ok(p));
        }
        assert!("signal".parse::<Protocol>().is_err());
        assert_eq!(Protocol::default(), Protocol::Noise);
    }
}
