//! What carries the WebSocket to the relay, `ws` or `wss`, and the `[relay]` fields that
//! decide whose certificate a `wss` client trusts (`tls`, `ca`, `insecure`), checked once
//! when the scenario is read.

use super::{RelayChoice, RelayTarget, Transport};
use anyhow::{Result, bail};

impl RelayChoice {
    /// What carries the WebSocket: the URL's scheme, or `relay.tls` for the embedded relay.
    pub fn transport(&self) -> Transport {
        let tls = match &self.url {
            RelayTarget::Ws(u) => u.tls,
            RelayTarget::Embedded => self.tls,
        };
        if tls { Transport::Wss } else { Transport::Ws }
    }

    /// Asks for `t`: the embedded relay serves it (`relay.tls`); for a URL, the scheme
    /// decides, and [`RelayChoice::check_transport`] refuses a transport that disagrees.
    pub fn set_transport(&mut self, t: Transport) {
        self.tls = t == Transport::Wss;
    }

    /// Asks for `t` ([`RelayChoice::set_transport`]) and checks the relay serves it.
    ///
    /// # Errors
    /// A URL whose scheme is not `t` (an external relay serves the scheme it serves).
    pub fn require_transport(&mut self, t: Transport) -> Result<()> {
        self.set_transport(t);
        if self.transport() != t {
            bail!("--transport {t}: the relay URL {} decides its scheme; give a {t}:// URL instead", self.url);
        }
        Ok(())
    }

    /// The TLS fields agree with the relay they are for.
    ///
    /// # Errors
    /// Naming the field: `relay.tls` on a URL whose scheme says otherwise; `relay.ca` or
    /// `relay.insecure` without a `wss://` URL; both together.
    pub fn check_transport(&self) -> Result<()> {
        match &self.url {
            RelayTarget::Embedded => {
                if self.ca.is_some() || self.insecure {
                    bail!(
                        "relay.ca / relay.insecure: only for a wss:// URL (the embedded relay's own certificate \
                         is trusted exactly with relay.tls = true)"
                    );
                }
            }
            RelayTarget::Ws(u) => {
                if self.tls && !u.tls {
                    bail!("relay.tls (--transport wss): {} is a ws:// URL; use its wss:// URL instead", u.url);
                }
                if !u.tls && (self.ca.is_some() || self.insecure) {
                    bail!("relay.ca / relay.insecure (--ca / --insecure): {} is a ws:// URL, it has no TLS", u.url);
                }
            }
        }
        if self.ca.is_some() && self.insecure {
            bail!("relay.ca and relay.insecure together: choose one (--ca trusts that CA, --insecure trusts anything)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(url: &str) -> RelayChoice {
        RelayChoice { url: url.parse().unwrap(), ..RelayChoice::default() }
    }

    #[test]
    fn transport_follows_the_url_or_the_embedded_flag() {
        assert_eq!(relay("wss://127.0.0.1:9443/").transport(), Transport::Wss);
        assert_eq!(relay("ws://127.0.0.1:9000/").transport(), Transport::Ws);
        let mut e = relay("embedded");
        assert_eq!(e.transport(), Transport::Ws);
        e.set_transport(Transport::Wss);
        assert_eq!(e.transport(), Transport::Wss);
        let mut u = relay("wss://127.0.0.1:9443/");
        assert!(u.require_transport(Transport::Ws).unwrap_err().to_string().contains("ws://"));
        assert!(u.require_transport(Transport::Wss).is_ok());
    }

    #[test]
    fn tls_fields_that_cannot_apply_are_refused_with_the_field() {
        let mut r = relay("ws://127.0.0.1:9000/");
        r.tls = true;
        assert!(r.check_transport().unwrap_err().to_string().contains("wss://"));
        let mut r = relay("ws://127.0.0.1:9000/");
        r.insecure = true;
        assert!(r.check_transport().unwrap_err().to_string().contains("relay.insecure"));
        let mut r = relay("embedded");
        r.ca = Some("ca.pem".into());
        assert!(r.check_transport().unwrap_err().to_string().contains("relay.ca"));
        let mut r = relay("wss://127.0.0.1:9443/");
        (r.ca, r.insecure) = (Some("ca.pem".into()), true);
        assert!(r.check_transport().unwrap_err().to_string().contains("choose one"));
        r.insecure = false;
        assert!(r.check_transport().is_ok());
    }
}
