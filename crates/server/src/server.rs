//! [`Server`]: binds the configured listeners around one [`Broker`] and runs them until a
//! shutdown future completes.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    routing::{get, post},
};
use stompbox_broker::Broker;
use stompbox_sockjs::SockJs;
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::forwarded::TrustedProxies;
use crate::http::{self, HttpEdge};
use crate::metrics::{MetricsEndpoint, NodeState, readiness};
use crate::opening::Opening;
use crate::origin::AllowedOrigins;
use crate::publish::PublishEndpoint;
use crate::sockjs::StompOverSockJs;
use crate::sse::SseEndpoint;
use crate::tls::{self, TlsEdge};
use crate::ws::Handshakes;
use crate::{Error, Reloader, ServerConfig, WebSocketSettings, tcp, ws};

/// Time, beyond the broker's `shutdown_grace`, that the edges get to close their sockets after
/// the broker has let go of its sessions. Short: by then every session has flushed its ERROR.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// A bound, not yet running, server. Binding and running are separate so that callers (tests,
/// the binary) can read the bound addresses before serving.
///
/// ```no_run
/// # async fn example() -> Result<(), stompbox_server::Error> {
/// use stompbox_server::{Server, ServerConfig};
///
/// let mut config = ServerConfig::default();
/// config.websocket.listen = "127.0.0.1:0".parse().unwrap();
/// config.tcp.enabled = false;
/// let server = Server::bind(config).await?;
/// println!("{}", server.local_ws_addr().unwrap());
/// server.run(async { tokio::signal::ctrl_c().await.ok(); }).await
/// # }
/// ```
pub struct Server {
    config: ServerConfig,
    broker: Broker,
    /// The node's RabbitMQ relay, when `relay.enabled` (started by [`Server::bind`]).
    #[cfg(feature = "relay")]
    relay: Option<stompbox_relay::Relay>,
    websocket: Option<TcpListener>,
    tcp: Option<TcpListener>,
    /// TLS of the WebSocket listener, when `websocket.tls.enabled`.
    websocket_tls: Option<TlsEdge>,
    /// TLS of the TCP listener, when `tcp.tls.enabled`.
    tcp_tls: Option<TlsEdge>,
    reloader: Reloader,
    /// `store.enabled` and the data directory could not be opened (`/readyz` says so).
    store_missing: bool,
    /// The push webhook's counters, when it is on.
    push: Option<Arc<crate::push::PushStats>>,
    /// The admin API's listener, when `admin.enabled`.
    admin: Option<TcpListener>,
}

impl Server {
    /// Validates `config`, builds a broker from `config.broker` with the authenticator and
    /// permissions of `[auth]` and `[[permissions]]`, starts the RabbitMQ relay when
    /// `relay.enabled`, and binds the enabled listeners.
    pub async fn bind(config: ServerConfig) -> Result<Server, Error> {
        config.validate()?;
        let builder = Broker::builder().config(config.broker.clone());
        let (builder, chain) = crate::auth::configure(builder, &config)?;
        #[cfg(feature = "relay")]
        let (builder, relay) = match config.relay.enabled {
            true => {
                let relay = stompbox_relay::Relay::new(config.relay.clone()).map_err(|e| {
                    Error::InvalidConfig {
                        key: "relay".into(),
                        reason: e.to_string(),
                    }
                })?;
                (builder.backplane(relay.0.backplane()), Some(relay))
            }
            false => (builder, None),
        };
        if config.push.enabled() && config.broker.inbox.destinations.is_empty() {
            tracing::warn!(
                "push.url is set but broker.inbox.destinations is empty: nothing will be pushed"
            );
        }
        #[cfg(feature = "relay")]
        if config.relay.enabled && !config.broker.inbox.destinations.is_empty() {
            tracing::warn!(
                "broker.inbox.destinations is ignored with the relay: nothing is kept for absent users"
            );
        }
        let push =
            match config.push.enabled() {
                true => Some(crate::push::Push::start(&config.push).map_err(|e| {
                    Error::InvalidConfig {
                        key: "push".into(),
                        reason: format!("cannot start the webhook's thread: {e}"),
                    }
                })?),
                false => None,
            };
        let builder = match &push {
            Some(push) => {
                let push = push.clone();
                builder.on_inbox(move |kept| push.offer(kept))
            }
            None => builder,
        };
        let store = crate::store::open(&config)?;
        let store_missing = config.store.enabled && store.is_none();
        let builder = match store {
            Some(store) => builder.store(store),
            None => builder,
        };
        let broker = builder.build().map_err(|e| Error::InvalidConfig {
            // The builder reads the store back: its error is about the data directory.
            key: match e.field {
                "store" => "store.data_dir".to_owned(),
                field => format!("broker.{field}"),
            },
            reason: e.reason,
        })?;
        #[cfg_attr(not(feature = "relay"), allow(unused_mut))]
        let mut server = Server::bind_with_broker(config, broker).await?;
        server.reloader = Reloader::new(server.broker.clone(), chain, true, server.tls_edges());
        server.store_missing = store_missing;
        server.push = push.map(|p| p.stats().clone());
        #[cfg(feature = "relay")]
        if let Some((relay, link)) = relay {
            tracing::info!(node = relay.node_id(), "relay starting");
            link.start(server.broker.clone());
            server.relay = Some(relay);
        }
        Ok(server)
    }

