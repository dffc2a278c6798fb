//! TLS as a property of a connection: the settings ([`TlsConfig`], always compiled, so a
//! configuration can name TLS in any build) and, with the crate feature `tls`, the rustls
//! client session that [`Conn`](super::connection::Conn) drives over its non-blocking socket.
//!
//! The session is sans-IO rustls driven by the event loop itself: `read_tls`/`write_tls` on the
//! mio socket, no extra thread and no blocking call. The handshake is part of connecting (its
//! deadline is the connect timeout); a handshake that fails closes the connection with an error
//! naming the peer, and every request pending on it ends with that error.
//!
//! Without the feature, asking for TLS is a configuration error, and the session type is
//! uninhabited: plain connections carry no TLS code at all.

use std::path::{Path, PathBuf};

/// Where the certificates that vouch for servers come from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TlsTrust {
    /// The operating system's trust store (default).
    #[default]
    SystemRoots,
    /// The CA certificates of a PEM file (one or more `CERTIFICATE` sections).
    CaFile(PathBuf),
    /// No certificate verification at all: any server certificate is accepted (the handshake
    /// signatures are still checked). For self-signed test clusters (RocketMQ's own TLS "test
    /// mode") only: anyone on the path can read and change the traffic.
    InsecureSkipVerifyForTesting,
}

/// TLS settings of a [`RemotingClient`](super::RemotingClient): how servers are verified,
/// which name their certificates must carry, and an optional client certificate.
///
/// One setting serves every connection of the client (name servers and brokers), as in the
/// Java client. Needs the crate feature `tls`; without it
/// [`RemotingClient::new`](super::RemotingClient::new) refuses a configuration with TLS.
///
/// ```
/// use rocketmq_mio::remoting::{TlsConfig, TlsTrust};
///
/// let tls = TlsConfig::new().ca_file("/etc/rocketmq/ca.pem").server_name("broker.internal");
/// assert_eq!(tls.trust(), &TlsTrust::CaFile("/etc/rocketmq/ca.pem".into()));
/// assert_eq!(tls.server_name_override(), Some("broker.internal"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsConfig {
    trust: TlsTrust,
    server_name: Option<String>,
    client_cert: Option<(PathBuf, PathBuf)>,
}

impl TlsConfig {
    /// Servers verified against the system roots, each by the host of the address it is
    /// reached at; no client certificate.
    pub fn new() -> Self {
        TlsConfig::default()
    }

    /// Verifies servers against the CA certificates of the PEM file at `path`, instead of the
    /// system roots.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.trust = TlsTrust::CaFile(path.into());
        self
    }

    /// Accepts any server certificate. For self-signed test clusters only; see
    /// [`TlsTrust::InsecureSkipVerifyForTesting`].
    pub fn insecure_skip_verify_for_testing(mut self) -> Self {
        self.trust = TlsTrust::InsecureSkipVerifyForTesting;
        self
    }

    /// How servers are verified.
    pub fn trust(&self) -> &TlsTrust {
        &self.trust
    }

    /// The name (DNS name or IP address) every server certificate must carry, instead of the
    /// host of the address the server is reached at. Use it when brokers are addressed by IP
    /// but their certificates name a host.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// The name set with [`TlsConfig::server_name`], if any.
    pub fn server_name_override(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// Presents the certificate chain of the PEM file `cert` (leaf first), with the private key
    /// of the PEM file `key`, to servers that ask for one (mutual TLS).
    pub fn client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_cert = Some((cert.into(), key.into()));
        self
    }

    /// The client certificate and key files, if set.
    pub fn client_cert_files(&self) -> Option<(&Path, &Path)> {
        self.client_cert
            .as_ref()
            .map(|(c, k)| (c.as_path(), k.as_path()))
    }
}

#[cfg(feature = "tls")]
pub(crate) use with_tls::{TlsConnector, TlsSession};
#[cfg(not(feature = "tls"))]
pub(crate) use without_tls::{TlsConnector, TlsSession};

#[cfg(not(feature = "tls"))]
mod without_tls {
    use mio::net::TcpStream;

    use super::TlsConfig;
    use crate::error::{Error, Result};
    use crate::remoting::connection::{Failure, FrameSink, ReadBuf};

    /// Never built: without the `tls` feature [`TlsConnector::new`] is always an error.
    #[derive(Debug)]
    pub(crate) enum TlsConnector {}

    /// Never built (no connector to make one).
    #[derive(Debug)]
    pub(crate) enum TlsSession {}

    impl TlsConnector {
        pub(crate) fn new(_config: &TlsConfig) -> Result<Self> {
            Err(Error::config(
                "tls",
                "this build of rocketmq-mio has no TLS support: enable its cargo feature `tls`",
            ))
        }

        pub(crate) fn session(&self, _addr: &str) -> Result<TlsSession, String> {
            match *self {}
        }
    }

    impl TlsSession {
        pub(crate) fn handshake(&mut self, _stream: &mut TcpStream) -> Result<bool, Failure> {
            match *self {}
        }

