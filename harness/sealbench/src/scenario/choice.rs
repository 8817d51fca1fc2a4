//! The choice fields of a scenario as types. Each is spelled in files exactly as before
//! (`"XX"`, `"chacha20-poly1305"`, `"poisson"`, `"ws://…"`), so a scenario file and the
//! `scenario` object in `summary.json` read the same; a wrong value is refused when the
//! file is read, with the line and the accepted values.

use sealcore::{AeadKind, Backend, HashKind, Pattern};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use tokio_tungstenite::tungstenite::http::Uri;

/// A choice with a canonical name (serialised as that name, parsed with `FromStr`).
pub trait Named: Copy + FromStr {
    /// The canonical spelling.
    fn name(self) -> &'static str;
}

impl Named for Pattern {
    fn name(self) -> &'static str {
        Pattern::name(self)
    }
}
impl Named for AeadKind {
    fn name(self) -> &'static str {
        AeadKind::name(self)
    }
}
impl Named for HashKind {
    fn name(self) -> &'static str {
        HashKind::name(self)
    }
}
impl Named for Backend {
    fn name(self) -> &'static str {
        Backend::name(self)
    }
}

impl Named for sealproto::Protocol {
    fn name(self) -> &'static str {
        sealproto::Protocol::name(self)
    }
}

/// Serde adapter for the core's choice types (`#[serde(with = "by_name")]`): the core
/// stays free of serde, and its own `FromStr` error (which lists the accepted names)
/// reaches the user.
pub mod by_name {
    use super::Named;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::fmt::Display;

    /// Writes the canonical name.
    ///
    /// # Errors
    /// Those of the serializer.
    pub fn serialize<S: Serializer, T: Named>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.name())
    }

    /// Parses a name.
    ///
    /// # Errors
    /// An unknown name, with the accepted ones.
    pub fn deserialize<'de, D: Deserializer<'de>, T>(d: D) -> Result<T, D::Error>
    where
        T: Named,
        T::Err: Display,
    {
        let s = String::deserialize(d)?;
        s.parse().map_err(D::Error::custom)
    }
}

/// How messages are protected after the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Noise transport: one key per direction, counter nonce (optionally rekeyed).
    #[default]
    Noise,
    /// A per-message symmetric KDF chain (not a Double Ratchet: no DH step, so no
    /// post-compromise security). Was named `ratchet`, which is still read.
    KdfChain,
}

/// The old name of [`Mode::KdfChain`], still accepted.
pub const OLD_KDF_CHAIN_NAME: &str = "ratchet";

impl Mode {
    /// Every mode.
    pub const ALL: [Mode; 2] = [Mode::Noise, Mode::KdfChain];

    /// The name used in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Noise => "noise",
            Mode::KdfChain => "kdf-chain",
        }
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == OLD_KDF_CHAIN_NAME {
            tracing::warn!(
                "mode `ratchet` was renamed `kdf-chain` (a per-message symmetric KDF chain, not a Double Ratchet); the old name still works"
            );
            return Ok(Mode::KdfChain);
        }
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("`{s}`: use \"noise\" or \"kdf-chain\" (formerly \"ratchet\")"))
    }
}

impl Serialize for Mode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The arrival process of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Arrival {
    /// Evenly spaced.
    #[default]
    Constant,
    /// Exponentially distributed gaps (a Poisson process).
    Poisson,
}

/// What fills a message's plaintext after its timing stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Content {
    /// Zero bytes: nothing a scan could match.
    #[default]
    Zeros,
    /// Text of seeded pseudo-words (`traffic.keyword_share` of the messages with a keyword).
    Text,
}

/// Who sends in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Senders {
    /// Only the initiator.
    Initiator,
    /// The two sides take turns on one schedule.
    Alternating,
    /// Each side on its own schedule (half the rate each).
    #[default]
    Both,
}

/// The shape of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ConversationKind {
    /// 1:1 conversations (direct messages) between two users.
    #[default]
    Pairs,
    /// Group conversations, sizes from `conversations.group_sizes`.
    Groups,
    /// Both: a share `conversations.group_share` of the users in groups, the rest in pairs.
    Mix,
}

/// How a group message reaches the group's members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Fanout {
    /// The sender seals one copy per member device over its pairwise sessions and sends
    /// each (how pairwise end-to-end groups work).
    #[default]
    Client,
    /// The sender seals once with its sender key and the relay fans it out (sender-key
    /// groups: every member holds every sender's chain key, handed out over the pairwise
    /// sessions at set-up).
    Relay,
}

impl Fanout {
    /// The name used in files, tags and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Fanout::Client => "client",
            Fanout::Relay => "relay",
        }
    }
}