    /// Binds the listeners of `config` around an already built broker (for a custom
    /// authenticator). `config.broker` is ignored in favour of `broker.config()`, and so are
    /// `config.auth`, `config.permissions` (give the broker your own) and `config.relay`: give
    /// the broker a relay yourself (`docs/relay.md`). TLS certificates and keys are read here;
    /// an unreadable or mismatched one is an error naming its key.
    pub async fn bind_with_broker(config: ServerConfig, broker: Broker) -> Result<Server, Error> {
        config.validate()?;
        let websocket_tls = match config.websocket.enabled {
            true => TlsEdge::new(tls::Listener::WebSocket, &config)?,
            false => None,
        };
        let tcp_tls = match config.tcp.enabled {
            true => TlsEdge::new(tls::Listener::Tcp, &config)?,
            false => None,
        };
        let websocket = match config.websocket.enabled {
            true => Some(bind(
                "websocket",
                config.websocket.listen,
                config.websocket.listen_backlog,
            )?),
            false => None,
        };
        let tcp = match config.tcp.enabled {
            true => Some(bind("tcp", config.tcp.listen, config.tcp.listen_backlog)?),
            false => None,
        };
        let admin = match config.admin.enabled {
            true => Some(bind("admin", config.admin.listen, 128)?),
            false => None,
        };
        let tls_edges = websocket_tls.iter().chain(&tcp_tls).cloned().collect();
        Ok(Server {
            admin,
            reloader: Reloader::new(broker.clone(), None, false, tls_edges),
            config,
            broker,
            #[cfg(feature = "relay")]
            relay: None,
            websocket,
            tcp,
            websocket_tls,
            tcp_tls,
            store_missing: false,
            push: None,
        })
    }

    fn tls_edges(&self) -> Vec<TlsEdge> {
        self.websocket_tls
            .iter()
            .chain(&self.tcp_tls)
            .cloned()
            .collect()
    }

