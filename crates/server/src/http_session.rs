//! A broker session driven by an HTTP request, for the edges that are not STOMP on the wire
//! (`sse.rs`, `publish.rs`): the edge writes the frames a STOMP client would (CONNECT with the
//! request's credentials, then SUBSCRIBE or SEND) and reads the broker's frames back, decoded.
//! So an HTTP client meets exactly the checks a STOMP client does (authentication, login
//! throttling, admission, permissions, destination rules, limits, persistence), and a refusal
//! comes back as the ERROR frame's message, which [`Refused`] turns into an HTTP status.

use std::{io, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    extract::ConnectInfo,
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use base64::Engine;
use bytes::{Bytes, BytesMut};
use futures::{
    SinkExt, StreamExt,
    channel::{mpsc as bounded, mpsc as unbounded},
};
use stompbox_broker::{
    Accepted, Broker, CloseReason, ConnectionInfo, Inbound, Outbound, TlsInfo, TransportKind,
};
use stompbox_codec::{Command, Decoder, Frame, Item, Limits, Version, encode};
use tokio::task::JoinHandle;

use crate::ws::{Handshakes, detached_handshake};

/// Frames decoded and not yet read by the edge: beyond this the session's writes wait, and its
/// outbox fills under the broker's slow-consumer policy, as for a slow WebSocket.
const DECODED_FRAMES: usize = 64;

/// One broker session run on a task of its own; dropping it ends the session (as a closed
/// transport).
#[derive(Debug)]
pub(crate) struct HttpSession {
    inbound: unbounded::UnboundedSender<Bytes>,
    frames: bounded::Receiver<Frame>,
    task: JoinHandle<CloseReason>,
}

/// What CONNECT was answered with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Connected {
    /// The principal's name (the CONNECTED frame's `user-name`); `None` when anonymous.
    pub(crate) user: Option<String>,
}

/// The request a session stands for (an SSE stream, a publish, a SockJS session's first
/// request): checked against the Origin allow-list, admitted among the node's connections
/// (`accepted`: `None` where nothing counts them, an embedder's own router), its credentials
/// left for the authenticator.
pub(crate) fn connection_info(
    handshakes: &Handshakes,
    parts: &Parts,
    accepted: Option<Arc<Accepted>>,
    transport: TransportKind,
) -> Result<ConnectionInfo, Plain> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| handshakes.proxies.client(c.0, &parts.headers));
    if let Err(origin) = handshakes.origins.check(&parts.headers) {
        let origin = String::from_utf8_lossy(origin);
        tracing::info!(?peer, %origin, "HTTP request from a refused origin");
        return Err(Plain(
            StatusCode::FORBIDDEN,
            format!("origin not allowed: {origin}"),
        ));
    }
    if let Some(accepted) = &accepted {
        if let Some(client) = peer {
            let _ = accepted.admit(client.ip());
        }
        if let Some(refusal) = accepted.refusal() {
            accepted.count_refused();
            tracing::debug!(?peer, message = %refusal.message(), "HTTP request refused");
            return Err(Plain(StatusCode::SERVICE_UNAVAILABLE, refusal.to_string()));
        }
    }
    Ok(ConnectionInfo {
        peer,
        transport,
        handshake: Some(detached_handshake(&parts.uri, &parts.headers)),
        tls: parts.extensions.get::<TlsInfo>().cloned().map(Box::new),
        accepted,
    })
}

/// The place among the node's connections for a session of the request in `parts`: the one
/// its HTTP connection took at accept, as a WebSocket upgrade does, unless an earlier request
/// on that connection already used it (a keep-alive connection carries many); then one of its
/// own. Either way the connection leaves its pre-CONNECT cap once a session is connected.
pub(crate) fn place(broker: &Broker, parts: &Parts) -> Arc<Accepted> {
    match parts.extensions.get::<Arc<Accepted>>() {
        Some(connection) if !connection.is_connected() => connection.clone(),
        _ => broker.accept(),
    }
}

