//! Server-Sent Events: `GET /sse?destination=/topic/a&destination=/user/queue/b` answers
//! `text/event-stream`, one event per message, for notification pages on `EventSource`.
//!
//! Each stream is a broker session the edge runs for its client (`http_session.rs`): CONNECT
//! with the request's credentials, a SUBSCRIBE per destination (answered 401, 403 or 400 as the
//! broker refuses), then every MESSAGE as an event (`event.rs`). The session outlives a dropped
//! connection for `sse.resume_window`, so the client's reconnect resumes it from its
//! `Last-Event-ID` with nothing missed (`stream.rs`, `resumable.rs`).

mod event;
mod resumable;
mod stream;

use std::sync::Arc;

use axum::{
    body::Body,
    extract::Request,
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::{MethodRouter, get},
};
use bytes::Bytes;
use futures::StreamExt;
use stompbox_broker::{Broker, TransportKind};
use stompbox_codec::{Command, Frame};

use self::{
    resumable::{Key, Resumable},
    stream::{Entry, Next, Stream},
};
use crate::{
    SseConfig,
    http_session::{HttpSession, answered, connection_info, place, plain},
    ws::Handshakes,
};

/// A `GET` route serving Server-Sent Events on your own axum router, as
/// [`websocket_route`](crate::websocket_route) serves WebSocket: mount it at the path you
/// choose (`config.path` is the standalone server's and is not read here). Clients connect
/// with `?destination=...` parameters and the credentials your authenticator reads from the
/// request (`docs/transports.md`). No Origin allow-list or proxy list applies here: those
/// are the standalone server's `[websocket]` settings.
pub fn sse_route<S>(broker: Broker, config: SseConfig) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    let endpoint = SseEndpoint::new(broker, Arc::default(), config);
    get(move |request: Request| endpoint.clone().open(request))
}

/// The `/sse` endpoint.
#[derive(Clone, Debug)]
pub(crate) struct SseEndpoint {
    broker: Broker,
    handshakes: Arc<Handshakes>,
    config: Arc<SseConfig>,
    resumable: Arc<Resumable>,
}

impl SseEndpoint {
    pub(crate) fn new(broker: Broker, handshakes: Arc<Handshakes>, config: SseConfig) -> Self {
        SseEndpoint {
            broker,
            resumable: Arc::new(Resumable::new(config.resume_window)),
            handshakes,
            config: Arc::new(config),
        }
    }

    /// Answers one request: the stream, or why not.
    pub(crate) async fn open(self, request: Request) -> Response {
        let (parts, _) = request.into_parts();
        match self.stream(&parts).await {
            Ok(response) => response,
            Err(response) => response,
        }
    }

    async fn stream(&self, parts: &Parts) -> Result<Response, Response> {
        let destinations = destinations(parts.uri.query(), self.config.max_destinations)
            .map_err(|message| plain(StatusCode::BAD_REQUEST, message))?;
        let accepted = place(&self.broker, parts);
        let info = connection_info(&self.handshakes, parts, Some(accepted), TransportKind::Sse)
            .map_err(IntoResponse::into_response)?;
        let within = self.broker.config().connect_timeout;
        let mut session = HttpSession::start(&self.broker, info);
        let connected = answered(within, session.connect(&parts.headers)).await?;
        let key = Key {
            user: connected.user,
            destinations,
        };
        let last_event_id = (parts.headers.get("last-event-id"))
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty());
        if let Some(last) = last_event_id
            && let Some(stream) = self.resumable.find(&key, last)
        {
            // The stream's session goes on; this one was only to know who asks.
            tokio::spawn(session.disconnect());
            let generation = stream.resume(last);
            tracing::debug!(stream = %stream.id, "SSE stream resumed");
            let opening = format!("retry: {}\n\n", self.config.retry.as_millis());
            return Ok(self.respond(parts, stream, generation, opening.into()));
        }
        let mut early = Vec::new();
        for (id, destination) in key.destinations.iter().enumerate() {
            let id = id.to_string();
            let subscribe = Frame::new(Command::Subscribe)
                .with_header("id", id.as_str())
                .with_header("destination", destination.as_str())
                .with_header("ack", "auto")
                .with_header("receipt", id.as_str());
            session.send(&subscribe);
        }
        for id in 0..key.destinations.len() {
            let id = id.to_string();
            let receipt = session.receipt(&id, |message| early.push(message));
            answered(within, receipt).await?;
        }
        let id = format!("stream-{}", stream_number());
        let stream = Arc::new(Stream::new(id, self.config.replay_buffer));
        self.resumable.add(&key, stream.clone());
        let pump = Pump {
            stream: stream.clone(),
            session,
            event: self.config.event.clone(),
            resumable: self.resumable.clone(),
            key,
        };
        tokio::spawn(pump.run(early));
        let opening = event::opening(self.config.retry.as_millis(), &stream.id);
        Ok(self.respond(parts, stream, 0, opening))
    }

    /// The `text/event-stream` response: `opening`, then the stream's entries as reader
    /// `generation`, with a comment whenever it has been idle for `keepalive_interval`.
    fn respond(
        &self,
        parts: &Parts,
        stream: Arc<Stream>,
        generation: u64,
        opening: Bytes,
    ) -> Response {
        let reader = Reader {
            stream,
            generation,
            resumable: self.resumable.clone(),
        };
        let keepalive = self.config.keepalive_interval;
        let events = futures::stream::unfold(reader, move |reader| async move {
            let next = tokio::time::timeout(keepalive, reader.stream.next(reader.generation));
            match next.await {
                Ok(Next::Bytes(bytes)) => Some((bytes, reader)),
                Ok(Next::End) => None,
                Err(_) => Some((Bytes::from_static(event::KEEPALIVE), reader)),
            }
        });
        let body = futures::stream::once(async move { opening })
            .chain(events)
            .map(Ok::<_, std::convert::Infallible>);
        let mut response = Body::from_stream(body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        // nginx buffers responses unless told not to.
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        if let Some(origin) = parts.headers.get(header::ORIGIN) {
            // The allow-list already let it through (`connection_info`).
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            headers.insert(header::VARY, HeaderValue::from_static("origin"));
        }
        response
    }
}

