//! `summary.json`'s `transport`: what carried the WebSocket (`ws` or `wss`), whom the
//! clients trusted, and whether certificates were checked at all — so that a run made with
//! `insecure` says so wherever its figures go.

use crate::provenance::Provenance;
use crate::scenario::{RelayChoice, RelayTarget, Transport};
use serde::{Deserialize, Serialize};

/// The transport of a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct TransportInfo {
    /// `ws` or `wss`.
    pub scheme: Transport,
    /// TLS below the WebSocket (`wss`).
    pub tls: bool,
    /// Certificates were NOT checked (`relay.insecure` / `--insecure`).
    pub insecure: bool,
    /// Whom the clients trusted: `none` (ws), `webpki-roots` (the built-in Mozilla roots),
    /// `ca` (the private CA in `ca_file`), `generated` (exactly the embedded relay's
    /// certificate, made at start) or `anything` (insecure).
    pub trust: String,
    /// `relay.ca` as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// The TLS library, its version and its crypto provider (`rustls 0.23.x (ring)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library: Option<String>,
}

impl TransportInfo {
    /// The transport `relay` asked for.
    pub fn of(relay: &RelayChoice, provenance: &Provenance) -> Self {
        let scheme = relay.transport();
        let tls = scheme == Transport::Wss;
        let trust = match (&relay.url, tls, relay.insecure, &relay.ca) {
            (_, false, ..) => "none",
            (_, true, true, _) => "anything",
            (_, true, false, Some(_)) => "ca",
            (RelayTarget::Embedded, true, false, None) => "generated",
            (RelayTarget::Ws(_), true, false, None) => "webpki-roots",
        };
        let version = provenance.crate_versions.get("rustls").map_or("", String::as_str);
        TransportInfo {
            scheme,
            tls,
            insecure: tls && relay.insecure,
            trust: trust.to_owned(),
            ca_file: relay.ca.as_ref().map(|p| p.display().to_string()),
            library: tls.then(|| format!("rustls {version} (ring)")),
        }
    }
}
