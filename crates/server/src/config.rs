//! The server's configuration: the two listeners plus the broker's [`Config`] as `[broker]`.
//! `Default` is the single source of truth for every default; each field says its default and
//! why. Loading (file, environment, flags) is in `config_sources.rs`.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use stompbox_auth::JwtConfig;
use stompbox_broker::{Config, PermissionRule, Permissions};

use crate::{CompressionConfig, Error, MetricsConfig, PublishConfig, SockJsConfig, SseConfig};

/// Everything `stompbox` can be told. Deserializes from TOML with missing fields taking their
/// defaults; unknown keys are errors (a typo must not silently fall back to a default).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// The STOMP-over-WebSocket listener (an HTTP listener that also answers `GET /health`).
    pub websocket: WebSocketConfig,
    /// The STOMP-over-TCP listener.
    pub tcp: TcpConfig,
    /// STOMP over SockJS on the WebSocket listener (`sockjs-client` pages).
    pub sockjs: SockJsConfig,
    /// Server-Sent Events on the WebSocket listener (`EventSource` pages).
    pub sse: SseConfig,
    /// `POST /publish` on the WebSocket listener (backends without a STOMP client).
    pub publish: PublishConfig,
    /// `GET /metrics` (Prometheus) on the WebSocket listener.
    pub metrics: MetricsConfig,
    /// The webhook told of messages kept in users' offline inboxes (`broker.inbox`).
    pub push: crate::PushConfig,
    /// The admin HTTP API on its own listener (`stompbox ctl` talks to it).
    pub admin: crate::AdminConfig,
    /// The broker core: limits, heart-beats, outboxes, shutdown grace.
    pub broker: Config,
    /// Who may connect: a users file, JWT, or (the default) local clients only.
    pub auth: AuthConfig,
    /// Who may send and subscribe where, as `[[permissions]]` tables in order (see
    /// `docs/security.md`). None (the default): everything but a SEND to `/user/{name}/...`.
    /// Reloaded on SIGHUP.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<PermissionRule>,
    /// The RabbitMQ relay that joins several nodes into one broker (`docs/relay.md`). Off
    /// unless `relay.enabled`; needs the `relay` cargo feature (on by default).
    #[cfg(feature = "relay")]
    pub relay: stompbox_relay::RelayConfig,
    /// Where `persistent:true` queue messages are kept across restarts
    /// (`docs/persistence.md`).
    pub store: StoreConfig,
}

/// `[store]`: the node's message store, so that persistent queue messages survive a restart or
/// a crash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Keep `/queue` messages sent with `persistent:true` on disk. Default `true`: a message a
    /// producer marked persistent, and got a RECEIPT for, is not lost to a restart. Messages
    /// without the header stay in memory whatever this says.
    pub enabled: bool,
    /// The data directory, created if missing; relative paths are from the working
    /// directory. Default `stompbox-data`. When it cannot be created or written the node runs
    /// without a store (and says so in the log); when another process holds it the node does
    /// not start.
    pub data_dir: PathBuf,
    /// The storage engine's page cache, in bytes. Default 32 MiB: the store is read at
    /// start-up and otherwise only written, and the engine's own default (1 GiB) would count a
    /// large backlog read back at start-up against the node's memory.
    pub cache_size: usize,
    /// Most writes made durable by one sync (group commit). Default 4,096.
    pub max_batch_writes: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        let engine = stompbox_store::StoreOptions::default();
        StoreConfig {
            enabled: true,
            data_dir: PathBuf::from("stompbox-data"),
            cache_size: engine.cache_size,
            max_batch_writes: engine.max_batch_writes,
        }
    }
}

impl StoreConfig {
    /// The engine's options.
    pub(crate) fn options(&self) -> stompbox_store::StoreOptions {
        stompbox_store::StoreOptions {
            cache_size: self.cache_size,
            max_batch_writes: self.max_batch_writes,
            ..stompbox_store::StoreOptions::default()
        }
    }
}

