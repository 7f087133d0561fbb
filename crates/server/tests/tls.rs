//! TLS on both listeners over real sockets: STOMP over TLS on TCP, `wss://`, a plain client on
//! a TLS port, client certificates (mTLS) and the CN as principal, and certificate reload.
//! Certificates come from a test CA made here with rcgen; every wait is bounded.

mod common;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use common::{TcpClient, TestServer, connect_frame, frames, within};
use futures::{SinkExt, StreamExt};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName},
};
use stompbox_codec::Command;
use stompbox_server::{ClientCert, Error, Server, ServerConfig, TlsConfig};
use stompbox_test_support::{Client, Transport};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};
use tokio_rustls::{TlsConnector, client::TlsStream};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};

/// How long a test waits for anything over a socket.
const WAIT: Duration = Duration::from_secs(5);

/// A test CA, the server's certificate and key (for `localhost` and 127.0.0.1) and a client
/// certificate for `alice`, written as PEM files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    ca: Issuer<'static, KeyPair>,
    ca_der: CertificateDer<'static>,
    client: (CertificateDer<'static>, KeyPair),
}

impl Pki {
    fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Stompbox test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let ca_cert = params.self_signed(&key).unwrap();
        let ca = Issuer::new(params, key);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        let client = leaf(&ca, "alice", ExtendedKeyUsagePurpose::ClientAuth);
        let pki = Pki {
            dir,
            ca,
            ca_der: ca_cert.der().clone(),
            client: (client.0.der().clone(), client.1),
        };
        pki.write_server_cert();
        pki
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// A new server certificate and key at `server.pem` and `server.key`; returns its DER.
    fn write_server_cert(&self) -> CertificateDer<'static> {
        let (cert, key) = leaf(&self.ca, "localhost", ExtendedKeyUsagePurpose::ServerAuth);
        std::fs::write(self.path("server.pem"), cert.pem()).unwrap();
        std::fs::write(self.path("server.key"), key.serialize_pem()).unwrap();
        cert.der().clone()
    }

    /// `[*.tls]` serving the server certificate, with `client_cert` (and then the CA).
    fn tls(&self, client_cert: ClientCert) -> TlsConfig {
        TlsConfig {
            enabled: true,
            cert_file: Some(self.path("server.pem")),
            key_file: Some(self.path("server.key")),
            client_ca_file: (client_cert != ClientCert::None).then(|| self.path("ca.pem")),
            client_cert,
        }
    }

    /// A client trusting the test CA, presenting alice's certificate when `with_cert`.
    fn client(&self, with_cert: bool, alpn: Option<&[u8]>) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let builder =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots);
        let mut config = match with_cert {
            true => {
                let key = PrivateKeyDer::Pkcs8(self.client.1.serialize_der().into());
                (builder.with_client_auth_cert(vec![self.client.0.clone()], key)).unwrap()
            }
            false => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.into_iter().map(<[u8]>::to_vec).collect();
        TlsConnector::from(Arc::new(config))
    }
}

/// A certificate for `name` (a DNS name, plus 127.0.0.1) signed by `ca`, and its key.
fn leaf(
    ca: &Issuer<'static, KeyPair>,
    name: &str,
    usage: ExtendedKeyUsagePurpose,
) -> (rcgen::Certificate, KeyPair) {
    let mut params = CertificateParams::new(vec![name.to_owned(), "127.0.0.1".into()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    (cert, key)
}

/// A TLS client connection to `addr`, checked against the test CA as `localhost`.
async fn tls_connect(
    connector: &TlsConnector,
    addr: SocketAddr,
) -> std::io::Result<TlsStream<TcpStream>> {
    within("tls connect", async {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").unwrap();
        connector.connect(name, tcp).await
    })
    .await
}

fn peer_certificate(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0].clone()
}

/// A TLS stream as a [`Transport`] for the test client: one write, one read.
struct TlsTransport<S>(S);

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Transport for TlsTransport<S> {
    const WAIT: Duration = WAIT;

    async fn send(&mut self, bytes: Bytes) {
        self.0.write_all(&bytes).await.expect("tls write");
        self.0.flush().await.expect("tls flush");
    }

    async fn recv(&mut self) -> Option<Bytes> {
        let mut chunk = vec![0u8; 8192];
        match self.0.read(&mut chunk).await {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(Bytes::from(chunk[..n].to_vec())),
        }
    }
}

/// A WebSocket over a TLS stream as a [`Transport`].
struct WssTransport(WebSocketStream<TlsStream<TcpStream>>);

impl Transport for WssTransport {
    const WAIT: Duration = WAIT;

    async fn send(&mut self, bytes: Bytes) {
        let text = String::from_utf8(bytes.to_vec()).expect("text frames");
        self.0.send(Message::text(text)).await.expect("wss send");
    }

    async fn recv(&mut self) -> Option<Bytes> {
        loop {
            match self.0.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
                Some(Ok(Message::Text(text))) => return Some(Bytes::from(text)),
                Some(Ok(Message::Binary(bytes))) => return Some(bytes),
                Some(Ok(_)) => continue,
            }
        }
    }
}

