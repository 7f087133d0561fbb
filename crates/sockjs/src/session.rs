//! One SockJS session: the queue of messages for the client, the receiver (the request or
//! WebSocket currently carrying frames down), and the application's two halves, [`Incoming`]
//! and [`Outgoing`].
//!
//! ```text
//!            first request                      app closes / receiver interrupted
//!  (none) ───────────────► Open ───────────────────────────────────────► Closed
//!                           │  ▲  receiver attached ⇄ detached              │
//!                           │  └── (polls, streams end at their limit)      │ no receiver for
//!                           │ no receiver for disconnect_delay              │ disconnect_delay
//!                           └──────────────────────────────► Expired ◄──────┘ (removed)
//! ```
//!
//! The state lives under a std mutex, never held across an `.await`; waiting is done on two
//! [`Notify`]s, one for the receiver (something to send), one for the application side and the
//! session's driver (room in the queue, a receiver came or went).

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    task::{Context, Poll},
    time::Duration,
};

use futures::Stream;
use tokio::{
    sync::{Notify, mpsc},
    time::Instant,
};

use crate::frame::{self, Frame};

/// Messages a session holds from the client before the application reads them; a sender (an
/// `xhr_send`, the WebSocket reader) waits beyond it. Small: the application reads continuously.
const INBOUND_CAPACITY: usize = 64;

/// Which transport opened a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `<server>/<session>/websocket`.
    WebSocket,
    /// `<prefix>/websocket`: plain WebSocket messages, no SockJS framing.
    RawWebSocket,
    /// `xhr_streaming`.
    XhrStreaming,
    /// `xhr` (long polling).
    XhrPolling,
    /// `eventsource`.
    EventSource,
    /// `htmlfile`.
    HtmlFile,
    /// `jsonp` (polling).
    JsonpPolling,
}

impl Transport {
    /// The transport's name in URLs (`xhr_streaming`) or `raw_websocket`.
    pub fn name(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::RawWebSocket => "raw_websocket",
            Transport::XhrStreaming => "xhr_streaming",
            Transport::XhrPolling => "xhr",
            Transport::EventSource => "eventsource",
            Transport::HtmlFile => "htmlfile",
            Transport::JsonpPolling => "jsonp",
        }
    }
}

/// The session is closed: nothing more can be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Closed;

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the SockJS session is closed")
    }
}

impl std::error::Error for Closed {}

#[derive(Debug)]
struct State {
    queue: VecDeque<String>,
    queued_bytes: usize,
    /// The open frame went to a receiver.
    opened: bool,
    /// Set once; every later receiver gets it.
    close: Option<(u16, String)>,
    /// The attached receiver's number.
    receiver: Option<u64>,
    receivers: u64,
    /// Since when no receiver has been attached (from creation until the first).
    detached_at: Instant,
    heartbeats: bool,
    /// To the application's [`Incoming`]; dropped when the session closes, which ends it.
    inbound: Option<mpsc::Sender<String>>,
}

/// What a session's transports and application halves share.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Something to send (messages, close): wakes the receiver (one at a time, so `notify_one`
    /// and its stored permit: no wake-up is lost).
    to_receiver: Notify,
    /// Room in the queue, a receiver came or went, closed: wakes application senders and the
    /// driver (`notify_waiters`).
    to_app: Notify,
    heartbeat_interval: Duration,
    disconnect_delay: Duration,
    max_queued_bytes: usize,
}

/// What a new receiver gets.
pub(crate) enum Attach {
    /// It carries the session's frames until [`Receiver::next`] says stop.
    Attached(Receiver),
    /// Another receiver is attached: this request gets `c[2010,...]` and ends.
    Busy,
    /// The session is closed: this request gets the close frame and ends.
    Closed(Frame),
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// A new session and the application's half of it.
    pub(crate) fn new(
        id: String,
        transport: Transport,
        config: &crate::Config,
    ) -> (Arc<Shared>, Session) {
        let (tx, rx) = mpsc::channel(INBOUND_CAPACITY);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                queued_bytes: 0,
                opened: false,
                close: None,
                receiver: None,
                receivers: 0,
                detached_at: Instant::now(),
                heartbeats: true,
                inbound: Some(tx),
            }),
            to_receiver: Notify::new(),
            to_app: Notify::new(),
            heartbeat_interval: config.heartbeat_interval,
            disconnect_delay: config.disconnect_delay,
            max_queued_bytes: config.max_queued_bytes,
        });
        let session = Session {
            id,
            transport,
            incoming: Incoming { rx },
            outgoing: Outgoing {
                shared: shared.clone(),
            },
        };
        (shared, session)
    }

    /// Attaches a receiver, unless one is attached or the session is over.
    pub(crate) fn attach(self: &Arc<Self>) -> Attach {
        let mut state = lock(&self.state);
        // A closed session still hands over what it queued before its close frame.
        if let (Some((code, reason)), true, true) =
            (&state.close, state.opened, state.queue.is_empty())
        {
            return Attach::Closed(Frame::Close(*code, reason.clone()));
        }
        if state.receiver.is_some() {
            return Attach::Busy;
        }
        state.receivers += 1;
        let id = state.receivers;
        state.receiver = Some(id);
        drop(state);
        self.to_app.notify_waiters();
        Attach::Attached(Receiver {
            shared: self.clone(),
            id,
            finished: false,
        })
    }

    /// The sender to the application, while the session is open.
    pub(crate) fn inbound(&self) -> Option<mpsc::Sender<String>> {
        lock(&self.state).inbound.clone()
    }

    /// Closes the session with `(code, reason)` unless it is closed already; true if it was
    /// open.
    pub(crate) fn close(&self, code: u16, reason: &str) -> bool {
        let mut state = lock(&self.state);
        if state.close.is_some() {
            return false;
        }
        state.close = Some((code, reason.to_owned()));
        state.inbound = None;
        drop(state);
        self.to_receiver.notify_one();
        self.to_app.notify_waiters();
        true
    }

    pub(crate) fn is_closed(&self) -> bool {
        lock(&self.state).close.is_some()
    }

    /// Resolves once no receiver has been attached for `disconnect_delay`.
    pub(crate) async fn idle_expired(&self) {
        loop {
            let notified = self.to_app.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let deadline = {
                let state = lock(&self.state);
                if state.receiver.is_some() {
                    None
                } else {
                    Some(state.detached_at + self.disconnect_delay)
                }
            };
            match deadline {
                Some(deadline) if deadline <= Instant::now() => return,
                Some(deadline) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep_until(deadline) => {}
                    }
                }
                None => notified.await,
            }
        }
    }
}