/// The HTTP listener that upgrades `path` to STOMP over WebSocket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocketConfig {
    /// Serve WebSocket at all. Default `true`.
    pub enabled: bool,
    /// Address to bind. Default `0.0.0.0:15674`, RabbitMQ Web-STOMP's port, which stomp.js
    /// examples use. Port 0 picks a free port (see the `listening` log line).
    pub listen: SocketAddr,
    /// Path of the upgrade endpoint. Default `/ws`, Web-STOMP's path.
    pub path: String,
    /// Read buffer of each connection's WebSocket codec, in bytes. Default 1 KiB: the codec
    /// holds this buffer for the connection's whole life, and idle connections must stay small
    /// (the target is tens of thousands per node at most 10 KiB each; measured with 19,000
    /// idle subscribers: 13.0 KiB of RSS per connection at 4 KiB, 10.0 at 1 KiB). A connection
    /// that streams is not read 1 KiB at a time: once a read fills this buffer, the edge reads
    /// [`crate::BURST_READ_SIZE`] bytes at a time into a buffer it frees when the socket runs
    /// dry (see `burst.rs`).
    pub read_buffer_size: usize,
    /// Bytes the WebSocket codec gathers before writing to the socket. Default 4 KiB; the
    /// broker already batches frames into one message, so a larger buffer only costs memory.
    pub write_buffer_size: usize,
    /// Browser origins allowed to open the WebSocket (the `Origin` header of the upgrade):
    /// exact origins (`https://app.example.com`) or one leading wildcard label
    /// (`https://*.example.com`). A handshake from another origin gets HTTP 403; one without an
    /// `Origin` header (not a browser: mobile and server clients) is not checked. Default
    /// empty: every origin, which is unsafe with cookie-carried tokens (refused at startup).
    pub allowed_origins: Vec<String>,
    /// Reverse proxies (addresses or networks: `127.0.0.1`, `10.0.0.0/8`) whose
    /// `X-Forwarded-For` header is believed: for connections from them, the client's address
    /// is the right-most one in that header that is not a trusted proxy, and that address is
    /// what the loopback default, failed-login guard, connection limits, logs and the
    /// authenticator see. Default empty: the peer address, whatever the header says.
    pub trusted_proxies: Vec<String>,
    /// `wss://`: TLS on this listener (`[websocket.tls]`), with ALPN `http/1.1`. Off by default.
    pub tls: TlsConfig,
    /// Every connection starts with a PROXY protocol header (v1 or v2) from a TCP load balancer,
    /// whose client address replaces the balancer's as the peer (see `tcp.proxy_protocol`).
    /// HTTP balancers use `trusted_proxies` instead. Default `false`.
    pub proxy_protocol: bool,
    /// Largest HTTP request head (request line and headers) in bytes, the upgrade's included;
    /// a larger one is answered 431 and closed. Default 32 KiB, nginx's default (4 × 8 KiB):
    /// room for cookies and a bearer token. At least 8 KiB.
    pub max_request_head_size: usize,
    /// WebSocket pings a client may send per minute; the next one gets ERROR `too many pings`
    /// and a close (1008). Every ping is answered with a pong, and a client that sends pings
    /// without reading the pongs would otherwise make the server queue them. Default 600 (10 a
    /// second on average; clients ping every few seconds at most, browsers never).
    pub max_pings_per_minute: u32,
    /// Length of the listen queue of connections the kernel has accepted and the server not
    /// yet taken (`listen(2)`'s backlog; the kernel caps it at `net.core.somaxconn`). Default
    /// 1,024: a reconnect storm of thousands of clients waits in the queue instead of retrying
    /// SYNs after a second.
    pub listen_backlog: u32,
    /// permessage-deflate (`[websocket.compression]`), also on SockJS's WebSocket transport.
    pub compression: CompressionConfig,
}

