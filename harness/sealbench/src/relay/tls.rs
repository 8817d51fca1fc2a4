//! The relay's TLS (`wss://`): a rustls server configuration from PEM files
//! (`sealbench relay --tls-cert --tls-key`) or from a certificate generated at start (the
//! embedded relay's `relay.tls = true`), and the accept step in front of the WebSocket
//! upgrade. A failed TLS handshake is counted and the connection dropped; it never ends
//! the relay.

use super::Shared;
use anyhow::{Context, Result, anyhow};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The names a generated certificate is issued for: what the embedded relay is reached
/// by (`wss://127.0.0.1:PORT/`), and `localhost` for hand-made URLs.
pub const GENERATED_NAMES: [&str; 2] = ["127.0.0.1", "localhost"];

/// A server configuration from a PEM certificate chain (leaf first) and a PEM private key
/// (PKCS#8, PKCS#1 or SEC1).
///
/// # Errors
/// Naming the file and the flag: unreadable, no certificate or key in it, or a key that
/// does not match the certificate.
pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow!("--tls-cert {}: cannot read PEM certificates: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(anyhow!("--tls-cert {}: no CERTIFICATE block in it", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow!("--tls-key {}: cannot read a PEM private key: {e}", key.display()))?;
    config(chain, key).context("--tls-cert / --tls-key")
}

/// A server configuration with a self-signed certificate generated now for
/// [`GENERATED_NAMES`], and that certificate (for clients to trust exactly).
///
/// # Errors
/// When key generation fails (it does not, short of a broken system RNG).
pub fn self_signed() -> Result<(Arc<ServerConfig>, CertificateDer<'static>)> {
    let names = GENERATED_NAMES.map(String::from).to_vec();
    let certified = rcgen::generate_simple_self_signed(names).context("generating the relay's certificate")?;
    let cert = certified.cert.der().clone();
    let key =
        PrivateKeyDer::try_from(certified.signing_key.serialize_der()).map_err(|e| anyhow!("generated key: {e}"))?;
    Ok((config(vec![cert.clone()], key)?, cert))
}

/// rustls on `ring` (the one provider built), its safe default versions (TLS 1.2, 1.3), no
/// client certificates.
fn config(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the private key does not suit the certificate")?;
    Ok(Arc::new(config))
}

/// Runs the TLS handshake of an accepted connection within the relay's handshake timeout
/// (counted from `accepted`). `None` when it failed or timed out: counted in
/// `sealbench_relay_tls_handshakes_failed_total{reason}`.
pub(super) async fn accept(
    shared: &Shared,
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    accepted: Instant,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout_at(accepted + shared.config.handshake_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            shared.metrics.tls_failed("error");
            None
        }
        Err(_) => {
            shared.metrics.tls_failed("timeout");
            None
        }
    }
}
