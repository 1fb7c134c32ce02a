//! The secure client port (ZooKeeper's secureClientPort): the same protocol
//! as the plain port, inside TLS (rustls). The server presents a certificate
//! chain and key read from PEM files; client certificates are checked
//! against a CA when `client_auth` asks for them (ZooKeeper's
//! ssl.clientAuth), and a verified client certificate gives the connection
//! the identity `x509:<subject DN>`, as ZooKeeper's
//! X509AuthenticationProvider does.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use canopy_protocol::Id;
use parking_lot::Mutex;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::core::Core;
use crate::{net, x509};

/// Whether clients must present a certificate (ZooKeeper's ssl.clientAuth).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// A client without a verified certificate is refused (ZooKeeper's default).
    #[default]
    Need,
    /// A certificate is asked for and verified if given, but not required.
    Want,
    /// No client certificate is asked for.
    None,
}

/// `[tls]` in the config file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM: the server's certificate, then any intermediates.
    pub cert_file: PathBuf,
    /// PEM: the server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM: the CA certificates client certificates must chain to.
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// A client whose certificate has this subject DN is also `super`
    /// (ZooKeeper's zookeeper.X509AuthenticationProvider.superUser).
    pub super_user: Option<String>,
}

fn pem_error(path: &Path, what: &str, err: impl std::fmt::Display) -> String {
    format!("cannot read {what} from {}: {err}", path.display())
}

/// Builds the TLS acceptor from the settings, or says what is wrong with them.
pub fn acceptor(settings: &TlsSettings) -> Result<TlsAcceptor, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = CertificateDer::pem_file_iter(&settings.cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(&settings.cert_file, "certificates", e))?;
    if certs.is_empty() {
        return Err(format!(
            "no certificate in {}",
            settings.cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&settings.key_file)
        .map_err(|e| pem_error(&settings.key_file, "a private key", e))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match (settings.client_auth, &settings.ca_file) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => return Err(
            "tls.client_auth \"need\" or \"want\" needs tls.ca_file to verify client certificates"
                .into(),
        ),
        (mode, Some(ca_file)) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca_file)
                .map_err(|e| pem_error(ca_file, "CA certificates", e))?
            {
                let cert = cert.map_err(|e| pem_error(ca_file, "CA certificates", e))?;
                roots
                    .add(cert)
                    .map_err(|e| pem_error(ca_file, "CA certificates", e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if mode == ClientAuth::Want {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| e.to_string())?)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("server certificate and key: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts TLS connections until `shutdown` is cancelled; each one, once its
/// handshake is done, is served exactly like a plain connection.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    core: Arc<Mutex<Core>>,
    shutdown: CancellationToken,
) {
    net::accept_loop(
        listener,
        core,
        shutdown,
        "secure port",
        move |core, socket, addr| handle_tls(core, acceptor.clone(), socket, addr),
    )
    .await;
}

async fn handle_tls(
    core: Arc<Mutex<Core>>,
    acceptor: TlsAcceptor,
    socket: tokio::net::TcpStream,
    addr: SocketAddr,
) {
    let _ = socket.set_nodelay(true);
    // The TLS handshake is part of the connection's handshake time.
    let timeout = Duration::from_millis(core.lock().config.handshake_timeout_ms.max(1));
    let stream = match tokio::time::timeout(timeout, acceptor.accept(socket)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => {
            tracing::info!(%addr, %err, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::info!(%addr, "TLS handshake not finished before the timeout");
            return;
        }
    };
    let mut proven = Vec::new();
    if let Some(id) = client_identity(stream.get_ref().1.peer_certificates()) {
        tracing::debug!(%addr, dn = %id.id, "client certificate verified");
        let super_user = core
            .lock()
            .config
            .tls
            .as_ref()
            .and_then(|tls| tls.super_user.clone());
        if super_user.as_deref() == Some(id.id.as_str()) {
            proven.push(Id::new("super", ""));
        }
        proven.push(id);
    }
    let (reader, writer) = tokio::io::split(stream);
    net::handle_connection(core, reader, writer, addr, proven).await;
}

/// `x509:<subject DN>` of a verified client certificate (the leaf, first in
/// the chain). rustls only reports certificates it has verified.
fn client_identity(chain: Option<&[CertificateDer<'_>]>) -> Option<Id> {
    let leaf = chain?.first()?;
    match x509::subject_dn(leaf) {
        Some(dn) => Some(Id::new("x509", dn)),
        None => {
            tracing::warn!("client certificate subject could not be read; no x509 identity");
            None
        }
    }
}