/// TLS on one listener (`[websocket.tls]`, `[tcp.tls]`): TLS 1.2 and 1.3 (rustls has nothing
/// older), optionally verifying client certificates (mTLS). The files are read at startup
/// and again on SIGHUP: new handshakes use what was reloaded, live connections keep theirs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Serve TLS (only TLS) on this listener. Default `false`.
    pub enabled: bool,
    /// PEM file with the server's certificate chain, its own certificate first. No default;
    /// needed when `enabled`.
    pub cert_file: Option<PathBuf>,
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1). No default;
    /// needed when `enabled`.
    pub key_file: Option<PathBuf>,
    /// PEM file with the CA certificates that client certificates must chain to. No default;
    /// needed when `client_cert` is not `none`.
    pub client_ca_file: Option<PathBuf>,
    /// Whether clients present a certificate: `none` (default: none is asked for),
    /// `optional` (one is asked for and verified if presented), `required` (a client without
    /// a valid one fails the handshake).
    pub client_cert: ClientCert,
}

/// Whether a TLS listener asks clients for certificates (`client_cert`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientCert {
    /// Not asked for.
    #[default]
    None,
    /// Asked for; verified when presented, admitted without.
    Optional,
    /// Asked for and needed: the handshake fails without a valid one.
    Required,
}

/// Who may connect (`[auth]`). With neither `users_file` nor `jwt`, `anonymous` decides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// A TOML file of logins with argon2id password hashes and roles (`stompbox hash-password`
    /// makes the hashes). Reloaded on SIGHUP; live sessions stay.
    pub users_file: Option<PathBuf>,
    /// JSON Web Tokens: keys, issuer, audience, claims, carriers (`[auth.jwt]`).
    pub jwt: Option<JwtConfig>,
    /// With no mechanism configured: `local` (default) admits any login from loopback
    /// addresses only and refuses others with a message saying how to configure one;
    /// `anywhere` admits any login from anywhere (trusted networks only: anyone can claim
    /// any name).
    pub anonymous: AnonymousAccess,
    /// A client that presented a verified TLS client certificate (a listener with
    /// `tls.client_cert` `optional` or `required`) is the certificate's subject CN, whatever
    /// its `login` header says (RabbitMQ's `ssl_cert_login`); a client without one is
    /// authenticated as if this were off. Default `false`.
    pub tls_client_cert_login: bool,
}

/// Who is admitted when no authentication mechanism is configured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnonymousAccess {
    /// Clients on this machine only.
    #[default]
    Local,
    /// Everyone.
    Anywhere,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            users_file: None,
            jwt: None,
            anonymous: AnonymousAccess::Local,
            tls_client_cert_login: false,
        }
    }
}

/// The raw STOMP-over-TCP listener.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TcpConfig {
    /// Serve TCP at all. Default `true`.
    pub enabled: bool,
    /// Address to bind. Default `0.0.0.0:61613`, the IANA-registered STOMP port.
    pub listen: SocketAddr,
    /// Size of each read from a TCP connection, in bytes. Default 4 KiB: small, for the same
    /// reason as `websocket.read_buffer_size` (the 1 KiB choice there was measured over
    /// WebSocket only).
    pub read_buffer_size: usize,
    /// STOMP over TLS on this listener (`[tcp.tls]`; set `listen` to port 61614, the
    /// conventional one). Off by default.
    pub tls: TlsConfig,
    /// Every connection starts with a PROXY protocol header (v1 or v2) from a TCP load balancer
    /// (HAProxy, nginx `stream`, AWS NLB), whose client address replaces the balancer's as the
    /// peer. A connection without a valid header within `broker.connect_timeout` is closed, so
    /// turn it on only when every client comes through the balancer. Default `false`.
    pub proxy_protocol: bool,
    /// Length of the listen queue, as `websocket.listen_backlog`. Default 1,024.
    pub listen_backlog: u32,
}

