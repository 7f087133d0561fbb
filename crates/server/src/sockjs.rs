//! The SockJS edge: each SockJS session (`stompbox-sockjs`, mounted under `sockjs.prefix` on
//! the WebSocket listener) is one broker session, its messages the STOMP stream's chunks.
//!
//! A session is checked and counted like a WebSocket upgrade, at its first request (its
//! handshake): the Origin allow-list (403), then a place among the node's connections (503
//! when full). The `websocket` transport takes the place its HTTP connection got at accept,
//! as `ws.rs` does; a polling or streaming session spans several HTTP requests and
//! connections, so it takes one of its own ([`Broker::accept`]), and `connect_timeout` runs
//! from its first request. Once the session is connected, the HTTP connections that carry its
//! later requests leave the pre-CONNECT cap (`pre_connect.rs`).
//!
//! SockJS's `h` frames stop once the CONNECTED frame going out grants server heart-beats: STOMP's
//! own then keep the session alive, as in Spring. SockJS carries text only: a MESSAGE whose
//! body is not UTF-8 ends the session.

use std::{
    future::Future,
    io,
    sync::{Arc, Mutex, PoisonError},
};

use axum::{
    Router,
    http::request::Parts,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use futures::StreamExt;
use stompbox_broker::{
    Accepted, Broker, CloseReason, ConnectionInfo, Inbound, Outbound, TransportKind,
};
use stompbox_sockjs::{Handler, OpenRequest, Outgoing, Session, SockJs, Transport, frame};
use tracing::Instrument;

use crate::{
    SockJsConfig,
    http_session::connection_info,
    ws::{Handshakes, close_code},
};

/// STOMP over SockJS on your own axum router: the endpoint's routes under `prefix`, to
/// [`merge`](axum::Router::merge) into it, as [`websocket_route`](crate::websocket_route) is
/// for WebSocket (`new SockJS("http://host/PREFIX")` in the page). `config.prefix` and
/// `config.enabled` are the standalone server's and are not read here; no Origin allow-list
/// applies (the standalone server's `websocket.allowed_origins`). Its `websocket` transports
/// negotiate permessage-deflate with [`CompressionConfig`](crate::CompressionConfig)'s
/// defaults, as [`websocket_route`](crate::websocket_route) does.
///
/// # Panics
/// If `prefix` does not start with `/` or ends with one.
pub fn sockjs_router<S>(broker: Broker, prefix: &str, config: &SockJsConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let deflate = crate::CompressionConfig::default().deflate();
    let protocol = config.protocol(broker.config(), deflate);
    let handler = StompOverSockJs {
        broker,
        handshakes: Arc::default(),
    };
    SockJs::new(protocol, handler).router(prefix)
}

/// Runs STOMP sessions over SockJS: the [`Handler`] of every SockJS endpoint of the server.
#[derive(Clone, Debug)]
pub(crate) struct StompOverSockJs {
    pub(crate) broker: Broker,
    pub(crate) handshakes: Arc<Handshakes>,
}

/// What a session's first request left for the session.
#[derive(Debug)]
pub(crate) struct Ticket {
    /// Taken by `serve`.
    info: Mutex<Option<ConnectionInfo>>,
    /// The session's place among the node's connections.
    accepted: Option<Arc<Accepted>>,
}

impl Handler for StompOverSockJs {
    type Ticket = Ticket;

    fn open(&self, request: &OpenRequest<'_>) -> Result<Ticket, Response> {
        let parts = request.parts;
        let accepted = match request.transport {
            Transport::WebSocket | Transport::RawWebSocket => {
                parts.extensions.get::<Arc<Accepted>>().cloned()
            }
            _ => Some(self.broker.accept()),
        };
        let info = connection_info(&self.handshakes, parts, accepted, TransportKind::SockJs)
            .map_err(IntoResponse::into_response)?;
        let accepted = info.accepted.clone();
        Ok(Ticket {
            info: Mutex::new(Some(info)),
            accepted,
        })
    }

    fn serve(
        &self,
        ticket: Arc<Ticket>,
        session: Session,
    ) -> impl Future<Output = ()> + Send + 'static {
        let broker = self.broker.clone();
        let info = ticket
            .info
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let span = tracing::debug_span!(
            "connection",
            transport = "sockjs",
            sockjs_transport = session.transport().name(),
            sockjs_session = session.id(),
        );
        async move {
            let Some(info) = info else { return };
            let (incoming, outgoing) = session.into_split();
            let inbound = incoming.map(|message| Ok(Inbound::Data(Bytes::from(message))));
            let reason = broker
                .serve(info, inbound, Box::pin(outbound(outgoing.clone())))
                .await;
            let (code, text) = match &reason {
                CloseReason::TransportClosed => frame::GO_AWAY,
                reason => close_code(reason).unwrap_or(frame::GO_AWAY),
            };
            outgoing.close(code, text);
            tracing::debug!(?reason, "closed");
        }
        .instrument(span)
    }

    fn resume(&self, ticket: &Ticket, request: &Parts) {
        let connected = ticket.accepted.as_ref().is_some_and(|a| a.is_connected());
        if let (true, Some(connection)) = (connected, request.extensions.get::<Arc<Accepted>>()) {
            connection.set_connected();
        }
    }
}

/// The broker's batches as SockJS messages, watching for the CONNECTED frame's heart-beats.
fn outbound(
    outgoing: Outgoing,
) -> impl futures::Sink<Outbound, Error = io::Error> + Send + 'static {
    futures::sink::unfold(
        (outgoing, false),
        |(outgoing, mut connected), out: Outbound| async move {
            let text = String::from_utf8(Vec::from(out.bytes)).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a frame whose body is not UTF-8 cannot travel over SockJS",
                )
            })?;
            if !connected && let Some(send_interval) = connected_heartbeat(&text) {
                connected = true;
                if send_interval > 0 {
                    outgoing.set_heartbeats(false);
                }
            }
            outgoing
                .send(text)
                .await
                .map_err(|e| io::Error::new(io::ErrorKind::BrokenPipe, e))?;
            Ok((outgoing, connected))
        },
    )
}

/// The server's send interval (ms) in a CONNECTED frame's `heart-beat` header, when `text`
/// starts with CONNECTED (0 when it has no such header).
fn connected_heartbeat(text: &str) -> Option<u64> {
    let rest = text
        .strip_prefix("CONNECTED\n")
        .or_else(|| text.strip_prefix("CONNECTED\r\n"))?;
    let header = rest
        .lines()
        .take_while(|line| !line.is_empty())
        .find_map(|line| line.strip_prefix("heart-beat:"));
    let send = header
        .and_then(|value| value.split(',').next())
        .and_then(|sx| sx.trim().parse().ok());
    Some(send.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::connected_heartbeat;

    #[test]
    fn heart_beats_are_read_off_connected() {
        let connected = "CONNECTED\nversion:1.2\nheart-beat:10000,5000\n\n\0";
        assert_eq!(connected_heartbeat(connected), Some(10000));
        assert_eq!(
            connected_heartbeat("CONNECTED\r\nheart-beat:0,0\r\n\r\n\0"),
            Some(0)
        );
        assert_eq!(connected_heartbeat("CONNECTED\nversion:1.2\n\n\0"), Some(0));
        assert_eq!(connected_heartbeat("MESSAGE\nheart-beat:1,1\n\n\0"), None);
    }
}