/// The request or WebSocket that currently carries a session's frames to the client. Dropped
/// before [`Receiver::finish`] (the client went away mid-response), it closes the session with
/// `c[1002,"Connection interrupted"]`.
#[derive(Debug)]
pub(crate) struct Receiver {
    shared: Arc<Shared>,
    id: u64,
    finished: bool,
}

impl Receiver {
    /// The next frame for the client: the open frame first, then queued messages (all at once),
    /// the close frame, or a heartbeat after `heartbeat_interval` of silence (unless the
    /// application turned them off). After a close frame there is nothing more.
    pub(crate) async fn next(&mut self) -> Frame {
        let shared = &*self.shared;
        loop {
            {
                let mut state = lock(&shared.state);
                if !state.opened {
                    state.opened = true;
                    return Frame::Open;
                }
                if !state.queue.is_empty() {
                    let messages = Vec::from(std::mem::take(&mut state.queue));
                    state.queued_bytes = 0;
                    drop(state);
                    shared.to_app.notify_waiters();
                    return Frame::Messages(messages);
                }
                if let Some((code, reason)) = &state.close {
                    return Frame::Close(*code, reason.clone());
                }
            }
            tokio::select! {
                _ = shared.to_receiver.notified() => {}
                _ = tokio::time::sleep(shared.heartbeat_interval) => {
                    if lock(&shared.state).heartbeats {
                        return Frame::Heartbeat;
                    }
                }
            }
        }
    }

    /// The receiver ends normally (a poll answered, a stream at its limit, a close written).
    pub(crate) fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut state = lock(&self.shared.state);
        if state.receiver != Some(self.id) {
            return;
        }
        state.receiver = None;
        state.detached_at = Instant::now();
        if !self.finished && state.close.is_none() {
            let (code, reason) = frame::INTERRUPTED;
            state.close = Some((code, reason.to_owned()));
            state.inbound = None;
        }
        drop(state);
        self.shared.to_app.notify_waiters();
    }
}

/// A SockJS session as the application sees it: a stream of messages from the client
/// ([`Incoming`]) and a handle to send messages and close ([`Outgoing`]).
#[derive(Debug)]
pub struct Session {
    id: String,
    transport: Transport,
    incoming: Incoming,
    outgoing: Outgoing,
}

impl Session {
    /// The session id from the URL (empty for the raw WebSocket endpoint).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The transport of the session's first request.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The next message from the client; `None` once the session is closed (by either side,
    /// or because its client went away).
    pub async fn recv(&mut self) -> Option<String> {
        self.incoming.rx.recv().await
    }

    /// See [`Outgoing::send`].
    pub async fn send(&self, message: impl Into<String>) -> Result<(), Closed> {
        self.outgoing.send(message).await
    }

    /// See [`Outgoing::close`].
    pub fn close(&self, code: u16, reason: &str) {
        self.outgoing.close(code, reason)
    }

    /// The two halves, to read and write from different places.
    pub fn into_split(self) -> (Incoming, Outgoing) {
        (self.incoming, self.outgoing)
    }
}

/// Messages from the client, in order; ends when the session closes.
#[derive(Debug)]
pub struct Incoming {
    rx: mpsc::Receiver<String>,
}

impl Stream for Incoming {
    type Item = String;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<String>> {
        self.rx.poll_recv(cx)
    }
}

/// Sends messages to the client and closes the session. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Outgoing {
    shared: Arc<Shared>,
}

impl Outgoing {
    /// Queues `message` for the client. Waits while the session's queue holds
    /// `max_queued_bytes` (a polling client that has not come back yet); an error once the
    /// session is closed.
    pub async fn send(&self, message: impl Into<String>) -> Result<(), Closed> {
        let message = message.into();
        let shared = &*self.shared;
        loop {
            let notified = shared.to_app.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = lock(&shared.state);
                if state.close.is_some() {
                    return Err(Closed);
                }
                if state.queued_bytes == 0
                    || state.queued_bytes + message.len() <= shared.max_queued_bytes
                {
                    state.queued_bytes += message.len();
                    state.queue.push_back(message);
                    drop(state);
                    shared.to_receiver.notify_one();
                    return Ok(());
                }
            }
            notified.await;
        }
    }

    /// Closes the session: the client gets `c[code,"reason"]` after what was queued, and the
    /// application's [`Incoming`] ends. Later calls do nothing.
    pub fn close(&self, code: u16, reason: &str) {
        self.shared.close(code, reason);
    }

    /// Turns the `h` frames on or off (on by default), e.g. once the application protocol has
    /// heart-beats of its own.
    pub fn set_heartbeats(&self, on: bool) {
        lock(&self.shared.state).heartbeats = on;
    }

    /// True once the session is closed.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }
}
