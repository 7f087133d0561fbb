//! TLS on a listener: the rustls configuration built from a `[*.tls]` table, swapped whole on
//! reload, and the handshake every accepted connection goes through before its edge sees it.
//!
//! The configuration sits in an [`ArcSwap`]: each handshake loads the current one, so a reload
//! (SIGHUP) changes the certificate, key and client CAs for new handshakes while live
//! connections keep the session they negotiated. Building a configuration reads and checks
//! every file first; a failure leaves the current one in place and names the key.

use std::{io, path::Path, sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use bytes::Bytes;
use rustls::{
    RootCertStore,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ServerConnection, WebPkiClientVerifier},
};
use stompbox_broker::TlsInfo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

use crate::{ClientCert, Error, ServerConfig, TlsConfig};

/// The ALPN protocol of the WebSocket (HTTP) listener: the upgrade is HTTP/1.1 only.
pub(crate) const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Which listener a [`TlsEdge`] serves, to find its table in a reloaded configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Listener {
    /// `[websocket.tls]`, ALPN `http/1.1`.
    WebSocket,
    /// `[tcp.tls]`, no ALPN (STOMP has no registered protocol id).
    Tcp,
}

impl Listener {
    fn table(self) -> &'static str {
        match self {
            Listener::WebSocket => "websocket.tls",
            Listener::Tcp => "tcp.tls",
        }
    }

    fn settings(self, config: &ServerConfig) -> &TlsConfig {
        match self {
            Listener::WebSocket => &config.websocket.tls,
            Listener::Tcp => &config.tcp.tls,
        }
    }
}

/// One listener's TLS: a cheap `Clone` handle on the configuration that new handshakes use.
#[derive(Clone, Debug)]
pub(crate) struct TlsEdge {
    listener: Listener,
    current: Arc<ArcSwap<rustls::ServerConfig>>,
}

impl TlsEdge {
    /// The listener's TLS when `[*.tls] enabled`, its files read and checked; `None` when off.
    pub(crate) fn new(listener: Listener, config: &ServerConfig) -> Result<Option<Self>, Error> {
        let settings = listener.settings(config);
        if !settings.enabled {
            return Ok(None);
        }
        let built = build(listener, settings)?;
        Ok(Some(TlsEdge {
            listener,
            current: Arc::new(ArcSwap::from_pointee(built)),
        }))
    }

    /// Reads the files `config` names for this listener into a new configuration, without
    /// installing it (see [`TlsEdge::install`]).
    pub(crate) fn prepare(&self, config: &ServerConfig) -> Result<rustls::ServerConfig, Error> {
        let settings = self.listener.settings(config);
        if !settings.enabled {
            return Err(invalid(
                self.listener.table(),
                "enabled",
                "turning TLS off on a listener that serves it needs a restart",
            ));
        }
        settings.validate(self.listener.table())?;
        build(self.listener, settings)
    }

    /// New handshakes use `config` from now on.
    pub(crate) fn install(&self, config: rustls::ServerConfig) {
        self.current.store(Arc::new(config));
        tracing::info!(listener = self.listener.table(), "TLS certificate reloaded");
    }

    /// The TLS handshake on an accepted stream, bounded by `timeout` (a client that never
    /// finishes it is dropped); [`info`] then says what the authenticator is told.
    pub(crate) async fn handshake<S>(
        &self,
        stream: S,
        timeout: Duration,
    ) -> io::Result<TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let acceptor = TlsAcceptor::from(self.current.load_full());
        tokio::time::timeout(timeout, acceptor.accept(stream))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
    }
}

/// What a finished handshake tells the authenticator: the verified client chain and its CN.
pub(crate) fn info(connection: &ServerConnection) -> TlsInfo {
    let chain = connection.peer_certificates().unwrap_or_default();
    TlsInfo {
        common_name: chain.first().and_then(|leaf| common_name(leaf)),
        peer_certificates: chain.iter().map(|c| Bytes::copy_from_slice(c)).collect(),
    }
}

/// The first subject CN of a DER certificate, if it has one in UTF-8 (or a compatible string
/// type).
fn common_name(der: &[u8]) -> Option<String> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = certificate.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

fn invalid(table: &str, key: &str, reason: impl ToString) -> Error {
    Error::InvalidConfig {
        key: format!("{table}.{key}"),
        reason: reason.to_string(),
    }
}

/// Reads the files of an enabled, validated `[*.tls]` table into a rustls configuration with
/// the `ring` provider (explicitly: no process-wide default is consulted or installed).
fn build(listener: Listener, settings: &TlsConfig) -> Result<rustls::ServerConfig, Error> {
    let table = listener.table();
    let path = |key: &str, file: &Option<std::path::PathBuf>| {
        file.clone()
            .ok_or_else(|| invalid(table, key, "needed when TLS is enabled"))
    };
    let cert_file = path("cert_file", &settings.cert_file)?;
    let key_file = path("key_file", &settings.key_file)?;
    let chain = certificates(&cert_file).map_err(|e| invalid(table, "cert_file", e))?;
    let key = PrivateKeyDer::from_pem_file(&key_file)
        .map_err(|e| invalid(table, "key_file", format!("{}: {e}", key_file.display())))?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| invalid(table, "enabled", e))?;
    let builder = match (&settings.client_ca_file, settings.client_cert) {
        (_, ClientCert::None) | (None, _) => builder.with_no_client_auth(),
        (Some(ca_file), mode) => {
            let mut roots = RootCertStore::empty();
            for ca in certificates(ca_file).map_err(|e| invalid(table, "client_ca_file", e))? {
                roots.add(ca).map_err(|e| {
                    invalid(
                        table,
                        "client_ca_file",
                        format!("{}: {e}", ca_file.display()),
                    )
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match mode {
                ClientCert::Optional => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            let verifier = verifier.build().map_err(|e| {
                invalid(
                    table,
                    "client_ca_file",
                    format!("{}: {e}", ca_file.display()),
                )
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        invalid(
            table,
            "key_file",
            format!("{} does not fit cert_file: {e}", key_file.display()),
        )
    })?;
    if listener == Listener::WebSocket {
        config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    }
    Ok(config)
}

/// Every `CERTIFICATE` block of a PEM file; an error names the file.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no CERTIFICATE in it", path.display()));
    }
    Ok(chain)
}