impl HttpSession {
    /// Starts a session for `info`; nothing is sent until [`HttpSession::connect`].
    pub(crate) fn start(broker: &Broker, info: ConnectionInfo) -> HttpSession {
        let (inbound, inbound_rx) = unbounded::unbounded::<Bytes>();
        let (frames_tx, frames) = bounded::channel(DECODED_FRAMES);
        let broker = broker.clone();
        let task = tokio::spawn(async move {
            let inbound = futures::StreamExt::map(inbound_rx, |bytes| Ok(Inbound::Data(bytes)));
            broker
                .serve(info, inbound, Box::pin(decoding(frames_tx)))
                .await
        });
        HttpSession {
            inbound,
            frames,
            task,
        }
    }

    /// Sends `frame` as the client.
    pub(crate) fn send(&self, frame: &Frame) {
        let mut bytes = BytesMut::new();
        encode(frame, Version::V1_2, &mut bytes);
        // A session that has ended reads nothing more; what it said is in `next`.
        let _ = self.inbound.unbounded_send(bytes.freeze());
    }

    /// The broker's next frame; `None` once the session has ended.
    pub(crate) async fn next(&mut self) -> Option<Frame> {
        self.frames.next().await
    }

    /// The broker's next frame if one is ready.
    pub(crate) fn try_next(&mut self) -> Option<Frame> {
        self.frames.try_recv().ok()
    }

    /// CONNECT with the request's credentials (HTTP Basic becomes `login` and `passcode`;
    /// bearer tokens, cookies and query tokens reach the authenticator through the handshake),
    /// without heart-beats: the edge keeps its own connection alive.
    pub(crate) async fn connect(&mut self, headers: &HeaderMap) -> Result<Connected, Refused> {
        let mut connect = Frame::new(Command::Connect)
            .with_header("accept-version", "1.2")
            .with_header("heart-beat", "0,0");
        if let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
            connect = connect.with_header("host", host);
        }
        if let Some((login, passcode)) = basic_credentials(headers) {
            connect = connect
                .with_header("login", login)
                .with_header("passcode", passcode);
        }
        self.send(&connect);
        match self.next().await {
            Some(frame) if frame.command == Command::Connected => Ok(Connected {
                user: frame.header("user-name").map(str::to_owned),
            }),
            other => Err(self.refused(other).await),
        }
    }

    /// Waits for the RECEIPT of `receipt`, handing every MESSAGE before it to `early`.
    pub(crate) async fn receipt(
        &mut self,
        receipt: &str,
        mut early: impl FnMut(Frame),
    ) -> Result<(), Refused> {
        loop {
            match self.next().await {
                Some(frame) if frame.command == Command::Message => early(frame),
                Some(frame)
                    if frame.command == Command::Receipt
                        && frame.header("receipt-id") == Some(receipt) =>
                {
                    return Ok(());
                }
                Some(frame) if frame.command == Command::Receipt => {}
                other => return Err(self.refused(other).await),
            }
        }
    }

    /// Ends the session with DISCONNECT and waits for it to close.
    pub(crate) async fn disconnect(mut self) {
        self.send(&Frame::new(Command::Disconnect));
        while self.next().await.is_some() {}
        let _ = self.task.await;
    }

    /// What the session ended with, after `last` (its ERROR, or nothing).
    async fn refused(&mut self, last: Option<Frame>) -> Refused {
        // The session closes after its ERROR; its reason says which kind of refusal it was.
        self.inbound.close_channel();
        while self.next().await.is_some() {}
        let reason = (&mut self.task)
            .await
            .unwrap_or(CloseReason::TransportClosed);
        let (message, detail) = match &last {
            Some(error) if error.command == Command::Error => (
                error.header("message").unwrap_or("refused").to_owned(),
                String::from_utf8_lossy(&error.body).trim().to_owned(),
            ),
            _ => (format!("{reason:?}"), String::new()),
        };
        Refused {
            reason,
            message,
            detail,
        }
    }
}

/// Why the broker refused the session or its request, as the ERROR frame said it.
#[derive(Debug)]
pub(crate) struct Refused {
    /// How the session ended.
    pub(crate) reason: CloseReason,
    /// The ERROR's `message` header.
    pub(crate) message: String,
    /// The ERROR's body, trimmed.
    pub(crate) detail: String,
}

