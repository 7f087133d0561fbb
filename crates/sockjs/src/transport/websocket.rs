//! `<server>/<session>/websocket` (SockJS frames over WebSocket) and `<prefix>/websocket` (raw:
//! each message is one WebSocket text message, no frames, no heartbeats but pings).
//!
//! The session lives on the connection's task: one loop moves frames out and messages in, and
//! the handler runs beside it. Messages read but not yet taken by the application wait in the
//! loop, which then stops reading the socket (backpressure) but keeps writing.

use std::{collections::VecDeque, sync::Arc};

use axum::{
    extract::Request,
    http::{Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use stompbox_websocket::{
    ServerSocket, WebSocketUpgrade,
    tungstenite::{
        self, Message, Utf8Bytes,
        protocol::{CloseFrame, WebSocketConfig},
    },
};
use tokio::sync::mpsc;

use crate::frame::{self, Frame};
use crate::reply;
use crate::router::{Inner, SockJs};
use crate::session::{Attach, Receiver, Shared, Transport};
use crate::{Handler, OpenRequest};

pub(crate) async fn upgrade<H: Handler>(
    sockjs: &SockJs<H>,
    request: Request,
    transport: Transport,
    id: String,
) -> Response {
    let config = &sockjs.inner.config;
    if !config.websocket {
        return reply::not_found();
    }
    if request.method() != Method::GET {
        return reply::method_not_allowed("GET");
    }
    let headers = request.headers();
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !upgrade {
        let text = "Can \"Upgrade\" only to \"WebSocket\".";
        return reply::error(headers, StatusCode::BAD_REQUEST, text);
    }
    let connection = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    if !connection {
        let text = "\"Connection\" must be \"Upgrade\".";
        return reply::error(headers, StatusCode::BAD_REQUEST, text);
    }
    let (mut parts, _) = request.into_parts();
    let upgrade = match WebSocketUpgrade::from_parts(&mut parts) {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let request = OpenRequest {
        parts: &parts,
        transport,
        session_id: &id,
    };
    let ticket = match sockjs.inner.handler.open(&request) {
        Ok(ticket) => ticket,
        Err(response) => return response,
    };
    let inner = sockjs.inner.clone();
    let codec = WebSocketConfig::default()
        .max_message_size(Some(config.max_message_size))
        .max_frame_size(Some(config.max_message_size));
    upgrade
        .config(codec)
        .deflate(config.deflate.as_ref())
        .on_upgrade(move |socket| run(inner, socket, transport, id, ticket))
}

async fn run<H: Handler>(
    inner: Arc<Inner<H>>,
    socket: ServerSocket,
    transport: Transport,
    id: String,
    ticket: H::Ticket,
) {
    let (shared, session) = Shared::new(id, transport, &inner.config);
    let (Attach::Attached(receiver), Some(inbound)) = (shared.attach(), shared.inbound()) else {
        return;
    };
    let serve = async {
        inner.handler.serve(Arc::new(ticket), session).await;
        let (code, reason) = frame::GO_AWAY;
        shared.close(code, reason);
    };
    let pump = Pump {
        socket,
        receiver,
        inbound,
        raw: transport == Transport::RawWebSocket,
        write_timeout: inner.config.write_timeout,
    };
    tokio::join!(serve, pump.run());
}

enum Event {
    Frame(Frame),
    Message(Option<Result<Message, tungstenite::Error>>),
}

struct Pump {
    socket: ServerSocket,
    receiver: Receiver,
    inbound: mpsc::Sender<String>,
    raw: bool,
    write_timeout: std::time::Duration,
}

impl Pump {
    async fn run(mut self) {
        let mut pending = VecDeque::new();
        loop {
            let event = tokio::select! {
                frame = self.receiver.next() => Event::Frame(frame),
                permit = self.inbound.reserve(), if !pending.is_empty() => {
                    match permit {
                        Ok(permit) => permit.send(pending.pop_front().unwrap_or_default()),
                        // The application stopped reading; it may still be writing.
                        Err(_) => pending.clear(),
                    }
                    continue;
                }
                message = self.socket.next(), if pending.is_empty() => Event::Message(message),
            };
            match event {
                Event::Frame(frame) => {
                    if self.write(&frame).await.is_err() {
                        return;
                    }
                    if let Frame::Close(code, reason) = frame {
                        self.close(code, &reason).await;
                        self.receiver.finish();
                        return;
                    }
                }
                Event::Message(message) => {
                    let text = match message {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Binary(bytes))) => match Utf8Bytes::try_from(bytes) {
                            Ok(text) => text,
                            Err(_) => return self.refuse("binary message is not UTF-8").await,
                        },
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
                            continue;
                        }
                        // The client went away: the receiver's drop closes the session.
                        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    };
                    if self.raw {
                        pending.push_back(text.as_str().to_owned());
                    } else if !text.is_empty() {
                        match frame::decode_messages(text.as_bytes()) {
                            Ok(messages) => pending.extend(messages),
                            Err(e) => return self.refuse(e.text()).await,
                        }
                    }
                }
            }
        }
    }

    async fn write(&mut self, frame: &Frame) -> Result<(), ()> {
        let messages = match (self.raw, frame) {
            (false, frame) => vec![Message::Text(frame.encode().into())],
            (true, Frame::Messages(messages)) => messages
                .iter()
                .map(|m| Message::Text(m.as_str().into()))
                .collect(),
            (true, Frame::Heartbeat) => vec![Message::Ping(Bytes::new())],
            (true, Frame::Open | Frame::Close(..)) => Vec::new(),
        };
        for message in messages {
            match tokio::time::timeout(self.write_timeout, self.socket.send(message)).await {
                Ok(Ok(())) => {}
                _ => return Err(()),
            }
        }
        Ok(())
    }

    /// A close frame with the session's code when WebSocket allows it (1000, 3000–4999 and
    /// the defined 100x codes), else 1000; bounded.
    async fn close(&mut self, code: u16, reason: &str) {
        let code = match code {
            1000..=1003 | 1007..=1011 | 3000..=4999 => code,
            _ => 1000,
        };
        let frame = CloseFrame {
            code: code.into(),
            reason: Utf8Bytes::from(truncate(reason, 123)),
        };
        let socket = &mut self.socket;
        let closing = async {
            socket.send(Message::Close(Some(frame))).await?;
            // A lingering close: what the client sent meanwhile is read and dropped until its
            // own close frame, because closing a socket with unread input makes the kernel
            // send a reset, and the reset makes the client drop our close frame unread.
            while let Some(Ok(message)) = socket.next().await {
                if let Message::Close(_) = message {
                    break;
                }
            }
            Ok::<_, tungstenite::Error>(())
        };
        let _ = tokio::time::timeout(self.write_timeout, closing).await;
    }

    /// What the client sent is not SockJS: close the connection (1003 for a message the
    /// server cannot accept) and the session.
    async fn refuse(mut self, why: &str) {
        tracing::debug!(why, "SockJS WebSocket message refused");
        self.close(1003, why).await;
    }
}

fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