/// Web-STOMP's port.
const DEFAULT_WS_PORT: u16 = 15674;
/// The IANA-registered STOMP port.
const DEFAULT_TCP_PORT: u16 = 61613;
/// Small per-connection buffers: see [`TcpConfig::read_buffer_size`] and
/// [`WebSocketConfig::write_buffer_size`].
const DEFAULT_BUFFER_SIZE: usize = 4 * 1024;
/// The WebSocket codec's read buffer, held for the connection's life: see
/// [`WebSocketConfig::read_buffer_size`].
const DEFAULT_WS_READ_BUFFER_SIZE: usize = 1024;
/// See [`WebSocketConfig::listen_backlog`].
const DEFAULT_LISTEN_BACKLOG: u32 = 1024;

impl Default for WebSocketConfig {
    fn default() -> Self {
        WebSocketConfig {
            enabled: true,
            listen: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, DEFAULT_WS_PORT)),
            path: "/ws".to_owned(),
            read_buffer_size: DEFAULT_WS_READ_BUFFER_SIZE,
            write_buffer_size: DEFAULT_BUFFER_SIZE,
            allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            proxy_protocol: false,
            tls: TlsConfig::default(),
            max_request_head_size: 32 * 1024,
            max_pings_per_minute: 600,
            listen_backlog: DEFAULT_LISTEN_BACKLOG,
            compression: CompressionConfig::default(),
        }
    }
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            enabled: true,
            listen: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, DEFAULT_TCP_PORT)),
            read_buffer_size: DEFAULT_BUFFER_SIZE,
            tls: TlsConfig::default(),
            proxy_protocol: false,
            listen_backlog: DEFAULT_LISTEN_BACKLOG,
        }
    }
}

impl TlsConfig {
    /// The checks that need no file: which keys `enabled` and `client_cert` need. The files
    /// themselves are read (and their errors named) when the listener is bound.
    pub(crate) fn validate(&self, table: &str) -> Result<(), Error> {
        let bad = |key: &str, reason: &str| {
            Err(Error::InvalidConfig {
                key: format!("{table}.{key}"),
                reason: reason.to_owned(),
            })
        };
        if !self.enabled {
            return Ok(());
        }
        if self.cert_file.is_none() {
            return bad("cert_file", "TLS needs a PEM certificate chain");
        }
        if self.key_file.is_none() {
            return bad("key_file", "TLS needs the certificate's PEM private key");
        }
        match (self.client_cert, &self.client_ca_file) {
            (ClientCert::None, Some(_)) => bad(
                "client_cert",
                "client_ca_file is set but client_cert is \"none\": say \"optional\" or \
                 \"required\" (or remove client_ca_file)",
            ),
            (ClientCert::Optional | ClientCert::Required, None) => bad(
                "client_ca_file",
                "client_cert asks for client certificates: give the PEM CAs to verify them",
            ),
            _ => Ok(()),
        }
    }
}

