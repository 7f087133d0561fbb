//! [`WebSocketUpgrade`]: the server's opening handshake (RFC 6455 §4.2) as an axum extractor,
//! with subprotocol selection and permessage-deflate.
//!
//! axum's own extractor gives its callback a finished socket, so nothing can be put between
//! the connection and tungstenite; this one checks the same request headers, answers the same
//! way, and builds the socket itself over [`crate::Inflating`]. HTTP/1.1 only (no WebSocket
//! over HTTP/2's extended CONNECT).

use std::future::Future;

use axum::{
    extract::FromRequestParts,
    response::{IntoResponse, Response},
};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version, header, request::Parts};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::{
    handshake::derive_accept_key,
    protocol::{Role, WebSocketConfig},
};

use crate::negotiate::{Deflate, DeflateConfig, negotiate};
use crate::socket::WebSocket;

/// The socket an upgrade gives: the upgraded HTTP connection.
pub type ServerSocket = WebSocket<TokioIo<hyper::upgrade::Upgraded>>;

/// An upgrade request, checked; see the module documentation.
pub struct WebSocketUpgrade {
    on_upgrade: OnUpgrade,
    key: HeaderValue,
    /// Every token of every `Sec-WebSocket-Protocol` header, in order.
    offered_protocols: Vec<HeaderValue>,
    /// The `Sec-WebSocket-Extensions` headers.
    offered_extensions: HeaderMap,
    protocol: Option<HeaderValue>,
    deflate: Option<(Deflate, HeaderValue)>,
    config: WebSocketConfig,
}

impl std::fmt::Debug for WebSocketUpgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketUpgrade")
            .field("protocol", &self.protocol)
            .field("deflate", &self.deflate)
            .finish_non_exhaustive()
    }
}

/// Why a request is not a WebSocket upgrade, answered as an HTTP error with the reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The status answered.
    pub status: StatusCode,
    /// The reason, in the body.
    pub reason: &'static str,
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let mut response = (self.status, format!("{}\n", self.reason)).into_response();
        if self.status == StatusCode::UPGRADE_REQUIRED {
            // RFC 6455 §4.4: the versions we speak.
            let version = HeaderValue::from_static("13");
            response
                .headers_mut()
                .insert(header::SEC_WEBSOCKET_VERSION, version);
        }
        response
    }
}

fn reject(status: StatusCode, reason: &'static str) -> Rejection {
    Rejection { status, reason }
}

/// Whether a comma-separated header lists `token` (case-insensitively).
fn lists(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

impl WebSocketUpgrade {
    /// Checks `parts` as RFC 6455 §4.2.1 asks and takes its connection for the upgrade.
    pub fn from_parts(parts: &mut Parts) -> Result<Self, Rejection> {
        if parts.version > Version::HTTP_11 {
            return Err(reject(
                StatusCode::HTTP_VERSION_NOT_SUPPORTED,
                "WebSocket needs HTTP/1.1",
            ));
        }
        if parts.method != Method::GET {
            return Err(reject(
                StatusCode::METHOD_NOT_ALLOWED,
                "a WebSocket upgrade is a GET",
            ));
        }
        let headers = &parts.headers;
        if !lists(headers, header::CONNECTION, "upgrade") {
            return Err(reject(
                StatusCode::BAD_REQUEST,
                "Connection header did not include 'upgrade'",
            ));
        }
        if !lists(headers, header::UPGRADE, "websocket") {
            return Err(reject(
                StatusCode::BAD_REQUEST,
                "`Upgrade` header did not include 'websocket'",
            ));
        }
        let version = headers.get(header::SEC_WEBSOCKET_VERSION);
        if version.is_none_or(|v| v.as_bytes() != b"13") {
            return Err(reject(
                StatusCode::UPGRADE_REQUIRED,
                "WebSocket version not supported (Sec-WebSocket-Version must be 13)",
            ));
        }
        let key = headers
            .get(header::SEC_WEBSOCKET_KEY)
            .cloned()
            .ok_or(reject(
                StatusCode::BAD_REQUEST,
                "`Sec-WebSocket-Key` header missing",
            ))?;
        let offered_protocols = headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .flat_map(|value| value.as_bytes().split(|&b| b == b','))
            .filter_map(|token| HeaderValue::from_bytes(token.trim_ascii()).ok())
            .collect();
        let mut offered_extensions = HeaderMap::new();
        for value in headers.get_all(header::SEC_WEBSOCKET_EXTENSIONS) {
            offered_extensions.append(header::SEC_WEBSOCKET_EXTENSIONS, value.clone());
        }
        let on_upgrade = parts.extensions.remove::<OnUpgrade>().ok_or(reject(
            StatusCode::UPGRADE_REQUIRED,
            "this connection cannot be upgraded",
        ))?;
        Ok(WebSocketUpgrade {
            on_upgrade,
            key,
            offered_protocols,
            offered_extensions,
            protocol: None,
            deflate: None,
            config: WebSocketConfig::default(),
        })
    }

    /// tungstenite's settings for the connection.
    pub fn config(mut self, config: WebSocketConfig) -> Self {
        self.config = config;
        self
    }

    /// Chooses the first of `ours` that the client offered (whatever the client's order) as
    /// the subprotocol, or none.
    pub fn protocols<I>(mut self, ours: I) -> Self
    where
        I: IntoIterator<Item = &'static str>,
    {
        self.protocol = ours
            .into_iter()
            .find(|ours| {
                let ours = ours.as_bytes();
                self.offered_protocols.iter().any(|p| p.as_bytes() == ours)
            })
            .map(HeaderValue::from_static);
        self
    }

    /// The subprotocol chosen by [`WebSocketUpgrade::protocols`].
    pub fn selected_protocol(&self) -> Option<&HeaderValue> {
        self.protocol.as_ref()
    }

    /// Accepts permessage-deflate if the client offered it acceptably (and `config` is
    /// given: None leaves the connection uncompressed).
    pub fn deflate(mut self, config: Option<&DeflateConfig>) -> Self {
        self.deflate = config.and_then(|config| negotiate(&self.offered_extensions, config));
        self
    }

    /// What permessage-deflate agreed on, after [`WebSocketUpgrade::deflate`].
    pub fn selected_deflate(&self) -> Option<&Deflate> {
        self.deflate.as_ref().map(|(deflate, _)| deflate)
    }

    /// The `101 Switching Protocols` answer; once the connection is upgraded, `callback` runs
    /// on its own task with the socket. A failed upgrade (the client went away) is logged at
    /// debug and the callback not run.
    pub fn on_upgrade<F, Fut>(self, callback: F) -> Response
    where
        F: FnOnce(ServerSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let WebSocketUpgrade {
            on_upgrade,
            key,
            protocol,
            deflate,
            config,
            ..
        } = self;
        let mut response = Response::new(axum::body::Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        let accept = derive_accept_key(key.as_bytes());
        if let Ok(accept) = HeaderValue::from_str(&accept) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        if let Some(protocol) = protocol {
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
        }
        let deflate = deflate.map(|(deflate, answer)| {
            headers.insert(header::SEC_WEBSOCKET_EXTENSIONS, answer);
            deflate
        });
        tokio::spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(e) => {
                    tracing::debug!(error = %e, "WebSocket upgrade failed");
                    return;
                }
            };
            let io = TokioIo::new(upgraded);
            let socket = WebSocket::from_raw_socket(io, Role::Server, config, deflate).await;
            callback(socket).await;
        });
        response
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        WebSocketUpgrade::from_parts(parts)
    }
}
