//! TLS for mock nodes (crate feature `tls`): a [`MockTls`] made from PEM files makes a
//! [`MockBroker`](super::MockBroker) or a [`MockCluster`](super::MockCluster) serve TLS only
//! (a plain client's bytes fail its handshake, as on a real broker in "enforcing" mode).
//!
//! The server side is rustls driven by the mock's blocking connection threads: the reader feeds
//! what it reads into the session and decodes the plaintext; writers (replies, check-backs)
//! encrypt under the connection's lock and write the records.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

/// The TLS identity of a mock node: its certificate chain and key, and optionally the CA that
/// client certificates must come from.
///
/// ```
/// use rocketmq_mio::testing::{MockBroker, MockTls};
/// use rocketmq_mio::{Message, Producer};
///
/// // The test certificates of this crate (scripts/tls-certs.sh).
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tls");
/// let tls = MockTls::from_pem_files(format!("{dir}/server.pem"), format!("{dir}/server.key"))?;
/// let broker = MockBroker::builder().tls(tls)?.start()?;
///
/// let producer = Producer::builder("GID_TLS_DOC")
///     .name_server(broker.namesrv_addr())
///     .tls(true)
///     .tls_ca_file(format!("{dir}/ca.pem"))
///     .start()?;
/// producer.send(Message::new("orders", "over TLS"))?;
/// assert_eq!(broker.message_count("orders"), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct MockTls {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    client_ca: Option<RootCertStore>,
}

impl MockTls {
    /// The server certificate chain (leaf first) and private key from PEM files.
    ///
    /// # Errors
    /// A file cannot be read, or holds no certificate or key.
    pub fn from_pem_files(cert_chain: impl AsRef<Path>, key: impl AsRef<Path>) -> io::Result<Self> {
        let chain = certificates(cert_chain.as_ref())?;
        let key = PrivateKeyDer::from_pem_file(key.as_ref()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("no private key in {}: {e}", key.as_ref().display()),
            )
        })?;
        Ok(MockTls {
            chain,
            key: Arc::new(key),
            client_ca: None,
        })
    }

    /// Requires clients to present a certificate issued by a CA of the PEM file `ca` (mutual
    /// TLS); a client without one fails its handshake.
    ///
    /// # Errors
    /// The file cannot be read or holds no usable CA certificate.
    pub fn require_client_cert(mut self, ca: impl AsRef<Path>) -> io::Result<Self> {
        let mut roots = RootCertStore::empty();
        for cert in certificates(ca.as_ref())? {
            roots
                .add(cert)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        }
        self.client_ca = Some(roots);
        Ok(self)
    }

    /// The rustls server configuration.
    pub(crate) fn server_config(&self) -> io::Result<Arc<ServerConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let invalid = |e: rustls::Error| io::Error::new(io::ErrorKind::InvalidData, e.to_string());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(invalid)?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(roots) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots.clone()), provider)
                        .build()
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(invalid)?;
        Ok(Arc::new(config))
    }
}

fn certificates(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("bad PEM in {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(invalid(format!("no certificate in {}", path.display())));
    }
    Ok(certs)
}