impl ServerConfig {
    /// What a start-up log should warn about: a listener reachable beyond this machine that
    /// admits anyone, carries credentials in clear text, or lets any web page connect.
    pub fn exposure_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let open = |enabled: bool, addr: SocketAddr| enabled && !addr.ip().is_loopback();
        let listeners = [
            (
                "websocket",
                open(self.websocket.enabled, self.websocket.listen),
                &self.websocket.tls,
            ),
            (
                "tcp",
                open(self.tcp.enabled, self.tcp.listen),
                &self.tcp.tls,
            ),
        ];
        let no_identity = self.auth.users_file.is_none() && self.auth.jwt.is_none();
        if no_identity && self.auth.anonymous == AnonymousAccess::Local {
            // Only clients on this machine get in (the default): nothing to warn about.
            return warnings;
        }
        for (name, beyond_loopback, tls) in listeners {
            if !beyond_loopback {
                continue;
            }
            if no_identity && self.auth.anonymous == AnonymousAccess::Anywhere {
                warnings.push(format!(
                    "the {name} listener is reachable beyond loopback and admits anyone \
                     (auth.anonymous = \"anywhere\", no users file or JWT)"
                ));
            }
            if !tls.enabled && !no_identity {
                warnings.push(format!(
                    "the {name} listener is reachable beyond loopback without TLS: passwords \
                     and tokens cross the network in clear text (unless a proxy terminates TLS)"
                ));
            }
        }
        if listeners[0].1 && self.websocket.allowed_origins.is_empty() {
            warnings.push(
                "the websocket listener is reachable beyond loopback and any web page may \
                 connect to it (no websocket.allowed_origins)"
                    .to_owned(),
            );
        }
        warnings
    }

    /// Checks the values make sense together, the broker's included; the error names the key.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |key: &'static str, reason: &str| {
            Err(Error::InvalidConfig {
                key: key.to_owned(),
                reason: reason.to_owned(),
            })
        };
        if !self.websocket.enabled && !self.tcp.enabled {
            return bad(
                "websocket.enabled",
                "at least one of websocket.enabled and tcp.enabled must be true",
            );
        }
        if !self.websocket.path.starts_with('/') || self.websocket.path == "/health" {
            return bad(
                "websocket.path",
                "must start with `/` and must not be `/health`",
            );
        }
        if self.websocket.read_buffer_size == 0 || self.websocket.write_buffer_size == 0 {
            return bad("websocket", "buffer sizes must be greater than zero");
        }
        if self.tcp.read_buffer_size == 0 {
            return bad("tcp.read_buffer_size", "must be greater than zero");
        }
        // hyper's own floor for its read buffer.
        if self.websocket.max_request_head_size < 8 * 1024 {
            return bad("websocket.max_request_head_size", "must be at least 8192");
        }
        if self.websocket.max_pings_per_minute == 0 {
            return bad(
                "websocket.max_pings_per_minute",
                "must be greater than zero",
            );
        }
        self.websocket.compression.validate()?;
        if self.websocket.listen_backlog == 0 {
            return bad("websocket.listen_backlog", "must be greater than zero");
        }
        if self.tcp.listen_backlog == 0 {
            return bad("tcp.listen_backlog", "must be greater than zero");
        }
        self.websocket.tls.validate("websocket.tls")?;
        self.tcp.tls.validate("tcp.tls")?;
        if self.store.enabled && self.store.data_dir.as_os_str().is_empty() {
            return bad(
                "store.data_dir",
                "must not be empty (set store.enabled = false to keep no store)",
            );
        }
        if self.store.max_batch_writes == 0 {
            return bad("store.max_batch_writes", "must be greater than zero");
        }

        self.compiled_permissions()?;
        let auth = &self.auth;
        let configured =
            auth.users_file.is_some() || auth.jwt.is_some() || auth.tls_client_cert_login;
        if configured && auth.anonymous == AnonymousAccess::Anywhere {
            return bad(
                "auth.anonymous",
                "`anywhere` admits everyone; it cannot be combined with users_file, jwt or \
                 tls_client_cert_login",
            );
        }
        let asks_for_certs = |tls: &TlsConfig| tls.enabled && tls.client_cert != ClientCert::None;
        if auth.tls_client_cert_login
            && !asks_for_certs(&self.websocket.tls)
            && !asks_for_certs(&self.tcp.tls)
        {
            return bad(
                "auth.tls_client_cert_login",
                "no listener asks for client certificates: set websocket.tls or tcp.tls \
                 (enabled, client_ca_file, client_cert = \"optional\" or \"required\")",
            );
        }
        let cookie = auth.jwt.as_ref().and_then(|j| j.cookie.as_deref());
        if cookie.is_some_and(|c| !c.is_empty()) && self.websocket.allowed_origins.is_empty() {
            return bad(
                "auth.jwt.cookie",
                "a token in a cookie needs websocket.allowed_origins: any web page could \
                 otherwise open a WebSocket with the user's cookie (cross-site WebSocket hijacking)",
            );
        }
        if let Some(bad_origin) = (self.websocket.allowed_origins.iter())
            .find(|o| crate::origin::OriginPattern::parse(o).is_none())
        {
            return Err(Error::InvalidConfig {
                key: "websocket.allowed_origins".into(),
                reason: format!(
                    "{bad_origin:?} is not an origin (`https://app.example.com`, `https://*.example.com`)"
                ),
            });
        }
        if let Err(entry) = crate::forwarded::TrustedProxies::parse(&self.websocket.trusted_proxies)
        {
            return Err(Error::InvalidConfig {
                key: "websocket.trusted_proxies".into(),
                reason: format!("{entry:?} is neither an address nor a network (`10.0.0.0/8`)"),
            });
        }
        // Every endpoint of the HTTP listener has a path of its own.
        let mut taken = ["/health", "/healthz", "/readyz", &self.websocket.path]
            .map(str::to_owned)
            .to_vec();
        self.sockjs.validate(&mut taken)?;
        self.sse.validate(&mut taken)?;
        self.publish.validate(&mut taken)?;
        self.metrics.validate(&mut taken)?;
        self.push.validate()?;
        self.admin.validate()?;
        #[cfg(feature = "relay")]
        if let Err(stompbox_relay::RelayError::InvalidConfig { key, reason }) =
            self.relay.validate()
        {
            return Err(Error::InvalidConfig {
                key: format!("relay.{key}"),
                reason,
            });
        }
        self.broker.validate().map_err(|e| Error::InvalidConfig {
            key: format!("broker.{}", e.field),
            reason: e.reason,
        })
    }

    /// The defaults with every optional key set (to an empty value), so environment variables
    /// and `--set` can name keys that have no default (`auth.users_file`, `auth.jwt.secret`).
    pub(crate) fn every_key() -> Self {
        let mut config = ServerConfig::default();
        config.auth.users_file = Some(PathBuf::new());
        config.auth.jwt = Some(JwtConfig {
            secret: Some(String::new()),
            public_key_file: Some(PathBuf::new()),
            jwks_file: Some(PathBuf::new()),
            issuer: Some(String::new()),
            audience: Some(String::new()),
            cookie: Some(String::new()),
            ..JwtConfig::default()
        });
        for tls in [&mut config.websocket.tls, &mut config.tcp.tls] {
            tls.cert_file = Some(PathBuf::new());
            tls.key_file = Some(PathBuf::new());
            tls.client_ca_file = Some(PathBuf::new());
        }
        config
    }

    /// `permissions` compiled; the error names the rule.
    pub fn compiled_permissions(&self) -> Result<Permissions, Error> {
        Permissions::new(self.permissions.clone()).map_err(|e| Error::InvalidConfig {
            key: e.field.to_owned(),
            reason: e.reason,
        })
    }

    /// The configuration as TOML, every key present (what `stompbox --print-config` prints).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the configuration is representable in TOML")
    }
}