/// Most frames the pump adds to its stream at once.
const BATCH: usize = 64;

/// The response body's hold on its stream: when hyper drops the body (the client's connection
/// closed), the stream waits for the client's reconnect.
struct Reader {
    stream: Arc<Stream>,
    generation: u64,
    resumable: Arc<Resumable>,
}

impl Drop for Reader {
    fn drop(&mut self) {
        if self.stream.detach(self.generation) {
            tracing::debug!(stream = %self.stream.id, "SSE client gone; stream kept for a reconnect");
            self.resumable.park(self.stream.clone());
        }
    }
}

/// Reads a stream's session into it until the session ends or the stream is given up.
struct Pump {
    stream: Arc<Stream>,
    session: HttpSession,
    /// The events' `event` field.
    event: String,
    resumable: Arc<Resumable>,
    key: Key,
}

impl Pump {
    async fn run(mut self, early: Vec<Frame>) {
        let mut kept = self.add(early).await;
        while kept {
            let frame = tokio::select! {
                frame = self.session.next() => frame,
                () = self.stream.cancelled() => None,
            };
            let Some(frame) = frame else { break };
            // With what else the session has ready: one change of the stream, one write.
            let mut frames = vec![frame];
            while frames.len() < BATCH
                && let Some(frame) = self.session.try_next()
            {
                frames.push(frame);
            }
            kept = self.add(frames).await;
        }
        self.resumable.remove(&self.key, &self.stream);
        self.stream.close();
        // Given up (or ended by the broker): the session ends, its subscriptions with it.
        self.session.disconnect().await;
    }

    /// Adds the events of `frames` (MESSAGEs, and the ERROR that ends a session as a comment).
    async fn add(&self, frames: Vec<Frame>) -> bool {
        let entries: Vec<Entry> = frames
            .iter()
            .filter_map(|frame| match frame.command {
                Command::Message => Some(match event::message(frame, &self.event) {
                    Some(event) => Entry::Event(event),
                    None => Entry::Comment(event::skipped(frame)),
                }),
                Command::Error => {
                    let message = frame.header("message").unwrap_or("error");
                    let comment = format!(": closed: {}\n\n", message.replace(['\r', '\n'], " "));
                    Some(Entry::Comment(comment.into()))
                }
                _ => None,
            })
            .collect();
        entries.is_empty() || self.stream.push(entries).await
    }
}

/// The `destination` parameters of `query`, in order.
fn destinations(query: Option<&str>, max: usize) -> Result<Vec<String>, String> {
    let mut destinations = Vec::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if name != "destination" {
            continue;
        }
        if value.is_empty() || value.chars().any(char::is_control) {
            return Err(format!(
                "destination {value:?} is empty or holds a control character"
            ));
        }
        if destinations.len() == max {
            return Err(format!(
                "at most {max} destination parameters are allowed (sse.max_destinations)"
            ));
        }
        destinations.push(value.into_owned());
    }
    if destinations.is_empty() {
        return Err(
            "at least one destination parameter is needed: /sse?destination=/topic/news".to_owned(),
        );
    }
    Ok(destinations)
}

/// Numbers streams on this node, for their ids.
fn stream_number() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Relaxed)
}

#[cfg(test)]
mod tests {
    use super::destinations;

    #[test]
    fn destinations_come_from_repeated_parameters() {
        let query = "destination=%2Ftopic%2Fa&x=1&destination=/user/queue/b";
        assert_eq!(
            destinations(Some(query), 16).unwrap(),
            ["/topic/a", "/user/queue/b"]
        );
        let none = destinations(Some("x=1"), 16).unwrap_err();
        assert!(none.contains("at least one destination"), "{none}");
        let many = destinations(Some("destination=/topic/a&destination=/topic/b"), 1);
        assert!(many.unwrap_err().contains("sse.max_destinations"));
        let control = destinations(Some("destination=/topic/a%0Ab"), 4).unwrap_err();
        assert!(control.contains("control character"), "{control}");
    }
}
