//! The clients' TLS for `wss://`: one rustls configuration per run, built before anything
//! connects and shared by every client (an `Arc`), and the TLS step of a connection with
//! errors that say what was refused and what to do about it.
//!
//! Whom a client trusts ([`Trust`]): the built-in Mozilla roots (`webpki-roots`: the same
//! on every machine, no system store needed); *or instead* a private CA (`relay.ca` /
//! `--ca`: a run against a test relay should trust exactly the CA its operator named, not
//! also the whole public web; a certificate of that file presented as the relay's own is
//! accepted as exactly that certificate, so a self-signed one made with `openssl req -x509`,
//! which marks itself a CA, works too); or exactly one certificate (the embedded relay's, generated
//! at start); or anything (`relay.insecure` / `--insecure`: the handshake still runs and
//! costs what it costs, only the certificate goes unchecked; labelled in the results).
//! Session resumption is off: each connect is a full handshake (see [`ClientTls::new`]).

use anyhow::{Result, anyhow};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpStream;

/// Whose certificates a client accepts.
#[derive(Debug, Clone)]
pub enum Trust {
    /// The Mozilla roots built into the binary.
    Roots,
    /// Only certificates signed by the CA(s) in this PEM file (`relay.ca`).
    Ca(PathBuf),
    /// Only this certificate (the embedded relay's, generated at start).
    Exactly(CertificateDer<'static>),
    /// Any certificate (`relay.insecure`).
    Insecure,
}

/// The TLS side of a [`super::client::Target`]: the shared configuration and the name the
/// relay's certificate must carry.
#[derive(Clone)]
pub struct ClientTls {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
    /// The certificate goes unchecked (`relay.insecure`).
    pub insecure: bool,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls").field("name", &self.name).field("insecure", &self.insecure).finish()
    }
}

impl ClientTls {
    /// The configuration for connecting to `host` (a name or an address) with `trust`.
    ///
    /// # Errors
    /// `relay.ca`: the file cannot be read or holds no usable certificate (the message
    /// names the file); `host` is not a valid TLS server name.
    pub fn new(trust: &Trust, host: &str) -> Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| anyhow!("TLS versions: {e}"))?;
        let mut config = match trust {
            Trust::Insecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider.signature_verification_algorithms)))
                .with_no_client_auth(),
            Trust::Ca(path) => {
                // A CA, or the relay's own self-signed certificate given as `--ca` (what
                // `openssl req -x509` makes: marked as a CA, which webpki refuses to accept
                // as the server's own certificate): each certificate of the file is trusted
                // as a CA *and* exactly, as the relay's own.
                let (store, pinned) = ca_file(path)?;
                let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
                    .build()
                    .map_err(|e| anyhow!("relay.ca {}: {e}", path.display()))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(CaOrPinned { webpki, pinned }))
                    .with_no_client_auth()
            }
            Trust::Roots => {
                let mut store = RootCertStore::empty();
                store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                builder.with_root_certificates(store).with_no_client_auth()
            }
            Trust::Exactly(cert) => {
                let mut store = RootCertStore::empty();
                store.add(cert.clone()).map_err(|e| anyhow!("the embedded relay's certificate: {e}"))?;
                builder.with_root_certificates(store).with_no_client_auth()
            }
        };
        // Every simulated client is a device of its own: with the configuration shared, a
        // shared session cache would let one device resume another's session. Every
        // connect is a full handshake, what a device connecting afresh costs.
        config.resumption = rustls::client::Resumption::disabled();
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| anyhow!("relay.url: `{host}` is not a name a TLS certificate can carry: {e}"))?;
        Ok(ClientTls {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            name,
            insecure: matches!(trust, Trust::Insecure),
        })
    }

    /// The TLS handshake over a connected socket.
    ///
    /// # Errors
    /// What failed, and what to do about it (see [`explain`]).
    pub async fn handshake(&self, tcp: TcpStream) -> Result<tokio_rustls::client::TlsStream<TcpStream>> {
        self.connector.connect(self.name.clone(), tcp).await.map_err(|e| explain(&e, &self.name))
    }
}

/// The certificates of a `relay.ca` file: as a root store, and as they are (to pin).
fn ca_file(path: &std::path::Path) -> Result<(RootCertStore, Vec<CertificateDer<'static>>)> {
    let shown = path.display();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow!("relay.ca {shown}: cannot read PEM certificates: {e}"))?;
    let mut store = RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(certs.iter().cloned());
    if added == 0 {
        return Err(anyhow!("relay.ca {shown}: no usable CERTIFICATE block in it"));
    }
    Ok((store, certs))
}

/// `relay.ca`: a certificate chain to one of the file's CAs (webpki's checks: name,
/// validity, signatures), or exactly one of the file's certificates as the relay's own
/// (a self-signed certificate, pinned: the bytes must match). The handshake's signature is
/// checked against the presented certificate's key either way.
#[derive(Debug)]
struct CaOrPinned {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for CaOrPinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Ok(v) => Ok(v),
            // The relay presented exactly a certificate the file holds: pinned, trusted as
            // it is (its name and dates are what the operator vouched for by naming it).
            Err(_) if self.pinned.iter().any(|p| p.as_ref() == end_entity.as_ref()) => {
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// A failed TLS handshake as a message that names the problem and the remedy.
fn explain(e: &std::io::Error, name: &ServerName<'_>) -> anyhow::Error {
    let host = name.to_str();
    let tls = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::InvalidCertificate(why)) => {
            use rustls::CertificateError as C;
            let what = match why {
                C::UnknownIssuer | C::BadSignature | C::UnknownRevocationStatus => {
                    "it is not signed by a CA this run trusts (self-signed, or a private CA)"
                }
                C::NotValidForName | C::NotValidForNameContext { .. } => "it is not issued for this host name",
                C::Expired | C::ExpiredContext { .. } => "it has expired",
                C::NotValidYet | C::NotValidYetContext { .. } => "it is not valid yet",
                _ => "it failed verification",
            };
            anyhow!(
                "TLS handshake with {host}: the relay's certificate was refused ({why:?}): {what}; pass --ca FILE \
                 (relay.ca) with the CA certificate that signed it, or --insecure (relay.insecure) to accept any \
                 certificate on a test relay"
            )
        }
        Some(other) => anyhow!(
            "TLS handshake with {host} failed: {other}; does the relay serve wss:// (sealbench relay --tls-cert \
             --tls-key)?"
        ),
        None => anyhow!("TLS handshake with {host} failed: {e}; does the relay serve wss:// on that port?"),
    }
}

/// `relay.insecure`: accepts any certificate, but still checks that the server holds the
/// certificate's key (the handshake signature), so the handshake does all its usual work.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