/// A STOMP-over-TLS client on the TCP listener, CONNECTED.
async fn stomp_over_tls(
    connector: &TlsConnector,
    addr: SocketAddr,
) -> Client<TlsTransport<TlsStream<TcpStream>>> {
    let stream = tls_connect(connector, addr).await.expect("tls handshake");
    let mut client = Client::new(TlsTransport(stream));
    client.handshake(frames::connect()).await;
    client
}

/// A STOMP-over-`wss://` client, CONNECTED.
async fn stomp_over_wss(connector: &TlsConnector, server: &TestServer) -> Client<WssTransport> {
    let stream = tls_connect(connector, server.ws_addr)
        .await
        .expect("tls handshake");
    assert_eq!(
        stream.get_ref().1.alpn_protocol(),
        Some(&b"http/1.1"[..]),
        "ALPN"
    );
    let mut request = server.ws_url.as_str().into_client_request().unwrap();
    let protocol = HeaderValue::from_static("v12.stomp");
    request
        .headers_mut()
        .insert("sec-websocket-protocol", protocol);
    let (ws, _) = within(
        "wss upgrade",
        tokio_tungstenite::client_async(request, stream),
    )
    .await
    .expect("wss upgrade");
    let mut client = Client::new(WssTransport(ws));
    client.handshake(frames::connect()).await;
    client
}

/// A message published to `/topic/t` reaches a subscriber over the same connection.
async fn round_trip<T: Transport>(client: &mut Client<T>) {
    client.subscribe("s", "/topic/t").await;
    client
        .send_frame(frames::send("/topic/t", "over tls"))
        .await;
    let message = client.expect_message().await;
    assert_eq!(&message.body[..], b"over tls");
}

#[tokio::test]
async fn stomp_over_tls_on_the_tcp_listener() {
    let pki = Pki::new();
    let tls = pki.tls(ClientCert::None);
    let server = TestServer::start(|c| c.tcp.tls = tls).await;
    assert!(server.ws_url.starts_with("ws://"), "{}", server.ws_url);

    let mut client = stomp_over_tls(&pki.client(false, None), server.tcp_addr).await;
    round_trip(&mut client).await;
}

#[tokio::test]
async fn wss_on_the_websocket_listener() {
    let pki = Pki::new();
    let tls = pki.tls(ClientCert::None);
    let server = TestServer::start(|c| c.websocket.tls = tls).await;
    assert!(server.ws_url.starts_with("wss://"), "{}", server.ws_url);

    let connector = pki.client(false, Some(b"http/1.1"));
    let mut client = stomp_over_wss(&connector, &server).await;
    round_trip(&mut client).await;
    // The plain TCP listener is untouched.
    TcpClient::connect(server.tcp_addr).await;
}