/// How clients are put into pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Pairing {
    /// 0–1, 2–3, …
    #[default]
    Adjacent,
    /// A seeded shuffle.
    Random,
}

/// Which relay the clients use: the embedded reference relay or one at a URL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RelayTarget {
    /// A reference relay in this process, on 127.0.0.1 (port 0), on its own threads.
    #[default]
    Embedded,
    /// A relay at a `ws://` or `wss://` URL.
    Ws(WsUrl),
}

/// A checked `ws://host[:port]/path` or `wss://host[:port]/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// As the user wrote it (used for the WebSocket request).
    pub url: String,
    /// Host name or address (also the name the relay's certificate must carry for wss).
    pub host: String,
    /// Port (80 for ws, 443 for wss when the URL has none).
    pub port: u16,
    /// `wss://`: TLS below the WebSocket.
    pub tls: bool,
}

impl WsUrl {
    /// `host:port`, for name resolution.
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// What carries the WebSocket: plain TCP or TLS over TCP. A dimension of `matrix`
/// (`--transport ws,wss`) and `run --transport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// `ws://`: WebSocket over TCP.
    #[default]
    Ws,
    /// `wss://`: WebSocket over TLS (rustls) over TCP.
    Wss,
}

impl Transport {
    /// Both transports.
    pub const ALL: [Transport; 2] = [Transport::Ws, Transport::Wss];

    /// The name used in files and on the command line (the URL scheme).
    pub fn name(self) -> &'static str {
        match self {
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        }
    }
}

impl FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Transport::ALL.into_iter().find(|t| t.name() == s).ok_or_else(|| format!("`{s}`: use \"ws\" or \"wss\""))
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RelayTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "embedded" {
            return Ok(RelayTarget::Embedded);
        }
        let hint = "use \"embedded\" or a ws:// or wss:// URL such as ws://127.0.0.1:9000/";
        let tls = if s.starts_with("wss://") {
            true
        } else if s.starts_with("ws://") {
            false
        } else {
            return Err(format!("`{s}`: {hint}"));
        };
        let uri: Uri = s.parse().map_err(|e| format!("`{s}`: not a URL ({e}); {hint}"))?;
        let host = uri.host().filter(|h| !h.is_empty()).ok_or_else(|| format!("`{s}`: no host; {hint}"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(RelayTarget::Ws(WsUrl { url: s.to_owned(), host, port, tls }))
    }
}

impl fmt::Display for RelayTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelayTarget::Embedded => f.write_str("embedded"),
            RelayTarget::Ws(u) => f.write_str(&u.url),
        }
    }
}

impl Serialize for RelayTarget {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RelayTarget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_urls_are_checked_when_read() {
        assert_eq!("embedded".parse::<RelayTarget>(), Ok(RelayTarget::Embedded));
        let RelayTarget::Ws(u) = "ws://relay.example:9000/x".parse::<RelayTarget>().unwrap() else { panic!() };
        assert_eq!((u.host.as_str(), u.port), ("relay.example", 9000));
        let RelayTarget::Ws(u) = "ws://127.0.0.1/".parse::<RelayTarget>().unwrap() else { panic!() };
        assert_eq!(u.host_port(), "127.0.0.1:80");
        assert!(!u.tls);
        let RelayTarget::Ws(u) = "wss://relay.example/x".parse::<RelayTarget>().unwrap() else { panic!() };
        assert_eq!((u.host_port().as_str(), u.tls), ("relay.example:443", true));
        let RelayTarget::Ws(u) = "wss://[::1]:8443/".parse::<RelayTarget>().unwrap() else { panic!() };
        assert_eq!((u.host.as_str(), u.port), ("::1", 8443));
        for bad in ["http://x/", "ws://", "wss://", "ws//x", "tcp://1.2.3.4:5", "https://x/"] {
            assert!(bad.parse::<RelayTarget>().is_err(), "{bad}");
        }
    }

    #[test]
    fn choices_keep_their_file_spelling() -> Result<(), serde_json::Error> {
        assert_eq!(serde_json::to_string(&Senders::Alternating)?, "\"alternating\"");
        assert_eq!(serde_json::to_string(&Mode::KdfChain)?, "\"kdf-chain\"");
        // The old name still loads (a warning says it was renamed).
        assert_eq!(serde_json::from_str::<Mode>("\"ratchet\"")?, Mode::KdfChain);
        assert_eq!(serde_json::from_str::<Mode>("\"kdf-chain\"")?, Mode::KdfChain);
        assert!(serde_json::from_str::<Mode>("\"double-ratchet\"").is_err());
        assert_eq!(serde_json::to_string(&RelayTarget::Embedded)?, "\"embedded\"");
        Ok(())
    }
}