impl Refused {
    /// The HTTP status for the refusal: 401 for a failed login, 403 for a refused permission,
    /// 503 when the node is full or stopping, 400 for a request that broke a rule (a bad
    /// destination, an oversize frame).
    pub(crate) fn status(&self) -> StatusCode {
        match self.reason {
            CloseReason::AuthenticationFailed => StatusCode::UNAUTHORIZED,
            CloseReason::AccessRefused(_) => StatusCode::FORBIDDEN,
            CloseReason::TooManyConnections | CloseReason::Shutdown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            CloseReason::ConnectTimeout => StatusCode::REQUEST_TIMEOUT,
            CloseReason::ProtocolError(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let status = self.status();
        let text = match self.detail.is_empty() || self.detail == self.message {
            true => self.message,
            false => format!("{}: {}", self.message, self.detail),
        };
        let mut response = plain(status, text);
        if status == StatusCode::UNAUTHORIZED {
            // Bearer, not Basic: a browser would otherwise prompt for a password.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"stompbox\""),
            );
        }
        response
    }
}

/// A `text/plain` answer ending in a newline.
pub(crate) fn plain(status: StatusCode, text: impl Into<String>) -> Response {
    Plain(status, text.into()).into_response()
}

/// A status and the line of text that says why.
#[derive(Debug)]
pub(crate) struct Plain(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for Plain {
    fn into_response(self) -> Response {
        let Plain(status, mut text) = self;
        text.push('\n');
        let content_type = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
        (status, content_type, text).into_response()
    }
}

/// `Authorization: Basic` as login and passcode.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (login, passcode) = decoded.split_once(':')?;
    Some((login.to_owned(), passcode.to_owned()))
}

/// The session's outbound batches, decoded into frames for the edge.
fn decoding(
    frames: bounded::Sender<Frame>,
) -> impl futures::Sink<Outbound, Error = io::Error> + Send + 'static {
    // The broker's own frames: no limit is needed against it.
    let decoder = Decoder::new(Limits::UNLIMITED);
    futures::sink::unfold(
        (frames, decoder, BytesMut::new()),
        |(mut frames, mut decoder, mut buffer), out: Outbound| async move {
            buffer.extend_from_slice(&out.bytes);
            loop {
                let item = decoder
                    .decode(&mut buffer)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                match item {
                    Some(Item::Frame(frame)) => {
                        if frames.send(frame).await.is_err() {
                            return Err(io::ErrorKind::BrokenPipe.into());
                        }
                    }
                    Some(Item::HeartBeat) => {}
                    None => break,
                }
            }
            if buffer.is_empty() {
                // An idle stream holds no decode buffer (what was decoded lives in its frames).
                buffer = BytesMut::new();
            }
            Ok((frames, decoder, buffer))
        },
    )
}

/// Bounds a wait for the broker's answer: a session that neither answers nor ends (it
/// cannot, short of a bug) must not hold an HTTP request forever.
pub(crate) async fn answered<T>(
    within: Duration,
    wait: impl Future<Output = Result<T, Refused>>,
) -> Result<T, Response> {
    match tokio::time::timeout(within, wait).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(refused)) => Err(refused.into_response()),
        Err(_) => Err(plain(
            StatusCode::GATEWAY_TIMEOUT,
            "the broker did not answer in time",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_become_login_and_passcode() {
        let mut headers = HeaderMap::new();
        // "alice:pa:ss" — the passcode keeps its colons.
        let value = HeaderValue::from_static("Basic YWxpY2U6cGE6c3M=");
        headers.insert(header::AUTHORIZATION, value);
        assert_eq!(
            basic_credentials(&headers),
            Some(("alice".to_owned(), "pa:ss".to_owned()))
        );
        let bearer = HeaderValue::from_static("Bearer eyJ.a.b");
        headers.insert(header::AUTHORIZATION, bearer);
        assert_eq!(basic_credentials(&headers), None);
        let garbage = HeaderValue::from_static("Basic !!!");
        headers.insert(header::AUTHORIZATION, garbage);
        assert_eq!(basic_credentials(&headers), None);
    }
}