        pub(crate) fn read(
            &mut self,
            _stream: &mut TcpStream,
            _input: &mut ReadBuf,
            _frames: &mut impl FrameSink,
        ) -> Result<(), Failure> {
            match *self {}
        }

        pub(crate) fn flush(
            &mut self,
            _stream: &mut TcpStream,
            _out: &[u8],
        ) -> Result<usize, Failure> {
            match *self {}
        }

        pub(crate) fn wants_write(&self) -> bool {
            match *self {}
        }

        pub(crate) fn close_notify(&mut self, _stream: &mut TcpStream) {
            match *self {}
        }
    }
}

#[cfg(feature = "tls")]
mod with_tls {
    use std::io::{self, Read, Write};
    use std::sync::Arc;

    use mio::net::TcpStream;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
    use rustls::{
        ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
    };

    use super::{TlsConfig, TlsTrust};
    use crate::error::{Error, Result};
    use crate::remoting::connection::{Failure, FrameSink, ReadBuf};

    /// The client side of TLS, built once per client: the rustls configuration (roots, client
    /// certificate) and the server name override.
    #[derive(Debug)]
    pub(crate) struct TlsConnector {
        config: Arc<ClientConfig>,
        server_name: Option<ServerName<'static>>,
    }

    impl TlsConnector {
        /// Reads the CA and client certificate files and builds the rustls configuration.
        ///
        /// # Errors
        /// [`Error::Config`] naming the setting: a file that cannot be read or holds no
        /// certificate (or key), no system roots, a bad server name, a key that does not fit.
        pub(crate) fn new(tls: &TlsConfig) -> Result<Self> {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let builder = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| Error::config("tls", e.to_string()))?;
            let builder = match tls.trust() {
                TlsTrust::SystemRoots => builder.with_root_certificates(system_roots()?),
                TlsTrust::CaFile(path) => builder.with_root_certificates(ca_file(path)?),
                TlsTrust::InsecureSkipVerifyForTesting => {
                    log::warn!(
                        "TLS server certificates are NOT verified \
                         (tls_insecure_skip_verify_for_testing): for test clusters only"
                    );
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
                }
            };
            let config = match tls.client_cert_files() {
                None => builder.with_no_client_auth(),
                Some((cert, key)) => {
                    let chain =
                        certificates(cert).map_err(|e| Error::config("tls_client_cert", e))?;
                    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                        Error::config(
                            "tls_client_key",
                            format!("no private key read from {}: {e}", key.display()),
                        )
                    })?;
                    builder
                        .with_client_auth_cert(chain, key)
                        .map_err(|e| Error::config("tls_client_key", e.to_string()))?
                }
            };
            let server_name = match tls.server_name_override() {
                None => None,
                Some(name) => Some(ServerName::try_from(name.to_owned()).map_err(|_| {
                    Error::config(
                        "tls_server_name",
                        format!("{name:?} is not a DNS name or an IP address"),
                    )
                })?),
            };
            Ok(TlsConnector {
                config: Arc::new(config),
                server_name,
            })
        }

        /// A client session for the peer at `addr` (`host:port`): its certificate must name
        /// the server name override, else the host of `addr`.
        pub(crate) fn session(&self, addr: &str) -> Result<TlsSession, String> {
            let name = match &self.server_name {
                Some(name) => name.clone(),
                None => name_of(addr).ok_or_else(|| {
                    format!("no TLS server name in {addr:?}: set tls_server_name")
                })?,
            };
            let conn = ClientConnection::new(self.config.clone(), name)
                .map_err(|e| format!("cannot start a TLS session: {e}"))?;
            Ok(TlsSession { conn })
        }
    }

    /// The server name in `host:port` (`[v6]:port` too), if the host is a valid one.
    fn name_of(addr: &str) -> Option<ServerName<'static>> {
        let host = match addr.rsplit_once(':') {
            Some((host, port)) if port.parse::<u16>().is_ok() => host,
            _ => addr,
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(host.to_owned()).ok()
    }

    fn system_roots() -> Result<RootCertStore> {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            log::warn!("reading the system root certificates: {e}");
        }
        let mut roots = RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        if ignored > 0 {
            log::debug!("{ignored} system root certificates could not be used");
        }
        if added == 0 {
            return Err(Error::config(
                "tls_ca_file",
                "no CA file is set and no system root certificate was found: set a CA file",
            ));
        }
        Ok(roots)
    }

    fn ca_file(path: &std::path::Path) -> Result<RootCertStore> {
        let certs = certificates(path).map_err(|e| Error::config("tls_ca_file", e))?;
        let mut roots = RootCertStore::empty();
        for cert in certs {
            roots.add(cert).map_err(|e| {
                Error::config(
                    "tls_ca_file",
                    format!("a certificate in {} is not a CA: {e}", path.display()),
                )
            })?;
        }
        Ok(roots)
    }

    /// Every certificate of a PEM file; an error when there is none.
    fn certificates(
        path: &std::path::Path,
    ) -> std::result::Result<Vec<CertificateDer<'static>>, String> {
        let shown = path.display();
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("cannot read {shown}: {e}"))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| format!("bad PEM in {shown}: {e}"))?;
        if certs.is_empty() {
            return Err(format!("no certificate in {shown}"));
        }
        Ok(certs)
    }

    /// Accepts any certificate, but still checks that the server holds its key.
    #[derive(Debug)]
    struct NoVerification(Arc<CryptoProvider>);

    impl ServerCertVerifier for NoVerification {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> std::result::Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    /// One connection's TLS state, driven over its non-blocking socket.
    #[derive(Debug)]
    pub(crate) struct TlsSession {
        conn: ClientConnection,
    }

    fn would_block(e: &io::Error) -> bool {
        e.kind() == io::ErrorKind::WouldBlock
    }

    fn interrupted(e: &io::Error) -> bool {
        e.kind() == io::ErrorKind::Interrupted
    }

    impl TlsSession {
        /// Drives the handshake as far as the socket allows: `Ok(true)` once it is complete
        /// (the last handshake bytes may still be queued: [`TlsSession::wants_write`]).
        pub(crate) fn handshake(&mut self, stream: &mut TcpStream) -> Result<bool, Failure> {
            loop {
                self.write_tls(stream)?;
                if !self.conn.is_handshaking() {
                    return Ok(true);
                }
                match self.conn.read_tls(stream) {
                    Ok(0) => {
                        return Err(Failure::Tls(
                            "TLS handshake failed: the peer closed the connection \
                             (is it serving TLS?)"
                                .into(),
                        ))
                    }
                    Ok(_) => self.process(stream, "TLS handshake failed")?,
                    Err(e) if would_block(&e) => return Ok(false),
                    Err(e) if interrupted(&e) => {}
                    Err(e) => return Err(Failure::Io(e)),
                }
            }
        }

        /// Reads until the socket would block, decoding the plaintext into frames.
        pub(crate) fn read(
            &mut self,
            stream: &mut TcpStream,
            input: &mut ReadBuf,
            frames: &mut impl FrameSink,
        ) -> Result<(), Failure> {
            loop {
                // Plaintext rustls holds already (from the handshake, or the last record).
                loop {
                    match self.conn.reader().read(input.spare()) {
                        Ok(0) => return Err(Failure::Eof), // close_notify
                        Ok(n) => input.filled(n, frames).map_err(Failure::Codec)?,
                        Err(e) if would_block(&e) => break,
                        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                            return Err(Failure::Eof)
                        }
                        Err(e) if interrupted(&e) => {}
                        Err(e) => return Err(Failure::Io(e)),
                    }
                }
                match self.conn.read_tls(stream) {
                    // TCP EOF: the reader hands out what is left, then reports the end.
                    Ok(0) => self.process(stream, "TLS error")?,
                    Ok(_) => self.process(stream, "TLS error")?,
                    Err(e) if would_block(&e) => return Ok(()),
                    Err(e) if interrupted(&e) => {}
                    Err(e) => return Err(Failure::Io(e)),
                }
            }
        }

        /// Encrypts plaintext from `out` and writes records until everything is written or the
        /// socket would block. Returns how many bytes of `out` rustls took.
        pub(crate) fn flush(
            &mut self,
            stream: &mut TcpStream,
            out: &[u8],
        ) -> Result<usize, Failure> {
            let mut taken = 0;
            loop {
                if self.conn.wants_write() && !self.write_tls(stream)? {
                    return Ok(taken); // would block
                }
                if taken == out.len() {
                    return Ok(taken);
                }
                match self.conn.writer().write(&out[taken..]) {
                    Ok(0) => return Ok(taken), // rustls' buffer is full; written next turn
                    Ok(n) => taken += n,
                    Err(e) => return Err(Failure::Io(e)),
                }
            }
        }

        /// Whether rustls has records to send.
        pub(crate) fn wants_write(&self) -> bool {
            self.conn.wants_write()
        }

        /// Queues a close_notify alert and makes one attempt to send it (best effort).
        pub(crate) fn close_notify(&mut self, stream: &mut TcpStream) {
            self.conn.send_close_notify();
            let _ = self.write_tls(stream);
        }

        /// Writes queued records: `Ok(true)` when all are written, `Ok(false)` when the
        /// socket would block.
        fn write_tls(&mut self, stream: &mut TcpStream) -> Result<bool, Failure> {
            while self.conn.wants_write() {
                match self.conn.write_tls(stream) {
                    Ok(0) => return Err(Failure::Io(io::ErrorKind::WriteZero.into())),
                    Ok(_) => {}
                    Err(e) if would_block(&e) => return Ok(false),
                    Err(e) if interrupted(&e) => {}
                    Err(e) => return Err(Failure::Io(e)),
                }
            }
            Ok(true)
        }

        /// Processes the records read; on a TLS error, tries to send the alert rustls queued,
        /// then fails with `what: error`.
        fn process(&mut self, stream: &mut TcpStream, what: &str) -> Result<(), Failure> {
            match self.conn.process_new_packets() {
                Ok(_) => Ok(()),
                Err(e) => {
                    let _ = self.write_tls(stream);
                    Err(Failure::Tls(format!("{what}: {e}")))
                }
            }
        }
    }
}