/// A client speaking plain STOMP to a TLS port gets no session: the handshake fails and the
/// server closes the socket, promptly.
#[tokio::test]
async fn a_plain_client_on_a_tls_port_gets_no_session() {
    let pki = Pki::new();
    let tls = pki.tls(ClientCert::None);
    let server = TestServer::start(|c| {
        c.tcp.tls = tls.clone();
        c.websocket.tls = tls;
    })
    .await;

    for addr in [server.tcp_addr, server.ws_addr] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(&connect_frame()).await.unwrap();
        let mut received = Vec::new();
        within("the server closes", async {
            let mut chunk = [0u8; 1024];
            while let Ok(n @ 1..) = stream.read(&mut chunk).await {
                received.extend_from_slice(&chunk[..n]);
            }
        })
        .await;
        let text = String::from_utf8_lossy(&received);
        assert!(!text.contains("CONNECTED"), "{text}");
    }
}

/// A client that never starts its handshake is dropped after `broker.connect_timeout`.
#[tokio::test]
async fn a_silent_client_is_dropped_after_the_connect_timeout() {
    let pki = Pki::new();
    let tls = pki.tls(ClientCert::None);
    let server = TestServer::start(|c| {
        c.tcp.tls = tls.clone();
        c.websocket.tls = tls;
        c.broker.connect_timeout = Duration::from_millis(300);
    })
    .await;
    for addr in [server.tcp_addr, server.ws_addr] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut chunk = [0u8; 64];
        let read = within("the server drops a silent client", stream.read(&mut chunk)).await;
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
}

/// `client_cert = "required"`: without a certificate the handshake is refused (in TLS 1.3
/// the client learns it on its first read); with one, the session is its CN under
/// `auth.tls_client_cert_login`, over TCP and over `wss://`.
#[tokio::test]
async fn mtls_required_refuses_clients_without_a_certificate_and_logs_in_the_cn() {
    let pki = Pki::new();
    let tls = pki.tls(ClientCert::Required);
    let server = TestServer::start(|c| {
        c.tcp.tls = tls.clone();
        c.websocket.tls = tls;
        c.auth.tls_client_cert_login = true;
    })
    .await;

    match tls_connect(&pki.client(false, None), server.tcp_addr).await {
        Err(_) => {}
        Ok(mut stream) => {
            let _ = stream.write_all(&connect_frame()).await;
            let mut chunk = [0u8; 1024];
            let read = within("the refusal", stream.read(&mut chunk)).await;
            assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        }
    }

    let mut tcp = stomp_over_tls(&pki.client(true, None), server.tcp_addr).await;
    let mut wss = stomp_over_wss(&pki.client(true, Some(b"http/1.1")), &server).await;
    tcp.subscribe("tcp", "/user/queue/x").await;
    wss.subscribe("wss", "/user/queue/x").await;
    let delivered = server.broker.send_to_user("alice", "/queue/x", "for alice");
    assert_eq!(delivered.unwrap(), 2, "both of alice's sessions");
    for message in [tcp.expect_message().await, wss.expect_message().await] {
        assert_eq!(message.command, Command::Message);
        assert_eq!(&message.body[..], b"for alice");
    }
}

/// `client_cert = "optional"`: a client without a certificate is admitted (and authenticated
/// as without cert login: a loopback client here).
#[tokio::test]
async fn mtls_optional_admits_clients_without_a_certificate() {
    let pki = Pki::new();
    let tls = pki.tls(ClientCert::Optional);
    let server = TestServer::start(|c| {
        c.tcp.tls = tls;
        c.auth.tls_client_cert_login = true;
    })
    .await;
    let mut client = stomp_over_tls(&pki.client(false, None), server.tcp_addr).await;
    round_trip(&mut client).await;
}