/// Checks that `path` is one axum can route and that it neither is nor lies under (or over) a
/// path in `taken`, which would make axum's routes conflict (a SockJS prefix has routes under
/// it); then takes it. `key` names the setting in the error.
pub(crate) fn check_path(key: &str, path: &str, taken: &mut Vec<String>) -> Result<(), Error> {
    let routable = path.len() > 1
        && path.starts_with('/')
        && !path.ends_with('/')
        && !path.contains(['{', '}', '*', '?', '#', ' ', ':'])
        && !path.contains("//");
    let under = |a: &str, b: &str| a.strip_prefix(b).is_some_and(|rest| rest.starts_with('/'));
    let reason = if !routable {
        format!(
            "{path:?} must start with `/`, not end with one, and have no `{{`, `}}`, `*`, `:`, \
             `?`, `#`, spaces or empty segments"
        )
    } else if let Some(other) = taken
        .iter()
        .find(|t| *t == path || under(path, t) || under(t, path))
    {
        format!("{path:?} collides with {other:?}, the path of another endpoint")
    } else {
        taken.push(path.to_owned());
        return Ok(());
    };
    Err(Error::InvalidConfig {
        key: key.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_round_trips_through_toml() {
        let config = ServerConfig::default();
        config.validate().unwrap();
        let text = config.to_toml();
        assert!(text.contains("[broker.heartbeat]"), "{text}");
        assert!(text.contains("listen = \"0.0.0.0:15674\""), "{text}");
        let back: ServerConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn validation_names_the_key() {
        let mut config = ServerConfig::default();
        config.websocket.enabled = false;
        config.tcp.enabled = false;
        assert!(
            matches!(config.validate(), Err(Error::InvalidConfig { key, .. }) if key == "websocket.enabled")
        );

        let mut config = ServerConfig::default();
        config.websocket.path = "ws".into();
        assert!(
            matches!(config.validate(), Err(Error::InvalidConfig { key, .. }) if key == "websocket.path")
        );

        let mut config = ServerConfig::default();
        config.broker.heartbeat.grace = 0.5;
        assert!(
            matches!(config.validate(), Err(Error::InvalidConfig { key, .. }) if key == "broker.heartbeat.grace")
        );

        let mut config = ServerConfig::default();
        config.tcp.tls.enabled = true;
        config.tcp.tls.cert_file = Some("cert.pem".into());
        assert!(
            matches!(config.validate(), Err(Error::InvalidConfig { key, .. }) if key == "tcp.tls.key_file")
        );
        config.tcp.tls.key_file = Some("key.pem".into());
        config.tcp.tls.client_cert = ClientCert::Required;
        assert!(
            matches!(config.validate(), Err(Error::InvalidConfig { key, .. }) if key == "tcp.tls.client_ca_file")
        );

        let mut config = ServerConfig::default();
        config.auth.tls_client_cert_login = true;
        assert!(
            matches!(config.validate(), Err(Error::InvalidConfig { key, .. }) if key == "auth.tls_client_cert_login")
        );

        #[cfg(feature = "relay")]
        {
            let mut config = ServerConfig::default();
            config.relay.urls.clear();
            assert!(
                matches!(config.validate(), Err(Error::InvalidConfig { key, .. }) if key == "relay.urls")
            );
        }
    }

    #[test]
    fn endpoint_paths_must_be_routable_and_apart() {
        let mut taken = vec!["/ws".to_owned(), "/sockjs".to_owned()];
        assert!(check_path("sse.path", "/sse", &mut taken).is_ok());
        assert!(check_path("p", "/wsx", &mut taken).is_ok());
        for bad in [
            "sse",
            "/",
            "/sse/",
            "/a//b",
            "/{x}",
            "/ws",
            "/sse",
            "/sockjs/info",
            "/ws/x",
        ] {
            let error = check_path("p", bad, &mut taken).unwrap_err();
            assert!(error.to_string().contains(&format!("{bad:?}")), "{error}");
        }
        let error = check_path("p", "/a", &mut vec!["/a/b".to_owned()]).unwrap_err();
        assert!(
            error.to_string().contains("collides with \"/a/b\""),
            "{error}"
        );
    }

    #[test]
    fn listeners_open_to_the_network_are_warned_about() {
        let mut config = ServerConfig::default();
        // Listening on every address, but admitting local clients only.
        assert!(
            config.exposure_warnings().is_empty(),
            "local clients only by default"
        );
        config.auth.anonymous = AnonymousAccess::Anywhere;
        let warnings = config.exposure_warnings().join("\n");
        assert!(
            warnings.contains("websocket listener is reachable beyond loopback and admits anyone"),
            "{warnings}"
        );
        assert!(warnings.contains("websocket.allowed_origins"), "{warnings}");
        config.auth.users_file = Some("users.toml".into());
        config.websocket.allowed_origins = vec!["https://app.example".into()];
        let warnings = config.exposure_warnings();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings.iter().all(|w| w.contains("without TLS")),
            "{warnings:?}"
        );
        assert!(warnings[1].starts_with("the tcp listener"), "{warnings:?}");
    }
}