    /// The bound WebSocket (HTTP) address, if that listener is enabled.
    pub fn local_ws_addr(&self) -> Option<SocketAddr> {
        self.websocket.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The bound admin API address, if `admin.enabled`.
    pub fn local_admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The bound TCP address, if that listener is enabled.
    pub fn local_tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The WebSocket endpoint's URL, `ws://ADDR/PATH` (`wss://` with TLS), if that listener
    /// is enabled.
    pub fn ws_url(&self) -> Option<String> {
        let scheme = match self.websocket_tls {
            Some(_) => "wss",
            None => "ws",
        };
        self.local_ws_addr()
            .map(|addr| format!("{scheme}://{addr}{}", self.config.websocket.path))
    }

    /// The first SockJS endpoint's URL, `http://ADDR/PREFIX` (`https://` with TLS), when SockJS
    /// and the WebSocket listener are enabled: what `new SockJS(url)` takes.
    pub fn sockjs_url(&self) -> Option<String> {
        let scheme = match self.websocket_tls {
            Some(_) => "https",
            None => "http",
        };
        let prefix = self.config.sockjs.prefix.iter().next()?;
        self.local_ws_addr()
            .filter(|_| self.config.sockjs.enabled)
            .map(|addr| format!("{scheme}://{addr}{prefix}"))
    }

    /// The handle that reloads the users file, JWT keys, permissions and TLS certificates (the
    /// binary calls it on SIGHUP); usable while the server runs.
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// The broker the listeners serve.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// The node's RabbitMQ relay, when `relay.enabled`: its state, node id.
    #[cfg(feature = "relay")]
    pub fn relay(&self) -> Option<&stompbox_relay::Relay> {
        self.relay.as_ref()
    }

    /// Serves until `shutdown` completes, then shuts down gracefully: stops accepting, tells
    /// every session (`broker.shutdown()`, which waits up to `shutdown_grace`), lets the edges
    /// close their sockets, and returns. Returns early with an error if a listener fails.
    ///
    /// Logs, at info level, the line
    /// `listening websocket=ws://ADDR/PATH tcp=ADDR` (`disabled` for a disabled listener,
    /// `wss://` with TLS; then `tcp_tls=true` follows when the TCP listener serves TLS, and
    /// `admin=ADDR` when the admin API is on).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
        let websocket = match self.ws_url() {
            Some(url) => url,
            None => "disabled".to_owned(),
        };
        let tcp_addr = match self.local_tcp_addr() {
            Some(addr) => addr.to_string(),
            None => "disabled".to_owned(),
        };
        // `admin=ADDR` only when the admin API is on, last: scripts that parse the line as
        // documented keep working.
        let tls = self.tcp_tls.is_some();
        match (tls, self.local_admin_addr()) {
            (false, None) => tracing::info!(websocket = %websocket, tcp = %tcp_addr, "listening"),
            (true, None) => {
                tracing::info!(websocket = %websocket, tcp = %tcp_addr, tcp_tls = true, "listening")
            }
            (false, Some(admin)) => {
                tracing::info!(websocket = %websocket, tcp = %tcp_addr, admin = %admin, "listening")
            }
            (true, Some(admin)) => {
                tracing::info!(websocket = %websocket, tcp = %tcp_addr, tcp_tls = true, admin = %admin, "listening")
            }
        }
        // A client that never finishes its TLS handshake is dropped as one that never sends
        // CONNECT would be.
        let handshake_timeout = self.broker.config().connect_timeout;

        let stop = CancellationToken::new();
        let connections = TaskTracker::new();
        let mut listeners = JoinSet::new();
        if let Some(listener) = self.websocket {
            let settings = WebSocketSettings::new(&self.config.websocket, self.broker.config());
            let handshakes = Handshakes {
                origins: AllowedOrigins::new(&self.config.websocket.allowed_origins),
                proxies: TrustedProxies::parse(&self.config.websocket.trusted_proxies)
                    .expect("validated by ServerConfig::validate"),
            };
            let mut router = Router::new()
                .route(
                    &self.config.websocket.path,
                    ws::route(
                        self.broker.clone(),
                        settings,
                        Some(connections.clone()),
                        handshakes.clone(),
                    ),
                )
                .route("/health", get(|| async { "ok\n" }))
                .route("/healthz", get(|| async { "ok\n" }));
            let node = NodeState {
                #[cfg(feature = "relay")]
                relay: self.relay.clone(),
                store_missing: self.store_missing,
                push: self.push.clone(),
            };
            let readyz = {
                let (broker, node) = (self.broker.clone(), node.clone());
                move || std::future::ready(readiness(&broker, &node))
            };
            router = router.route("/readyz", get(readyz));
            if self.config.metrics.enabled {
                let endpoint = MetricsEndpoint::new(
                    self.broker.clone(),
                    node,
                    &self.config.metrics,
                    handshakes.proxies.clone(),
                );
                let scrape = move |request| endpoint.clone().scrape(request);
                router = router.route(&self.config.metrics.path, get(scrape));
            }
            let handshakes = Arc::new(handshakes);
            if self.config.sse.enabled {
                let endpoint = SseEndpoint::new(
                    self.broker.clone(),
                    handshakes.clone(),
                    self.config.sse.clone(),
                );
                let open = move |request| endpoint.clone().open(request);
                router = router.route(&self.config.sse.path, get(open));
            }
            if self.config.publish.enabled {
                let endpoint = PublishEndpoint::new(
                    self.broker.clone(),
                    handshakes.clone(),
                    self.config.publish.clone(),
                );
                let publish = move |request| endpoint.clone().publish(request);
                router = router.route(&self.config.publish.path, post(publish));
            }
            if self.config.sockjs.enabled {
                let handler = StompOverSockJs {
                    broker: self.broker.clone(),
                    handshakes,
                };
                let deflate = self.config.websocket.compression.deflate();
                let protocol = self.config.sockjs.protocol(self.broker.config(), deflate);
                for prefix in self.config.sockjs.prefix.iter() {
                    let endpoint = SockJs::new(protocol.clone(), handler.clone());
                    router = router.merge(endpoint.router(prefix));
                }
            }
            let opening = Opening {
                proxy_protocol: self.config.websocket.proxy_protocol,
                tls: self.websocket_tls,
                timeout: handshake_timeout,
            };
            let edge = HttpEdge {
                broker: self.broker.clone(),
                router,
                admit_at_accept: !opening.proxy_protocol
                    && self.config.websocket.trusted_proxies.is_empty(),
                opening,
                max_request_head: self.config.websocket.max_request_head_size,
            };
            let stop = stop.clone();
            listeners.spawn(async move {
                http::serve(listener, edge, stop)
                    .await
                    .map_err(|source| Error::Serve {
                        listener: "websocket",
                        source,
                    })
            });
        }
        if let Some(listener) = self.tcp {
            let (broker, connections, stop) =
                (self.broker.clone(), connections.clone(), stop.clone());
            let read_size = self.config.tcp.read_buffer_size;
            let opening = Opening {
                proxy_protocol: self.config.tcp.proxy_protocol,
                tls: self.tcp_tls,
                timeout: handshake_timeout,
            };
            listeners.spawn(async move {
                tcp::accept_loop(listener, broker, read_size, opening, connections, stop)
                    .await
                    .map_err(|source| Error::Serve {
                        listener: "tcp",
                        source,
                    })
            });
        }

        if let Some(listener) = self.admin {
            let router = crate::admin::router(self.broker.clone(), &self.config.admin);
            let stop = stop.clone();
            listeners.spawn(async move {
                crate::admin::serve(listener, router, stop)
                    .await
                    .map_err(|source| Error::Serve {
                        listener: "admin",
                        source,
                    })
            });
        }
        let mut failure = tokio::select! {
            _ = shutdown => None,
            Some(ended) = listeners.join_next() => Some(flatten(ended)),
        };
        tracing::info!("shutting down");
        stop.cancel();
        let drain_listeners = async {
            while let Some(ended) = listeners.join_next().await {
                if let Err(e) = flatten(ended) {
                    failure.get_or_insert(Err(e));
                }
            }
        };
        tokio::join!(self.broker.shutdown(), drain_listeners);
        // After the sessions: their unsubscribes are unbound, what they sent is flushed.
        #[cfg(feature = "relay")]
        if let Some(relay) = &self.relay {
            relay.stop().await;
        }
        connections.close();
        if tokio::time::timeout(CLOSE_GRACE, connections.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                remaining = connections.len(),
                "connections still open after the shutdown grace; dropping them"
            );
        }
        tracing::info!("stopped");
        failure.unwrap_or(Ok(()))
    }
}

fn flatten(ended: Result<Result<(), Error>, tokio::task::JoinError>) -> Result<(), Error> {
    match ended {
        Ok(result) => result,
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}

fn bind(listener: &'static str, addr: SocketAddr, backlog: u32) -> Result<TcpListener, Error> {
    crate::listener::bind(addr, backlog).map_err(|source| Error::Bind {
        listener,
        addr,
        source,
    })
}