/// A reload reads the certificate again: new handshakes get the new one, a connection opened
/// before keeps working. A reload whose key does not fit keeps the old certificate and names
/// the key.
#[tokio::test]
async fn reload_serves_a_new_certificate_to_new_connections_and_keeps_live_ones() {
    let pki = Pki::new();
    let tls = pki.tls(ClientCert::None);
    let mut config = ServerConfig::default();
    // In-process servers of a test run must not share (or create) ./stompbox-data.
    config.store.enabled = false;
    config.tcp.tls = tls.clone();
    config.websocket.tls = tls.clone();
    let server = TestServer::start(|c| {
        c.tcp.tls = tls.clone();
        c.websocket.tls = tls;
    })
    .await;
    let connector = pki.client(false, None);

    let before = tls_connect(&connector, server.tcp_addr).await.unwrap();
    let old_der = peer_certificate(&before);
    let mut live = Client::new(TlsTransport(before));
    live.handshake(frames::connect()).await;

    let new_der = pki.write_server_cert();
    assert_ne!(new_der, old_der);
    server.reloader.reload(&config).expect("reload");
    for addr in [server.tcp_addr, server.ws_addr] {
        let after = tls_connect(&connector, addr).await.unwrap();
        assert_eq!(
            peer_certificate(&after),
            new_der,
            "new handshakes, new certificate"
        );
    }
    round_trip(&mut live).await;

    // A key that does not fit the certificate: the reload fails, the certificate stays.
    let (_, other_key) = leaf(&pki.ca, "localhost", ExtendedKeyUsagePurpose::ServerAuth);
    std::fs::write(pki.path("server.key"), other_key.serialize_pem()).unwrap();
    let failed = server.reloader.reload(&config);
    assert!(
        matches!(&failed, Err(Error::InvalidConfig { key, .. }) if key == "websocket.tls.key_file"),
        "{failed:?}"
    );
    let after = tls_connect(&connector, server.tcp_addr).await.unwrap();
    assert_eq!(peer_certificate(&after), new_der);
}

/// Startup checks the files and names the key: a missing file, a file without a
/// certificate, a key that does not fit.
#[tokio::test]
async fn bad_tls_files_are_refused_at_startup_naming_the_key() {
    let pki = Pki::new();
    let bind = |tls: TlsConfig| async move {
        let mut config = ServerConfig::default();
        // In-process servers of a test run must not share (or create) ./stompbox-data.
        config.store.enabled = false;
        config.websocket.enabled = false;
        config.tcp.listen = "127.0.0.1:0".parse().unwrap();
        config.tcp.tls = tls;
        match Server::bind(config).await {
            Err(Error::InvalidConfig { key, reason }) => (key, reason),
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("bound"),
        }
    };

    let mut tls = pki.tls(ClientCert::None);
    tls.cert_file = Some(pki.path("missing.pem"));
    let (key, reason) = bind(tls).await;
    assert_eq!(key, "tcp.tls.cert_file");
    assert!(reason.contains("missing.pem"), "{reason}");

    let mut tls = pki.tls(ClientCert::None);
    tls.cert_file = Some(pki.path("server.key"));
    assert_eq!(bind(tls).await.0, "tcp.tls.cert_file");

    let (_, other_key) = leaf(&pki.ca, "localhost", ExtendedKeyUsagePurpose::ServerAuth);
    std::fs::write(pki.path("other.key"), other_key.serialize_pem()).unwrap();
    let mut tls = pki.tls(ClientCert::None);
    tls.key_file = Some(pki.path("other.key"));
    assert_eq!(bind(tls).await.0, "tcp.tls.key_file");

    let mut tls = pki.tls(ClientCert::Required);
    tls.client_ca_file = Some(pki.path("server.key"));
    assert_eq!(bind(tls).await.0, "tcp.tls.client_ca_file");
}

/// `admission.rate_per_address` is checked before the TLS handshake: an address over its rate
/// is closed without the server doing a handshake for it, and counted.
#[tokio::test]
async fn an_address_over_its_connection_rate_gets_no_tls_handshake() {
    let pki = Pki::new();
    let tls = pki.tls(ClientCert::None);
    let server = TestServer::start(|c| {
        c.tcp.tls = tls;
        c.broker.admission.rate_per_address = 0.1;
        c.broker.admission.rate_burst = 2;
    })
    .await;
    let connector = pki.client(false, None);
    let mut first = stomp_over_tls(&connector, server.tcp_addr).await;
    let mut second = stomp_over_tls(&connector, server.tcp_addr).await;
    assert!(
        tls_connect(&connector, server.tcp_addr).await.is_err(),
        "the third handshake within the burst window is refused"
    );
    assert_eq!(server.broker.stats().refused_connections, 1);
    // The sessions it opened are not counted twice against the rate, and go on.
    round_trip(&mut first).await;
    round_trip(&mut second).await;
}
